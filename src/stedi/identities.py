"""Which rows of a table belong to forgotten people: shared by erasure and by tombstone filtering.

A table is first searched for the identity values of the people (`find_identities`: those whose
keyed hash is tombstoned, `stedi.tombstones`; or `KnownPeople.find`, for an erasure that holds the
values it was asked for and needs to search only free text and file names), then its rows are
matched through those values (`match_sql`). An erasure interrupted after rewriting some tables is
finished the same way: nothing depends on a table that may already be rewritten.

Identity columns are recognised by name in any table of any zone:

- `email` / `user`: the customer's email, compared trimmed and case-insensitively;
- `serialNumber`: the customer's Step Trainer, compared the same way, but only when the row names
  no customer by email (a step reading, a serial-only phone reading) — a row that names another
  customer stays theirs;
- `customer_key`: the pseudonym of machine_learning_curated (given, not found through hashes);
- `raw`, `_extra`: free text (a quarantined line, a landing row's fields outside the contract),
  matched when one of its tokens (`text_tokens`, after undoing JSON and URL escapes) is a forgotten
  email or serial number, so `bob@x.com` never matches inside `jimbob@x.com`;
- `_source_file`, `path`: a file name that names a forgotten person is not a reason to drop the
  row (the file may hold other customers' lines); the name is replaced by a redacted one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote

import duckdb
import pyarrow as pa

from stedi.sql import literal, quote

EMAIL_COLUMNS = ("email", "user")
SERIAL_COLUMN = "serialnumber"
KEY_COLUMN = "customer_key"
TEXT_COLUMNS = ("raw", "_extra")
PATH_COLUMNS = ("_source_file", "path")

_WORD = re.compile(r"[a-z0-9._%+@-]+")
_QUOTED = re.compile(r'"([^"]*)"')
_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\(/)")


# The models match customers by DuckDB's lower(trim(email)), so identities are normalized here the
# same way: trim() strips the Unicode space separators (Zs) only, not tabs or line ends, and lower()
# maps one letter to one letter (İ to i, Σ to σ even at the end of a word), unlike Python's.
SPACE_SEPARATORS = " \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
LOWER_AS_DUCKDB = (("İ", "i"), ("Σ", "σ"))


def lower(value: str) -> str:
    """DuckDB's lower()."""
    for letter, replacement in LOWER_AS_DUCKDB:
        value = value.replace(letter, replacement)
    return value.lower()


def normalize(value: str) -> str:
    """An email or serial number as the models compare it: DuckDB's lower(trim(value))."""
    return lower(value.strip(SPACE_SEPARATORS))


def text_tokens(text: str) -> set[str]:
    """The words of a text as emails and serial numbers are written, lower-cased: each maximal run
    of their characters, the same without a trailing full stop, and each quoted string trimmed.
    JSON escapes (`\\u0040`) and URL encoding (`%40`) are undone first, so an escaped spelling of an
    email is found too."""
    decoded = lower(unquote(_JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)) if m.group(1) else "/", text)))
    variants = {decoded, lower(text)}
    tokens: set[str] = set()
    for variant in variants:
        words = _WORD.findall(variant)
        tokens |= {*words, *(w.strip(".") for w in words), *(q.strip() for q in _QUOTED.findall(variant))}
    tokens.discard("")
    return tokens


_SEPARATOR = re.compile(r"[-_.+]")


def name_tokens(name: str) -> set[str]:
    """The tokens of a file name, and every part of each between separators (`-`, `_`, `.`, `+`):
    a name such as `export-ann@x.com.json` names ann@x.com although no separator of JSON or prose
    sets it apart. (Free text is not split this way: `jim.bob@x.com` is not bob@x.com.)"""
    found: set[str] = set()
    for token in text_tokens(name):
        cuts = [m.start() for m in _SEPARATOR.finditer(token)]
        starts, ends = [0, *(c + 1 for c in cuts)], [*cuts, len(token)]
        found |= {token[i:j] for i in starts for j in ends if j > i}
    return found


def identity_columns(columns: Iterable[str]) -> dict[str, list[str]]:
    """The table's identity columns by role (their real names)."""
    roles: dict[str, list[str]] = {"email": [], "serial": [], "key": [], "text": [], "path": []}
    for name in columns:
        lowered = name.lower()
        role = (
            "email"
            if lowered in EMAIL_COLUMNS
            else "serial"
            if lowered == SERIAL_COLUMN
            else "key"
            if lowered == KEY_COLUMN
            else "text"
            if lowered in TEXT_COLUMNS
            else "path"
            if lowered in PATH_COLUMNS
            else None
        )
        if role:
            roles[role].append(name)
    return roles


@dataclass
class Identities:
    """The values of forgotten people found in a relation: what `match_sql` matches rows by."""

    emails: set[str] = field(default_factory=set)  # normalized
    serials: set[str] = field(default_factory=set)  # normalized
    keys: set[str] = field(default_factory=set)
    texts: set[str] = field(default_factory=set)  # whole text values that name someone
    paths: dict[str, str] = field(default_factory=dict)  # file name → its redacted form

    def __bool__(self) -> bool:
        return bool(self.emails or self.serials or self.keys or self.texts or self.paths)

    def register(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Register the found values on the connection, as the tables `match_sql` reads.

        The `erase_*` tables live in that connection's memory only: no identity reaches a file.
        """
        for name, values in (("erase_emails", self.emails), ("erase_serials", self.serials), ("erase_keys", self.keys), ("erase_texts", self.texts)):
            conn.register(name, pa.table({"value": pa.array(sorted(values), pa.string())}))
        conn.register("erase_paths", pa.table({"value": pa.array(list(self.paths), pa.string()), "redacted": pa.array(list(self.paths.values()), pa.string())}))


class NamesPeople(Protocol):
    """Who is forgotten, asked in Python of a few values: tokens of free text, file names."""

    def erased(self, kind: str, value: str) -> bool:
        """Whether a normalized identity of that kind ("email" or "serial") is forgotten."""
        ...

    def redact(self, path: str) -> str:
        """The name the lake records instead of a file name that names a forgotten person."""
        ...


class Erasures(NamesPeople, Protocol):
    """Who is forgotten, asked in SQL too, of a column's many values, which would cost a keyed
    hash each in Python."""

    def erased_sql(self, conn: duckdb.DuckDBPyConnection, kind: str, value: str) -> str:
        """`erased` as a SQL predicate over the normalized SQL expression `value`, with what it
        reads registered on `conn`."""
        ...


@dataclass(frozen=True)
class KnownPeople:
    """The people an erasure was asked for, by their normalized emails and serial numbers: their
    rows are matched by value, without hashing every value of the lake (`find`). A file name that
    names them is redacted as their `tombstones` redact it."""

    emails: frozenset[str]
    serials: frozenset[str]
    tombstones: NamesPeople

    def erased(self, kind: str, value: str) -> bool:
        """Whether a normalized identity of that kind is one of theirs."""
        return value in (self.emails if kind == "email" else self.serials)

    def redact(self, path: str) -> str:
        """The name the lake records instead of a file name that names them."""
        return self.tombstones.redact(path)

    def find(self, conn: duckdb.DuckDBPyConnection, source: str, columns: Iterable[str], keys: Iterable[str] = ()) -> Identities:
        """Their values, and the free text and file names in `source` that name them; whether a
        table holds their rows at all is for `match_sql` to say."""
        found = find_in_text(conn, source, columns, self)
        found.emails, found.serials, found.keys = set(self.emails), set(self.serials), set(keys)
        return found


def find_identities(conn: duckdb.DuckDBPyConnection, source: str, columns: Iterable[str], erasures: Erasures, keys: Iterable[str] = ()) -> Identities:
    """The identity values in `source` (a relation with `columns`) that belong to forgotten
    people (emails and serial numbers normalized); `keys` are the pseudonyms to look for."""
    roles = identity_columns(columns)
    found = find_in_text(conn, source, columns, erasures)
    found.keys = set(keys)

    def erased_values(kind: str, column: str, where: str = "true") -> set[str]:
        values = f"SELECT DISTINCT lower(trim({quote(column)})) AS value FROM {source} WHERE {where}"
        return _distinct(conn, f"SELECT value FROM ({values}) WHERE value IS NOT NULL AND {erasures.erased_sql(conn, kind, 'value')}")

    for column in roles["email"]:
        found.emails |= erased_values("email", column)
    no_email = " AND ".join(f"{quote(c)} IS NULL" for c in roles["email"]) or "true"
    for column in roles["serial"]:
        found.serials |= erased_values("serial", column, no_email)
    return found


def find_in_text(conn: duckdb.DuckDBPyConnection, source: str, columns: Iterable[str], people: NamesPeople) -> Identities:
    """The free text values and file names in `source` that name one of the people."""
    roles = identity_columns(columns)
    found = Identities()

    def names_someone(tokens: set[str]) -> bool:
        return any(people.erased("email", t) or people.erased("serial", t) for t in tokens)

    for column in roles["text"]:
        found.texts |= {v for v in _distinct(conn, f"SELECT DISTINCT {quote(column)} FROM {source}") if names_someone(text_tokens(v))}
    for column in roles["path"]:
        found.paths |= {v: people.redact(v) for v in _distinct(conn, f"SELECT DISTINCT {quote(column)} FROM {source}") if names_someone(name_tokens(v))}
    return found


def _distinct(conn: duckdb.DuckDBPyConnection, sql: str) -> set[str]:
    return {v for (v,) in conn.execute(sql).fetchall() if v is not None}


def match_sql(columns: Iterable[str]) -> str | None:
    """A boolean SQL expression, true for the rows of the registered people (`Identities.register`);
    None when the table has no identity column that makes a row someone's."""
    roles = identity_columns(columns)
    parts = [f"lower(trim({quote(c)})) IN (SELECT value FROM erase_emails)" for c in roles["email"]]
    no_email = " AND ".join(f"{quote(c)} IS NULL" for c in roles["email"])
    for column in roles["serial"]:
        serial = f"lower(trim({quote(column)})) IN (SELECT value FROM erase_serials)"
        parts.append(f"({no_email} AND {serial})" if no_email else serial)
    parts += [f"{quote(c)} IN (SELECT value FROM erase_keys)" for c in roles["key"]]
    parts += [f"{quote(c)} IN (SELECT value FROM erase_texts)" for c in roles["text"]]
    if not parts:
        return None
    return "coalesce(" + " OR ".join(f"({p})" for p in parts) + ", false)"


def touched_sql(columns: Iterable[str]) -> str:
    """True for the rows a rewrite changes: those of the people, and those whose file name names them."""
    paths = [f"{quote(c)} IN (SELECT value FROM erase_paths)" for c in identity_columns(columns)["path"]]
    parts = [p for p in (match_sql(columns), *paths) if p]
    return "coalesce(" + " OR ".join(f"({p})" for p in parts) + ", false)" if parts else "false"


def kept_rows_sql(source: str, columns: list[str]) -> str:
    """The rows of `source` that stay, with file names that name the people redacted."""
    condition = match_sql(columns)
    replaced = [f"coalesce((SELECT redacted FROM erase_paths WHERE value = {quote(c)}), {quote(c)}) AS {quote(c)}" for c in identity_columns(columns)["path"]]
    select = f"* REPLACE ({', '.join(replaced)})" if replaced else "*"
    return f"SELECT {select} FROM {source}" + (f" WHERE NOT {condition}" if condition else "")


def column_names(conn: duckdb.DuckDBPyConnection, source: str) -> list[str]:
    """The column names of a relation, read without scanning any row."""
    return [d[0] for d in conn.execute(f"SELECT * FROM {source} LIMIT 0").description]


def parquet_source(paths: Iterable[str]) -> str:
    """A DuckDB relation over these Parquet files, their columns united by name."""
    return f"read_parquet([{', '.join(literal(p) for p in paths)}], union_by_name = true)"
