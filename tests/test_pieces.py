"""A large feed file is landed in pieces cut at line ends (`stedi.lines.cut`): exactly as if whole."""

from __future__ import annotations

import gzip
import hashlib
import time

import pytest

from stedi.errors import SourceError
from stedi.ingest import LEDGER_TABLE
from stedi.lines import cut
from stedi.storage import FileInfo, open_storage
from support.lakes import LakeHarness
from support.pieces import READING, feed_hostile_files, landed, reading


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

    def cut_then_append(storage, info, stopped):
        pieces = cut(storage, info, stopped)
        with path.open("ab") as out:
            out.write(reading(99) + b"\n")
        return pieces

    monkeypatch.setattr(ingest_module, "cut", cut_then_append)
    with pytest.raises(SourceError, match=r"accelerometer/a.json changed while it was read; nothing was published: run it again"):
        harness.ingest()
    monkeypatch.undo()
    assert harness.count("customer_landing") == 0 and harness.count(LEDGER_TABLE) == 0
    assert harness.ingest().feeds["accelerometer"].accepted == 21


def test_an_ingest_that_stops_does_not_wait_for_a_large_file_to_be_cut(tmp_path, monkeypatch):
    """Ctrl-C (or an error) while the customer feed lands ends the ingest at once: the cut of the
    large accelerometer file, in the background meanwhile, stops reading."""
    monkeypatch.setattr("stedi.lines.PIECE_BYTES", 100)
    harness = LakeHarness(tmp_path)
    harness.feed("customer/c.json", [{"email": "a@x.com"}])
    harness.feed("accelerometer/b.json", [READING] * 2000)
    reads = []
    storage_class = type(open_storage(str(tmp_path)))
    read_range = storage_class.read_range

    def slow_read_range(self, *args):
        reads.append(args)
        time.sleep(0.005)
        return read_range(self, *args)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(storage_class, "read_range", slow_read_range)
    monkeypatch.setattr(harness.engine, "land", interrupted)
    with pytest.raises(KeyboardInterrupt):
        harness.ingest()
    assert len(reads) < 500  # of about 2000 pieces
