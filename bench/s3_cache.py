"""The S3 read cache of `stedi.storage.s3` (CACHED_BYTES) measured: a lake on moto's S3 server.

Starts moto's server on 127.0.0.1 behind a WSGI wrapper that records every request (method, path,
response bytes), generates feeds once (`--customers`, with defects), and then, `--repeat` times per
variant, alternating, on a fresh bucket each time:

  full         stedi run s3://stedi-source/feeds --lake s3://stedi-lake/zones  (all but the last
               non-empty file of each feed)
  incremental  the same after those files arrive
  query        stedi query (counts and a join over the curated tables)
  status       stedi status

Variants: `cache` (CACHED_BYTES as in the code) and `no-cache` (CACHED_BYTES = 0: every small data
file is still fetched whole in one GET and its metadata still remembered, but its bytes are not
kept). Each command runs in its own process, like a user's; its wall time, peak RSS (os.wait4)
and the requests the server saw during it are recorded. Prints a table (each variant's best wall
time of the repetitions, with that repetition's requests), writes every repetition to --out as JSON.

  python bench/s3_cache.py [--customers 2000] [--repeat 3] [--data DIR] [--out bench/results/s3_cache.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
FEEDS = ("customer", "accelerometer", "step_trainer")
PHASES = ("full", "incremental", "query", "status")
VARIANTS = ("cache", "no-cache")
SOURCE = "s3://stedi-source/feeds"
LAKE = "s3://stedi-lake/zones"
QUERY = (
    "SELECT (SELECT count(*) FROM customer_trusted) AS customers, (SELECT count(*) FROM accelerometer_trusted) AS readings, "
    "(SELECT count(*) FROM machine_learning_curated) AS curated, "
    "(SELECT count(*) FROM step_trainer_trusted AS s JOIN customers_curated AS c ON s.serialNumber = c.serialNumber) AS joined"
)
# The same stedi CLI in both variants; only CACHED_BYTES differs (when BENCH_CACHED_BYTES is set).
CLI = """
import os, sys
import stedi.storage.s3 as s3
if os.environ.get("BENCH_CACHED_BYTES"):
    s3.CACHED_BYTES = int(os.environ["BENCH_CACHED_BYTES"])
from stedi.cli import main
sys.argv[0] = "stedi"
main()
"""
MB = 1_000_000


# ---- the server: moto behind a recorder ---------------------------------------------------------
def serve(port_file: Path) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    moto = DomainDispatcherApplication(create_backend_app)
    seen: list[list[Any]] = []
    guard = threading.Lock()

    def app(environ: dict, start_response: Any) -> Any:
        if environ.get("PATH_INFO") == "/__requests":  # the recorder's own endpoint: take and clear
            with guard:
                body = json.dumps(seen).encode()
                seen.clear()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        entry = [environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""), environ.get("HTTP_RANGE", ""), target, 0]
        chunks = []
        for chunk in moto(environ, start_response):
            chunks.append(chunk)
            entry[4] += len(chunk)
        with guard:
            seen.append(entry)
        return chunks

    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


def start_server(work: Path) -> tuple[subprocess.Popen, str]:
    port_file = work / "port"
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)], stderr=subprocess.DEVNULL)
    for _ in range(300):
        if port_file.exists() and port_file.read_text():
            endpoint = f"http://127.0.0.1:{port_file.read_text()}"
            with socket.create_connection(("127.0.0.1", int(port_file.read_text())), timeout=5):
                return process, endpoint
        time.sleep(0.1)
    process.kill()
    raise SystemExit("moto's server did not start")


def take_requests(endpoint: str) -> list[list[Any]]:
    import requests

    return requests.get(f"{endpoint}/__requests", timeout=30).json()


def summarize_requests(seen: list[list[Any]]) -> dict:
    """Object GETs (all, and on Parquet data files: count, distinct files, bytes), HEADs, the rest."""
    gets = [r for r in seen if r[0] == "GET" and r[1].strip("/").count("/") >= 1]
    data = [r for r in gets if r[1].endswith(".parquet")]
    per_file = Counter(r[1] for r in data)
    return {
        "requests": len(seen),
        "get": len(gets),
        "get_mb": round(sum(r[4] for r in gets) / MB, 2),
        "get_parquet": len(data),
        "parquet_files_read": len(per_file),
        "parquet_repeat_gets": sum(n - 1 for n in per_file.values()),
        "get_parquet_mb": round(sum(r[4] for r in data) / MB, 2),
        "head": sum(1 for r in seen if r[0] == "HEAD"),
        "put": sum(1 for r in seen if r[0] == "PUT"),
        "glue": sum(1 for r in seen if r[3].startswith("AWSGlue")),
    }


# ---- the workload ---------------------------------------------------------------------------------
def feed_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def held_out(root: Path) -> list[Path]:
    """The incremental batch: the last non-empty file of each feed."""
    batch = []
    for feed in FEEDS:
        files = [p for p in feed_files(root / feed) if p.stat().st_size > 0] if (root / feed).is_dir() else []
        batch += files[-1:]
    return batch


def environment(endpoint: str, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "STEDI_"))}
    env.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint, AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(work / "no-aws-config"), AWS_SHARED_CREDENTIALS_FILE=str(work / "no-aws-credentials"),
    )  # fmt: skip
    return env


def stedi(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, dict]:
    """Wall seconds, peak resident MB (os.wait4: this process alone) and the --json output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", CLI, *args, "--json"], env=env, cwd=cwd, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if code != 0:
        raise SystemExit(f"stedi {' '.join(args)} failed ({code}):\n{stdout[-2000:]}\n{stderr[-3000:]}")
    return wall, usage.ru_maxrss // 1024, json.loads(stdout)


def one_repetition(variant: str, data: Path, batch: list[Path], endpoint: str, work: Path) -> dict:
    import boto3
    import requests

    env = environment(endpoint, work)
    if variant == "no-cache":
        env["BENCH_CACHED_BYTES"] = "0"
    requests.post(f"{endpoint}/moto-api/reset", timeout=30).raise_for_status()
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id="testing",
                      aws_secret_access_key="testing")  # fmt: skip
    s3.create_bucket(Bucket="stedi-source")
    s3.create_bucket(Bucket="stedi-lake")

    def upload(paths: list[Path]) -> None:
        for path in paths:
            s3.upload_file(str(path), "stedi-source", "feeds/" + path.relative_to(data).as_posix())

    upload([p for p in feed_files(data) if p not in batch])
    take_requests(endpoint)
    result: dict[str, Any] = {}
    for phase in PHASES:
        if phase == "incremental":
            upload(batch)
            take_requests(endpoint)
        args = {
            "full": ["run", SOURCE, "--lake", LAKE], "incremental": ["run", SOURCE, "--lake", LAKE],
            "query": ["query", QUERY, "--lake", LAKE], "status": ["status", "--lake", LAKE],
        }[phase]  # fmt: skip
        wall, peak_mb, out = stedi(args, env, work)
        result[phase] = {"wall_s": round(wall, 2), "peak_mb": peak_mb, **summarize_requests(take_requests(endpoint))}
        if phase == "query":
            result[phase]["answer"] = out
        elif phase != "status":
            result[phase]["new_files"] = sum(f.get("files_new", 0) for f in out.get("ingest", {}).get("feeds", {}).values())
    return result


def machine() -> dict:
    import duckdb
    import moto
    import pyarrow

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())  # fmt: skip
    return {"cores": os.cpu_count(), "cpu_model": model, "python": platform.python_version(), "duckdb": duckdb.__version__,
            "pyarrow": pyarrow.__version__, "moto": moto.__version__, "load_avg": os.getloadavg()}  # fmt: skip


def table(results: dict[str, list[dict]]) -> str:
    header = ["phase", "variant", "wall s: best (all)", "peak MB", "GETs", "GET MB", "Parquet GETs", "Parquet MB", "files",
              "repeat GETs", "HEADs", "requests"]  # fmt: skip
    rows = [header, ["---"] * len(header)]
    for phase in PHASES:
        for variant in VARIANTS:
            reps = [r[phase] for r in results[variant]]
            best = min(reps, key=lambda r: r["wall_s"])
            walls = ", ".join(f"{r['wall_s']:.2f}" for r in reps)
            rows.append([phase, variant, f"{best['wall_s']:.2f} ({walls})", str(max(r["peak_mb"] for r in reps)),
                         str(best["get"]), f"{best['get_mb']:.1f}", str(best["get_parquet"]), f"{best['get_parquet_mb']:.1f}",
                         str(best["parquet_files_read"]), str(best["parquet_repeat_gets"]),
                         str(best["head"]), str(best["requests"])])  # fmt: skip
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, help="feeds to reuse (generated there when empty)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "s3_cache.json")
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0

    with tempfile.TemporaryDirectory(prefix="stedi-s3-cache-") as tmp:
        work = Path(tmp)
        data = args.data or work / "feeds"
        if not data.exists() or not feed_files(data):
            from stedi.generate import generate_feeds

            generate_feeds(data, args.customers, seed=7, defects=True)
        batch = held_out(data)
        files = len(feed_files(data))
        server, endpoint = start_server(work)
        try:
            results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
            for rep in range(args.repeat):
                for variant in VARIANTS if rep % 2 == 0 else VARIANTS[::-1]:  # alternate which goes first
                    results[variant].append(one_repetition(variant, data, batch, endpoint, work))
                    print(f"rep {rep + 1} {variant}: " + ", ".join(f"{p} {results[variant][-1][p]['wall_s']:.2f} s" for p in PHASES),
                          file=sys.stderr)  # fmt: skip
        finally:
            server.terminate()
            server.wait()
    answers = {json.dumps(r["query"]["answer"]) for reps in results.values() for r in reps}
    report = {"machine": machine(), "customers": args.customers, "files": files,
              "batch": [p.name for p in batch], "same_answers": len(answers) == 1, "results": results}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(table(results))
    print(f"query answers identical across runs: {report['same_answers']}; machine: {report['machine']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
