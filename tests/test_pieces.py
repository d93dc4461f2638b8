"""A large feed file is landed in pieces cut at line ends (`stedi.lines.cut`): exactly as if whole."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from stedi.errors import SourceError
from stedi.ingest import LEDGER_TABLE
from stedi.lines import cut
from stedi.storage import FileInfo, open_storage
from support.lakes import LakeHarness

READING = {"user": "a@x.com", "timestamp": 1655564444103, "x": 1.5, "y": -2.0, "z": 3.25}


def reading(number: int, **fields) -> bytes:
    return json.dumps({**READING, "timestamp": READING["timestamp"] + number, **fields}).encode()


# Every kind of line a piece's edge could meet: a BOM, CRLF, blank and blank-looking lines, lines
# that do not fit, reordered and spaced keys, a line longer than any piece, bytes that are not
# UTF-8, and a last line without its line end.
HOSTILE_FILE = b"".join(
    [
        b"\xef\xbb\xbf" + reading(0) + b"\r\n",
        b"\n",
        b"   \t \n",
        b"broken\n",
        b'{"z": 3, "timestamp": 7, "x": 1,   "y": 2, "user": "b@x.com"}\n',
        reading(1, user="c" * 400 + "@x.com") + b"\n",
        b'{"user": "caf\xc3\xa9@x.com", "timestamp": 8, "x": 1, "y": 2, "z": 3}\n',
        b'{"user": "\xff@x.com", "timestamp": 9, "x": 1, "y": 2, "z": 3}\n',
        b'{"user": "d@x.com", "timestamp": 1.5, "x": 1, "y": 2, "z": 3}\n',
        *(reading(n) + b"\n" for n in range(3, 60)),
        b"\r\n\r\n",
        reading(60, extra="kept in _extra"),
    ]
)


def landed(harness: LakeHarness) -> dict[str, list[tuple]]:
    """Every landing and quarantine row (but the run's own columns) and the ledger's facts."""
    run_columns = {"_ingest_run", "_ingested_at"}
    tables = {}
    for table in ("accelerometer_landing", "accelerometer_landing_rejected"):
        columns = ", ".join(f'"{name}"' for name, _ in harness.lake.columns(table) if name not in run_columns)
        tables[table] = harness.rows(f"SELECT {columns} FROM {table} ORDER BY ALL")
    tables[LEDGER_TABLE] = harness.rows(f"SELECT path, size, sha256, non_blank_lines, accepted, rejected, problem FROM {LEDGER_TABLE} ORDER BY ALL")
    source = str(harness.source)
    return {table: [tuple(v.replace(source, "SOURCE") if isinstance(v, str) else v for v in row) for row in rows] for table, rows in tables.items()}


def feed_hostile_files(harness: LakeHarness) -> None:
    (harness.source / "accelerometer").mkdir(parents=True)
    (harness.source / "accelerometer/hostile.json").write_bytes(HOSTILE_FILE)
    (harness.source / "accelerometer/small.jsonl.gz").write_bytes(gzip.compress(HOSTILE_FILE, mtime=0))
    (harness.source / "accelerometer/no-line-end.json").write_bytes(reading(70) * 3)


@pytest.fixture(scope="module")
def landed_whole(tmp_path_factory) -> dict[str, list[tuple]]:
    harness = LakeHarness(tmp_path_factory.mktemp("whole"))
    feed_hostile_files(harness)
    harness.ingest()
    return landed(harness)


@pytest.mark.parametrize("piece_bytes", [16, 97, 256, 1000])
@pytest.mark.parametrize("batch_bytes", [1, 10**9], ids=["a batch per piece", "every piece in one batch"])
def test_a_file_lands_the_same_in_pieces_as_whole(tmp_path, monkeypatch, landed_whole, piece_bytes, batch_bytes):
    monkeypatch.setattr("stedi.lines.PIECE_BYTES", piece_bytes)
    monkeypatch.setattr("stedi.ingest.BATCH_BYTES", batch_bytes)
    harness = LakeHarness(tmp_path)
    feed_hostile_files(harness)
    report = harness.ingest()
    assert landed(harness) == landed_whole
    feed = report.feeds["accelerometer"]
    assert feed.files_new == 3 and feed.lines == feed.accepted + feed.rejected
    pieces = len(cut(open_storage("/"), info_of(harness.source / "accelerometer/hostile.json")))
    assert pieces > 1
    if batch_bytes == 1:  # the pieces of the file landed in batches of their own
        assert len(harness.lake.state("accelerometer_landing").files) > 3


def info_of(path) -> FileInfo:
    stat = path.stat()
    return FileInfo(str(path), stat.st_size, stat.st_mtime_ns)


CUTS = {
    # text, piece bytes -> (start, end, first line) of each piece
    "at the last line end of each piece": (b"a\nbb\nccc\n", 4, [(0, 2, 1), (2, 5, 2), (5, 9, 3)]),
    "a piece of whole lines stays whole": (b"a\nb\nc\nd\n", 4, [(0, 4, 1), (4, 8, 3)]),
    "a line longer than a piece grows it": (b"aaaaaaaa\nb\nc\n", 4, [(0, 11, 1), (11, 13, 3)]),
    "blank lines count": (b"\n\n\nab\n\ncd", 5, [(0, 3, 1), (3, 7, 4), (7, 9, 6)]),
    "small enough: whole": (b"a\nb\n", 4, [(0, None, 1)]),
}


@pytest.mark.parametrize("text, piece_bytes, expected", CUTS.values(), ids=CUTS.keys())
def test_cut(tmp_path, monkeypatch, text, piece_bytes, expected):
    monkeypatch.setattr("stedi.lines.PIECE_BYTES", piece_bytes)
    path = tmp_path / "feed.json"
    path.write_bytes(text)
    pieces = cut(open_storage(str(tmp_path)), info_of(path))
    assert [(p.start, p.end, p.first_line) for p in pieces] == expected
    if len(pieces) > 1:
        assert {p.sha256 for p in pieces} == {hashlib.sha256(text).hexdigest()}
        assert b"".join(text[p.start : p.end] for p in pieces) == text


@pytest.mark.parametrize("name", ["feed.json.gz", "gzip-by-its-bytes.json"])
def test_a_gzipped_file_is_never_cut(tmp_path, monkeypatch, name):
    monkeypatch.setattr("stedi.lines.PIECE_BYTES", 8)
    path = tmp_path / name
    path.write_bytes(gzip.compress(b"a\n" * 100))
    assert [(p.start, p.end) for p in cut(open_storage(str(tmp_path)), info_of(path))] == [(0, None)]


def test_a_file_that_changes_between_its_pieces_stops_the_ingest(tmp_path, monkeypatch):
    """Its pieces would mix two versions of it: the ingest stops and publishes nothing."""
    monkeypatch.setattr("stedi.lines.PIECE_BYTES", 100)
    harness = LakeHarness(tmp_path)
    path = harness.feed("accelerometer/a.json", [READING] * 20)
    harness.feed("customer/c.json", [{"email": "a@x.com"}])
    from stedi import ingest as ingest_module

    def cut_then_append(storage, info):
        pieces = cut(storage, info)
        with path.open("ab") as out:
            out.write(reading(99) + b"\n")
        return pieces

    monkeypatch.setattr(ingest_module, "cut", cut_then_append)
    with pytest.raises(SourceError, match=r"accelerometer/a.json changed while it was read; nothing was published: run it again"):
        harness.ingest()
    monkeypatch.undo()
    assert harness.count("customer_landing") == 0 and harness.count(LEDGER_TABLE) == 0
    assert harness.ingest().feeds["accelerometer"].accepted == 21
