"""The embedded engine: DuckDB parses the feeds and runs the models, in process."""

from __future__ import annotations

from collections.abc import Mapping

import duckdb
import pyarrow as pa

from stedi.contract import Feed, Field, Kind
from stedi.engines.base import Engine, LandedCounts, LandingBatch, TableInput
from stedi.lake import DUCKDB_TYPES
from stedi.models import RUN_SETTINGS

JSON_TYPE_NAMES = "CASE json_type({v}) WHEN 'VARCHAR' THEN 'a string' WHEN 'BIGINT' THEN 'an integer' " \
    "WHEN 'UBIGINT' THEN 'an integer' WHEN 'DOUBLE' THEN 'a number' WHEN 'BOOLEAN' THEN 'a boolean' " \
    "WHEN 'ARRAY' THEN 'an array' ELSE 'an object' END"
WHITESPACE = "' ' || chr(9) || chr(10) || chr(13)"


def connect() -> duckdb.DuckDBPyConnection:
    conn = duckdb.connect()
    conn.execute("SET preserve_insertion_order = false")
    return conn


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def relation_sql(table: TableInput) -> str:
    """A SELECT over a table's Parquet files with exactly its columns, even when it has no file yet."""
    if not table.files:
        nulls = ", ".join(f"CAST(NULL AS {DUCKDB_TYPES[kind]}) AS {quote(name)}" for name, kind in table.columns)
        return f"SELECT {nulls} WHERE false"
    columns = ", ".join(f"CAST({quote(name)} AS {DUCKDB_TYPES[kind]}) AS {quote(name)}" for name, kind in table.columns)
    files = ", ".join(literal(f) for f in table.files)
    return f"SELECT {columns} FROM read_parquet([{files}], union_by_name = true)"


def register_tables(conn: duckdb.DuckDBPyConnection, tables: Mapping[str, TableInput]) -> None:
    for name, table in tables.items():
        conn.execute(f"CREATE OR REPLACE VIEW {quote(name)} AS {relation_sql(table)}")


# ---- landing: the contract as SQL ------------------------------------------------------------------
def _value(field: Field) -> str:
    v = f"by_key[{literal(field.key)}]"
    if field.kind is Kind.STRING:
        return f"CASE WHEN json_type({v}) = 'VARCHAR' THEN {v} ->> '$' END"
    if field.kind is Kind.STRING_OR_NUMBER:
        return f"CASE WHEN json_type({v}) = 'VARCHAR' THEN {v} ->> '$' WHEN json_type({v}) IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN CAST({v} AS VARCHAR) END"
    if field.kind is Kind.DOUBLE:
        return f"CASE WHEN json_type({v}) IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN TRY_CAST({v} AS DOUBLE) END"
    # Whole numbers: an integral double such as 1.6e12 is accepted, 1.5 is not.
    return (
        f"CASE WHEN json_type({v}) IN ('BIGINT', 'UBIGINT') THEN TRY_CAST({v} AS BIGINT) "
        f"WHEN json_type({v}) = 'DOUBLE' AND TRY_CAST({v} AS DOUBLE) = trunc(TRY_CAST({v} AS DOUBLE)) "
        f"THEN TRY_CAST(TRY_CAST({v} AS DOUBLE) AS BIGINT) END"
    )


def _problem(field: Field) -> str:
    v = f"by_key[{literal(field.key)}]"
    expected = {Kind.STRING: "a string", Kind.STRING_OR_NUMBER: "a string or a number", Kind.DOUBLE: "a number"}.get(
        field.kind, "a whole number"
    )
    wrong = (
        f"WHEN {v} IS NOT NULL AND v_{field.key} IS NULL THEN "
        f"{literal(f'field {field.name}: expected {expected}, got ')} || {JSON_TYPE_NAMES.format(v=v)}"
    )
    missing = f"WHEN {v} IS NULL THEN {literal(f'missing required field: {field.name}')} " if field.required else ""
    return f"CASE {missing}{wrong} END"


def landing_sql(feed: Feed) -> str:
    """Parse, type-check and route every non-blank line of the `lines` relation.

    JSON null counts as absent. Field names match case-insensitively; a record whose names collide
    once lower-cased is ambiguous and quarantined.
    """
    contract_keys = ", ".join(literal(f.key) for f in feed.fields)
    values = ",\n".join(f"{_value(f)} AS v_{f.key}" for f in feed.fields)
    problems = [_problem(f) for f in feed.fields]
    if feed.required_one_of:
        absent = " AND ".join(f"by_key[{literal(k.lower())}] IS NULL" for k in feed.required_one_of)
        problems.append(f"CASE WHEN {absent} THEN {literal('missing required field: ' + ' or '.join(feed.required_one_of))} END")
    return f"""
WITH kept AS (
    SELECT _source_file, _source_sha256, _source_line, problem,
           rtrim(line, chr(10) || chr(13)) AS raw
    FROM lines
    WHERE problem IS NOT NULL OR trim(line, {WHITESPACE}) <> ''
), documents AS (
    SELECT *, CASE WHEN json_valid(raw) THEN CAST(raw AS JSON) END AS doc FROM kept
), objects AS (
    SELECT *, json_type(doc) AS doc_type,
           CASE WHEN json_type(doc) = 'OBJECT'
                 AND len(list_distinct(list_transform(json_keys(doc), k -> lower(k)))) = len(json_keys(doc))
                THEN json_transform(doc, '"MAP(VARCHAR, JSON)"') END AS by_name
    FROM documents
), keyed AS (
    SELECT *, map_from_entries(list_transform(map_entries(by_name), e -> {{'key': lower(e.key), 'value': e.value}})) AS by_key
    FROM objects
), typed AS (
    SELECT *, {values}
    FROM keyed
)
SELECT *,
    CASE WHEN problem IS NOT NULL THEN problem
         WHEN doc IS NULL THEN 'not valid JSON'
         WHEN doc_type <> 'OBJECT' THEN 'not a JSON object: the line holds ' || {JSON_TYPE_NAMES.format(v='doc')}
         WHEN by_name IS NULL THEN 'field names collide when compared case-insensitively'
         ELSE nullif(concat_ws('; ', {', '.join(problems)}), '')
    END AS reason,
    nullif(to_json(map_from_entries(list_filter(map_entries(by_name), e -> lower(e.key) NOT IN ({contract_keys})))), '{{}}') AS _extra
FROM typed
"""


class DuckDBEngine(Engine):
    name = "duckdb"

    def land(self, batch: LandingBatch, accepted_path: str, rejected_path: str) -> dict[str, LandedCounts]:
        conn = connect()
        conn.register("lines", batch.lines)
        conn.execute(f"CREATE TEMP TABLE landed AS {landing_sql(batch.feed)}")
        lineage = (
            f"_source_file, _source_line, _source_sha256, CAST({literal(batch.ingested_at)} AS TIMESTAMPTZ) AS _ingested_at, "
            f"{literal(batch.run_id)} AS _ingest_run"
        )
        fields = ", ".join(f"v_{f.key} AS {quote(f.name)}" for f in batch.feed.fields)
        conn.execute(
            f"COPY (SELECT {fields}, _extra, {lineage} FROM landed WHERE reason IS NULL) "
            f"TO {literal(accepted_path)} (FORMAT parquet, COMPRESSION zstd)"
        )
        conn.execute(
            f"COPY (SELECT raw, reason, {lineage} FROM landed WHERE reason IS NOT NULL) "
            f"TO {literal(rejected_path)} (FORMAT parquet, COMPRESSION zstd)"
        )
        # Counted again from the files just written, so conservation is checked on what will be published.
        counts = conn.execute(
            f"""
            WITH non_blank AS (
                SELECT _source_file, count(*) AS n FROM lines
                WHERE problem IS NULL AND trim(line, {WHITESPACE}) <> '' GROUP BY ALL
            ), accepted AS (
                SELECT _source_file, count(*) AS n FROM read_parquet({literal(accepted_path)}) GROUP BY ALL
            ), rejected AS (
                SELECT _source_file, count(*) AS n FROM read_parquet({literal(rejected_path)})
                WHERE _source_line IS NOT NULL GROUP BY ALL
            )
            SELECT _source_file, coalesce(non_blank.n, 0), coalesce(accepted.n, 0), coalesce(rejected.n, 0)
            FROM non_blank FULL JOIN accepted USING (_source_file) FULL JOIN rejected USING (_source_file)
            """
        ).fetchall()
        conn.close()
        return {file: LandedCounts(non_blank, accepted, rejected) for file, non_blank, accepted, rejected in counts}

    def build(self, sql: str, inputs: Mapping[str, TableInput], settings: pa.Table, out_path: str) -> int:
        conn = connect()
        register_tables(conn, inputs)
        conn.register(RUN_SETTINGS, settings)
        conn.execute(f"COPY ({sql}) TO {literal(out_path)} (FORMAT parquet, COMPRESSION zstd)")
        rows = conn.execute(f"SELECT count(*) FROM read_parquet({literal(out_path)})").fetchone()[0]
        conn.close()
        return rows
