"""The customers and serial numbers a delivery touches (SPEC §5, incremental by customer).

A delivery's new landing rows name customers and serial numbers through each table's `rows_of`
(`stedi.models`). They are not all it touches: the one thing that ties customers to each other is
a serial number they carry (SPEC §4: a number carried by two customers has no owner). So every
customer who ever carried a touched number is touched, and every number a touched customer ever
carried, until neither set grows. The models built from them replace exactly those customers'
and numbers' rows; any customer outside them keeps rows a full build would give them too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from stedi.models import CHANGED_CUSTOMERS, CHANGED_KEYS, CHANGED_SERIALS
from stedi.secret import customer_key
from stedi.sql import TableInput, one_row, quote, register_tables

CARRIERS = "customer_landing"  # the records that say which customer carries which serial number


@dataclass(frozen=True)
class Changes:
    """The touched customers (normalized email and pseudonym) and serial numbers."""

    customers: pa.Table  # their email and customer_key, as `stedi.models.CHANGED_KEYS` names them
    serials: pa.Table

    def tables(self) -> dict[str, pa.Table]:
        """The two as the models' replacement SQL reads them (`stedi.models.CHANGED_KEYS`)."""
        return {CHANGED_CUSTOMERS: self.customers, CHANGED_SERIALS: self.serials}


def touched(
    conn: duckdb.DuckDBPyConnection,
    new_rows: Mapping[str, TableInput],
    carriers: TableInput,
    rows_of: Mapping[str, Mapping[str, str]],
    secret: bytes,
) -> Changes:
    """What the new landing rows (`new_rows`, by landing table) touch, closed over who carries
    which serial number (`carriers`: every customer record)."""
    register_tables(conn, {f"{name}__new": table for name, table in new_rows.items()} | {CARRIERS: carriers})
    seeds: dict[str, list[str]] = {"customer": [], "serial": []}
    for name in new_rows:
        for kind, key in rows_of[name].items():
            seeds[kind].append(f"SELECT {key} AS key FROM {quote(name + '__new')} WHERE {key} IS NOT NULL")
    for kind, selects in seeds.items():
        union = " UNION ".join(selects) or "SELECT CAST(NULL AS VARCHAR) AS key WHERE false"
        conn.execute(f"CREATE OR REPLACE TEMP TABLE touched_{kind} AS SELECT DISTINCT CAST(key AS VARCHAR) AS key FROM ({union})")
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE carried AS SELECT DISTINCT lower(trim(email)) AS customer, serialNumber AS serial "
        f"FROM {CARRIERS} WHERE email IS NOT NULL AND serialNumber IS NOT NULL"
    )
    grew = True
    while grew:
        grew = False
        for kind, other in (("serial", "customer"), ("customer", "serial")):
            inserted = one_row(
                conn,
                f"INSERT INTO touched_{kind} SELECT DISTINCT {kind} FROM carried "
                f"WHERE {other} IN (SELECT key FROM touched_{other}) AND {kind} NOT IN (SELECT key FROM touched_{kind})",
            )[0]
            grew |= inserted > 0
    emails = [row[0] for row in conn.execute("SELECT key FROM touched_customer ORDER BY key").fetchall()]
    serials = [row[0] for row in conn.execute("SELECT key FROM touched_serial ORDER BY key").fetchall()]
    keys = [customer_key(secret, email) for email in emails]
    column = {kind: name for kind, (_, name) in CHANGED_KEYS.items()}
    return Changes(
        pa.table({column["customer"]: pa.array(emails, pa.string()), column["customer_key"]: pa.array(keys, pa.string())}),
        pa.table({column["serial"]: pa.array(serials, pa.string())}),
    )
