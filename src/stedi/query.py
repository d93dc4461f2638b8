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
from collections.abc import Mapping

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from stedi.errors import QueryError
from stedi.lake import ARROW_TYPES, Lake, TableState
from stedi.sql import connect

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
        raise QueryError(f"cannot parse the query: {str(error).splitlines()[0]}") from None
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
    if any; a table mapped to None is shown empty, as it was before its first snapshot)."""
    conn = connect(lake.scratch)  # no filesystem: the sandbox reads the tables through Arrow alone
    for name in lake.table_names():
        if snapshots is not None and name in snapshots and snapshots[name] is None:
            state = TableState.empty(name)
        else:
            state = lake.state(name, (snapshots or {}).get(name))
        conn.register(name, table_dataset(lake, state))
    conn.execute("SET enable_external_access = false")
    conn.execute("SET lock_configuration = true")
    return conn


def query_lake(
    lake: Lake,
    sql: str,
    snapshots: Mapping[str, int | None] | None = None,
    max_rows: int | None = None,
) -> tuple[list[str], list[tuple]]:
    """Column names and rows (the first `max_rows` of them, if given) of one read-only statement
    over the lake. The result streams: the first rows of the largest table come at once, and
    only the rows fetched are held."""
    require_read_only(sql)
    conn = lake_connection(lake, snapshots)
    try:
        relation = conn.sql(sql)
        return list(relation.columns), relation.fetchmany(max_rows) if max_rows is not None else relation.fetchall()
    except duckdb.Error as error:
        raise QueryError(str(error).splitlines()[0]) from None
    except OSError as error:  # an erasure or a run deleted a file the tables listed when the query began
        raise QueryError(f"the lake changed while it was read ({error.strerror or error}): run the query again") from None
    finally:
        conn.close()
