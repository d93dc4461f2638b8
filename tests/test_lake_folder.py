"""SPEC §6: a lake folder is its owner's only: whatever the umask, nothing in a lake is open to
other users."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import LakeHarness, write_feed_file
from stedi.cli import app

runner = CliRunner()


def stedi(*args: str):
    return runner.invoke(app, list(args))


def feed(source: Path, batch: str, first: int, last: int) -> None:
    """Consenting customers c<first>..c<last-1>, each with one phone reading matched by a step reading."""
    write_feed_file(source, f"customer/{batch}.json", [
        {"email": f"c{i}@x.com", "serialNumber": f"S{i}", "shareWithResearchAsOfDate": 1, "lastUpdateDate": 1}
        for i in range(first, last)
    ])
    write_feed_file(source, f"accelerometer/{batch}.json", [
        {"user": f"c{i}@x.com", "timestamp": 100 + i, "x": 1, "y": 2, "z": 3} for i in range(first, last)
    ])
    write_feed_file(source, f"step_trainer/{batch}.json", [
        {"sensorReadingTime": 100 + i, "serialNumber": f"S{i}", "distanceFromObject": i} for i in range(first, last)
    ])


def ok(*args: str):
    result = stedi(*args)
    assert result.exit_code == 0, result.output
    return result


def as_json(*args: str):
    return json.loads(ok(*args, "--json").stdout)


@pytest.fixture
def original(tmp_path) -> LakeHarness:
    harness = LakeHarness(tmp_path / "original")
    feed(harness.source, "first", 0, 3)
    harness.run()
    return harness


def modes_under(root: Path) -> dict[str, int]:
    return {str(p): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]}


@pytest.mark.parametrize("umask", [0o000, 0o022], ids=["umask 000", "umask 022"])
def test_nothing_in_a_lake_is_open_to_others_whatever_the_umask(tmp_path, umask):
    previous = os.umask(umask)
    try:
        harness = LakeHarness(tmp_path)
        feed(harness.source, "first", 0, 3)
        harness.run()
        ok("forget", "c0@x.com", "--lake", harness.lake.location)
        ok("query", "SELECT count(*) FROM machine_learning_curated", "--lake", harness.lake.location)
    finally:
        os.umask(previous)
    modes = modes_under(Path(harness.lake.location))
    assert {path: oct(mode) for path, mode in modes.items() if mode & 0o077} == {}
    assert any(path.endswith(".parquet") for path in modes) and any(path.endswith("secret") for path in modes)


def test_an_older_lake_with_looser_modes_is_tightened_on_open(original):
    root = Path(original.lake.location)
    loose = {root / "_stedi" / "secret": 0o644, root / "_stedi": 0o755, root / "warehouse": 0o755, root / "catalog.db": 0o644}
    for path, mode in loose.items():
        path.chmod(mode)

    ok("status", "--lake", str(root))
    assert {str(path): oct(stat.S_IMODE(path.stat().st_mode)) for path in loose} == {
        str(root / "_stedi" / "secret"): "0o600", str(root / "_stedi"): "0o700",
        str(root / "warehouse"): "0o700", str(root / "catalog.db"): "0o600",
    }
