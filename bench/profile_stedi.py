"""Where does a stedi command spend its time? DuckDB statement timings, without touching src/.

Runs a `stedi` command in this process with every DuckDB connection that stedi opens wrapped so
that each `execute` is timed, then prints the statements by total time, with their caller, the peak
resident memory of the process while each ran, and the time spent outside DuckDB. Pair it with py-spy for the Python side:

    python bench/profile_stedi.py [--top 25] [--json FILE] -- run SOURCE --lake DIR --json
    py-spy record -o profile.svg -- python bench/profile_stedi.py -- run SOURCE --lake DIR
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

STATEMENTS: list[dict] = []


class RssSampler(threading.Thread):
    """This process's resident memory every 50 ms: its peak since the last reset, and overall."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.window_peak = self.peak = 0

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def run(self) -> None:
        while True:
            rss = self.rss()
            self.window_peak, self.peak = max(self.window_peak, rss), max(self.peak, rss)
            time.sleep(0.05)

    def reset(self) -> None:
        self.window_peak = self.rss()


SAMPLER = RssSampler()


class TimedConnection:
    """A DuckDB connection whose execute() calls are timed (fetches after it are cheap: DuckDB
    materializes results in execute)."""

    def __init__(self, conn) -> None:
        self._conn = conn

    def execute(self, sql, *args, **kwargs):
        frame = sys._getframe(1)
        caller = f"{Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}"
        started = time.perf_counter()
        SAMPLER.reset()
        try:
            return self._conn.execute(sql, *args, **kwargs)
        finally:
            STATEMENTS.append(
                {
                    "caller": caller,
                    "sql": " ".join(str(sql).split()),
                    "seconds": time.perf_counter() - started,
                    "peak_rss_mb": round(max(SAMPLER.window_peak, SAMPLER.rss()) / 1e6),
                }
            )

    def __getattr__(self, name):
        return getattr(self._conn, name)


def install() -> None:
    import stedi.engines.duckdb as engine

    original = engine.connect
    engine.connect = lambda *a, **k: TimedConnection(original(*a, **k))
    # Modules imported before this point bound the original function under their own name.
    for name, module in list(sys.modules.items()):
        if name.startswith("stedi") and getattr(module, "connect", None) is original:
            module.connect = engine.connect


def shape(sql: str) -> str:
    """A statement with its literals and file lists folded, so that repeats group together."""
    sql = re.sub(r"'(?:[^']|'')*'", "'…'", sql)
    sql = re.sub(r"\[(?:'…'(?:, )?)+\]", "[…]", sql)
    return sql[:160]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--json", type=Path, help="also write every timed statement to this file")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the stedi command line, e.g. -- run SOURCE --lake DIR")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the stedi command after --, e.g. -- run SOURCE --lake DIR")

    install()
    SAMPLER.start()
    from stedi.cli import main as stedi_main

    sys.argv = ["stedi", *command]
    started = time.perf_counter()
    code = 0
    try:
        stedi_main()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    wall = time.perf_counter() - started

    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for statement in STATEMENTS:
        groups[(statement["caller"], shape(statement["sql"]))].append(statement)
    in_duckdb = sum(s["seconds"] for s in STATEMENTS)
    out = sys.stderr
    print(f"\nwall {wall:.1f} s; in DuckDB execute() {in_duckdb:.1f} s ({len(STATEMENTS)} statements); "
          f"outside DuckDB {wall - in_duckdb:.1f} s; peak RSS {SAMPLER.peak / 1e6:.0f} MB", file=out)  # fmt: skip
    print(f"{'total s':>8} {'calls':>5} {'peak MB':>7}  caller / statement", file=out)
    for (caller, sql), runs in sorted(groups.items(), key=lambda item: -sum(s["seconds"] for s in item[1]))[: args.top]:
        seconds, peak = sum(s["seconds"] for s in runs), max(s["peak_rss_mb"] for s in runs)
        print(f"{seconds:8.2f} {len(runs):5d} {peak:7d}  {caller}\n{'':22}{sql}", file=out)
    if args.json:
        args.json.write_text(json.dumps({"wall_s": wall, "peak_rss_mb": round(SAMPLER.peak / 1e6), "statements": STATEMENTS}, indent=1))
    return code


if __name__ == "__main__":
    sys.exit(main())
