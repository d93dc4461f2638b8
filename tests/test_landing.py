"""SPEC §2: every line is accepted with its typed fields or quarantined with a reason, never lost."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import socket
import tracemalloc
import zlib
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from stedi.errors import SourceError
from stedi.ingest import LEDGER_TABLE
from stedi.lake import MANIFEST_MERGING
from stedi.lines import FilePiece, FileStream
from stedi.storage import open_storage
from support.lakes import delete_after_discovery
from support.landing_cases import ACCEPTED_VALUES, REJECTIONS, writer_turns_up

GOOD_READING = {"user": "a@x.com", "timestamp": 1000, "x": 1.0, "y": 2.0, "z": 3.0}


@pytest.mark.parametrize("feed, line, reason", REJECTIONS, ids=[r[2] for r in REJECTIONS])
def test_each_rejection_reason(harness, feed, line, reason):
    harness.feed(f"{feed}/batch.json", [line])
    harness.ingest()
    assert harness.rows(f"SELECT raw, reason, _source_line FROM {feed}_landing_rejected") == [(line, reason, 1)]
    assert harness.count(f"{feed}_landing") == 0


def test_several_problems_are_all_named(harness):
    harness.feed("step_trainer/batch.json", ['{"serialNumber": 5, "distanceFromObject": "far"}'])
    harness.ingest()
    [(reason,)] = harness.rows("SELECT reason FROM step_trainer_landing_rejected")
    assert reason == (
        "missing required field: sensorReadingTime; field serialNumber: expected a string, got an integer; "
        "field distanceFromObject: expected a whole number, got a string"
    )


@pytest.mark.parametrize("line, column, expected", ACCEPTED_VALUES)
def test_accepted_accelerometer_values(harness, line, column, expected):
    harness.feed("accelerometer/batch.json", [line])
    harness.ingest()
    assert harness.rows(f'SELECT "{column}" FROM accelerometer_landing') == [(expected,)]


# (customer field as written, landed column, landed value): PII text is kept as written.
CUSTOMER_VALUES = [
    ({"phone": 8015551212}, "phone", "8015551212"),
    ({"phone": "801-555-1212"}, "phone", "801-555-1212"),
    ({"birthDay": "983-01-01"}, "birthDay", "983-01-01"),
    ({"birthDay": "1399-01-01"}, "birthDay", "1399-01-01"),
    ({"sharewithresearchasofdate": 1655564444000}, "shareWithResearchAsOfDate", 1655564444000),
    ({"shareWithResearchAsOfDate": None}, "shareWithResearchAsOfDate", None),
]


@pytest.mark.parametrize("fields, column, expected", CUSTOMER_VALUES)
def test_accepted_customer_values(harness, fields, column, expected):
    harness.feed("customers/landing/batch.json", [{"email": "a@x.com", **fields}])
    harness.ingest()
    assert harness.rows(f'SELECT "{column}" FROM customer_landing') == [(expected,)]


def test_lineage_columns(harness):
    path = harness.feed("accelerometer/batch.json", ["", GOOD_READING, GOOD_READING, "broken"])
    report = harness.ingest()
    rows = harness.rows("SELECT _source_file, _source_line, _ingest_run, _ingested_at IS NOT NULL FROM accelerometer_landing ORDER BY 2")
    assert rows == [(str(path), 2, report.run_id, True), (str(path), 3, report.run_id, True)]
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    assert harness.rows("SELECT DISTINCT _source_sha256 FROM accelerometer_landing") == [(sha256,)]
    assert harness.rows("SELECT _source_line, _source_sha256, _ingest_run FROM accelerometer_landing_rejected") == [(4, sha256, report.run_id)]
    # Landing writes them as ENUMs for speed; every reader (Spark, Athena, pyarrow) must still find plain strings.
    for table in ("accelerometer_landing", "accelerometer_landing_rejected"):
        (data_file,) = harness.lake.state(table).files
        schema = pq.ParquetFile(data_file).schema
        for name in ("_source_file", "_source_sha256", "_ingest_run"):
            column = schema.column(schema.names.index(name))
            assert (column.physical_type, str(column.logical_type)) == ("BYTE_ARRAY", "String"), (table, name)


def conservation(harness) -> list[tuple]:
    """Per file: non-blank lines recorded by the ledger versus rows actually in the tables."""
    return harness.rows(
        f"""
        SELECT ledger.path, ledger.non_blank_lines,
               (SELECT count(*) FROM accelerometer_landing WHERE _source_file = ledger.path)
             + (SELECT count(*) FROM accelerometer_landing_rejected WHERE _source_file = ledger.path AND _source_line IS NOT NULL)
        FROM {LEDGER_TABLE} AS ledger WHERE feed = 'accelerometer' ORDER BY 1"""
    )


def test_file_encodings_and_conservation(harness):
    good = '{"user": "a@x.com", "timestamp": 1, "x": 1, "y": 2, "z": 3}'
    harness.feed("accelerometer/crlf.json", [good, "broken", good], newline="\r\n")
    (harness.source / "accelerometer/bom.json").write_bytes(b"\xef\xbb\xbf" + (good + "\n" + good + "\n").encode())
    (harness.source / "accelerometer/packed.json.gz").write_bytes(gzip.compress((good + "\n\n  \n" + good).encode()))
    (harness.source / "accelerometer/empty.json").write_bytes(b"")
    (harness.source / "accelerometer/no-final-newline.jsonl").write_bytes(good.encode())
    report = harness.ingest()
    feed = report.feeds["accelerometer"]
    assert (feed.files_new, feed.lines, feed.accepted, feed.rejected) == (5, 8, 7, 1)
    assert harness.rows("SELECT raw, reason FROM accelerometer_landing_rejected") == [("broken", "not valid JSON")]
    assert all(non_blank == landed for _, non_blank, landed in conservation(harness))
    assert {n for _, n, _ in conservation(harness)} == {0, 1, 2, 3}


def test_corrupt_and_truncated_gzip_are_quarantined_not_fatal(harness):
    lines = "\n".join(f'{{"user": "a@x.com", "timestamp": {i}, "x": 1, "y": 2, "z": 3}}' for i in range(2000)).encode()
    compressed = gzip.compress(lines)
    (harness.source / "accelerometer").mkdir(parents=True)
    (harness.source / "accelerometer/truncated.json.gz").write_bytes(compressed[: len(compressed) // 2])
    (harness.source / "accelerometer/corrupt.json.gz").write_bytes(b"\x1f\x8b\x08\x00garbage-garbage")
    harness.feed("customer/ok.json", [{"email": "a@x.com"}])
    report = harness.ingest()
    problems = harness.rows("SELECT _source_file, reason FROM accelerometer_landing_rejected WHERE _source_line IS NULL ORDER BY 1")
    assert [p[0].rsplit("/", 1)[-1] for p in problems] == ["corrupt.json.gz", "truncated.json.gz"]
    assert problems[0][1].startswith("corrupt gzip stream")
    assert problems[1][1].startswith("truncated gzip stream")
    assert len(report.feeds["accelerometer"].problems) == 2
    readable = harness.count("accelerometer_landing")
    assert 0 < readable < 2000  # the readable prefix landed; its cut-off last line is quarantined
    assert all(non_blank == landed for _, non_blank, landed in conservation(harness))


READINGS = [json.dumps({**GOOD_READING, "timestamp": t}) for t in range(2000)]


def gzipped(readings: list[str]) -> bytes:
    return gzip.compress(("\n".join(readings) + "\n").encode(), mtime=0)


def damaged_in_the_middle() -> tuple[bytes, set[int]]:
    """A gzip file with bytes overwritten halfway, and the readings whole in the part before."""
    data = bytearray(gzipped(READINGS))
    middle = len(data) // 2
    data[middle : middle + 32] = b"\xff" * 32
    before = zlib.decompressobj(wbits=31).decompress(bytes(data[:middle]))
    return bytes(data), {json.loads(line)["timestamp"] for line in before.split(b"\n")[:-1]}


# (gzip file, timestamps that must land, how its problem row's reason starts or None)
GZIP_FILES = {
    "two members (cat a.gz b.gz)": (gzipped(READINGS[:700]) + gzipped(READINGS[700:]), set(range(2000)), None),
    "members padded with zeros": (gzipped(READINGS[:700]) + bytes(512) + gzipped(READINGS[700:]), set(range(2000)), None),
    "damaged in the middle": (*damaged_in_the_middle(), "corrupt gzip stream"),
    "not gzip after the last member": (gzipped(READINGS) + b"trailing text", set(range(2000)), "corrupt gzip stream"),
}


@pytest.mark.parametrize("data, must_land, problem", GZIP_FILES.values(), ids=GZIP_FILES.keys())
def test_every_gzip_member_is_read_and_a_damage_keeps_what_came_before(harness, data, must_land, problem):
    (harness.source / "accelerometer").mkdir(parents=True)
    (harness.source / "accelerometer/readings.json.gz").write_bytes(data)
    report = harness.ingest()
    assert must_land <= {timestamp for (timestamp,) in harness.rows("SELECT timestamp FROM accelerometer_landing")}
    problems = [reason for (reason,) in harness.rows("SELECT reason FROM accelerometer_landing_rejected WHERE _source_line IS NULL")]
    assert [reason.split(":")[0] for reason in problems] == ([problem] if problem else [])
    assert len(report.feeds["accelerometer"].problems) == len(problems)
    assert all(non_blank == landed for _, non_blank, landed in conservation(harness))


def test_blank_lines_are_numbered_not_held(harness):
    """A small gzip may inflate to a great many blank lines: none becomes a row, and reading the
    file takes a few chunks' worth of memory (see CHUNK_BYTES), not some bytes per line."""
    blank = b"\n" * (16 * 1024 * 1024)
    reading = json.dumps(GOOD_READING).encode() + b"\n"
    path = harness.source / "accelerometer/blank.json.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(reading + blank + reading))
    tracemalloc.start()
    try:
        rows = sum(batch.num_rows for batch in FileStream(open_storage("/"), [FilePiece(str(path))]).reader())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows == 2
    assert peak < 8 * len(blank)  # it took about 100 bytes per blank line when each was a row
    report = harness.ingest()
    assert (report.feeds["accelerometer"].lines, report.feeds["accelerometer"].accepted) == (2, 2)
    assert harness.rows("SELECT _source_line FROM accelerometer_landing ORDER BY 1") == [(1,), (len(blank) + 2,)]
    assert all(non_blank == landed for _, non_blank, landed in conservation(harness))


def make_fifo(folder: Path) -> None:
    os.mkfifo(folder / "fifo.json")
    writer_turns_up(folder / "fifo.json")


def make_socket(folder: Path) -> None:
    cwd = os.getcwd()
    os.chdir(folder)  # a socket's path has a short limit: bound by its name, from its folder
    try:
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind("socket.json")
    finally:
        os.chdir(cwd)


def make_file_named_in_latin1(folder: Path) -> None:
    with open(os.fsencode(folder) + b"/\xff\xfe.json", "w") as out:
        out.write(json.dumps(GOOD_READING) + "\n")


def make_folder_named_in_latin1(folder: Path) -> None:
    os.mkdir(os.fsencode(folder) + b"/\xe9t\xe9")
    make_file_named_in_latin1(Path(os.fsdecode(os.fsencode(folder) + b"/\xe9t\xe9")))


# (how the entry is made in a feed folder, its name as reported, why it is skipped)
NOT_FILES_TO_READ = {
    "FIFO": (make_fifo, "fifo.json", "not a regular file but a FIFO"),
    "socket": (make_socket, "socket.json", "not a regular file but a socket"),
    "device": (lambda folder: (folder / "null.json").symlink_to("/dev/null"), "null.json", "not a regular file but a character device"),
    "symbolic link loop": (lambda folder: (folder / "loop.json").symlink_to("loop.json"), "loop.json", "a symbolic link loop"),
    "dangling symbolic link": (
        lambda folder: (folder / "gone.json").symlink_to("nowhere.json"),
        "gone.json",
        "a dangling symbolic link: its target does not exist",
    ),
    "link to a folder": (lambda folder: (folder / "linked").symlink_to(folder), "linked", "a symbolic link to a folder, which is not followed"),
    "file name not UTF-8": (make_file_named_in_latin1, "\\xff\\xfe.json", "its name is not valid UTF-8"),
    "folder name not UTF-8": (make_folder_named_in_latin1, "\\xe9t\\xe9", "its name is not valid UTF-8"),
}


@pytest.mark.parametrize("make, name, reason", NOT_FILES_TO_READ.values(), ids=NOT_FILES_TO_READ.keys())
def test_entries_that_are_not_files_to_read_are_skipped_with_a_reason(harness, make, name, reason):
    good = harness.feed("accelerometer/good.json", [GOOD_READING])
    make(good.parent)
    report = harness.ingest()
    assert report.skipped == {f"{good.parent}/{name}": reason}
    json.dumps(report.as_dict(), ensure_ascii=False).encode("utf-8")  # every path in the report is text
    assert harness.count("accelerometer_landing") == 1
    assert all(non_blank == landed for _, non_blank, landed in conservation(harness))


def test_a_file_changed_after_it_was_listed_is_recorded_as_read(harness, monkeypatch):
    """The ledger describes the bytes that landed, not the file as listed: unchanged since, it is
    not ingested again."""
    path = harness.feed("accelerometer/a.json", [GOOD_READING] * 3)
    from stedi import ingest as ingest_module

    discover = ingest_module.discover

    def discover_then_truncate(storage):
        found = discover(storage)
        harness.feed("accelerometer/a.json", [GOOD_READING] * 2)
        return found

    monkeypatch.setattr(ingest_module, "discover", discover_then_truncate)
    harness.ingest()
    monkeypatch.undo()
    assert harness.ingest().new_files == 0
    assert harness.count("accelerometer_landing") == 2
    assert harness.rows(f"SELECT size FROM {LEDGER_TABLE}") == [(path.stat().st_size,)]


def test_reingesting_the_same_source_adds_nothing(harness):
    harness.feed("accelerometer/a.json", [GOOD_READING, "bad line"])
    harness.ingest()
    again = harness.ingest()
    assert again.new_files == 0 and again.feeds["accelerometer"].files_skipped == 1
    assert (harness.count("accelerometer_landing"), harness.count("accelerometer_landing_rejected")) == (1, 1)
    assert len(harness.lake.table("accelerometer_landing").snapshots()) == 1


def test_touched_file_with_same_content_is_skipped(harness):
    path = harness.feed("accelerometer/a.json", [GOOD_READING])
    harness.ingest()
    path.write_text(path.read_text())  # new mtime, same bytes
    assert harness.ingest().new_files == 0
    assert harness.count("accelerometer_landing") == 1


def test_a_new_file_adds_exactly_its_lines(harness):
    harness.feed("accelerometer/a.json", [GOOD_READING] * 3)
    harness.ingest()
    harness.feed("accelerometer/b.json", [GOOD_READING] * 2 + ["oops"])
    report = harness.ingest()
    assert (report.new_files, report.feeds["accelerometer"].accepted, report.feeds["accelerometer"].rejected) == (1, 2, 1)
    assert harness.count("accelerometer_landing") == 5


def test_an_interrupted_ingest_is_undone_by_the_next(harness, monkeypatch):
    """A crash after some landing commits but before the ledger: the next ingest has no duplicate."""
    harness.feed("accelerometer/a.json", [GOOD_READING] * 3)
    harness.feed("customer/c.json", [{"email": "a@x.com"}])

    def crash(*args):  # the ledger's data file is the last thing an ingest writes
        raise KeyboardInterrupt

    monkeypatch.setattr(harness.lake, "write_parquet", crash)
    with pytest.raises(KeyboardInterrupt):
        harness.ingest()
    assert harness.count("accelerometer_landing") == 3  # committed, but not recorded as ingested
    monkeypatch.undo()
    harness.ingest()
    assert harness.count("accelerometer_landing") == 3
    assert harness.count("customer_landing") == 1


def test_a_file_that_disappears_mid_ingest_stops_it_and_nothing_is_published(harness, monkeypatch):
    harness.feed("customer/c.json", [{"email": "a@x.com"}])
    gone = harness.feed("accelerometer/a.json", [GOOD_READING])
    delete_after_discovery(monkeypatch, gone)
    with pytest.raises(SourceError, match="accelerometer/a.json disappeared during the ingest"):
        harness.ingest()
    assert harness.count("customer_landing") == 0
    assert harness.count(LEDGER_TABLE) == 0


def test_many_small_ingests_keep_every_table_cheap_to_plan(harness):
    """Each ingest appends to the landing tables and the ledger; their manifests are merged, so
    planning a table reads a bounded number of them however many ingests came before. A lake
    made before manifests were merged is brought along by its next append."""
    reading = {"user": "a@x.com", "timestamp": 1, "x": 1.0, "y": 2.0, "z": 3.0}
    harness.feed("accelerometer/landing/0.json", [reading])
    harness.ingest()
    for name in harness.lake.table_names():
        with harness.lake.table(name).transaction() as tx:
            tx.remove_properties(*MANIFEST_MERGING)
    harness.lake.refresh()

    ingests = 24
    for n in range(1, ingests):
        harness.feed(f"accelerometer/landing/{n}.json", [reading, "not json"])
        harness.ingest()

    assert harness.count("accelerometer_landing") == ingests
    assert harness.count("accelerometer_landing_rejected") == ingests - 1
    assert harness.count(LEDGER_TABLE) == ingests
    for name in ("accelerometer_landing", "accelerometer_landing_rejected", LEDGER_TABLE):
        table = harness.lake.table(name)
        manifests = table.current_snapshot().manifests(table.io)
        assert len(manifests) <= int(MANIFEST_MERGING["commit.manifest.min-count-to-merge"]), name
