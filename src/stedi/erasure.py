"""The right to erasure (SPEC §4): `stedi forget EMAIL…`, crash-atomic.

1. Intent first: the customers' emails and serial numbers (from all their customer_landing
   records) are tombstoned (`stedi.tombstones`: keyed hashes, never the values), and a pending
   record, `_stedi/pending-erasure.json`, names the erasure and the customers' pseudonyms
   (`customer_key`). From here on no ingest can bring them back, and every command that writes the
   lake finishes the erasure before anything else (`finish_pending_erasure`).
2. Per table, rows are found by the customers' normalized emails and serial numbers, which the
   erasure holds in memory (`stedi.identities.KnownPeople`), or, when a later command finishes an
   interrupted erasure, through its own tombstones (`Tombstones.find`: the pending record keeps no
   email); never through another table an interrupted erasure may already have rewritten. Free
   text and file names are searched for them token by token. The data files holding them are
   replaced by filtered copies, and only the snapshots that hold the customers are expired
   (`stedi.snapshots`), in one atomic commit per table. A table without their rows is not touched.
3. Files that no retained snapshot references any more are deleted, and so are spill files left
   by killed processes.
4. The audit record, `_stedi/erasures/<id>.json` (written at the start, completed at the end),
   keeps counts and snapshot ids only, never an identity; the pending record is removed last.
   Running the same erasure again after a crash at any instant finishes it.

Derived tables keep their rows minus the erased ones; their snapshot records that it was made by
an erasure. When it changed no row of anyone who stays (`_self_contained`), those rows are still
each model's SQL over its inputs, and the snapshots say they were built from the inputs the erasure
left, so the next `stedi run` builds nothing; otherwise the next run rebuilds whatever read a
changed table.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from stedi import records
from stedi.contract import FEEDS
from stedi.errors import ErasureError, LakeError
from stedi.identities import (
    Identities,
    KnownPeople,
    column_names,
    identity_columns,
    kept_rows_sql,
    match_sql,
    name_tokens,
    normalize,
    parquet_source,
    text_tokens,
    touched_sql,
)
from stedi.lake import BUILT_BY_PROPERTY, ERASURE_PROPERTY, INPUTS_PROPERTY, RUN_PROPERTY, SAME_CONTENT_PROPERTY, Lake, new_run_id, run_of_data_file
from stedi.models import LANDING_TABLES, load_models, run_order
from stedi.records import ERASURES, RUNS
from stedi.scratch import remove_abandoned
from stedi.secret import customer_key
from stedi.snapshots import rewrite, snapshot_files, unreferenced_files
from stedi.sql import literal, one_row, quote
from stedi.tombstones import Tombstones, load_tombstones, mark, save_tombstones

PENDING_FILE = "pending-erasure.json"
TRAINING_TABLE = "machine_learning_curated"
# On each table an erasure commits to: what it removed and expired there, so that a re-run after a
# crash reports the whole erasure, not just what was left to do.
PROGRESS_PROPERTY = "stedi.erasure-progress"


@dataclass
class TableErasure:
    """One table's part of an erasure: the data files to rewrite and the snapshots to expire.

    `found` holds the identities found in the table; it stays in memory and is never written.
    """

    name: str
    files: dict[str, int] = field(default_factory=dict)  # current data file → rows of the customers in it
    expire: list[int] = field(default_factory=list)  # snapshots that hold the customers
    snapshots_expired: int = 0
    rows_earlier: int = 0  # removed by an interrupted attempt of the same erasure
    committed: bool = True  # false while an erasure has planned the table but not rewritten it yet
    found: Identities | None = field(default=None, repr=False)  # in memory only, never stored

    @property
    def rows_now(self) -> int:
        """The customers' rows in the table's current data files, which this attempt removes."""
        return sum(self.files.values())

    @property
    def rows(self) -> int:
        """The customers' rows the erasure removes from the table, over all its attempts.

        This attempt's rows count once its commit is made (in a dry run, at once).
        """
        return self.rows_earlier + (self.rows_now if self.committed else 0)


@dataclass
class ErasureReport:
    """What an erasure did, or in a dry run would do: the audit record and the command's output.

    `requested` and `unknown` hold emails for the user who typed them; `audit_record` leaves them
    out, so the audit record holds no identity.
    """

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
    unreproducible_runs: list[str] = field(default_factory=list)  # runs whose training data was expired
    email_marks: set[str] = field(default_factory=set, repr=False)  # tombstones of the requested emails

    @property
    def rows_removed(self) -> dict[str, int]:
        """Rows removed, by table name."""
        return {t.name: t.rows for t in self.tables}

    @property
    def files_rewritten(self) -> int:
        """How many data files were replaced by filtered copies (or dropped, when emptied)."""
        return sum(len(t.files) for t in self.tables)

    @property
    def snapshots_expired(self) -> int:
        """How many snapshots were expired, over all tables."""
        return sum(t.snapshots_expired for t in self.tables)

    def audit_record(self) -> dict:
        """What the lake keeps about the erasure: when, who, how much — no identity of anyone."""
        return {
            "erasure_id": self.erasure_id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "completed": bool(self.finished_at),  # false: unfinished; the next writing command finishes it
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
            "unreproducible_runs": self.unreproducible_runs,
            # Ids and commit times only: lets time travel say which erasure took a snapshot away.
            "expired_snapshots": self.expired,
        }

    def as_dict(self) -> dict:
        """The report as `--json` prints it: the audit record, dry-run flag and unknown emails.

        The expired snapshots' ids are left out: the audit record keeps them for time travel.
        """
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


def table_order(lake: Lake) -> list[str]:
    """Landing first, then the models in run order, then anything else: a table is handled after
    the tables it reads, so its snapshot can refer to their new ones."""
    present = set(lake.table_names())
    landing = [name for feed in FEEDS for name in (feed.landing_table, feed.rejected_table)]
    models = [model.name for model in run_order(load_models())]
    ordered = [name for name in landing + models if name in present]
    return ordered + sorted(present - set(ordered))


def _plan_table(
    conn: duckdb.DuckDBPyConnection, lake: Lake, name: str, people: KnownPeople | Tombstones, keys: set[str], requested: set[str]
) -> tuple[TableErasure, set[str]]:
    """The table's current files holding the customers' rows, the snapshots that hold them (in any
    retained file), and which of the requested emails it names."""
    plan = TableErasure(name)
    snapshots = snapshot_files(lake, name)
    files = sorted(set().union(*(s.live for s in snapshots))) if snapshots else []
    if not files:
        return plan, set()
    source = parquet_source(files)
    columns = column_names(conn, source)
    found = people.find(conn, source, columns, keys)
    if not found:
        return plan, set()
    found.register(conn)
    plan.found = found
    condition = match_sql(columns) or "false"
    emails = [f"lower(trim({quote(c)}))" for c in identity_columns(columns)["email"]]
    named_emails = "".join(f", list(DISTINCT {e}) FILTER (WHERE {e} IN (SELECT value FROM erase_emails))" for e in emails)
    with_names = source.replace("union_by_name = true", "union_by_name = true, filename = true")
    held: dict[str, int] = {}
    named: set[str] = set()
    for path, rows, *lists in conn.execute(
        f"SELECT filename, count(*) FILTER (WHERE {condition}){named_emails} FROM {with_names} WHERE {touched_sql(columns)} GROUP BY ALL"
    ).fetchall():
        held[path] = rows
        named.update(*(values or () for values in lists))
    current = set(lake.state(name).files)
    plan.files = {path: rows for path, rows in held.items() if path in current}
    plan.expire = [s.snapshot_id for s in snapshots if s.mentioned & held.keys()]
    named |= {t for text in found.texts for t in text_tokens(text)} | {t for p in found.paths for t in name_tokens(p)}
    return plan, named & requested


def _rewrite_file(conn: duckdb.DuckDBPyConnection, lake: Lake, name: str, path: str, expected: int) -> str | None:
    """A copy of a data file without the customers' rows (and with file names that name them
    redacted), beside it in the table's data folder, named after the run that wrote the original so
    ingest recovery keeps recognising it; None when no row is left."""
    source = f"read_parquet({literal(path)})"
    new_path = lake.new_data_file(name, run_of_data_file(path))
    conn.execute(f"COPY ({kept_rows_sql(source, column_names(conn, source))}) TO {literal(new_path)} (FORMAT parquet, COMPRESSION zstd)")
    before = one_row(conn, f"SELECT count(*) FROM {source}")[0]
    after = one_row(conn, f"SELECT count(*) FROM read_parquet({literal(new_path)})")[0]
    if before - after != expected:
        lake.storage.delete(new_path)
        raise LakeError(f"erasure planned {expected} rows in {path} but found {before - after}; nothing of {name} was changed")
    if after == 0:
        lake.storage.delete(new_path)
        return None
    return new_path


def _properties(
    erasure_id: str, parent: dict[str, str], parent_id: int | None, changed: bool, renamed: dict[str, tuple[int, int]], self_contained: bool
) -> dict[str, str]:
    """The summary of the snapshot an erasure leaves. When the rows did not change, the table names
    the snapshot it stands for. The inputs the rows were built from are renamed to the snapshots
    the erasure left of them when the rows are still the model's SQL over those: when they did not
    change and the inputs were only re-committed, or when the erasure is `self_contained`.
    Otherwise they stay, and the next run rebuilds the table."""
    properties = {k: v for k, v in parent.items() if k.startswith("stedi.")}
    if RUN_PROPERTY in parent:
        properties[BUILT_BY_PROPERTY] = parent.get(BUILT_BY_PROPERTY, parent[RUN_PROPERTY])
    properties[RUN_PROPERTY] = f"erasure-{erasure_id}"
    properties[ERASURE_PROPERTY] = erasure_id
    if changed:
        properties.pop(SAME_CONTENT_PROPERTY, None)
    else:
        same = json.loads(parent.get(SAME_CONTENT_PROPERTY, "[]"))
        if parent_id is not None:
            same.append(parent_id)
        properties[SAME_CONTENT_PROPERTY] = json.dumps(same)
    if INPUTS_PROPERTY in parent and (self_contained or not changed):
        inputs = json.loads(parent[INPUTS_PROPERTY])
        for table, (old, new) in renamed.items():
            if inputs.get(table) == old:
                inputs[table] = new
        properties[INPUTS_PROPERTY] = json.dumps(inputs, sort_keys=True)
    return properties


def _serial_numbers(conn: duckdb.DuckDBPyConnection, lake: Lake, emails: list[str]) -> tuple[set[str], int]:
    """The customers' serial numbers (from all their customer_landing records), and how many of
    them other customers also carry. A blank one is no serial number to erase by, but it counts
    as shared when someone else carries it too: the models take any value for one."""
    if not lake.has_table("customer_landing") or not lake.state("customer_landing").files:
        return set(), 0
    conn.register("erase_requested", pa.table({"value": pa.array(emails, pa.string())}))
    rows = conn.execute(
        f"""SELECT lower(trim(serialNumber)) AS serial, bool_or(lower(trim(email)) NOT IN (SELECT value FROM erase_requested))
            FROM {parquet_source(lake.state("customer_landing").files)} WHERE serialNumber IS NOT NULL
            GROUP BY ALL HAVING bool_or(lower(trim(email)) IN (SELECT value FROM erase_requested))"""
    ).fetchall()
    return {serial for serial, _ in rows if serial}, sum(1 for _, shared in rows if shared)


def _pending_path(lake: Lake) -> str:
    return lake.storage.join("_stedi", PENDING_FILE)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def forget(lake: Lake, emails: Iterable[str], dry_run: bool = False) -> ErasureReport:
    """Erase these customers from every table of the lake. The caller holds the write lock."""
    lake.require()
    requested = list(dict.fromkeys(normalize(e) for e in emails))
    if not requested or any(not e for e in requested):
        raise ErasureError("give the email of at least one customer to forget (blank emails are not allowed)")
    for name in lake.table_names():  # a table that cannot be read as it is is refused before anything is written
        lake.state(name)
    if not dry_run:
        finished = finish_pending_erasure(lake)  # an earlier erasure that was interrupted comes first
        if finished and {mark(lake.secret, "email", e) for e in requested} <= finished.email_marks:
            # Asked again after it was interrupted: this is that erasure, now finished.
            finished.requested = requested
            finished.unknown = [] if sum(finished.rows_removed.values()) else requested
            return finished
    report = ErasureReport(new_run_id(), dry_run, _now(), _user(), requested, [])
    conn = lake.connect()
    serials, report.shared_serial_numbers = _serial_numbers(conn, lake, requested)
    conn.close()
    report.serial_numbers = len(serials)
    keys = sorted(customer_key(lake.secret, e) for e in requested)
    asked = Tombstones(lake.secret)
    asked.add(requested, serials)
    report.email_marks = set(asked.emails)
    people = KnownPeople(frozenset(requested), frozenset(serials), asked)
    if dry_run:
        return _carry_out(lake, report, people, set(keys))

    # Intent first: the pending record names everything the erasure needs, so that a writer that
    # finds it can finish it; then the tombstones, from which on no ingest brings them back.
    # Unknown emails are tombstoned too: their data may be on its way.
    pending = {**report.audit_record(), "customer_keys": keys, "emails": sorted(asked.emails), "serials": sorted(asked.serials)}
    lake.storage.write_bytes(_pending_path(lake), json.dumps(pending).encode(), private=True)
    report.tombstones_added = _tombstone(lake, asked)
    records.write(lake.storage, ERASURES, report.erasure_id, report.audit_record())
    return _carry_out(lake, report, people, set(keys))


def _tombstone(lake: Lake, asked: Tombstones) -> int:
    """Add these tombstones to the lake's; returns how many are new."""
    tombstones = load_tombstones(lake) or Tombstones(lake.secret)
    added = len(asked.emails - tombstones.emails) + len(asked.serials - tombstones.serials)
    tombstones.emails |= asked.emails
    tombstones.serials |= asked.serials
    save_tombstones(lake, tombstones)
    return added


def pending_erasure(lake: Lake) -> str | None:
    """The id of an erasure that was interrupted and is not finished yet."""
    path = _pending_path(lake)
    return json.loads(lake.storage.read_bytes(path))["erasure_id"] if lake.storage.exists(path) else None


def finish_pending_erasure(lake: Lake) -> ErasureReport | None:
    """Finish an erasure that was interrupted, if there is one; the caller holds the write lock.
    Its customers are found through their tombstones (the record keeps no email), whatever
    tables it had already rewritten."""
    path = _pending_path(lake)
    if not lake.storage.exists(path):
        return None
    pending = json.loads(lake.storage.read_bytes(path))
    report = ErasureReport(pending["erasure_id"], False, pending["started_at"], pending["by"], [], [])
    report.serial_numbers = pending["serial_numbers"]
    report.shared_serial_numbers = pending["shared_serial_numbers"]
    asked = Tombstones(lake.secret, set(pending["emails"]), set(pending["serials"]))
    report.email_marks = set(asked.emails)
    report.tombstones_added = _tombstone(lake, asked)  # again: the interrupted attempt may not have got there
    return _carry_out(lake, report, asked, set(pending["customer_keys"]))


def _carry_out(lake: Lake, report: ErasureReport, people: KnownPeople | Tombstones, keys: set[str]) -> ErasureReport:
    conn = lake.connect()
    found: set[str] = set()
    for name in table_order(lake):
        plan, named = _plan_table(conn, lake, name, people, keys, set(report.requested))
        found |= named
        report.tables.append(plan)
    report.unknown = [e for e in report.requested if e not in found]
    if report.dry_run:
        conn.close()
        for plan in report.tables:
            plan.snapshots_expired = len(plan.expire)
        report.finished_at = _now()
        return report

    for plan in report.tables:  # what an interrupted attempt of this erasure did, as its commits say
        done = json.loads(lake.table(plan.name).properties.get(PROGRESS_PROPERTY, "{}"))
        if done.get("erasure_id") == report.erasure_id:
            plan.rows_earlier = done["rows_removed"]
            report.expired[plan.name] = done["expired"]
        plan.committed = not plan.expire

    self_contained = _self_contained(report)
    renamed: dict[str, tuple[int, int]] = {}  # tables committed with rows their readers may take as built from: old → new snapshot
    for plan in report.tables:
        if not plan.expire:
            plan.snapshots_expired = len(report.expired.get(plan.name, []))
            if self_contained:
                _rename_inputs(lake, plan.name, report.erasure_id, renamed)
            continue
        state = lake.state(plan.name)
        committed = {s.snapshot_id: s.committed_ms for s in snapshot_files(lake, plan.name)}
        assert plan.found is not None  # a plan that expires snapshots found someone
        plan.found.register(conn)
        added = [new for path, rows in plan.files.items() if (new := _rewrite_file(conn, lake, plan.name, path, rows))]
        changed = bool(plan.files)
        properties = _properties(report.erasure_id, state.properties, state.snapshot_id, changed, renamed, self_contained)
        expired = report.expired.get(plan.name, []) + [{"snapshot_id": sid, "committed_ms": committed[sid]} for sid in plan.expire if sid in committed]
        progress = {"erasure_id": report.erasure_id, "rows_removed": plan.rows_earlier + plan.rows_now, "expired": expired}
        head = rewrite(
            lake, plan.name, properties, remove=plan.files, add=added, expire=plan.expire, table_properties={PROGRESS_PROPERTY: json.dumps(progress)}
        )
        if (self_contained or not changed) and head != state.snapshot_id and state.snapshot_id is not None and head is not None:
            renamed[plan.name] = (state.snapshot_id, head)
        retained = {s.snapshot_id for s in snapshot_files(lake, plan.name)}
        report.expired[plan.name] = [e for e in expired if e["snapshot_id"] not in retained]
        plan.snapshots_expired = len(report.expired[plan.name])
        plan.committed = True
    conn.close()
    report.expired = {name: entries for name, entries in report.expired.items() if entries}
    garbage = unreferenced_files(lake, without_history=set(report.expired))
    for path in garbage:
        lake.storage.delete(path)
    report.files_deleted = len(garbage)
    remove_abandoned(lake.storage.join("_stedi", "scratch"))
    report.unreproducible_runs = _runs_touching(lake, report.expired)
    report.finished_at = _now()
    records.write(lake.storage, ERASURES, report.erasure_id, report.audit_record())
    lake.storage.delete(_pending_path(lake))
    return report


def _self_contained(report: ErasureReport) -> bool:
    """Whether the erasure changes no row of anyone who stays in the landing tables the models
    read, so that every model's rows of the others stay its SQL over their rows alone (`rows_of`),
    the tables the erasure leaves stay their SQL over their inputs, and the next run need not
    rebuild them. Not so when someone who stays carries one of their serial numbers (its readings
    go with the customer, and the one who stays may own it now), or when a landing row was matched
    or changed through free text or a file name: another customer's row whose `_extra` names them
    goes, and a file name redacted may reorder records that tie."""
    through_text = any(p.found and (p.found.texts or p.found.paths) for p in report.tables if p.name in LANDING_TABLES)
    return report.shared_serial_numbers == 0 and not through_text


def _rename_inputs(lake: Lake, name: str, erasure_id: str, renamed: dict[str, tuple[int, int]]) -> None:
    """Re-commit a table that holds none of the customers but was built from a table the erasure
    committed anew, its rows unchanged and its inputs renamed, so the next run keeps it."""
    if not lake.has_table(name) or not renamed:
        return
    state = lake.state(name)
    built_from = json.loads(state.properties.get(INPUTS_PROPERTY, "{}"))
    if state.snapshot_id is None or not any(built_from.get(table) == old for table, (old, _) in renamed.items()):
        return
    head = lake.publish(name, [], _properties(erasure_id, state.properties, state.snapshot_id, False, renamed, True))
    renamed[name] = (state.snapshot_id, head)


def _runs_touching(lake: Lake, expired: dict[str, list[dict]]) -> list[str]:
    """The runs whose training data an expiry took: `stedi export --run` cannot give it back."""
    gone = {e["snapshot_id"] for e in expired.get(TRAINING_TABLE, [])}
    return sorted(
        record["run_id"]
        for record in records.read_all(lake.storage, RUNS)
        if any(t.get("name") == TRAINING_TABLE and t.get("output_snapshot") in gone for t in record.get("tables", []))
    )
