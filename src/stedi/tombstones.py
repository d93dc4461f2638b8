"""Tombstones: who was forgotten, kept so that re-ingesting old raw files cannot bring them back.

A tombstone is a keyed hash (HMAC-SHA256 with the lake's secret) of a normalized email or serial
number, never the value itself; `_stedi/tombstones.json` holds them. Ingestion looks for the
identities of tombstoned people in a batch (`stedi.identities`) and drops their rows, counting them
as erased; a file whose name names one of them is recorded under a redacted name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import posixpath
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from stedi.contract import FEED_SUFFIXES
from stedi.identities import Identities, column_names, find_identities, kept_rows_sql, match_sql, name_tokens
from stedi.lake import Lake
from stedi.sql import literal

TOMBSTONES_FILE = "tombstones.json"


def mark(secret: bytes, kind: str, value: str) -> str:
    """The tombstone of one identity: `kind` is "email" or "serial", `value` normalized
    (`stedi.identities.normalize`, as DuckDB's lower(trim()) in the models gives it)."""
    return hmac.new(secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


HMAC_BLOCK = 64  # bytes: SHA-256's block, to which HMAC pads its key


def mark_sql(kind: str, value: str, key_table: str) -> str:
    """`mark` in DuckDB's SQL, for a column of values at once: HMAC-SHA256 spelled out with its
    two padded keys, which `register_key` puts on the connection as `key_table` (never in the SQL
    text, which may be logged)."""
    inner = f"unhex(sha256((SELECT inner_pad FROM {key_table}) || encode({literal(kind + ':')} || {value})))"
    return f"sha256((SELECT outer_pad FROM {key_table}) || {inner})"


def register_key(conn: duckdb.DuckDBPyConnection, secret: bytes, key_table: str) -> None:
    """The lake's key as HMAC pads it, in the connection's memory as `key_table`, for `mark_sql`."""
    key = (hashlib.sha256(secret).digest() if len(secret) > HMAC_BLOCK else secret).ljust(HMAC_BLOCK, b"\0")
    pads = {name: bytes(byte ^ pad for byte in key) for name, pad in (("inner_pad", 0x36), ("outer_pad", 0x5C))}
    conn.register(key_table, pa.table({name: pa.array([value], pa.binary()) for name, value in pads.items()}))


@dataclass
class Tombstones:
    """The lake's tombstones: keyed hashes of forgotten emails and serial numbers, never the values.

    False when empty. `secret` is the lake's key, which makes the hashes.
    """

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

    def erased(self, kind: str, value: str) -> bool:
        """Whether a normalized identity of that kind ("email" or "serial") is tombstoned."""
        return mark(self.secret, kind, value) in self._marks(kind)

    def erased_sql(self, conn: duckdb.DuckDBPyConnection, kind: str, value: str) -> str:
        """`erased` as a SQL predicate over the normalized SQL expression `value`; registers the
        key and the tombstones it reads on `conn`, under names of this call's own, so a predicate
        made earlier keeps reading its own."""
        names = f"{kind}_{uuid.uuid4().hex}"
        register_key(conn, self.secret, f"tombstone_key_{names}")
        conn.register(f"tombstoned_{names}", pa.table({"mark": pa.array(sorted(self._marks(kind)), pa.string())}))
        return f"{mark_sql(kind, value, f'tombstone_key_{names}')} IN (SELECT mark FROM tombstoned_{names})"

    def _marks(self, kind: str) -> set[str]:
        return self.emails if kind == "email" else self.serials

    def names_someone(self, path: str) -> bool:
        """Whether a file name names a forgotten person (`stedi.identities.name_tokens`)."""
        return any(self.erased("email", t) or self.erased("serial", t) for t in name_tokens(path))

    def redact(self, path: str) -> str:
        """A file name that names a forgotten person, as the lake records it instead: the folder
        and the feed extension stay, the name becomes a keyed hash of the whole path (the same path
        always gives the same name, so the ledger still recognises the file)."""
        folder, name = posixpath.split(path)
        suffix = next((s for s in FEED_SUFFIXES if name.lower().endswith(s)), "")
        digest = hmac.new(self.secret, f"path:{path}".encode(), hashlib.sha256).hexdigest()[:24]
        return posixpath.join(self.redact(folder) if self.names_someone(folder) else folder, f"erased-{digest}{suffix}")

    def recorded_path(self, path: str) -> str:
        """The name under which the lake records a source file."""
        return self.redact(path) if self.names_someone(path) else path

    def find(self, conn, source: str, columns: list[str], keys: Iterable[str] = ()) -> Identities:
        """The identity values in `source` that belong to forgotten people (see `find_identities`).

        `keys` are the customer_key pseudonyms to look for too.
        """
        return find_identities(conn, source, columns, self, keys)


def _path(lake: Lake) -> str:
    return lake.storage.join("_stedi", TOMBSTONES_FILE)


def load_tombstones(lake: Lake) -> Tombstones | None:
    """The lake's tombstones, or None when nobody was ever forgotten."""
    if not lake.storage.exists(_path(lake)):
        return None
    data = json.loads(lake.storage.read_bytes(_path(lake)))
    return Tombstones(lake.secret, set(data.get("emails", [])), set(data.get("serial_numbers", [])))


def save_tombstones(lake: Lake, tombstones: Tombstones) -> None:
    """Write the lake's tombstones to `_stedi/tombstones.json`, atomically, as a private file."""
    data = {
        "about": "keyed hashes (HMAC-SHA256 with the lake secret) of forgotten customers' normalized emails and serial numbers; ingestion drops their rows",
        "emails": sorted(tombstones.emails),
        "serial_numbers": sorted(tombstones.serials),
    }
    lake.storage.write_bytes(_path(lake), json.dumps(data, indent=2).encode(), private=True)


def drop_tombstoned(lake: Lake, tombstones: Tombstones, paths: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Remove the rows of tombstoned people from a freshly landed batch (its landing and quarantine
    Parquet files, rewritten in place) and redact file names that name them; returns per source
    file the accepted and the rejected lines removed. Identity values live only in memory here."""
    conn = lake.connect()
    erased: dict[str, list[int]] = {}
    for path in paths:
        source = f"read_parquet({literal(path)})"
        columns = column_names(conn, source)
        found = tombstones.find(conn, source, columns)
        if not found:
            continue
        found.register(conn)
        condition = match_sql(columns) or "false"
        side = 1 if "reason" in columns else 0  # quarantine files explain each row
        for file, n in conn.execute(f"SELECT _source_file, count(*) FROM {source} WHERE {condition} GROUP BY ALL").fetchall():
            erased.setdefault(file, [0, 0])[side] += n
        kept = conn.execute(kept_rows_sql(source, columns)).fetch_arrow_table()
        conn.register("kept_rows", kept)
        conn.execute(f"COPY kept_rows TO {literal(path)} (FORMAT parquet, COMPRESSION zstd)")
        conn.unregister("kept_rows")
    conn.close()
    return {file: (accepted, rejected) for file, (accepted, rejected) in erased.items()}
