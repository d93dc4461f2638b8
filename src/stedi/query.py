"""Read-only SQL over the lake's current tables, by their plain names (the local stand-in for Athena)."""

from __future__ import annotations

import duckdb

from stedi.engines.base import TableInput
from stedi.engines.duckdb import connect, register_tables
from stedi.lake import Lake

READ_ONLY = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)  # SELECT covers DESCRIBE and SHOW


class QueryError(ValueError):
    pass


def require_read_only(sql: str) -> None:
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.ParserException as error:
        raise QueryError(f"cannot parse the query: {str(error).splitlines()[0]}") from None
    if len(statements) != 1:
        raise QueryError("give exactly one SQL statement")
    if statements[0].type not in READ_ONLY:
        raise QueryError("stedi query is read-only: only SELECT, DESCRIBE and EXPLAIN statements are allowed")


def lake_connection(lake: Lake, snapshots: dict[str, int] | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with every table of the lake as a view (at the given snapshots, if any)."""
    conn = connect()
    snapshots = snapshots or {}
    register_tables(
        conn,
        {name: TableInput(lake.state(name, snapshots.get(name)).files, lake.columns(name)) for name in lake.table_names()},
    )
    return conn


def query_lake(lake: Lake, sql: str) -> tuple[list[str], list[tuple]]:
    require_read_only(sql)
    return run_query(lake_connection(lake), sql)


def run_query(conn: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple]]:
    """Column names and rows of a checked query; the connection is closed afterwards."""
    try:
        cursor = conn.execute(sql)
        return [d[0] for d in cursor.description], cursor.fetchall()
    except duckdb.Error as error:
        raise QueryError(str(error).splitlines()[0]) from None
    finally:
        conn.close()
