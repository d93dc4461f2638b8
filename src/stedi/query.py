"""Read-only SQL over the lake's tables, by their plain names (the local stand-in for Athena).

A query runs in a DuckDB connection of its own that can reach nothing but the lake's tables
(SPEC §11). The tables are handed to DuckDB as Arrow datasets over their current data files, so
DuckDB itself never needs the file system; then every file system operation is switched off
(`enable_external_access = false`: no COPY, ATTACH, INSTALL, read_text, read_csv, glob, …) and the
configuration is locked (no SET, PRAGMA or RESET can switch it back). The connection is thrown away
after the one statement. What the statement may be (SELECT, DESCRIBE, SHOW, EXPLAIN of those) is
checked first only to give a clear message; the sandbox is what keeps the lake and the machine safe.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from stedi.catalog import NAMESPACE
from stedi.errors import QueryError
from stedi.lake import ARROW_TYPES, Lake, TableState
from stedi.sql import connect, quote

BATCH_ROWS = 2048  # rows a streamed result reads at a time: the first rows show at once
EXPLAIN_PREFIX = re.compile(r"^\s*explain\s+(?:analyze\s+)?", re.IGNORECASE)


def require_read_only(sql: str) -> None:
    """Refuse any SQL but one read-only statement (SELECT, DESCRIBE, SHOW, EXPLAIN of those).

    Raises QueryError: `stedi query` must never change the lake."""
    statement = _one_statement(sql)
    # The type: ignores: duckdb's stub names the members EXPLAIN_STATEMENT, SELECT_STATEMENT, ...; at run time they are EXPLAIN, SELECT.
    while statement.type == duckdb.StatementType.EXPLAIN:  # type: ignore[attr-defined]  # EXPLAIN ANALYZE runs what it explains
        statement = _one_statement(EXPLAIN_PREFIX.sub("", statement.query, count=1))
    if statement.type != duckdb.StatementType.SELECT:  # type: ignore[attr-defined]
        raise QueryError("stedi query is read-only: only SELECT, DESCRIBE, SHOW and EXPLAIN of those are allowed")


def _one_statement(sql: str):
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryError(f"cannot parse the query: {_message(error)}") from None
    if len(statements) != 1:
        raise QueryError("give exactly one SQL statement")
    return statements[0]


def table_dataset(lake: Lake, state: TableState) -> ds.Dataset | pa.Table:
    """A table's rows at one snapshot as an Arrow dataset with exactly the table's columns (a data
    file written before a column existed reads it as null)."""
    schema = pa.schema([(name, ARROW_TYPES[kind]) for name, kind in lake.columns(state.name)])
    if not state.files:
        return schema.empty_table()
    where = [lake.storage.arrow_file(path) for path in state.files]
    return ds.dataset([path for path, _ in where], schema=schema, format="parquet", filesystem=where[0][1])


def lake_connection(lake: Lake, snapshots: Mapping[str, int | None] | None = None) -> duckdb.DuckDBPyConnection:
    """A sandboxed DuckDB connection with every table of the lake by name (at the given snapshots,
    if any; a table mapped to None is shown empty, as it was before its first snapshot).

    Each table is also `stedi.<name>`, the name Athena and the Glue catalog give it."""
    conn = connect(lake.scratch)  # no filesystem: the sandbox reads the tables through Arrow alone
    conn.execute(f"CREATE SCHEMA {NAMESPACE}")
    for name in lake.table_names():
        if snapshots is not None and name in snapshots and snapshots[name] is None:
            state = TableState.empty(name)
        else:
            state = lake.state(name, (snapshots or {}).get(name))
        conn.register(name, table_dataset(lake, state))
        conn.execute(f"CREATE VIEW {NAMESPACE}.{quote(name)} AS SELECT * FROM {quote(name)}")
    conn.execute("SET enable_external_access = false")
    conn.execute("SET lock_configuration = true")
    return conn


def _message(error: duckdb.Error) -> str:
    """DuckDB's message up to the SQL it quotes: the error and its hint ("Did you mean …?")."""
    first_paragraph = str(error).split("\n\n")[0]
    return " ".join(line.strip() for line in first_paragraph.splitlines() if line.strip())


@contextmanager
def _as_query_errors() -> Iterator[None]:
    try:
        yield
    except duckdb.Error as error:
        raise QueryError(_message(error)) from None
    except BrokenPipeError:
        raise
    except OSError as error:  # an erasure or a run deleted a file the tables listed when the query began
        raise QueryError(f"the lake changed while it was read ({error.strerror or error}): run the query again") from None


@dataclass
class QueryResult:
    """A running read-only query: its column names, and its rows as they come, in Arrow batches."""

    columns: list[str]
    reader: pa.RecordBatchReader

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The result's batches, each read only when asked for (QueryError if reading fails)."""
        while True:
            with _as_query_errors():
                try:
                    batch = self.reader.read_next_batch()
                except StopIteration:
                    return
            yield batch

    def rows(self, limit: int | None = None) -> Iterator[tuple]:
        """The result's rows as tuples of Python values, the first `limit` of them if given."""
        if limit == 0:
            return
        shown = 0
        for batch in self.batches():
            for row in zip(*(column.to_pylist() for column in batch.columns)):
                yield row
                shown += 1
                if shown == limit:
                    return


@contextmanager
def stream_query(lake: Lake, sql: str, snapshots: Mapping[str, int | None] | None = None) -> Iterator[QueryResult]:
    """One read-only statement over the lake, its result streamed: the first rows of the largest
    table come at once, and only the batch being read is held. Raises QueryError for SQL that is
    not one read-only statement or that DuckDB refuses."""
    require_read_only(sql)
    conn = lake_connection(lake, snapshots)
    try:
        with _as_query_errors():
            relation = conn.sql(sql)
            reader = relation.fetch_record_batch(BATCH_ROWS)
        yield QueryResult(list(relation.columns), reader)
    finally:
        conn.close()


def query_lake(
    lake: Lake,
    sql: str,
    snapshots: Mapping[str, int | None] | None = None,
    max_rows: int | None = None,
) -> tuple[list[str], list[tuple]]:
    """Column names and rows (the first `max_rows` of them, if given) of one read-only statement
    over the lake."""
    with stream_query(lake, sql, snapshots) as result:
        return result.columns, list(result.rows(max_rows))
