"""The fast way in for clean files.

Most feed files fit the contract line for line. Arrow's JSON reader, told the contract's exact
schema and to refuse anything else, reads such a file in one multi-threaded pass. It gives up on
the first line that is not an object, has a field of another type, an unknown or differently
cased name, or a duplicate name, so a file it accepts needs no judging line by line. Files it
refuses go to the engine, which judges and quarantines each line.
"""

from __future__ import annotations

import io
from datetime import datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from stedi.contract import Feed, Kind, landing_columns
from stedi.lines import FileText

ARROW_TYPES = {
    "string": pa.string(),
    "long": pa.int64(),
    "double": pa.float64(),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}
# Phone numbers arrive as strings or numbers: the reader cannot take both, so such files are judged.
STRICT_TYPES = {Kind.STRING: pa.string(), Kind.STRING_OR_NUMBER: pa.string(), Kind.EPOCH_MS: pa.int64(),
                Kind.INTEGER: pa.int64(), Kind.DOUBLE: pa.float64()}


def landing_schema(feed: Feed) -> pa.Schema:
    return pa.schema([(name, ARROW_TYPES[kind]) for name, kind in landing_columns(feed)])


def _fits_required_fields(feed: Feed, table: pa.Table) -> bool:
    if any(table.column(f.name).null_count for f in feed.fields if f.required):
        return False
    if feed.required_one_of:
        present = [pc.is_valid(table.column(name)) for name in feed.required_one_of]
        anyone = present[0]
        for other in present[1:]:
            anyone = pc.or_(anyone, other)
        return bool(pc.all(anyone).as_py())
    return True


def read_strict(feed: Feed, file: FileText, source_file: str, sha256: str, ingested_at: datetime, run_id: str) -> pa.Table | None:
    """The landing rows of a whole file, or None when some line needs judging on its own."""
    if file.problem or not file.line_count:
        return None
    options = pj.ParseOptions(
        explicit_schema=pa.schema([(f.name, STRICT_TYPES[f.kind]) for f in feed.fields]),
        unexpected_field_behavior="error",
    )
    try:
        table = pj.read_json(io.BytesIO(file.text), parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    # The reader skips blank lines: find them only when there are some.
    line_numbers = np.arange(1, file.line_count + 1, dtype=np.int64)
    if table.num_rows != file.line_count:
        line_numbers = line_numbers[~file.blank()]
    if table.num_rows != len(line_numbers) or not _fits_required_fields(feed, table):
        return None
    rows = table.num_rows
    lineage = {
        "_extra": pa.nulls(rows, pa.string()),
        "_source_file": pa.repeat(source_file, rows).cast(pa.string()),
        "_source_line": pa.array(line_numbers, pa.int64()),
        "_source_sha256": pa.repeat(sha256, rows).cast(pa.string()),
        "_ingested_at": pa.repeat(pa.scalar(ingested_at, ARROW_TYPES["timestamptz"]), rows),
        "_ingest_run": pa.repeat(run_id, rows).cast(pa.string()),
    }
    columns = {f.name: table.column(f.name) for f in feed.fields} | lineage
    return pa.table(columns, schema=landing_schema(feed))
