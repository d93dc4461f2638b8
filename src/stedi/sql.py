"""The SQL toolkit every module shares: quoting, literals, and the lake's tables as DuckDB relations.

DuckDB is stedi's SQL engine in process: the models on the DuckDB engine, and the audits, the
funnel, erasure and queries on every engine. This module knows nothing of lakes or engines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb

from stedi.errors import InternalError
from stedi.scratch import system_scratch

if TYPE_CHECKING:
    from stedi.storage import Storage

# The SQL type of each column kind of a stedi table (`stedi.lake` keeps the Arrow and Iceberg ones).
DUCKDB_TYPES = {"string": "VARCHAR", "long": "BIGINT", "double": "DOUBLE", "timestamp": "TIMESTAMP", "timestamptz": "TIMESTAMPTZ"}


@dataclass(frozen=True)
class TableInput:
    """A published table as SQL reads it: its Parquet files and its columns (name, kind)."""

    files: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]


def quote(identifier: str) -> str:
    """An identifier as SQL names it, whatever characters it holds."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A string as a SQL literal."""
    return "'" + text.replace("'", "''") + "'"


def connect(scratch: str | None = None, storage: Storage | None = None) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB that reads and writes the data files of the lake whose `storage`
    it is given (by their s3:// URIs for a lake on S3).

    Past its memory limit it spills rows to `scratch`, a private folder of this process
    (`Lake.scratch`; `stedi.scratch`), never to a shared one."""
    conn = duckdb.connect()
    conn.execute("SET preserve_insertion_order = false")
    conn.execute("SET enable_progress_bar = false")
    conn.execute(f"SET temp_directory = {literal(scratch or system_scratch())}")
    filesystem = storage.fsspec_filesystem if storage is not None else None
    if filesystem is not None:  # DuckDB's own httpfs extension cannot be installed offline
        conn.register_filesystem(filesystem)
    return conn


def one_row(conn: duckdb.DuckDBPyConnection, sql: str, parameters: object = None) -> tuple[Any, ...]:
    """The row of a query that always returns exactly one, such as an aggregate without GROUP BY."""
    row = conn.execute(sql, parameters).fetchone()
    if row is None:
        raise InternalError(f"a query that always returns one row returned none: {sql}")
    return row


def relation_sql(table: TableInput) -> str:
    """A SELECT over a table's Parquet files with exactly its columns, even when it has no file yet."""
    if not table.files:
        nulls = ", ".join(f"CAST(NULL AS {DUCKDB_TYPES[kind]}) AS {quote(name)}" for name, kind in table.columns)
        return f"SELECT {nulls} WHERE false"
    columns = ", ".join(f"CAST({quote(name)} AS {DUCKDB_TYPES[kind]}) AS {quote(name)}" for name, kind in table.columns)
    files = ", ".join(literal(f) for f in table.files)
    return f"SELECT {columns} FROM read_parquet([{files}], union_by_name = true)"


def register_tables(conn: duckdb.DuckDBPyConnection, tables: Mapping[str, TableInput]) -> None:
    """Each table as a view of that name."""
    for name, table in tables.items():
        conn.execute(f"CREATE OR REPLACE VIEW {quote(name)} AS {relation_sql(table)}")
