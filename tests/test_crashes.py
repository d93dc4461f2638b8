"""SPEC §11: a run or an ingest killed at any point leaves every table at its previous snapshot,
and the next run completes with no duplicate and no loss.

Each writer is killed (like kill -9) before each of its Iceberg commits in turn; the next run must
give exactly the tables of a run that was never interrupted.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stedi.engines import open_engine
from stedi.ingest import ingest
from stedi.run import run
from stedi.snapshots import unreferenced_files
from support.lakes import LakeHarness, killed_before_commit


def feeds(harness: LakeHarness) -> None:
    harness.feed(
        "customer/c.json",
        [
            {"email": "a@x.com", "serialNumber": "S1", "shareWithResearchAsOfDate": 1, "lastUpdateDate": 1},
            {"email": "b@x.com", "serialNumber": "S2", "lastUpdateDate": 1},
            "not json",
        ],
    )
    harness.feed("accelerometer/a.json", [{"user": "a@x.com", "timestamp": t, "x": 1, "y": 2, "z": 3} for t in (5, 6, 7)])
    harness.feed("accelerometer/b.json", [{"user": "b@x.com", "timestamp": 5, "x": 1, "y": 2, "z": 3}, "{broken"])
    harness.feed("step_trainer/s.json", [{"sensorReadingTime": t, "serialNumber": "S1", "distanceFromObject": 9} for t in (5, 6)])


VARYING = ("_ingested_at", "_ingest_run", "run_id", "ingested_at", "mtime_ns", "customer_key")  # per run or per lake


def contents(harness: LakeHarness) -> dict[str, list[tuple]]:
    """Every table's rows, without what differs between two lakes fed the same files: ingest ids
    and times, pseudonyms (each lake has its own secret), and where the source folder is."""
    tables = {}
    source = str(harness.source)
    for name in harness.lake.table_names():
        columns = [c for c, _ in harness.lake.columns(name) if c not in VARYING]
        selected = ", ".join(f"replace(\"{c}\", '{source}', '')" if c in ("_source_file", "path") else f'"{c}"' for c in columns)
        tables[name] = sorted(harness.rows(f"SELECT {selected} FROM {name}"), key=repr)
    return tables


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, list[tuple]]:
    harness = LakeHarness(tmp_path_factory.mktemp("clean"))
    feeds(harness)
    assert harness.run().ok
    return contents(harness)


WRITERS = {
    "run": lambda source: lambda lake: run(lake, open_engine("duckdb"), source),
    "ingest": lambda source: lambda lake: ingest(lake, source, open_engine("duckdb")),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_writer_killed_before_any_of_its_commits_loses_and_duplicates_nothing(tmp_path, uninterrupted, writer):
    killed = 0
    while True:
        harness = LakeHarness(tmp_path / f"kill-{killed}")
        feeds(harness)
        if not killed_before_commit(harness.lake.location, killed, WRITERS[writer](str(harness.source))):
            break
        harness.lake.refresh()
        assert harness.run().ok, f"killed before commit {killed + 1}"
        assert contents(harness) == uninterrupted, f"killed before commit {killed + 1}"
        assert unreferenced_files(harness.lake) == []  # what the killed writer left unpublished is gone
        scratch = Path(harness.lake.location, "_stedi", "scratch")
        assert all(p.name.startswith(f"{os.getpid()}-") for p in scratch.glob("*"))  # the killed child's spill folder is gone
        killed += 1
    assert killed >= 4
