"""SPEC §6: a lake folder is self-contained and its owner's only.

A moved or copied lake works on its own and never reads, writes or deletes the folder it came from;
one that cannot (a copy missing files, a catalog shared with another lake) is refused in one line.
Whatever the umask, nothing in a lake is open to other users.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stedi.cli import app
from stedi.lake import Lake
from support.lakes import LakeHarness, write_feed_file

runner = CliRunner()


def stedi(*args: str):
    return runner.invoke(app, list(args))


def feed(source: Path, batch: str, first: int, last: int) -> None:
    """Consenting customers c<first>..c<last-1>, each with one phone reading matched by a step reading."""
    write_feed_file(
        source,
        f"customer/{batch}.json",
        [{"email": f"c{i}@x.com", "serialNumber": f"S{i}", "shareWithResearchAsOfDate": 1, "lastUpdateDate": 1} for i in range(first, last)],
    )
    write_feed_file(source, f"accelerometer/{batch}.json", [{"user": f"c{i}@x.com", "timestamp": 100 + i, "x": 1, "y": 2, "z": 3} for i in range(first, last)])
    write_feed_file(
        source, f"step_trainer/{batch}.json", [{"sensorReadingTime": 100 + i, "serialNumber": f"S{i}", "distanceFromObject": i} for i in range(first, last)]
    )


def file_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def ok(*args: str):
    result = stedi(*args)
    assert result.exit_code == 0, result.output
    return result


def as_json(*args: str):
    return json.loads(ok(*args, "--json").stdout)


@pytest.fixture
def original(tmp_path) -> LakeHarness:
    """A lake of two runs (so two snapshots to travel between), and the time between them."""
    harness = LakeHarness(tmp_path / "original")
    feed(harness.source, "first", 0, 3)
    harness.run()
    time.sleep(0.002)
    harness.between = str(int(time.time() * 1000))  # epoch ms, for --as-of
    time.sleep(0.002)
    feed(harness.source, "second", 3, 5)
    harness.run()
    return harness


def lake_files_outside(folder: Path) -> list[str]:
    """Every file the tables of the lake at `folder` reference (metadata, manifest lists,
    manifests, data files of every retained snapshot) that is not inside the folder."""
    lake = Lake(str(folder))
    referenced = set()
    for name in lake.table_names():
        table = lake.table(name)
        referenced |= {table.metadata_location, *(entry.metadata_file for entry in table.metadata.metadata_log)}
        for snapshot in table.snapshots():
            referenced.add(snapshot.manifest_list)
            for manifest in snapshot.manifests(table.io):
                referenced.add(manifest.manifest_path)
                referenced |= {e.data_file.file_path for e in manifest.fetch_manifest_entry(table.io, discard_deleted=False)}
    inside = str(folder.resolve()) + "/"
    return sorted(path for path in referenced if not os.path.realpath(path.removeprefix("file://")).startswith(inside))


def test_a_copied_lake_works_on_its_own_and_leaves_the_original_untouched(original, tmp_path):
    root = Path(original.lake.location)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    before = file_hashes(root)
    lake = ["--lake", str(copy)]
    as_of = ["SELECT count(*) AS n FROM machine_learning_curated", "--as-of", original.between]

    assert as_json("query", *as_of, *lake) == as_json("query", *as_of, "--lake", str(root)) == [{"n": 3}]
    assert {t["table"]: t["rows"] for t in as_json("status", *lake)["tables"]}["machine_learning_curated"] == 5
    newer = tmp_path / "newer"
    feed(newer, "third", 5, 8)
    ok("ingest", str(newer), *lake)
    run_id = as_json("run", *lake)["run_id"]
    ok("export", str(tmp_path / "export"), "--run", run_id, *lake)
    ok("forget", "c0@x.com", *lake)
    ok("history", "customer_landing", *lake)

    assert file_hashes(root) == before, "a command on the copy changed the original"
    assert lake_files_outside(copy) == []
    assert as_json("query", "SELECT count(*) AS n FROM machine_learning_curated", *lake) == [{"n": 7}]
    assert as_json("query", "SELECT count(*) AS n FROM machine_learning_curated", "--lake", str(root)) == [{"n": 5}]
    ok("forget", "c1@x.com", "--lake", str(root))  # deletes the original's unreferenced files, none of the copy's
    assert as_json("query", "SELECT count(*) AS n FROM customer_landing", *lake) == [{"n": 7}]


def test_a_moved_lake_works_where_it_is_now(original, tmp_path):
    root = Path(original.lake.location)
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(root, moved)
    lake = ["--lake", str(moved)]

    assert {t["table"]: t["rows"] for t in as_json("status", *lake)["tables"]}["machine_learning_curated"] == 5
    ok("run", str(original.source), *lake)
    ok("forget", "c0@x.com", *lake)
    assert as_json("query", "SELECT count(*) AS n FROM machine_learning_curated", *lake) == [{"n": 4}]
    assert not root.exists(), "a command on the moved lake wrote where it used to be"
    assert lake_files_outside(moved) == []


def one_clear_line(result, expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error: ") and expected in " ".join(result.stderr.split()), result.stderr


EVERY_COMMAND = [
    ["status"],
    ["history", "customer_landing"],
    ["query", "SELECT 1"],
    ["run"],
    ["ingest", "{source}"],
    ["forget", "c0@x.com"],
    ["export", "{out}"],
]


def refused_everywhere(folder: Path, source: Path, out: Path, expected: str) -> None:
    for command in EVERY_COMMAND:
        args = [arg.format(source=source, out=out) for arg in command]
        one_clear_line(stedi(*args, "--lake", str(folder)), expected)


def test_a_copy_missing_files_is_refused_by_every_command_and_changes_nothing(original, tmp_path):
    root = Path(original.lake.location)
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    next(copy.glob("warehouse/*/machine_learning_curated/data/*.parquet")).unlink()
    before, copied = file_hashes(root), file_hashes(copy)

    refused_everywhere(copy, original.source, tmp_path / "out", "was moved or copied from")
    assert file_hashes(root) == before and file_hashes(copy) == copied


def test_a_catalog_of_another_lake_is_refused(original, tmp_path, monkeypatch):
    root = Path(original.lake.location)
    before = file_hashes(root)
    monkeypatch.setenv("STEDI_CATALOG_URI", f"sqlite:///{root / 'catalog.db'}")

    refused_everywhere(tmp_path / "other", original.source, tmp_path / "out", "outside the lake at")
    assert file_hashes(root) == before


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
        str(root / "_stedi" / "secret"): "0o600",
        str(root / "_stedi"): "0o700",
        str(root / "warehouse"): "0o700",
        str(root / "catalog.db"): "0o600",
    }


def test_a_lake_in_a_folder_with_a_space_in_its_name_keeps_its_tables_inside(tmp_path):
    harness = LakeHarness(tmp_path / "my lakes")
    feed(harness.source, "first", 0, 3)
    harness.run()
    assert lake_files_outside(Path(harness.lake.location)) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my lakes"]
