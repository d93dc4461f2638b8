"""Splitting a feed file into numbered lines: which lines are blank (whitespace only, not records)."""

from __future__ import annotations

import numpy as np
import pytest

from stedi.lines import FileText, blank_lines, line_starts

# (file text, blank flag of each line)
BLANK_LINES = [
    ("", []),
    ("{}\n", [False]),
    ("\n", [True]),
    ("{}\n\n{}\n", [False, True, False]),
    ("{}\r\n \t\r\n{}", [False, True, False]),
    (" {}\n", [False]),  # starts with whitespace, but holds a record
    ("\t\t x\n  \n", [False, True]),
    ("{}\n   ", [False, True]),  # a last line without its newline
    ("   \n \r\n\t\n", [True, True, True]),
]


@pytest.mark.parametrize("text, expected", BLANK_LINES, ids=[repr(t) for t, _ in BLANK_LINES])
def test_blank_lines(text, expected):
    data = np.frombuffer(text.encode(), dtype=np.uint8)
    assert blank_lines(data, line_starts(data)).tolist() == expected


# (file bytes, the text its lines are judged from)
DECODED_TEXT = [
    (b'{"a":"plain"}\n', b'{"a":"plain"}\n'),
    ('{"a":"Zoë"}\n'.encode(), '{"a":"Zoë"}\n'.encode()),
    (b"\xef\xbb\xbf{}\n", b"{}\n"),  # the BOM is not part of the first line
    (b'{"a":"\xff"}\n{}\n', '{"a":"\ufffd"}\n{}\n'.encode()),  # invalid UTF-8: judged, not a crash
]


@pytest.mark.parametrize("data, expected", DECODED_TEXT, ids=[repr(d) for d, _ in DECODED_TEXT])
def test_decoded_text(data, expected):
    assert b"".join(FileText(data, gzipped=False)) == expected


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_a_stream_says_how_far_it_read_within_large_files(tmp_path, gzipped):
    """Progress moves within a file, not only from one file to the next, and ends at every byte."""
    import gzip
    import random

    from stedi.lines import CHUNK_BYTES, FilePiece, FileStream
    from stedi.storage import open_storage

    rng = random.Random(1)
    paths, sizes = [], []
    for number in range(3):
        text = b"".join(b'{"user": "u%d", "x": %f}\n' % (i, rng.random()) for i in range(CHUNK_BYTES // 8))
        data = gzip.compress(text) if gzipped else text
        path = tmp_path / f"f{number}.json{'.gz' if gzipped else ''}"
        path.write_bytes(data)
        paths.append(str(path))
        sizes.append(len(data))
    seen: list[int] = []
    stream = FileStream(open_storage(str(tmp_path)), [FilePiece(path) for path in paths], seen.append)
    lines = sum(batch.num_rows for batch in stream.reader())
    assert lines == 3 * (CHUNK_BYTES // 8)
    assert seen == sorted(seen) and seen[-1] == sum(sizes)
    assert any(0 < value < sizes[0] for value in seen), "no progress reported inside the first file"
