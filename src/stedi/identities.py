"""Which rows of a table belong to a set of people: shared by erasure and by tombstone filtering.

A row is matched through its identity columns, recognised by name in any table of any zone:

- `email` / `user`: the customer's email, compared trimmed and case-insensitively;
- `serialNumber`: the customer's Step Trainer, compared trimmed and case-insensitively, but only
  when the row names no customer by email (a step reading, a serial-only phone reading, an
  ambiguous serial number) — a row that names another customer stays theirs;
- `customer_key`: the pseudonym of machine_learning_curated;
- `raw`: a quarantined line, matched when one of its tokens (see `tokens_sql`) is the email or
  one of the serial numbers, so `bob@x.com` never matches inside `jimbob@x.com`;
- `_extra`: a landing row's fields outside the contract, matched the same way: a row whose unknown
  fields name the customer goes, even another customer's, or it would keep them in the lake.

The people are given as four one-column relations a connection must hold: `erase_emails`,
`erase_serials`, `erase_keys` and `erase_tokens` (all lower-case), see `register_identities`.
"""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import pyarrow as pa

from stedi.engines.duckdb import quote

EMAIL_COLUMNS = ("email", "user")
SERIAL_COLUMN = "serialnumber"
KEY_COLUMN = "customer_key"
TEXT_COLUMNS = ("raw", "_extra")  # free text, matched by its tokens
RELATIONS = ("erase_emails", "erase_serials", "erase_keys", "erase_tokens")

# Word characters of emails and serial numbers: a token is a maximal run of them.
_WORD = "[a-z0-9._%+@-]+"


def normalize(value: str) -> str:
    return value.strip().lower()


def tokens_sql(column: str) -> str:
    """The tokens of a raw line: its words, the same without a trailing full stop, and its quoted
    strings trimmed — lower-cased, as a list."""
    raw = f"lower({column})"
    words = f"regexp_extract_all({raw}, '{_WORD}')"
    quoted = f"""list_transform(regexp_extract_all({raw}, '"([^"]*)"', 1), t -> trim(t))"""
    return f"list_distinct(list_concat({words}, list_transform({words}, t -> trim(t, '.')), {quoted}))"


def identity_columns(columns: Iterable[str]) -> dict[str, list[str]]:
    """The table's identity columns by role (their real names)."""
    roles: dict[str, list[str]] = {"email": [], "serial": [], "key": [], "text": []}
    for name in columns:
        lowered = name.lower()
        if lowered in EMAIL_COLUMNS:
            roles["email"].append(name)
        elif lowered == SERIAL_COLUMN:
            roles["serial"].append(name)
        elif lowered == KEY_COLUMN:
            roles["key"].append(name)
        elif lowered in TEXT_COLUMNS:
            roles["text"].append(name)
    return roles


def match_sql(columns: Iterable[str]) -> str | None:
    """A boolean SQL expression, true for the rows of the registered people; None when the table
    has no identity column (nothing in it can belong to anyone)."""
    roles = identity_columns(columns)
    parts = [f"lower(trim({quote(c)})) IN (SELECT value FROM erase_emails)" for c in roles["email"]]
    no_email = " AND ".join(f"{quote(c)} IS NULL" for c in roles["email"])
    for column in roles["serial"]:
        serial = f"lower(trim({quote(column)})) IN (SELECT value FROM erase_serials)"
        parts.append(f"({no_email} AND {serial})" if no_email else serial)
    parts += [f"{quote(c)} IN (SELECT value FROM erase_keys)" for c in roles["key"]]
    parts += [f"list_has_any({tokens_sql(quote(c))}, (SELECT list(value) FROM erase_tokens))" for c in roles["text"]]
    if not parts:
        return None
    return "coalesce(" + " OR ".join(f"({p})" for p in parts) + ", false)"


def register_identities(
    conn: duckdb.DuckDBPyConnection, emails: Iterable[str] = (), serials: Iterable[str] = (),
    keys: Iterable[str] = (), tokens: Iterable[str] = (),
) -> None:
    for name, values in zip(RELATIONS, (emails, serials, keys, tokens)):
        conn.register(name, pa.table({"value": pa.array(sorted(set(values)), pa.string())}))
