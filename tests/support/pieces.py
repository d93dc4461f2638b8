"""A feed file with every kind of line a piece's edge could meet, and what landing it gave."""

from __future__ import annotations

import gzip
import json

from stedi.ingest import LEDGER_TABLE
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


def landed(harness: LakeHarness, source: str | None = None) -> dict[str, list[tuple]]:
    """Every landing and quarantine row (but the run's own columns) and the ledger's facts, with
    the source's location (the harness's folder unless given) written SOURCE."""
    run_columns = {"_ingest_run", "_ingested_at"}
    tables = {}
    for table in ("accelerometer_landing", "accelerometer_landing_rejected"):
        columns = ", ".join(f'"{name}"' for name, _ in harness.lake.columns(table) if name not in run_columns)
        tables[table] = harness.rows(f"SELECT {columns} FROM {table} ORDER BY ALL")
    tables[LEDGER_TABLE] = harness.rows(f"SELECT path, size, sha256, non_blank_lines, accepted, rejected, problem FROM {LEDGER_TABLE} ORDER BY ALL")
    source = source or str(harness.source)
    return {table: [tuple(v.replace(source, "SOURCE") if isinstance(v, str) else v for v in row) for row in rows] for table, rows in tables.items()}


def feed_hostile_files(harness: LakeHarness) -> None:
    (harness.source / "accelerometer").mkdir(parents=True)
    (harness.source / "accelerometer/hostile.json").write_bytes(HOSTILE_FILE)
    (harness.source / "accelerometer/small.jsonl.gz").write_bytes(gzip.compress(HOSTILE_FILE, mtime=0))
    (harness.source / "accelerometer/no-line-end.json").write_bytes(reading(70) * 3)
