"""Turn the bytes of a feed file into numbered lines without a Python loop per line.

A large plain file is cut at line ends into pieces (`cut`), landed apart and at once, so a single
large file uses every core and no landing batch holds more than about a piece of it. A piece is
read in chunks of whole lines, and blank lines are numbered but never become rows, so
memory stays flat whatever a file holds (a small gzip can inflate to gigabytes of blank lines).
Anything that stops a file from being read completely — a corrupt or truncated gzip stream — is
returned as a problem, so the caller can quarantine it instead of crashing or losing the lines
that were readable.
"""

from __future__ import annotations

import hashlib
import os
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from queue import Full, Queue

import numpy as np
import pyarrow as pa

from stedi.errors import AwsError, SourceError
from stedi.storage import FileChanged, FileInfo, Storage

UTF8_BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"
NEWLINE, CARRIAGE_RETURN, SPACE = 10, 13, 32
IS_WHITESPACE = np.zeros(256, dtype=bool)
IS_WHITESPACE[[9, 10, 13, 32]] = True
# Text split into lines at once. Splitting costs some 40 bytes per line, and a line can be as short
# as two bytes: this bounds what reading a file holds, whatever its size or content.
CHUNK_BYTES = 1024 * 1024
GZIP_INPUT_BYTES = 64 * 1024  # compressed bytes inflated at once: what a damage can take back
CHUNKS_AHEAD = 2  # chunks per reader thread held ahead of the engine
# A plain file larger than this is landed in pieces of about this size. Kept under 32 MB, glibc's
# largest threshold for serving an allocation from its heap: a larger read gets fresh pages from
# the kernel each time, and faulting them in cost three times the read itself.
PIECE_BYTES = 16 * 1024 * 1024


def decode_utf8(text: bytearray) -> bytearray:
    """Invalid UTF-8 bytes become U+FFFD so the line can still be judged (and quarantined) by JSON rules."""
    if text.isascii():  # nearly every feed file, and far cheaper to check than to decode
        return text
    try:
        text.decode("utf-8")
        return text
    except UnicodeDecodeError:
        return bytearray(text.decode("utf-8", errors="replace").encode("utf-8"))


def line_starts(data: np.ndarray) -> np.ndarray:
    """The offset of each line in the text (a final line end starts no line)."""
    starts = np.concatenate(([0], np.flatnonzero(data == NEWLINE) + 1))
    return starts[:-1] if starts[-1] == len(data) else starts


def blank_lines(data: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """True where a line holds nothing but whitespace (its line end included, so never empty).

    Only lines that start with whitespace can be blank, and they are usually few: just their bytes
    are looked at. Gathering them costs tens of bytes of memory per line, so when they are many (a
    file of blank lines) every byte of the text is looked at instead, for one byte per byte.
    """
    blank = IS_WHITESPACE[data[starts]]
    candidates = np.flatnonzero(blank)
    if len(candidates) > len(starts) // 8:
        return ~np.logical_or.reduceat(~IS_WHITESPACE[data], starts)
    if len(candidates):
        first = starts[candidates]
        lengths = np.append(starts[1:], len(data))[candidates] - first
        first_of_each = np.cumsum(lengths) - lengths
        positions = np.arange(lengths.sum()) + np.repeat(first - first_of_each, lengths)
        blank[candidates] = ~np.logical_or.reduceat(~IS_WHITESPACE[data[positions]], first_of_each)
    return blank


class FileText:
    """A feed file's text, decompressed, without its BOM and valid UTF-8, as chunks of whole lines
    of about CHUNK_BYTES (a longer line is a chunk of its own).

    Once the chunks are read, `problem` says why the file could not be read to its end; while
    they are read, `position` says how many bytes of the file the chunks so far came from.
    """

    def __init__(self, raw: bytes, gzipped: bool, at_start: bool = True) -> None:
        self.raw = raw
        self.at_start = at_start  # False for a piece of a file after its first, where no BOM can be
        self.gzipped = gzipped or (at_start and raw[:2] == GZIP_MAGIC)
        self.problem: str | None = None
        self.position = 0

    def __iter__(self) -> Iterator[bytearray]:
        chunks = _whole_lines(self._gunzipped()) if self.gzipped else self._plain()
        for number, chunk in enumerate(chunks):
            if number == 0 and self.at_start and chunk.startswith(UTF8_BOM):
                del chunk[: len(UTF8_BOM)]
            yield decode_utf8(chunk)

    def _plain(self) -> Iterator[bytearray]:
        raw, start = self.raw, 0
        while start < len(raw):
            end = len(raw)
            if end - start > CHUNK_BYTES:
                end = raw.rfind(b"\n", start, start + CHUNK_BYTES) + 1 or raw.find(b"\n", start + CHUNK_BYTES) + 1 or len(raw)
            self.position = end
            yield bytearray(memoryview(raw)[start:end])
            start = end

    def _gunzipped(self) -> Iterator[bytes]:
        """Every member of the stream (`cat a.gz b.gz` makes one of two) in pieces of at most
        CHUNK_BYTES. A damaged stream gives the text before the damage and sets `problem`."""
        inflater = zlib.decompressobj(wbits=31)
        raw = memoryview(self.raw)
        for start in range(0, len(raw), GZIP_INPUT_BYTES):
            data: bytes | memoryview = raw[start : start + GZIP_INPUT_BYTES]
            while True:
                if inflater.eof:  # a member ended: the next one follows, maybe after zero padding (as gzip allows)
                    data = bytes(data).lstrip(b"\0")
                    if not data:
                        break
                    inflater = zlib.decompressobj(wbits=31)
                before = inflater.copy()
                try:
                    piece = inflater.decompress(data, CHUNK_BYTES)
                except zlib.error as error:
                    yield _until_damage(before, data)
                    self.problem = f"corrupt gzip stream: {error}"
                    return
                data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
                self.position = min(start + GZIP_INPUT_BYTES, len(raw)) - len(data)
                if piece:
                    yield piece
                if not data and len(piece) < CHUNK_BYTES:  # else zlib may hold more text of the input it took
                    break
        if not inflater.eof:
            yield inflater.flush()
            self.problem = "truncated gzip stream: the file ends before the compressed data does"


def _until_damage(inflater: zlib._Decompress, data: bytes | memoryview) -> bytes:
    """The text that gzip input gives up to where it is damaged, fed a byte at a time: decompressing
    it at once raises and returns nothing."""
    pieces = []
    for offset in range(len(data)):
        try:
            pieces.append(inflater.decompress(data[offset : offset + 1]))
        except zlib.error:
            break
    return b"".join(pieces)


def _whole_lines(pieces: Iterator[bytes]) -> Iterator[bytearray]:
    """Pieces of text regrouped into chunks that end at a line end (the last one where the text ends)."""
    unfinished: list[bytes] = []  # text after the last line end so far
    for piece in pieces:
        end = piece.rfind(b"\n") + 1
        if not end:
            unfinished.append(piece)
            continue
        yield bytearray().join([*unfinished, memoryview(piece)[:end]])
        unfinished = [piece[end:]]
    if any(unfinished):
        yield bytearray().join(unfinished)


# The table both engines judge: the non-blank lines of each file and, for a file that could not be
# read to its end, a row that says why (no line number, no line).
LINES_SCHEMA = pa.schema([("_file", pa.int32()), ("_source_line", pa.int64()), ("line", pa.large_string()), ("problem", pa.string())])
# What each file of a stream was, as read: kept apart from its lines, which would each carry it.
FILE_FACTS_SCHEMA = pa.schema([("_file", pa.int32()), ("sha256", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()), ("problem", pa.string())])


def _line_batch(index: int, text: bytearray, first_line: int) -> tuple[pa.RecordBatch, int]:
    """The non-blank lines of a chunk, numbered from `first_line`, as one Arrow column sharing the
    chunk's buffer (no copy per line), and how many lines the chunk holds.

    Line ends become spaces, which JSON ignores, so no line needs trimming later: a string function
    per line costs more than parsing it.
    """
    data = np.frombuffer(text, dtype=np.uint8)  # a view: blanking line ends below writes into `text`
    starts = line_starts(data)
    blank = blank_lines(data, starts)
    newlines = starts[1:] - 1
    if len(data) and data[-1] == NEWLINE:
        newlines = np.append(newlines, len(data) - 1)
    carriage_returns = newlines[newlines > 0] - 1
    data[carriage_returns[data[carriage_returns] == CARRIAGE_RETURN]] = SPACE
    data[newlines] = SPACE
    offsets = np.append(starts, len(data)).astype(np.int64)
    lines = pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(offsets), pa.py_buffer(text))
    numbers = np.arange(first_line, first_line + len(starts), dtype=np.int64)
    if blank.any():
        kept = ~blank
        lines, numbers = lines.filter(pa.array(kept)), numbers[kept]
    count = len(numbers)
    batch = pa.RecordBatch.from_arrays(
        [pa.repeat(pa.scalar(index, pa.int32()), count), pa.array(numbers), lines, pa.nulls(count, pa.string())],
        schema=LINES_SCHEMA,
    )
    return batch, len(starts)


def numbered_lines(index: int, text: FileText, first_line: int = 1) -> Iterator[pa.RecordBatch]:
    """A feed file (or a piece of one, whose first line has number `first_line`) as numbered
    lines, then its problem row if it has a problem; `index` identifies it within its batch."""
    next_line = first_line
    for chunk in text:
        batch, line_count = _line_batch(index, chunk, next_line)
        next_line += line_count
        if batch.num_rows:
            yield batch
    if text.problem:
        yield pa.RecordBatch.from_pylist([{"_file": index, "problem": text.problem}], schema=LINES_SCHEMA)


def read_feed_file(storage: Storage, path: str, piece: tuple[int, int, FileInfo] | None = None) -> tuple[bytes, FileInfo]:
    """A feed file's bytes and what they are, or those of a `piece` (start, end, the file as it was
    when cut). A file that cannot be read stops the ingest (nothing is published), as it may be
    readable next time: it is not quarantined and recorded as ingested."""
    try:
        if piece is None:
            return storage.read_file(path)
        start, end, expected = piece
        return storage.read_range(path, start, end, expected), expected
    except FileChanged:
        raise SourceError(f"feed file {path} changed while it was read; nothing was published: run it again") from None
    except FileNotFoundError:
        raise SourceError(f"feed file {path} disappeared during the ingest; nothing was published: run it again") from None
    except OSError as error:
        raise SourceError(f"cannot read feed file {path}: {error.strerror or error}; nothing was published") from None
    except AwsError as error:  # S3 refused: the message names the file and why
        raise SourceError(f"{error}; nothing was published") from None


@dataclass(frozen=True)
class FilePiece:
    """What one share of a landing batch reads: a whole feed file, or the bytes [start, end) of a
    large plain one, cut at line ends, whose first line is number `first_line`.

    A cut file's facts were taken when it was cut (`cut`): `whole` as it was then and the sha256
    of all its bytes; reading a piece checks that the file is still that one.
    """

    path: str
    start: int = 0
    end: int | None = None  # None: the whole file, read at once
    first_line: int = 1
    whole: FileInfo | None = None
    sha256: str | None = None

    @property
    def size(self) -> int | None:
        """The bytes it reads, when it is a cut piece."""
        return None if self.end is None else self.end - self.start


def cut(storage: Storage, info: FileInfo, stopped: threading.Event | None = None) -> list[FilePiece]:
    """A feed file as the pieces it is landed in: itself when it is small or gzipped (gzip cannot be
    entered midway), else pieces of about PIECE_BYTES ending at line ends.

    Cutting reads the file once, in pieces, to count the lines before each piece and to hash it; it
    is read again as each piece lands. The hash of each piece is taken in a thread of its own while
    the next piece is read and its line ends counted with numpy (both release the GIL): the file's
    first batch cannot land before its cut ends (a 698 MB file: 1.4 s -> 0.6 s). Once `stopped` is
    set (the ingest stopped), it stops reading and returns no piece.
    """
    if info.size <= PIECE_BYTES or info.path.lower().endswith(".gz"):
        return [FilePiece(info.path)]

    def read(start: int, end: int) -> bytes:
        return read_feed_file(storage, info.path, (start, end, info))[0]

    bounds: list[tuple[int, int, int]] = []
    digest = hashlib.sha256()
    with ThreadPoolExecutor(max_workers=1) as hashing:
        hashed: Future | None = None  # the piece being hashed: one at a time, so at most two pieces are held
        start, line = 0, 1
        while start < info.size:
            if stopped and stopped.is_set():
                return []
            end = min(start + PIECE_BYTES, info.size)
            parts = [read(start, end)]
            if start == 0 and parts[0][:2] == GZIP_MAGIC:
                return [FilePiece(info.path)]
            last = parts[0].rfind(b"\n") + 1
            while end < info.size and not last:  # a line longer than a piece: the piece grows
                more = read(end, min(end + PIECE_BYTES, info.size))
                if found := more.rfind(b"\n") + 1:
                    last = end - start + found
                parts.append(more)
                end += len(more)
            text = b"".join(parts)
            length = last if end < info.size else len(text)
            if hashed:
                hashed.result()
            hashed = hashing.submit(digest.update, memoryview(text)[:length])
            end = start + length
            bounds.append((start, end, line))
            start, line = end, line + _line_ends(text, length)
        if hashed:
            hashed.result()
    sha256 = digest.hexdigest()
    return [FilePiece(info.path, start, end, first, info, sha256) for start, end, first in bounds]


def _line_ends(text: bytes, length: int) -> int:
    """The line ends among the first `length` bytes, counted a chunk at a time: numpy releases the
    GIL, and a piece grown around a very long line needs no array of its size."""
    data = np.frombuffer(text, np.uint8, length)
    return sum(int(np.count_nonzero(data[start : start + CHUNK_BYTES] == NEWLINE)) for start in range(0, length, CHUNK_BYTES))


_END_OF_FILE = None


class FileStream:
    """The numbered lines of several files or pieces of files as a stream, `_file` being a piece's
    position in `pieces`.

    Pieces are read, gunzipped, hashed and split in background threads (all of which release the
    GIL), one piece per core at once, the threads handing over their chunks through one small
    queue: an engine parses chunks of several pieces while more are read, and only a few chunks
    are held in memory at once.

    A file that cannot be read ends the stream early; the reader of the stream then calls
    `raise_if_failed`, so that the user sees that file's error and not the engine's wrapping of it,
    and then `file_facts`.
    """

    def __init__(self, storage: Storage, pieces: Sequence[FilePiece], on_read: Callable[[int], None] | None = None) -> None:
        self.storage = storage
        self.pieces = pieces
        self.error: SourceError | None = None
        self._facts: list[dict | None] = [None] * len(pieces)
        self._on_read = on_read  # told the bytes of the files read so far, as the stream is read
        self._positions = [0] * len(pieces)

    def reader(self) -> pa.RecordBatchReader:
        """The stream of numbered lines, to be read once."""
        return pa.RecordBatchReader.from_batches(LINES_SCHEMA, self._batches())

    def raise_if_failed(self) -> None:
        """Raise the error of a file that could not be read, after the stream was read."""
        if self.error:
            raise self.error

    def file_facts(self) -> pa.Table:
        """Each piece's file's sha256, size and mtime (of exactly the bytes read, see
        `Storage.read_file`) and problem, once the stream has been read."""
        return pa.Table.from_pylist(self._facts, schema=FILE_FACTS_SCHEMA)

    def _read(self, index: int, chunks: Queue, stopped: threading.Event) -> None:
        """Hand over a piece's batches, then its end, unless the reader stopped reading."""
        try:
            piece = self.pieces[index]
            if piece.end is None or piece.whole is None:
                raw, read = read_feed_file(self.storage, piece.path)
            else:
                raw, read = read_feed_file(self.storage, piece.path, (piece.start, piece.end, piece.whole))
            text = FileText(raw, gzipped=piece.path.lower().endswith(".gz"), at_start=piece.start == 0)
            for batch in numbered_lines(index, text, piece.first_line):
                if not _hand_over(chunks, (index, (batch, text.position)), stopped):
                    return
            self._facts[index] = {
                "_file": index,
                "sha256": piece.sha256 or hashlib.sha256(raw).hexdigest(),
                "size": read.size,
                "mtime_ns": read.mtime_ns,
                "problem": text.problem,
            }
        finally:
            _hand_over(chunks, (index, _END_OF_FILE), stopped)

    def _batches(self) -> Iterator[pa.RecordBatch]:
        """The pieces' batches in the order their readers hand them over: the readers of several
        pieces (of one large file, say) all work at once."""
        workers = os.cpu_count() or 2
        stopped = threading.Event()
        chunks: Queue = Queue(maxsize=CHUNKS_AHEAD * workers)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            readers = [pool.submit(self._read, index, chunks, stopped) for index in range(len(self.pieces))]
            try:
                unfinished = len(readers)
                while unfinished:
                    index, item = chunks.get()
                    if item is _END_OF_FILE:
                        readers[index].result()  # raises the error that stopped the piece's reading
                        unfinished -= 1
                        continue
                    batch, self._positions[index] = item
                    if self._on_read:
                        self._on_read(sum(self._positions))
                    yield batch
            except SourceError as error:
                self.error = error
            finally:
                # Readers still at work see this and end, so the pool can close, also when the
                # engine stopped reading the stream (an error, Ctrl-C).
                stopped.set()
                for reader in readers:
                    reader.cancel()


def _hand_over(chunks: Queue, item: tuple[int, tuple[pa.RecordBatch, int] | None], stopped: threading.Event) -> bool:
    while not stopped.is_set():
        try:
            chunks.put(item, timeout=0.1)
            return True
        except Full:
            continue
    return False
