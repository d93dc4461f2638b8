"""Lakes in temporary folders for the tests: feed files written by hand, a harness that ingests,
runs and reads a lake back, and writers interrupted on purpose (a file deleted mid-ingest, a process
killed before a commit)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from stedi.engines import open_engine
from stedi.ingest import ingest
from stedi.lake import Lake
from stedi.query import query_lake
from stedi.run import run

# The tables the models build, in the order they are built.
MODEL_TABLES = ("customer_trusted", "serial_number_owners", "accelerometer_trusted", "customers_curated", "step_trainer_trusted", "machine_learning_curated")


def write_feed_file(root: Path, relative: str, lines: list[object], newline: str = "\n") -> Path:
    """Write a feed file: dicts become JSON lines, strings are written as they are."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    text = newline.join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    path.write_text(text + (newline if lines else ""))
    return path


class LakeHarness:
    """A lake in a temporary folder with helpers to ingest, run and read it back."""

    def __init__(self, root: Path, engine: str = "duckdb") -> None:
        self.source = root / "source"
        self.lake = Lake(str(root / "lake"))
        self.engine = open_engine(engine)

    def feed(self, relative: str, lines: list[object], newline: str = "\n") -> Path:
        return write_feed_file(self.source, relative, lines, newline)

    def ingest(self):
        with self.lake.writing():
            return ingest(self.lake, str(self.source), self.engine)

    def run(self, consent_scope: str | None = None, with_source: bool = True):
        with self.lake.writing():
            return run(self.lake, self.engine, str(self.source) if with_source else None, consent_scope)

    def rows(self, sql: str) -> list[tuple]:
        return query_lake(self.lake, sql)[1]

    def count(self, table: str) -> int:
        return self.rows(f"SELECT count(*) FROM {table}")[0][0]


def delete_after_discovery(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """The file is found, then gone before it is read: as if deleted in the middle of an ingest."""
    from stedi import ingest as ingest_module

    discover = ingest_module.discover

    def discover_then_delete(storage):
        found = discover(storage)
        path.unlink()
        return found

    monkeypatch.setattr(ingest_module, "discover", discover_then_delete)


KILLED = 137


def killed_before_commit(location: str, commits: int, write: Callable[[Lake], object], at: tuple[object, str] | None = None) -> bool:
    """Run `write` on the lake at `location`, under its write lock, in a child process that dies
    like kill -9 (no cleanup, no `finally`) when it is about to make call number `commits + 1` of
    `at` (an owner and the name of a function on it; by default Iceberg's commit); True when it
    died, False when it finished first."""
    from pyiceberg.catalog.sql import SqlCatalog

    owner, name = at or (SqlCatalog, "commit_table")
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        code = 1
        try:
            made = 0
            original = getattr(owner, name)

            def call_or_die(*args, **kwargs):
                nonlocal made
                if made == commits:
                    os._exit(KILLED)
                made += 1
                return original(*args, **kwargs)

            setattr(owner, name, call_or_die)
            lake = Lake(location)
            with lake.writing():
                write(lake)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, KILLED), f"the write failed with exit code {code}"
    return code == KILLED
