"""Splitting a feed file into numbered lines: which lines are blank (whitespace only, not records)."""

from __future__ import annotations

import pytest

from stedi.lines import read_text

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
    assert read_text(text.encode(), gzipped=False).blank().tolist() == expected
