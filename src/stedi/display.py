"""Terminal output: Rich tables whose cells are escaped, because values come from the feeds."""

from __future__ import annotations

import csv
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


def print_rows(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]], vertical: bool = False) -> None:
    """Rows as a table, or one `column  value` line each (as psql's \\x) when asked or when the
    table would not fit the terminal."""
    grid = table(title, columns, rows)
    if not vertical and console.measure(grid, options=console.options.update_width(1 << 16)).maximum <= console.width:
        console.print(grid)
        return
    console.print(Text(title, style="italic"))
    width = max((len(name) for name in columns), default=0)
    for number, row in enumerate(rows, start=1):
        console.print(Text(f"-[ row {number} ]" + "-" * max(0, width - 6), style="dim"))
        for name, value in zip(columns, row):
            line = safe(name)
            line.pad_right(width - len(line))
            line.append(" | ")
            line.append_text(safe(value))
            console.print(line)


def write_json_rows(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A JSON array of row objects on stdout, written as the rows come (not held in memory)."""
    sys.stdout.write("[")
    for number, row in enumerate(rows):
        sys.stdout.write(("," if number else "") + "\n  " + json.dumps(dict(zip(columns, row)), default=str))
    sys.stdout.write("\n]\n")


def write_csv_rows(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """CSV with a header line on stdout, written as the rows come; NULL is an empty field."""
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(columns)
    out.writerows(rows)
