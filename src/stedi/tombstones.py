"""Tombstones: who was forgotten, kept so that re-ingesting old raw files cannot bring them back.

A tombstone is a keyed hash (HMAC-SHA256 with the lake's secret) of a normalized email or serial
number, never the value itself; `_stedi/tombstones.json` holds them. Ingestion hashes the
identities it meets in a batch and drops the rows of tombstoned people, counting them as erased.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import duckdb

from stedi.engines.duckdb import connect, literal, quote
from stedi.identities import identity_columns, match_sql, normalize, register_identities, tokens_sql
from stedi.lake import Lake

TOMBSTONES_FILE = "tombstones.json"


def mark(secret: bytes, kind: str, value: str) -> str:
    """The tombstone of one identity: `kind` is "email" or "serial"."""
    return hmac.new(secret, f"{kind}:{normalize(value)}".encode(), hashlib.sha256).hexdigest()


@dataclass
class Tombstones:
    secret: bytes
    emails: set[str] = field(default_factory=set)
    serials: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.emails or self.serials)

    def add(self, emails: Iterable[str], serials: Iterable[str]) -> tuple[int, int]:
        """Tombstone these identities; returns how many emails and serials were new."""
        new_emails = {mark(self.secret, "email", e) for e in emails} - self.emails
        new_serials = {mark(self.secret, "serial", s) for s in serials} - self.serials
        self.emails |= new_emails
        self.serials |= new_serials
        return len(new_emails), len(new_serials)

    def erased_emails(self, values: Iterable[str]) -> set[str]:
        return {v for v in values if mark(self.secret, "email", v) in self.emails}

    def erased_serials(self, values: Iterable[str]) -> set[str]:
        return {v for v in values if mark(self.secret, "serial", v) in self.serials}


def parquet_column_names(conn: duckdb.DuckDBPyConnection, path: str) -> list[str]:
    return [d[0] for d in conn.execute(f"SELECT * FROM read_parquet({literal(path)}) LIMIT 0").description]


def _path(lake: Lake) -> str:
    return lake.storage.join("_stedi", TOMBSTONES_FILE)


def load_tombstones(lake: Lake) -> Tombstones | None:
    """The lake's tombstones, or None when nobody was ever forgotten (no secret is made then)."""
    if not lake.storage.exists(_path(lake)):
        return None
    data = json.loads(lake.storage.read_bytes(_path(lake)))
    return Tombstones(lake.secret, set(data.get("emails", [])), set(data.get("serial_numbers", [])))


def save_tombstones(lake: Lake, tombstones: Tombstones) -> None:
    data = {
        "about": "keyed hashes (HMAC-SHA256 with the lake secret) of forgotten customers' normalized "
                 "emails and serial numbers; ingestion drops their rows",
        "emails": sorted(tombstones.emails),
        "serial_numbers": sorted(tombstones.serials),
    }
    lake.storage.write_bytes(_path(lake), json.dumps(data, indent=2).encode())


def drop_tombstoned(tombstones: Tombstones, paths: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Remove the rows of tombstoned people from a freshly landed batch (its landing and quarantine
    Parquet files, rewritten in place); returns per source file the accepted and the rejected lines
    removed. Identity values live only in memory here, never in a file."""
    conn = connect()
    emails: set[str] = set()
    serials: set[str] = set()
    tokens: set[str] = set()
    for path in paths:
        source = f"read_parquet({literal(path)})"
        roles = identity_columns(parquet_column_names(conn, path))
        candidates = lambda sql: {v for v, in conn.execute(sql).fetchall() if v is not None}  # noqa: E731
        for column in roles["email"]:
            emails |= tombstones.erased_emails(candidates(f"SELECT DISTINCT lower(trim({quote(column)})) FROM {source}"))
        no_email = " AND ".join(f"{quote(c)} IS NULL" for c in roles["email"]) or "true"
        for column in roles["serial"]:
            serials |= tombstones.erased_serials(
                candidates(f"SELECT DISTINCT lower(trim({quote(column)})) FROM {source} WHERE {no_email}")
            )
        for column in roles["text"]:
            words = candidates(f"SELECT DISTINCT unnest({tokens_sql(quote(column))}) FROM {source}")
            tokens |= tombstones.erased_emails(words) | tombstones.erased_serials(words)
    if not (emails or serials or tokens):
        conn.close()
        return {}

    register_identities(conn, emails=emails, serials=serials, tokens=tokens)
    erased: dict[str, list[int]] = {}
    for path in paths:
        columns = parquet_column_names(conn, path)
        side = 1 if "reason" in columns else 0  # quarantine files explain each row
        condition = match_sql(columns)
        if condition is None:
            continue
        source = f"read_parquet({literal(path)})"
        counts = conn.execute(f"SELECT _source_file, count(*) FROM {source} WHERE {condition} GROUP BY ALL").fetchall()
        if not counts:
            continue
        for file, n in counts:
            erased.setdefault(file, [0, 0])[side] += n
        kept = conn.execute(f"SELECT * FROM {source} WHERE NOT {condition}").fetch_arrow_table()
        conn.register("kept_rows", kept)
        conn.execute(f"COPY kept_rows TO {literal(path)} (FORMAT parquet, COMPRESSION zstd)")
        conn.unregister("kept_rows")
    conn.close()
    return {file: (accepted, rejected) for file, (accepted, rejected) in erased.items()}
