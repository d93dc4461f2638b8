"""`make bench`: `stedi run` measured side by side with its floor and its peer (SPEC §10).

Generates the feeds once, then runs each command `--repeat` times, every repetition into a fresh
output folder or a fresh lake, under /usr/bin/time -v, while a poller sums the resident memory of
the command's whole process tree (the JVM of a Spark run included):

  floor        python bench/floor_duckdb.py SOURCE OUT       plain DuckDB script
  peer         python bench/peer_pyspark.py SOURCE OUT       plain PySpark local[*] job
  stedi        stedi run SOURCE --lake FRESH                 DuckDB engine
  stedi-spark  stedi run SOURCE --lake FRESH --engine spark  (unless --skip-spark)
  incremental  stedi run on a lake that already holds all but the last ~1% of the files, after
               those files arrive (the 99% run before it and a no-op run after it are recorded too)
  incremental-readings
               the same with only the batch's reading files arriving (no customer file): what an
               hourly delivery of sensor data costs, where the models only gain rows
  floor-export, peer-export, stedi-export
               floor, peer and stedi on the same customers as export-shaped feeds (SPEC §10): one
               large clean file per feed, customer records spaced (`stedi generate --shape export`)
  delivery     stedi run on a lake built from the export-shaped feeds, after a daily delivery
               arrives (bench/delivery.py: 200 revocations, 200 new consents, 200 new customers
               with their phone and Step Trainer readings)
  erasure      stedi forget of one of the delivery's new customers (85 phone and 30 Step Trainer
               readings) on the lake the delivery left
  erasure-held then stedi forget of a customer held since the first build, whom the delivery left
               alone: their rows lie in the bulk of each table
  after-erasure
               then stedi run with nothing new: what the erasures leave the next run to do

Writes OUT/latest.json and OUT/latest.md and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from delivery import held_customer, write_delivery  # bench/, beside this script

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
TIME = Path("/usr/bin/time")
FEEDS = ("customer", "accelerometer", "step_trainer")
FEED_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")
LANDING = tuple(f"{feed}_landing" for feed in FEEDS)
ZONES = ("customer_trusted", "accelerometer_trusted", "customers_curated", "step_trainer_trusted", "machine_learning_curated")
DATA_MARKER = ".bench-data.json"  # dot-named: no reader takes it for a feed
POLL_S = 0.2
FATAL_NEEDLE = b"java.lang.OutOfMemoryError"
FATAL_GRACE_S = 60.0  # a JVM may still exit by itself after it; if not, it hangs: kill it
INCREMENTAL_SHARE = 0.01
DELIVERY_CUSTOMERS = 200  # revoked, granted and new, each
FORGOTTEN = "delivery.0.0@new.test"  # the delivery's first new customer (bench/delivery.py), forgotten by `erasure`
MB = 1_000_000
GB = 1_000_000_000

COMMANDS = {  # name -> what it is, in the order of each repetition
    "floor": "plain DuckDB script (bench/floor_duckdb.py)",
    "peer": "plain PySpark local[*] job (bench/peer_pyspark.py)",
    "stedi": "stedi run SOURCE --lake FRESH",
    "stedi-spark": "stedi run SOURCE --lake FRESH --engine spark",
    "incremental-base": "stedi run over all but the last ~1% of the files, fresh lake (setup of incremental)",
    "incremental": "stedi run after the last ~1% of the files arrive",
    "noop": "stedi run again with nothing new",
    "readings-base": "stedi run over all but the last ~1% of the files, fresh lake (setup of incremental-readings)",
    "incremental-readings": "stedi run after the batch's reading files arrive (no customer file)",
    "floor-export": "the floor on export-shaped feeds (one large file per feed)",
    "peer-export": "the peer on export-shaped feeds",
    "stedi-export": "stedi run on export-shaped feeds, fresh lake",
    "delivery-base": "stedi run over the export-shaped feeds, fresh lake (setup of delivery)",
    "delivery": "stedi run after a daily delivery arrives (revocations, new consents, new customers with readings)",
    "erasure": "stedi forget of one of the delivery's new customers, on the lake the delivery left",
    "erasure-held": "then stedi forget of a customer held since the first build, whom the delivery left alone",
    "after-erasure": "then stedi run with nothing new: what the erasures leave the next run to do",
}
EXPORT_COMMANDS = {"floor-export", "peer-export", "stedi-export", "delivery-base", "delivery", "erasure", "erasure-held", "after-erasure"}
INCREMENTAL_GROUPS = (
    {"incremental-base", "incremental", "noop"},
    {"readings-base", "incremental-readings"},
    {"delivery-base", "delivery", "erasure", "erasure-held", "after-erasure"},
)
SPARK_COMMANDS = ("peer", "stedi-spark", "peer-export")
AFTER_DELIVERY = ("erasure", "erasure-held", "after-erasure")  # measured in turn on the lake the delivery left


# ---- measuring one command ------------------------------------------------------------------------
def sample_session(session: int, cpu_ticks: dict[int, int]) -> tuple[int, int]:
    """Resident memory of every live process of a session (a command and all it started, a JVM
    its parent left behind included), and how many there are, from /proc; records each one's CPU
    ticks so far in cpu_ticks (a JVM that its parent never reaps escapes /usr/bin/time's count)."""
    total, alive, page = 0, 0, os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) != session or fields[0] == "Z":
                continue
            with open(f"/proc/{entry}/statm") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
        alive += 1
        cpu_ticks[int(entry)] = max(cpu_ticks.get(int(entry), 0), int(fields[11]) + int(fields[12]))
    return total, alive


def parse_time_v(text: str) -> dict:
    """The figures we use from GNU time -v output."""
    found: dict = {}
    for line in text.splitlines():
        key, _, value = line.strip().rpartition(": ")
        if key == "Maximum resident set size (kbytes)":
            found["max_rss_mb"] = round(int(value) * 1024 / MB, 1)
        elif key == "User time (seconds)":
            found["user_s"] = float(value)
        elif key == "System time (seconds)":
            found["sys_s"] = float(value)
        elif key == "Elapsed (wall clock) time (h:mm:ss or m:ss)":
            seconds = 0.0
            for part in value.split(":"):
                seconds = seconds * 60 + float(part)
            found["time_elapsed_s"] = seconds
    return found


def headline(error: str | None) -> str:
    """The telling line of an error: the last one that is not a stack frame."""
    lines = [line.strip() for line in (error or "").splitlines() if line.strip() and not line.strip().startswith("at ")]
    return lines[-1] if lines else ""


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class FatalWatch:
    """Notices a fatal message in a growing log file (a JVM that ran out of heap may hang forever)."""

    def __init__(self, path: Path, needle: bytes = FATAL_NEEDLE) -> None:
        self.path, self.needle, self.offset, self.seen_at = path, needle, 0, None

    def poll(self) -> None:
        if self.seen_at is not None:
            return
        try:
            with open(self.path, "rb") as f:
                f.seek(max(0, self.offset - len(self.needle)))  # a needle may straddle two reads
                chunk = f.read()
                self.offset = f.tell()
        except OSError:
            return
        if self.needle in chunk:
            self.seen_at = time.perf_counter()


def measure(argv: list[str], logs: Path, timeout_s: float) -> dict:
    """Run argv, return wall time, peak memory (process tree) and CPU time; stdout/stderr go to logs.*"""
    logs.parent.mkdir(parents=True, exist_ok=True)
    stdout, stderr, time_file = (logs.with_name(logs.name + suffix) for suffix in (".stdout", ".stderr", ".time"))
    wrapped = [str(TIME), "-v", "-o", str(time_file), *argv] if TIME.exists() else argv
    env = {**os.environ, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
    tree_peak, killed, cpu_ticks = 0, None, {}
    watch = FatalWatch(stderr)
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdout=out, stderr=err, cwd=REPO, env=env, start_new_session=True)
        returncode = None
        # Until every process of the command's session is gone: a PySpark driver exits before its
        # JVM has shut down and deleted its scratch files, and that is the command's cost, not the
        # next command's.
        while True:
            if returncode is None:
                try:
                    returncode = proc.wait(timeout=POLL_S)
                except subprocess.TimeoutExpired:
                    pass
            else:
                time.sleep(POLL_S / 4)
            rss, alive = sample_session(proc.pid, cpu_ticks)
            tree_peak = max(tree_peak, rss)
            if returncode is not None and not alive:
                break
            watch.poll()
            now = time.perf_counter()
            if killed is None and now - started > timeout_s:
                killed = f"timed out after {timeout_s:.0f} s"
            elif killed is None and watch.seen_at is not None and now - watch.seen_at > FATAL_GRACE_S:
                killed = (
                    f"killed {FATAL_GRACE_S:.0f} s after {FATAL_NEEDLE.decode()} appeared in its output "
                    f"(after {watch.seen_at - started:.0f} s) without the process ending"
                )
            if killed:
                os.killpg(proc.pid, signal.SIGKILL)  # the group this command started, nothing else
        wall = time.perf_counter() - started
    result = {"argv": argv, "returncode": returncode, "wall_s": round(wall, 3), "tree_peak_mb": round(tree_peak / MB, 1)}
    if time_file.exists():
        result.update(parse_time_v(time_file.read_text(errors="replace")))
    result["peak_mb"] = max(result["tree_peak_mb"], result.get("max_rss_mb", 0.0))
    tree_cpu = sum(cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")
    result["cpu_s"] = round(max(tree_cpu, result.get("user_s", 0.0) + result.get("sys_s", 0.0)), 2)
    result["cpu_percent"] = round(100 * result["cpu_s"] / max(wall, 1e-9))
    result["ok"] = returncode == 0 and not killed
    if not result["ok"]:
        result["error"] = killed or f"exit {returncode}: {tail(stderr, 40)}"
        if killed:
            result["stderr_tail"] = tail(stderr, 40)
    result["stdout"], result["stderr"] = str(stdout), str(stderr)
    return result


# ---- what the commands produced -----------------------------------------------------------------
def parquet_rows(out: Path) -> dict[str, int | None]:
    """Row counts of the landing and zone tables a floor or peer run wrote (file or Spark folder)."""
    import duckdb

    rows: dict[str, int | None] = {}
    con = duckdb.connect()
    for table in (*LANDING, *ZONES):
        target = out / f"{table}.parquet" if (out / f"{table}.parquet").is_file() else out / table / "*.parquet"
        try:
            rows[table] = con.execute("SELECT count(*) FROM read_parquet(?)", [str(target)]).fetchone()[0]
        except duckdb.Error:
            rows[table] = None
    con.close()
    return rows


def stedi_report(result: dict) -> dict | None:
    """The `stedi run --json` report of a measured run, if it printed one."""
    try:
        return json.loads(Path(result["stdout"]).read_text())
    except (OSError, ValueError):
        return None


def stedi_rows(report: dict) -> dict[str, int | None]:
    rows: dict[str, int | None] = {}
    feeds = (report.get("ingest") or {}).get("feeds", {})
    for feed in FEEDS:
        rows[f"{feed}_landing"] = feeds.get(feed, {}).get("accepted")
    built = {t["name"]: t.get("rows_out") for t in report.get("tables", [])}
    rows.update({table: built.get(table) for table in ZONES})
    return rows


def check_forget(result: dict) -> None:
    """A `stedi forget` that exits 0 counts only if it finished and found the customer."""
    report = stedi_report(result)
    if result["ok"] and (report is None or not report.get("completed") or report.get("customers_found") != 1):
        result["ok"] = False
        result["error"] = "no JSON report on stdout" if report is None else "the erasure did not finish or found no customer"


def check_stedi(result: dict) -> dict | None:
    """A stedi run that exits 0 but fails its quality gates does not count as a completed run."""
    report = stedi_report(result)
    if result["ok"] and (report is None or not report.get("ok", False)):
        result["ok"] = False
        result["error"] = "no JSON report on stdout" if report is None else "quality gates failed"
    ingest = (report or {}).get("ingest") or {}
    if ingest.get("seconds"):  # the landing inside the run: its wall time and the CPU this process used meanwhile
        result["landing_s"] = ingest["seconds"]
        result["landing_cpu_percent"] = round(100 * ingest["cpu_seconds"] / ingest["seconds"])
    return report


# ---- data ---------------------------------------------------------------------------------------
def feed_files(root: Path) -> dict[str, list[Path]]:
    folders = {"customer": ("customer", "customers"), "accelerometer": ("accelerometer",), "step_trainer": ("step_trainer",)}
    return {
        feed: sorted(p for name in names if (root / name).is_dir() for p in (root / name).rglob("*")
                     if p.is_file() and p.name.lower().endswith(FEED_SUFFIXES))
        for feed, names in folders.items()
    }  # fmt: skip


def prepare_data(data: Path, customers: int, seed: int, shape: str = "files") -> dict:
    files = feed_files(data)
    if any(files.values()):
        marker = data / DATA_MARKER
        info = json.loads(marker.read_text()) if marker.exists() else {}
        info.update(reused=True)
        if info.get("customers") not in (None, customers):
            print(f"note: reusing {data} generated for {info['customers']} customers (asked for {customers})", file=sys.stderr)
    else:
        from stedi.generate import generate_feeds

        print(f"generating {shape}-shaped feeds for {customers} customers in {data} ...", file=sys.stderr)
        started = time.perf_counter()
        defects = shape == "files"  # an export is clean; the many-file feeds carry every defect
        generated = generate_feeds(data, customers, seed=seed, defects=defects, shape=shape)
        info = {"customers": customers, "seed": seed, "shape": shape, "defects": defects, "records": generated.records,
                "generate_s": round(time.perf_counter() - started, 1)}  # fmt: skip
        (data / DATA_MARKER).write_text(json.dumps(info))
        info["reused"] = False
        files = feed_files(data)
    info["path"] = str(data)
    info["files"] = {feed: len(paths) for feed, paths in files.items()}
    info["bytes"] = sum(p.stat().st_size for paths in files.values() for p in paths)
    return info


def warm_page_cache(data: Path) -> None:
    """Read every feed file once so that no command pays for the first read from disk."""
    for paths in feed_files(data).values():
        for path in paths:
            with open(path, "rb") as f:
                while f.read(1 << 23):
                    pass


def held_out_batch(data: Path) -> list[Path]:
    """The new batch of the incremental measure: per feed, the last ~1% of its non-empty files."""
    batch = []
    for paths in feed_files(data).values():
        non_empty = [p for p in paths if p.stat().st_size > 0]
        if non_empty:
            batch += non_empty[-max(1, round(len(non_empty) * INCREMENTAL_SHARE)) :]
    return batch


def all_feed_files(root: Path) -> list[Path]:
    return [p for paths in feed_files(root).values() for p in paths]


def link_files(data: Path, target: Path, paths: list[Path]) -> None:
    """Hard-link (or copy) feed files into another source folder, same relative paths and mtimes."""
    for path in paths:
        destination = target / path.relative_to(data)
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, destination)
        except OSError:
            shutil.copy2(path, destination)


# ---- what was measured --------------------------------------------------------------------------
def source_hashes() -> dict[str, str]:
    """Per file of the package's source (code, models): a content hash, to tell what changed."""
    import hashlib

    return {
        str(path.relative_to(REPO)): hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        for path in sorted((REPO / "src").rglob("*"))
        if path.is_file() and path.suffix in (".py", ".sql", ".yml", ".yaml", ".toml") and "__pycache__" not in path.parts
    }


def fingerprint(hashes: dict[str, str]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:16]


def git_head() -> str | None:
    """The commit checked out, read from .git (the working tree may hold more than it)."""
    git = REPO / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        if (git / ref).exists():
            return (git / ref).read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        pass
    return None


# ---- machine facts ------------------------------------------------------------------------------
def machine_facts() -> dict:
    def first(path: str, key: str) -> str | None:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return None

    facts: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_model": first("/proc/cpuinfo", "model name") or platform.processor(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": None,
        "os": platform.platform(),
        "python": platform.python_version(),
    }
    if mem := first("/proc/meminfo", "MemTotal"):
        facts["memory_gb"] = round(int(mem.split()[0]) * 1024 / GB, 1)
    for package, key in (("duckdb", "duckdb"), ("pyspark", "spark"), ("stedi", "stedi"), ("pyiceberg", "pyiceberg")):
        try:
            from importlib.metadata import version

            facts[key] = version(package)
        except Exception:  # noqa: BLE001 - a missing package is a fact too
            facts[key] = None
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
        facts["java"] = (java.stderr or java.stdout).splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        facts["java"] = None
    facts["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return facts


# ---- summary ------------------------------------------------------------------------------------
def spread(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def summarize(runs: list[dict]) -> dict:
    good = [r for r in runs if r["ok"]]
    return {
        "runs": len(runs),
        "ok_runs": len(good),
        "wall_s": spread([r["wall_s"] for r in good]),
        "peak_mb": spread([r["peak_mb"] for r in good]),
        "cpu_percent": spread([r["cpu_percent"] for r in good if "cpu_percent" in r]),
        "landing_s": spread([r["landing_s"] for r in good if "landing_s" in r]),
        "landing_cpu_percent": spread([r["landing_cpu_percent"] for r in good if "landing_cpu_percent" in r]),
        "errors": [r["error"] for r in runs if not r["ok"]],
    }


def ratio(numerator: dict | None, denominator: dict | None) -> float | None:
    if not numerator or not denominator or not numerator.get("wall_s") or not denominator.get("wall_s"):
        return None
    return round(numerator["wall_s"]["median"] / denominator["wall_s"]["median"], 3)


def size_class(data_bytes: int) -> str | None:
    if 0.5 * GB <= data_bytes < 2.5 * GB:
        return "~1 GB"
    if 5 * GB <= data_bytes < 20 * GB:
        return "~10 GB"
    return None


def targets(summary: dict, ratios: dict, data_bytes: int) -> list[dict]:
    """SPEC §10, each with the value measured and whether it was met; `applies` says whether the
    data size is one the target is stated for (otherwise the verdict is for information only)."""
    size = size_class(data_bytes)
    stedi = summary.get("stedi") or {}
    stedi_peak = stedi["peak_mb"]["max"] / 1000 if stedi.get("peak_mb") else None
    completed = stedi.get("ok_runs") == stedi["runs"] if stedi.get("runs") else None  # None: not run

    def target(name: str, value, met, applies: bool) -> dict:
        return {"target": name, "value": value, "met": met, "applies": applies}

    def at_most(value, limit):
        return None if value is None else value <= limit

    def at_least(value, limit):
        return None if value is None else value >= limit

    return [
        target("stedi run <= 1.5x the floor (wall time, medians)", ratios["stedi_over_floor"],
               at_most(ratios["stedi_over_floor"], 1.5), size == "~1 GB"),
        target("stedi run >= 5x faster than the peer (peer/stedi)", ratios["peer_over_stedi"],
               at_least(ratios["peer_over_stedi"], 5), size == "~1 GB"),
        target("export-shaped feeds: stedi run <= 1.5x the floor", ratios["stedi_over_floor_export"],
               at_most(ratios["stedi_over_floor_export"], 1.5), size == "~1 GB"),
        target("export-shaped feeds: stedi run >= 5x faster than the peer", ratios["peer_over_stedi_export"],
               at_least(ratios["peer_over_stedi_export"], 5), size == "~1 GB"),
        target("stedi run peak memory <= 2.5 GB (worst run, GB = 1e9 bytes)", stedi_peak, at_most(stedi_peak, 2.5), size == "~1 GB"),
        target("stedi run completes (every repetition)", completed, completed, size == "~10 GB"),
        target("stedi run peak memory <= 8 GB (worst run)", stedi_peak, at_most(stedi_peak, 8.0), size == "~10 GB"),
        target("a new 1% batch of files costs <= 5% of a full ingest", ratios["incremental_over_full"],
               at_most(ratios["incremental_over_full"], 0.05), size is not None),
        target("a daily delivery costs <= 5% of a full run", ratios["delivery_over_full_export"],
               at_most(ratios["delivery_over_full_export"], 0.05), size == "~10 GB"),
        target("forgetting a customer the delivery brought costs <= 10% of a full run", ratios["erasure_over_full_export"],
               at_most(ratios["erasure_over_full_export"], 0.10), size == "~10 GB"),
        target("forgetting a customer held since the first build costs <= 10% of a full run", ratios["erasure_held_over_full_export"],
               at_most(ratios["erasure_held_over_full_export"], 0.10), size == "~10 GB"),
    ]  # fmt: skip


# ---- report -------------------------------------------------------------------------------------
def fmt_spread(s: dict | None, digits: int = 1) -> str:
    if not s:
        return "—"
    if s["min"] == s["max"]:
        return f"{s['median']:.{digits}f}"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def fmt_value(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def verdict(t: dict) -> str:
    met = "—" if t["met"] is None else ("met" if t["met"] else "NOT met")
    return met if t["applies"] else f"{met} (n/a at this size)"


def command_rows(result: dict) -> list[list[str]]:
    rows = []
    for name, s in result["summary"].items():
        rows.append([name, f"{s['ok_runs']}/{s['runs']}", fmt_spread(s["wall_s"], 2), fmt_spread(s["peak_mb"], 0),
                     fmt_spread(s["cpu_percent"], 0), fmt_spread(s.get("landing_s"), 2), fmt_spread(s.get("landing_cpu_percent"), 0)])  # fmt: skip
    return rows


COMMAND_HEADER = ["command", "ok", "wall s: median (min–max)", "peak MB: median (min–max)", "CPU %", "landing s", "landing CPU %"]


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = lambda c: str(c).replace("|", "\\|")  # noqa: E731
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(esc(c) for c in r) + " |" for r in rows)])


def ratio_rows(result: dict) -> list[list[str]]:
    labels = {
        "stedi_over_floor": "stedi / floor",
        "peer_over_stedi": "peer / stedi (how many times faster than the peer)",
        "spark_stedi_over_peer": "stedi --engine spark / peer",
        "incremental_over_full": "incremental 1% batch / full stedi run",
        "incremental_readings_over_full": "incremental 1% batch, reading files only / full stedi run",
        "delivery_over_full_export": "daily delivery / full stedi run, export-shaped feeds",
        "erasure_over_full_export": "forgetting a customer the delivery brought / full stedi run, export-shaped feeds",
        "erasure_held_over_full_export": "forgetting a customer held since the first build / full stedi run, export-shaped feeds",
        "stedi_over_floor_export": "export-shaped feeds: stedi / floor",
        "peer_over_stedi_export": "export-shaped feeds: peer / stedi",
    }
    return [[label, fmt_value(result["ratios"].get(key))] for key, label in labels.items()]


def markdown(result: dict) -> str:
    m, d, c = result["machine"], result["data"], result["config"]
    load = f"{m['load_average_at_start']} at start, {m.get('load_average_at_end')} at end"
    rows_header = ["table", *result["rows"].keys()]
    rows_body = [[table, *(fmt_value(rows.get(table)) for rows in result["rows"].values())] for table in (*LANDING, *ZONES)]
    parts = [
        f"# stedi benchmark — {m['date']}",
        "",
        f"Data: {d.get('customers', '?')} customers, {d['bytes'] / GB:.2f} GB of feed JSON in "
        f"{sum(d['files'].values())} files ({', '.join(f'{k} {v}' for k, v in d['files'].items())}), with defects; "
        + ("reused" if d.get("reused") else f"generated in {d.get('generate_s')} s")
        + f". Repetitions: {c['repeat']}."
        f" Incremental batch: the last non-empty file of each feed, {result['incremental_batch']['files']} files "
        f"({result['incremental_batch']['share_of_files'] * 100:.1f}% of the files, "
        f"{result['incremental_batch']['share_of_bytes'] * 100:.2f}% of the bytes on disk: the last file of each feed is gzipped).",
        *(
            [
                f"Export-shaped data: the same customers, clean, {result['export_data']['bytes'] / GB:.2f} GB in "
                f"{sum(result['export_data']['files'].values())} files, customer records spaced (`stedi generate --shape export`)."
            ]
            if "export_data" in result
            else []
        ),
        "",
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gb']} GB RAM, {m['os']}; Python {m['python']}, "
        f"DuckDB {m['duckdb']}, Spark {m['spark']} ({m['java']}), stedi {m['stedi']}, pyiceberg {m['pyiceberg']}. "
        f"Load average (1, 5, 15 min): {load}.",
        "",
        f"Source: commit {result['source']['git_head']}, src/ fingerprint {result['source']['fingerprint_at_start']}"
        + (
            f" → {result['source']['fingerprint_at_end']}: **src/ changed during the run "
            f"({', '.join(result['source']['changed_files'])}), so the commands may not all have measured the same code; "
            "rerun before drawing conclusions.**"
            if result["source"]["changed_during_run"]
            else " (unchanged during the run)."
        ),
        "",
        "## Wall time and peak memory",
        "",
        md_table(COMMAND_HEADER, command_rows(result)),
        "",
        "Peak memory is the larger of /usr/bin/time's maximum RSS and the sampled RSS sum of the whole "
        "process tree (JVM included). CPU % is the CPU time of the process tree (user + system, the larger of "
        "/usr/bin/time's and the sampled sum) over wall time: 200% is both cores busy. Landing is the ingest "
        "inside a `stedi run` (from its --json report): its wall time and the CPU time of the stedi process over it "
        "(for `--engine spark`, without the JVM's).",
        "",
        "## Ratios (medians)",
        "",
        md_table(["ratio", "value"], ratio_rows(result)),
        "",
        "## SPEC §10 targets",
        "",
        md_table(["target", "value", "verdict"], [[t["target"], fmt_value(t["value"]), verdict(t)] for t in result["targets"]]),
        "",
        "## Rows written (first repetition) — the commands do the same work",
        "",
        md_table(rows_header, rows_body),
        "",
        "The floor and the peer do not quarantine: they drop lines that do not parse or lack a required "
        "field and miss the few records whose keys are written in another case, so their counts differ "
        "from stedi's by a fraction of a percent.",
    ]
    if result.get("stedi_tables"):
        parts += ["", "## Inside one `stedi run` (first repetition, from its --json report)", "",
                  md_table(["step", "status", "seconds"], [[t["name"], t["status"], fmt_value(t["duration_s"])] for t in result["stedi_tables"]])]  # fmt: skip
    failed = [(name, r) for name, rs in result["runs"].items() for r in rs if not r["ok"]]
    if failed:
        parts += ["", "## Errors", ""] + [
            f"- **{name}** (repetition {r['repetition']}, after {r['wall_s']:.0f} s, peak {r['peak_mb']:.0f} MB): `{headline(r['error'])}`"
            + (f" — log: `{Path(r['stderr']).name}`" if r.get("stderr") else "")
            for name, r in failed
        ]
    return "\n".join(parts) + "\n"


# ---- main ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark stedi run against a DuckDB floor and a PySpark peer (SPEC §10).")
    parser.add_argument("--customers", type=int, default=90_000, help="customers to generate (90000 ≈ 1 GB of feed JSON)")
    parser.add_argument("--scale", type=int, default=1, help="multiplies --customers (10 ≈ 10 GB)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each command")
    parser.add_argument("--skip-spark", action="store_true", help="skip the PySpark peer and stedi --engine spark")
    parser.add_argument("--data", type=Path, help="feed folder: reused if it holds feeds, else generated there and kept")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="where latest.json and latest.md go")
    parser.add_argument("--work", type=Path, help="scratch folder for outputs and lakes (default: a new temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (outputs, lakes, logs)")
    parser.add_argument(
        "--only",
        help=f"comma-separated subset of: {', '.join(COMMANDS)} (incremental-base, "
        "incremental and noop run together, readings-base and incremental-readings, and delivery-base, delivery and erasure)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds before one command is killed")
    args = parser.parse_args(argv)
    if args.customers < 1 or args.scale < 1 or args.repeat < 1:
        parser.error("--customers, --scale and --repeat must be at least 1")
    only = set(args.only.split(",")) if args.only else set(COMMANDS)
    if unknown := only - set(COMMANDS):
        parser.error(f"--only: unknown command(s) {', '.join(sorted(unknown))}")
    for group in INCREMENTAL_GROUPS:
        if only & group:
            only |= group

    customers = args.customers * args.scale
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = (args.work or Path(tempfile.mkdtemp(prefix="stedi-bench-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = (args.data or work / "data").resolve()
    stedi = Path(sys.executable).with_name("stedi")
    stedi_cmd = [str(stedi)] if stedi.exists() else [sys.executable, "-c", "from stedi.cli import main; main()"]

    logs = out / "logs"  # stdout, stderr and time -v of every command, kept for a look after the run
    shutil.rmtree(logs, ignore_errors=True)
    result: dict = {"schema": 1, "machine": machine_facts()}
    hashes_at_start = source_hashes()
    result["source"] = {"git_head": git_head(), "fingerprint_at_start": fingerprint(hashes_at_start)}
    result["config"] = {"customers": args.customers, "scale": args.scale, "repeat": args.repeat,
                        "skip_spark": args.skip_spark, "only": sorted(only), "seed": args.seed, "time_tool": str(TIME) if TIME.exists() else None}  # fmt: skip
    result["data"] = prepare_data(data, customers, args.seed)
    warm_page_cache(data)
    export_data = data.with_name(data.name + "-export")
    if only & EXPORT_COMMANDS:
        result["export_data"] = prepare_data(export_data, customers, args.seed, shape="export")
        warm_page_cache(export_data)
    batch = held_out_batch(data)
    batch_bytes = sum(p.stat().st_size for p in batch)
    result["incremental_batch"] = {"files": len(batch), "bytes": batch_bytes,
                                   "share_of_bytes": round(batch_bytes / max(result["data"]["bytes"], 1), 5),
                                   "share_of_files": round(len(batch) / max(sum(result["data"]["files"].values()), 1), 5),
                                   "paths": [str(p.relative_to(data)) for p in batch]}  # fmt: skip
    base_files = [p for paths in feed_files(data).values() for p in paths if p not in set(batch)]
    delivery = work / "delivery"
    if only & {"delivery"}:
        result["delivery"] = write_delivery(export_data, delivery, DELIVERY_CUSTOMERS, DELIVERY_CUSTOMERS, DELIVERY_CUSTOMERS)
    forgotten = {"erasure": FORGOTTEN}
    if only & {"erasure-held"}:
        forgotten["erasure-held"] = held_customer(export_data, DELIVERY_CUSTOMERS)

    names = [n for n in COMMANDS if n in only and not (args.skip_spark and n in SPARK_COMMANDS)]
    runs: dict[str, list[dict]] = {name: [] for name in names}
    result["rows"], result["stedi_tables"] = {}, []

    def record(name: str, rep: int, measured: dict) -> None:
        measured["repetition"] = rep
        runs[name].append(measured)
        status = f"{measured['wall_s']:.2f} s, peak {measured['peak_mb']:.0f} MB" if measured["ok"] else f"FAILED: {headline(measured['error'])}"
        print(f"[{rep}/{args.repeat}] {name:<17} {status}", file=sys.stderr, flush=True)

    for rep in range(1, args.repeat + 1):
        scratch = work / f"rep{rep}"
        for name, source in (("floor", data), ("peer", data), ("floor-export", export_data), ("peer-export", export_data)):
            if name not in runs:
                continue
            target = scratch / name
            script = BENCH / ("floor_duckdb.py" if name.startswith("floor") else "peer_pyspark.py")
            measured = measure([sys.executable, str(script), str(source), str(target)], logs / f"rep{rep}-{name}", args.timeout)
            if measured["ok"] and name not in result["rows"]:
                result["rows"][name] = parquet_rows(target)
            record(name, rep, measured)
            shutil.rmtree(target, ignore_errors=True)

        for name, source, engine in (("stedi", data, []), ("stedi-spark", data, ["--engine", "spark"]), ("stedi-export", export_data, [])):
            if name not in runs:
                continue
            lake = scratch / f"lake-{name}"
            measured = measure([*stedi_cmd, "run", str(source), "--lake", str(lake), *engine, "--json"], logs / f"rep{rep}-{name}", args.timeout)
            report = check_stedi(measured)
            if report and measured["ok"] and name not in result["rows"]:
                result["rows"][name] = stedi_rows(report)
                if name == "stedi":
                    inside = [{"name": t["name"], "status": t["status"], "duration_s": t["duration_s"]} for t in report["tables"]]
                    other = measured["wall_s"] - sum(t["duration_s"] for t in inside)
                    result["stedi_tables"] = [{"name": "startup + ingest + funnel + manifest", "status": "", "duration_s": round(other, 2)}, *inside]
            record(name, rep, measured)
            shutil.rmtree(lake, ignore_errors=True)

        # A lake holding all but the batch, then the batch (or its reading files) arriving.
        readings = [p for p in batch if p not in feed_files(data)["customer"]]
        arrivals = (
            ("incremental-base", "incremental", data, base_files, data, batch, ("noop",)),
            ("readings-base", "incremental-readings", data, base_files, data, readings, ()),
            ("delivery-base", "delivery", export_data, all_feed_files(export_data), delivery, all_feed_files(delivery), AFTER_DELIVERY),
        )
        for base_name, name, base_root, base_paths, arriving_root, arriving, then in arrivals:
            if name not in runs:
                continue
            source, lake = scratch / f"{name}-source", scratch / f"lake-{name}"
            link_files(base_root, source, base_paths)
            stedi_run = [*stedi_cmd, "run", str(source), "--lake", str(lake), "--json"]
            base = measure(stedi_run, logs / f"rep{rep}-{base_name}", args.timeout)
            check_stedi(base)
            record(base_name, rep, base)
            link_files(arriving_root, source, arriving)
            for measured_name in (name, *then):
                if measured_name in forgotten and base["ok"]:
                    forget = [*stedi_cmd, "forget", forgotten[measured_name], "--lake", str(lake), "--json"]
                    measured = measure(forget, logs / f"rep{rep}-{measured_name}", args.timeout)
                    check_forget(measured)
                elif base["ok"]:
                    measured = measure(stedi_run, logs / f"rep{rep}-{measured_name}", args.timeout)
                    report = check_stedi(measured)
                    if report:
                        measured["new_files"] = sum(f["files_new"] for f in (report.get("ingest") or {}).get("feeds", {}).values())
                else:
                    measured = {"ok": False, "error": "the 99% run before it failed", "wall_s": 0.0, "peak_mb": 0.0}
                record(measured_name, rep, measured)
            shutil.rmtree(source, ignore_errors=True)
            shutil.rmtree(lake, ignore_errors=True)

    result["runs"] = runs
    summary = {name: summarize(r) for name, r in runs.items()}
    result["summary"] = summary
    result["ratios"] = {
        "stedi_over_floor": ratio(summary.get("stedi"), summary.get("floor")),
        "peer_over_stedi": ratio(summary.get("peer"), summary.get("stedi")),
        "spark_stedi_over_peer": ratio(summary.get("stedi-spark"), summary.get("peer")),
        "incremental_over_full": ratio(summary.get("incremental"), summary.get("stedi")),
        "incremental_readings_over_full": ratio(summary.get("incremental-readings"), summary.get("stedi")),
        "delivery_over_full_export": ratio(summary.get("delivery"), summary.get("stedi-export")),
        "erasure_over_full_export": ratio(summary.get("erasure"), summary.get("stedi-export")),
        "erasure_held_over_full_export": ratio(summary.get("erasure-held"), summary.get("stedi-export")),
        "stedi_over_floor_export": ratio(summary.get("stedi-export"), summary.get("floor-export")),
        "peer_over_stedi_export": ratio(summary.get("peer-export"), summary.get("stedi-export")),
    }
    result["targets"] = targets(summary, result["ratios"], result["data"]["bytes"])
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    hashes_at_end = source_hashes()
    changed = sorted(p for p in hashes_at_start.keys() | hashes_at_end.keys() if hashes_at_start.get(p) != hashes_at_end.get(p))
    result["source"].update(fingerprint_at_end=fingerprint(hashes_at_end), changed_during_run=bool(changed), changed_files=changed)
    if changed:
        print(f"WARNING: src/ changed during the run ({', '.join(changed)}): the commands may not all have measured the same code", file=sys.stderr)
    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")

    (out / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "latest.md").write_text(markdown(result))
    print(text_table(COMMAND_HEADER, command_rows(result)))
    print()
    print(text_table(["ratio", "value"], ratio_rows(result)))
    print()
    print(text_table(["SPEC §10 target", "value", "verdict"], [[t["target"], fmt_value(t["value"]), verdict(t)] for t in result["targets"]]))
    print(f"\nwrote {out / 'latest.json'} and {out / 'latest.md'}")
    if not args.keep:
        if args.data is None:
            shutil.rmtree(data, ignore_errors=True)
            shutil.rmtree(export_data, ignore_errors=True)
        for rep in range(1, args.repeat + 1):
            shutil.rmtree(work / f"rep{rep}", ignore_errors=True)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
