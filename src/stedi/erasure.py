"""The right to erasure (SPEC §4): `stedi forget EMAIL…`.

1. Plan: the customers' normalized emails, their serial numbers (from all their customer_landing
   records), their pseudonymous customer_key (keyed with the lake secret), and in every table of
   every zone the data files holding their rows (see `stedi.identities` for how rows are matched).
2. Tombstone them (`stedi.tombstones`) first, so that an erasure interrupted half-way can never be
   undone by an ingest, and running `forget` again finishes it.
3. Per table, one atomic commit (`Lake.keep_only_current`): the data files holding their rows are
   replaced by filtered copies, and the table's history is dropped — every snapshot but the new
   current one is expired, and no manifest left mentions a replaced file.
4. Delete every file under the warehouse that the current metadata no longer references.
5. Write an audit record, `_stedi/erasures/<id>.json`: counts only, never an identity.

Derived tables keep their rows minus the erased ones; their snapshot records that it was made by
an erasure (so the next `stedi run` rebuilds whatever read a changed table, from landing tables
that no longer hold the customer).
"""

from __future__ import annotations

import getpass
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from stedi.contract import FEEDS
from stedi.engines.duckdb import connect, literal, quote
from stedi.identities import TEXT_COLUMNS, match_sql, normalize, register_identities, tokens_sql
from stedi.ingest import new_run_id, run_of_data_file
from stedi.lake import (
    BUILT_BY_PROPERTY, ERASURE_PROPERTY, INPUTS_PROPERTY, RUN_PROPERTY, SAME_CONTENT_PROPERTY, Lake, LakeError,
)
from stedi.models import load_models, run_order
from stedi.timetravel import ERASURES
from stedi.tombstones import Tombstones, load_tombstones, save_tombstones


class ErasureError(ValueError):
    """An erasure request that cannot be carried out as given (no email, unreadable list)."""


@dataclass
class TableErasure:
    name: str
    files: dict[str, int] = field(default_factory=dict)  # data file → rows of the customers in it
    snapshots_expired: int = 0

    @property
    def rows(self) -> int:
        return sum(self.files.values())


@dataclass
class ErasureReport:
    erasure_id: str
    dry_run: bool
    started_at: str
    by: str
    requested: list[str]  # normalized emails: shown to the user who typed them, never stored
    unknown: list[str]
    serial_numbers: int = 0
    shared_serial_numbers: int = 0  # also carried by customers who stay
    tables: list[TableErasure] = field(default_factory=list)
    files_deleted: int = 0
    tombstones_added: int = 0
    finished_at: str = ""
    expired: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def rows_removed(self) -> dict[str, int]:
        return {t.name: t.rows for t in self.tables}

    @property
    def files_rewritten(self) -> int:
        return sum(len(t.files) for t in self.tables)

    @property
    def snapshots_expired(self) -> int:
        return sum(t.snapshots_expired for t in self.tables)

    def audit_record(self) -> dict:
        """What the lake keeps about the erasure: when, who, how much — no identity of anyone."""
        return {
            "erasure_id": self.erasure_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "completed": bool(self.finished_at),  # false: interrupted, run `stedi forget` again
            "by": self.by,
            "customers_requested": len(self.requested),
            "customers_found": len(self.requested) - len(self.unknown),
            "serial_numbers": self.serial_numbers,
            "shared_serial_numbers": self.shared_serial_numbers,
            "rows_removed": self.rows_removed,
            "data_files_rewritten": self.files_rewritten,
            "files_deleted": self.files_deleted,
            "snapshots_expired": self.snapshots_expired,
            "tombstones_added": self.tombstones_added,
            # Ids and commit times only: lets time travel say which erasure took a snapshot away.
            "expired_snapshots": self.expired,
        }

    def as_dict(self) -> dict:
        record = self.audit_record()
        del record["expired_snapshots"]
        return {**record, "dry_run": self.dry_run, "unknown_emails": self.unknown}


def read_email_file(path: str) -> list[str]:
    """One email a line; blank lines and lines starting with # are skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as error:
        raise ErasureError(f"cannot read the email list {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ErasureError(f"the email list {path} is not UTF-8 text") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def customer_key(secret: bytes, email: str) -> str:
    """machine_learning_curated.customer_key, as its model computes it."""
    return hashlib.sha256(f"{secret.decode()}|{email}".encode()).hexdigest()


def table_order(lake: Lake) -> list[str]:
    """Landing first, then the models in run order, then anything else: a table is handled after
    the tables it reads, so its snapshot can refer to their new ones."""
    present = set(lake.table_names())
    landing = [name for feed in FEEDS for name in (feed.landing_table, feed.rejected_table)]
    models = [model.name for model in run_order(load_models())]
    ordered = [name for name in landing + models if name in present]
    return ordered + sorted(present - set(ordered))


def _source(files: Iterable[str]) -> str:
    return f"read_parquet([{', '.join(literal(f) for f in files)}], union_by_name = true)"


def _column_names(conn: duckdb.DuckDBPyConnection, source: str) -> list[str]:
    return [d[0] for d in conn.execute(f"SELECT * FROM {source} LIMIT 0").description]


def _plan_table(conn: duckdb.DuckDBPyConnection, lake: Lake, name: str, keys: dict[str, str]) -> tuple[TableErasure, set[str]]:
    """The table's files holding the customers' rows, and which of the customers' emails it holds."""
    plan = TableErasure(name)
    files = lake.state(name).files
    if not files:
        return plan, set()
    source = _source(files)
    columns = _column_names(conn, source)
    condition = match_sql(columns)
    if condition is None:
        return plan, set()
    with_names = source.replace("union_by_name = true", "union_by_name = true, filename = true")
    plan.files = dict(conn.execute(f"SELECT filename, count(*) FROM {with_names} WHERE {condition} GROUP BY ALL").fetchall())
    found: set[str] = set()
    for column in columns:
        lowered, quoted = column.lower(), quote(column)
        if lowered in ("email", "user"):
            sql = f"SELECT DISTINCT lower(trim({quoted})) FROM {source} WHERE lower(trim({quoted})) IN (SELECT value FROM erase_emails)"
        elif lowered == "customer_key":
            sql = f"SELECT DISTINCT {quoted} FROM {source} WHERE {quoted} IN (SELECT value FROM erase_keys)"
        elif lowered in TEXT_COLUMNS:
            sql = (f"SELECT DISTINCT token FROM (SELECT unnest({tokens_sql(quoted)}) AS token FROM {source}) "
                   "WHERE token IN (SELECT value FROM erase_emails)")
        else:
            continue
        found |= {keys.get(v, v) for v, in conn.execute(sql).fetchall() if v is not None}
    return plan, found


def _serial_numbers(conn: duckdb.DuckDBPyConnection, lake: Lake) -> tuple[set[str], int]:
    """The customers' serial numbers (from all their customer_landing records), and how many of
    them other customers also carry."""
    if not lake.has_table("customer_landing") or not lake.state("customer_landing").files:
        return set(), 0
    source = _source(lake.state("customer_landing").files)
    rows = conn.execute(
        f"""SELECT lower(trim(serialNumber)) AS serial, bool_or(lower(trim(email)) NOT IN (SELECT value FROM erase_emails))
            FROM {source} WHERE serialNumber IS NOT NULL AND trim(serialNumber) <> ''
            GROUP BY ALL HAVING bool_or(lower(trim(email)) IN (SELECT value FROM erase_emails))"""
    ).fetchall()
    return {serial for serial, _ in rows}, sum(1 for _, shared in rows if shared)


def _rewrite(conn: duckdb.DuckDBPyConnection, lake: Lake, name: str, path: str, expected: int) -> str | None:
    """A copy of a data file without the customers' rows, beside it in the table's data folder
    (named after the run that wrote the original, so ingest recovery keeps recognising it);
    None when no row is left."""
    source = f"read_parquet({literal(path)})"
    condition = match_sql(_column_names(conn, source))
    assert condition is not None
    new_path = lake.new_data_file(name, run_of_data_file(path))
    conn.execute(f"COPY (SELECT * FROM {source} WHERE NOT {condition}) TO {literal(new_path)} (FORMAT parquet, COMPRESSION zstd)")
    before = conn.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
    after = conn.execute(f"SELECT count(*) FROM read_parquet({literal(new_path)})").fetchone()[0]
    if before - after != expected:
        lake.storage.delete(new_path)
        raise LakeError(f"erasure planned {expected} rows in {path} but found {before - after}; nothing of {name} was changed")
    if after == 0:
        lake.storage.delete(new_path)
        return None
    return new_path


def _properties(
    erasure_id: str, parent: dict[str, str], parent_id: int | None, changed: bool, renamed: dict[str, tuple[int, int]]
) -> dict[str, str]:
    """The summary of the snapshot an erasure leaves. When the rows changed, the inputs stay those
    the rows were built from (so the next run rebuilds the table); when they did not, the table
    names the snapshot it stands for, and inputs that were only re-committed are renamed."""
    properties = {k: v for k, v in parent.items() if k.startswith("stedi.")}
    if RUN_PROPERTY in parent:
        properties[BUILT_BY_PROPERTY] = parent.get(BUILT_BY_PROPERTY, parent[RUN_PROPERTY])
    properties[RUN_PROPERTY] = f"erasure-{erasure_id}"
    properties[ERASURE_PROPERTY] = erasure_id
    if changed:
        properties.pop(SAME_CONTENT_PROPERTY, None)
        return properties
    same = json.loads(parent.get(SAME_CONTENT_PROPERTY, "[]"))
    if parent_id is not None:
        same.append(parent_id)
    properties[SAME_CONTENT_PROPERTY] = json.dumps(same)
    if INPUTS_PROPERTY in parent:
        inputs = json.loads(parent[INPUTS_PROPERTY])
        for table, (old, new) in renamed.items():
            if inputs.get(table) == old:
                inputs[table] = new
        properties[INPUTS_PROPERTY] = json.dumps(inputs, sort_keys=True)
    return properties


def forget(lake: Lake, emails: Iterable[str], dry_run: bool = False) -> ErasureReport:
    """Erase these customers from every table of the lake. The caller holds the write lock."""
    lake.require()
    requested = list(dict.fromkeys(normalize(e) for e in emails))
    if not requested or any(not e for e in requested):
        raise ErasureError("give the email of at least one customer to forget (blank emails are not allowed)")
    try:
        by = getpass.getuser()
    except (KeyError, OSError):
        by = "unknown"
    erasure_id = new_run_id()
    report = ErasureReport(erasure_id, dry_run, datetime.now(timezone.utc).isoformat(), by, requested, [])

    # The pseudonym needs the lake's secret; a dry run does not create one (without it no key exists).
    has_secret = lake.storage.exists(lake.storage.join("_stedi", "secret"))
    secret = lake.secret if (has_secret or not dry_run) else None
    keys = {customer_key(secret, e): e for e in requested} if secret else {}

    conn = connect()
    register_identities(conn, emails=requested)
    serials, report.shared_serial_numbers = _serial_numbers(conn, lake)
    report.serial_numbers = len(serials)
    register_identities(conn, emails=requested, serials=serials, keys=keys, tokens=set(requested) | serials)

    found: set[str] = set()
    for name in table_order(lake):
        plan, in_table = _plan_table(conn, lake, name, keys)
        found |= in_table
        plan.snapshots_expired = max(len(lake.table(name).snapshots()) - 1, 0)
        report.tables.append(plan)
    report.unknown = [e for e in requested if e not in found]
    if dry_run:
        conn.close()
        report.finished_at = datetime.now(timezone.utc).isoformat()
        return report

    # Tombstones first: from here on no ingest can bring these customers back, whatever happens.
    # Unknown emails are tombstoned too: their data may still be on its way.
    tombstones = load_tombstones(lake) or Tombstones(lake.secret)
    report.tombstones_added = sum(tombstones.add(requested, serials))
    save_tombstones(lake, tombstones)

    completed = False
    try:
        renamed: dict[str, tuple[int, int]] = {}  # tables re-committed with unchanged rows: old → new snapshot
        for plan in report.tables:
            state = lake.state(plan.name)
            added = [new for path, rows in plan.files.items() if (new := _rewrite(conn, lake, plan.name, path, rows))]
            changed = bool(plan.files)
            properties = _properties(erasure_id, state.properties, state.snapshot_id, changed, renamed)
            pruned = lake.keep_only_current(plan.name, properties, add=added, remove=plan.files)
            if pruned.committed and not changed and state.snapshot_id is not None and pruned.snapshot_id is not None:
                renamed[plan.name] = (state.snapshot_id, pruned.snapshot_id)
            plan.snapshots_expired = len(pruned.expired)
            if pruned.expired:
                report.expired[plan.name] = [{"snapshot_id": sid, "committed_ms": ms} for sid, ms in pruned.expired]
        garbage = lake.unreferenced_files()
        for path in garbage:
            lake.storage.delete(path)
        report.files_deleted = len(garbage)
        completed = True
    finally:
        # Written even when interrupted (then without finished_at), so the snapshots already expired
        # are on record; running `stedi forget` again completes the erasure.
        conn.close()
        report.finished_at = datetime.now(timezone.utc).isoformat() if completed else ""
        lake.write_record(ERASURES, erasure_id, report.audit_record())
    return report
