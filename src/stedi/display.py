"""Terminal output: Rich tables whose cells are escaped, because values come from the feeds."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console()
errors = Console(stderr=True, soft_wrap=True)  # an error is one line, in a log or a pipe too

CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(value: object) -> Text:
    """Plain text: no Rich markup, no terminal control sequences from the data."""
    if value is None:
        return Text("∅", style="dim")
    text = CONTROL_CHARACTERS.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))
    return Text(text)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
    """A rich table whose every cell and column name is escaped, as values may come from the data."""
    out = Table(title=title, title_justify="left", header_style="bold")
    for name in columns:  # column names may come from the data too (a query's, a JSON key)
        out.add_column(safe(name), overflow="fold")
    for row in rows:
        out.add_row(*(safe(v) for v in row))
    return out


def emit_json(payload: object) -> None:
    """Write a command's machine-readable result to stdout (values JSON cannot hold become text)."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
