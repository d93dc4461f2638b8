"""Turn the bytes of a feed file into numbered lines without a Python loop per line.

The lines become one Arrow string column that shares the file's buffer; line ends (LF or CRLF) are
stripped later in SQL. Anything that stops a file from being read completely — a corrupt or
truncated gzip stream — is returned as a problem, so the caller can quarantine it instead of
crashing or losing the lines that were readable.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

UTF8_BOM = b"\xef\xbb\xbf"
NEWLINE, CARRIAGE_RETURN, SPACE = 10, 13, 32
WHITESPACE = np.array([9, 10, 13, 32], dtype=np.uint8)
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class FileLines:
    lines: pa.LargeStringArray  # line ends ("\n", "\r\n") are blanked to spaces, which JSON ignores
    line_numbers: np.ndarray  # 1-based
    blank: np.ndarray  # True where a line holds nothing but whitespace
    text: bytes  # the decoded text as it was, for readers that want the whole file at once
    problem: str | None = None  # why the file could not be read to its end


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
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace").encode("utf-8")


def split_lines(raw: bytes, gzipped: bool) -> FileLines:
    problem = None
    data = raw
    if gzipped or raw[:2] == GZIP_MAGIC:
        data, problem = decompress(raw)
    data = decode_utf8(data.removeprefix(UTF8_BOM))
    # Line ends become spaces in place, so every line is a slice of one buffer (no copy per line)
    # and needs no trimming later; a string function per line costs more than parsing it.
    buffer = np.frombuffer(data, dtype=np.uint8).copy()
    newlines = np.flatnonzero(buffer == NEWLINE)
    carriage_returns = newlines[newlines > 0] - 1
    buffer[carriage_returns[buffer[carriage_returns] == CARRIAGE_RETURN]] = SPACE
    buffer[newlines] = SPACE
    starts = np.concatenate(([0], newlines + 1)).astype(np.int64)
    if starts[-1] == len(data):  # the file ends with a newline: no line after it
        starts = starts[:-1]
    offsets = np.concatenate((starts, [len(data)])).astype(np.int64)
    visible = np.concatenate(([0], np.cumsum(~np.isin(buffer, WHITESPACE), dtype=np.int64)))
    blank = visible[offsets[1:]] == visible[offsets[:-1]]
    lines = pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(offsets), pa.py_buffer(buffer))
    return FileLines(lines, np.arange(1, len(starts) + 1, dtype=np.int64), blank, data, problem)
