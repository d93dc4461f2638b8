"""Turn the bytes of a feed file into text and numbered lines without a Python loop per line.

Anything that stops a file from being read completely — a corrupt or truncated gzip stream — is
returned as a problem, so the caller can quarantine it instead of crashing or losing the lines
that were readable.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from stedi.aws import AwsError
from stedi.storage import Storage

UTF8_BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"
NEWLINE, CARRIAGE_RETURN, SPACE = 10, 13, 32
IS_WHITESPACE = np.zeros(256, dtype=bool)
IS_WHITESPACE[[9, 10, 13, 32]] = True


class SourceError(ValueError):
    """The source cannot be ingested as given (missing, empty, unexpected layout, unreadable)."""


@dataclass(frozen=True)
class FileText:
    text: bytes  # decompressed, without BOM, valid UTF-8
    line_starts: np.ndarray  # byte offset of each line
    problem: str | None  # why the file could not be read to its end

    @property
    def line_count(self) -> int:
        return len(self.line_starts)

    def blank(self) -> np.ndarray:
        """True where a line holds nothing but whitespace (its line end included, so never empty).

        Only lines that start with whitespace can be blank, and they are few: just their bytes are
        looked at.
        """
        data = np.frombuffer(self.text, dtype=np.uint8)
        blank = IS_WHITESPACE[data[self.line_starts]]
        candidates = np.flatnonzero(blank)
        if len(candidates):
            starts = self.line_starts[candidates]
            lengths = np.append(self.line_starts[1:], len(data))[candidates] - starts
            first_of_each = np.cumsum(lengths) - lengths
            positions = np.arange(lengths.sum()) + np.repeat(starts - first_of_each, lengths)
            blank[candidates] = ~np.logical_or.reduceat(~IS_WHITESPACE[data[positions]], first_of_each)
        return blank


@dataclass(frozen=True)
class FileLines:
    lines: pa.LargeStringArray  # line ends ("\n", "\r\n") are blanked to spaces, which JSON ignores
    line_numbers: np.ndarray  # 1-based
    blank: np.ndarray


def decompress(data: bytes) -> tuple[bytes, str | None]:
    """Gunzip as much as can be read; a damaged stream keeps its readable prefix and says why."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        text = inflater.decompress(data)
        if not inflater.eof:
            return text + inflater.flush(), "truncated gzip stream: the file ends before the compressed data does"
        return text, None
    except zlib.error as error:
        return b"", f"corrupt gzip stream: {error}"


def decode_utf8(data: bytes) -> bytes:
    """Invalid UTF-8 bytes become U+FFFD so the line can still be judged (and quarantined) by JSON rules."""
    if data.isascii():  # nearly every feed file; checked ~100× faster than a decode
        return data
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace").encode("utf-8")


def read_text(raw: bytes, gzipped: bool) -> FileText:
    problem = None
    data = raw
    if gzipped or raw[:2] == GZIP_MAGIC:
        data, problem = decompress(raw)
    data = decode_utf8(data.removeprefix(UTF8_BOM))
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == NEWLINE)
    starts = np.concatenate(([0], newlines + 1)).astype(np.int64)
    if starts[-1] == len(data):  # the file ends with a newline: no line after it
        starts = starts[:-1]
    return FileText(data, starts, problem)


def split_lines(file: FileText) -> FileLines:
    """Every line as one element of an Arrow column sharing a single buffer (no copy per line).

    Line ends become spaces, so no line needs trimming later: a string function per line costs more
    than parsing it.
    """
    buffer = np.frombuffer(file.text, dtype=np.uint8).copy()
    newlines = file.line_starts[1:] - 1
    if len(buffer) and buffer[-1] == NEWLINE:
        newlines = np.append(newlines, len(buffer) - 1)
    carriage_returns = newlines[newlines > 0] - 1
    buffer[carriage_returns[buffer[carriage_returns] == CARRIAGE_RETURN]] = SPACE
    buffer[newlines] = SPACE
    offsets = np.append(file.line_starts, len(buffer)).astype(np.int64)
    lines = pa.LargeStringArray.from_buffers(file.line_count, pa.py_buffer(offsets), pa.py_buffer(buffer))
    return FileLines(lines, np.arange(1, file.line_count + 1, dtype=np.int64), file.blank())


# The table both engines judge. Each file gives its lines, then one file row (no line number, no
# line) that carries the file's sha256 and, when it could not be read to its end, why.
LINES_SCHEMA = pa.schema(
    [("_file", pa.int32()), ("_source_line", pa.int64()), ("line", pa.large_string()), ("blank", pa.bool_()),
     ("problem", pa.string()), ("sha256", pa.string())]
)


def numbered_lines(index: int, raw: bytes, gzipped: bool) -> pa.Table:
    """One feed file as numbered lines; `index` identifies the file within its batch."""
    text = read_text(raw, gzipped)
    lines = split_lines(text)
    count = text.line_count
    numbered = pa.table(
        {
            "_file": pa.repeat(pa.scalar(index, pa.int32()), count),
            "_source_line": pa.array(lines.line_numbers, pa.int64()),
            "line": lines.lines,
            "blank": pa.array(lines.blank, pa.bool_()),
            "problem": pa.nulls(count, pa.string()),
            "sha256": pa.nulls(count, pa.string()),
        },
        schema=LINES_SCHEMA,
    )
    file_row = pa.table(
        {"_file": [index], "_source_line": [None], "line": [None], "blank": [False], "problem": [text.problem],
         "sha256": [hashlib.sha256(raw).hexdigest()]},
        schema=LINES_SCHEMA,
    )
    return pa.concat_tables([numbered, file_row])


def read_feed_file(storage: Storage, path: str) -> bytes:
    """A feed file's bytes. A file that cannot be read stops the ingest (nothing is published), as
    it may be readable next time: it is not quarantined and recorded as ingested."""
    try:
        return storage.read_bytes(path)
    except FileNotFoundError:
        raise SourceError(f"feed file {path} disappeared during the ingest; nothing was published: run it again") from None
    except OSError as error:
        raise SourceError(f"cannot read feed file {path}: {error.strerror or error}; nothing was published") from None
    except AwsError as error:  # S3 refused: the message names the file and why
        raise SourceError(f"{error}; nothing was published") from None


class FileStream:
    """The numbered lines of several files as a stream, `_file` being a file's position in `paths`.

    Files are read, gunzipped, hashed and split in background threads (all of which release the
    GIL) a few files ahead of the reader, so an engine parses some files while the next are read,
    and only those few are held in memory at once.

    A file that cannot be read ends the stream early; the reader of the stream then calls
    `raise_if_failed`, so that the user sees that file's error and not the engine's wrapping of it.
    """

    def __init__(self, storage: Storage, paths: Sequence[str]) -> None:
        self.storage = storage
        self.paths = paths
        self.error: SourceError | None = None

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(LINES_SCHEMA, self._batches())

    def raise_if_failed(self) -> None:
        if self.error:
            raise self.error

    def _read(self, index: int) -> pa.Table:
        path = self.paths[index]
        return numbered_lines(index, read_feed_file(self.storage, path), gzipped=path.lower().endswith(".gz"))

    def _batches(self) -> Iterator[pa.RecordBatch]:
        workers = os.cpu_count() or 2
        with ThreadPoolExecutor(max_workers=workers) as pool:
            ahead: deque[Future[pa.Table]] = deque()
            try:
                for index in range(len(self.paths)):
                    ahead.append(pool.submit(self._read, index))
                    if len(ahead) > workers:
                        yield from ahead.popleft().result().to_batches()
                while ahead:
                    yield from ahead.popleft().result().to_batches()
            except SourceError as error:
                self.error = error
                for future in ahead:
                    future.cancel()
