"""A run: ingest (optionally), then build every zone model in dependency order: plan, write, audit, publish.

Each model is built only when one of its inputs, its definition or the consent scope changed since
its last publish; those facts travel in the table's own snapshot summary, so an interrupted run
leaves nothing to repair. How a model is brought up to date (`plan`):

- appended: an incremental model whose inputs only gained reading files gains just the rows those
  files add;
- customers replaced: when customer records arrived, a model that declares whose rows it holds
  (`rows_of`) replaces just the rows of the customers and serial numbers the delivery touches
  (`stedi.changes`), rewriting only the data files that hold them;
- rebuilt: any other change (a new definition or consent scope, a recovered ingest, an erasure that
  reached someone who stays: other erasures leave the tables their SQL over their inputs, and say
  so in their snapshots, `stedi.erasure`).

The run's manifest, `_stedi/runs/<run_id>.json`, is written at the end. Meanwhile the run keeps it
up to date as `_stedi/runs-unfinished/<run_id>.json` after each step, so a run killed on the way
(after its last commit, say) is not lost: the next ingest or run completes that record with any
table the run published after its last update (found by the run id in the table's snapshot
summary), marks it interrupted and files it with the others (`recover_interrupted_runs`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from stedi import records
from stedi.changes import Changes, touched
from stedi.checks import CheckResult, offending_rows_sql, run_check, validate_checks
from stedi.config import CONSENT_SCOPES, DEFAULT_SCOPE
from stedi.engines.base import Engine, ModelBuild
from stedi.errors import GateFailure, LakeError
from stedi.funnel import Replaced, funnel
from stedi.ingest import IngestReport, ingest, new_run_id
from stedi.lake import INPUTS_PROPERTY, RUN_PROPERTY, SCOPE_PROPERTY, Lake, TableState, parquet_columns
from stedi.models import (
    LANDING_TABLES,
    RUN_SETTINGS,
    Model,
    added_name,
    before_name,
    downstream_of,
    growth_sql,
    load_models,
    load_sources,
    of_changed,
    replacement_sql,
    rows_of_tables,
    run_order,
)
from stedi.models.selection import select
from stedi.records import RUNS, UNFINISHED_RUNS
from stedi.recovery import recover
from stedi.sql import TableInput, literal, register_tables

log = logging.getLogger(__name__)

MODEL_PROPERTY = "stedi.model"
NOT_SELECTED = "not selected"  # the status of a model that `--select`/`--exclude` left out
KEPT = "kept"  # the view of the files a replacement rewrites, as they were
# How a built table was brought up to date (TableRun.method).
APPENDED, REPLACED, REBUILT = "appended", "customers replaced", "rebuilt"


@dataclass
class TableRun:
    """What a run did with one model's table, as its manifest records it.

    `inputs` are the input snapshots it was built from; `status` is built, unchanged, failed or
    skipped, and `note` says why.
    """

    name: str
    zone: str
    status: str  # built | unchanged | failed | skipped | not selected
    inputs: dict[str, int | None] = field(default_factory=dict)
    output_snapshot: int | None = None
    rows_in: int = 0
    rows_out: int = 0
    duration_s: float = 0.0
    checks: list[CheckResult] = field(default_factory=list)
    note: str = ""
    method: str = ""  # for a built table: APPENDED, REPLACED or REBUILT
    touched_customers: int | None = None  # for REPLACED: how many customers the delivery touched

    def as_dict(self) -> dict:
        """The table's entry in the run manifest, its check results included."""
        return {**{k: v for k, v in vars(self).items() if k != "checks"}, "checks": [c.as_dict() for c in self.checks]}


@dataclass
class RunReport:
    """What a run did: its ingest, each model's table, and the zone funnel it counted."""

    run_id: str
    engine: str
    consent_scope: str
    started_at: str
    finished_at: str = ""
    ingest: IngestReport | None = None
    tables: list[TableRun] = field(default_factory=list)
    funnel: dict = field(default_factory=dict)
    funnel_over: dict = field(default_factory=dict)  # the consent scope and table snapshots it counted
    funnel_counted: bool = False  # counted afresh, not the last run's: the tables changed since (an erasure, say)

    @property
    def ok(self) -> bool:
        """Whether no table failed its quality gates."""
        return not any(t.status == "failed" for t in self.tables)

    def raise_if_failed(self) -> None:
        """GateFailure, naming the tables that failed, when a table failed its quality gates."""
        failed = [t.name for t in self.tables if t.status == "failed"]
        if failed:
            raise GateFailure(
                f"run {self.run_id} failed quality gates ({', '.join(failed)}): those tables kept their "
                "previous snapshot, and the tables built from them were skipped"
            )

    @property
    def changed(self) -> bool:
        """Whether the run ingested a new file, built, failed or skipped a table, or counted the
        funnel over tables that changed since the last run (an erasure leaves its tables as their
        models' SQL over their inputs, and the next run builds none of them).

        Only a run that changed something leaves a manifest, whose funnel the next run reuses.
        """
        built = any(t.status not in ("unchanged", NOT_SELECTED) for t in self.tables)
        return built or bool(self.ingest and self.ingest.new_files) or self.funnel_counted

    def as_dict(self) -> dict:
        """The run manifest, as `_stedi/runs/<run_id>.json` and `--json` hold it."""
        return {
            "run_id": self.run_id,
            "engine": self.engine,
            "consent_scope": self.consent_scope,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "ok": self.ok,
            "ingest": self.ingest.as_dict() if self.ingest else None,
            "tables": [t.as_dict() for t in self.tables],
            "funnel": self.funnel,
            "funnel_over": self.funnel_over,
            "changed": self.changed,  # a record is kept only of a run that changed something
        }


def consent_scope_of(lake: Lake, requested: str | None) -> str:
    """The scope is a lake setting: given once, it stays until changed."""
    if requested is None:
        return lake.settings().get("consent_scope", DEFAULT_SCOPE)
    if requested not in CONSENT_SCOPES:
        raise LakeError(f"unknown consent scope '{requested}': choose one of {', '.join(CONSENT_SCOPES)}")
    lake.update_settings(consent_scope=requested)
    return requested


def run_settings_table(lake: Lake, consent_scope: str) -> pa.Table:
    """The one-row `run_settings` the models read: the consent scope and the lake secret.

    It is handed to the engine in memory, never written: the secret stays out of every table.
    """
    return pa.table({"consent_scope": [consent_scope], "key_secret": [lake.secret.decode()]})


def published_inputs(lake: Lake, names: list[str]) -> dict[str, TableInput]:
    """The named tables that exist, as SQL reads them at their current snapshots."""
    inputs = {}
    for name in names:
        if lake.has_table(name):
            inputs[name] = TableInput(lake.state(name).files, lake.columns(name))
    return inputs


# ---- plan: what building a model takes this run --------------------------------------------------
@dataclass(frozen=True)
class Unchanged:
    """The inputs hold the same data files as at the last build (maybe under new snapshots)."""


@dataclass(frozen=True)
class Rebuild:
    """Built in full, from every row of its inputs."""

    reason: str


@dataclass(frozen=True)
class Append:
    """Only the rows that the grown inputs' new files add (an incremental model, SPEC §5)."""

    grown: Mapping[str, TableState]  # each input that only gained files, as it was at the last build


@dataclass
class Delivery:
    """Customer records that arrived: the landing files added since the models were built, the
    customers and serial numbers they touch, and the tables this run replaced those rows of, each
    with the snapshot it replaced them in."""

    new_files: Mapping[str, frozenset[str]]
    changes: Changes
    replaced: dict[str, int | None] = field(default_factory=dict)
    # For each table replaced, the file its touched customers' rows are in now (none when they have
    # none): the other files hold no row of theirs, so the tables built from it read just that one.
    touched_rows: dict[str, tuple[str, ...]] = field(default_factory=dict)
    too_broad: str | None = None  # why replacing would cost more than a full build, when it would

    def confines(self, changed: Mapping[str, TableState], inputs: Mapping[str, TableState], built_from: Mapping[str, int | None]) -> bool:
        """Whether every input changed only in the touched customers' rows since the model was
        built: a landing table by files of this delivery, a model by this run's replacement."""
        # `arrived_delivery` took in every landing file added since any model was built.
        return all(name in LANDING_TABLES or self.replaced.get(name, -1) == built_from[name] for name in changed)


@dataclass(frozen=True)
class Replace:
    """Only the rows of the customers and serial numbers a delivery touches (SPEC §5)."""

    delivery: Delivery


Build = Rebuild | Append | Replace  # the plans that write
Plan = Unchanged | Build


# A delivery that touches most customers (the whole customer table sent again, say) costs less built
# in full than replaced, which holds every touched row at once: a 10 GB lake given all its feeds
# again under new names took 341 s at a 21.7 GB peak replacing, and 164 s at 6.3 GB built in full.
# A delivery of fewer than ALWAYS_REPLACED customers is replaced whatever the lake's size.
REPLACE_AT_MOST = 0.2  # of the customer records on record
ALWAYS_REPLACED = 10_000


def plan(lake: Lake, model: Model, inputs: Mapping[str, TableState], scope: str, delivery: Delivery | None = None) -> Plan:
    """How to bring the model up to date with its inputs, judged from the facts its last snapshot
    records: its definition, the consent scope and the input snapshots it was built from, and,
    when customer records arrived, the `delivery`."""
    if not lake.has_table(model.name):
        return Rebuild("first build")
    last = lake.state(model.name).properties
    if last.get(MODEL_PROPERTY) != model.fingerprint:
        return Rebuild("its definition changed")
    if last.get(SCOPE_PROPERTY) != scope:
        return Rebuild("the consent scope changed")
    built_from = json.loads(last.get(INPUTS_PROPERTY, "{}"))
    changed = {}
    for name, state in inputs.items():
        if name not in built_from:
            return Rebuild(f"it reads a new input, {name}")
        if built_from[name] == state.snapshot_id:
            continue
        try:
            before = lake.state(name, built_from[name]) if built_from[name] else TableState.empty(name)
        except LakeError:  # an erasure expired it
            return Rebuild(f"the snapshot of {name} it was built from is no longer retained")
        if set(before.files) != set(state.files):
            changed[name] = before
    if not changed:
        return Unchanged()
    if delivery is not None and delivery.too_broad:
        return Rebuild(delivery.too_broad)
    if delivery is not None and model.rows_of and delivery.confines(changed, inputs, built_from):
        return Replace(delivery)
    if not model.incremental:
        return Rebuild(f"{', '.join(sorted(changed))} changed")
    # A file removed or rewritten (a consent change upstream, an erasure, a recovered ingest) rebuilds it.
    rewritten = sorted(name for name, before in changed.items() if not set(before.files) <= set(inputs[name].files))
    if rewritten:
        return Rebuild(f"{', '.join(rewritten)} lost or rewrote rows")
    return Append(changed)


def arrived_delivery(lake: Lake, models: tuple[Model, ...]) -> Delivery | None:
    """The customer records that arrived since the models that read the landing tables were
    built, and what they touch; None when none arrived (new readings alone are appended) or a
    landing table lost rows since (an erasure, a recovered ingest: its readers are rebuilt)."""
    new_files: dict[str, set[str]] = {name: set() for name in LANDING_TABLES}
    for model in models:
        if not model.rows_of or not lake.has_table(model.name):
            continue
        built_from = json.loads(lake.state(model.name).properties.get(INPUTS_PROPERTY, "{}"))
        for name in model.reads & LANDING_TABLES:
            try:
                before = lake.state(name, built_from[name]) if built_from.get(name) else TableState.empty(name)
            except LakeError:  # an erasure expired it
                return None
            now = set(lake.state(name).files)
            if not set(before.files) <= now:
                return None
            new_files[name] |= now - set(before.files)
    if not new_files["customer_landing"]:
        return None
    conn = lake.connect()
    try:
        changes = touched(
            conn,
            {name: TableInput(tuple(sorted(files)), lake.columns(name)) for name, files in new_files.items() if files},
            TableInput(lake.state("customer_landing").files, lake.columns("customer_landing")),
            load_sources(),
            lake.secret,
        )
    finally:
        conn.close()
    delivery = Delivery({name: frozenset(files) for name, files in new_files.items()}, changes)
    records = lake.state("customer_landing").rows  # at least as many as the customers on record
    touched_customers = changes.customers.num_rows
    if touched_customers > max(ALWAYS_REPLACED, REPLACE_AT_MOST * records):
        delivery.too_broad = (
            f"the customer records that arrived touch {touched_customers} customers, against {records} records in all: "
            "a full build costs less than replacing their rows"
        )
    return delivery


# ---- write: the new rows, as one Parquet file (and the rows a replacement carries over) -------------
@dataclass(frozen=True)
class Written:
    """A model's new rows as the engine wrote them: one Parquet file, not yet published.

    A replacement writes the rows it carries over from the files it rewrites (other customers'
    rows) as a file of their own, so that the touched customers' rows stay in a small file: the
    checks judge just that file, and a later erasure or delivery that reaches those customers
    rewrites it and not the bulk of the table."""

    path: str  # the new rows: all of them, an append's added ones, or the touched customers'
    rows: int
    kept: tuple[str, ...]  # the table's files it keeps besides it: all for an append, none for a rebuild
    replaces: tuple[str, ...] = ()  # the table's files it takes the place of, for a replacement
    carried: str | None = None  # for a replacement, the other customers' rows of the files in `replaces`

    @property
    def files(self) -> tuple[str, ...]:
        """The data files written, to be published."""
        return (self.path, self.carried) if self.carried else (self.path,)


def _query(lake: Lake, model: Model, inputs: Mapping[str, TableState], how: Rebuild | Append) -> tuple[dict[str, str], str, dict[str, TableInput]]:
    """The SQL that builds the model's new rows (its stages, then its SELECT) and the tables it
    reads: all their rows, or, for an append, the grown inputs' new and earlier files and the
    model's current rows."""
    tables = {name: TableInput(state.files, lake.columns(name)) for name, state in inputs.items()}
    if isinstance(how, Rebuild):
        return {}, model.sql, tables
    for name, earlier in how.grown.items():
        new_files = tuple(f for f in inputs[name].files if f not in set(earlier.files))
        tables[added_name(name)] = TableInput(new_files, tables[name].columns)
        tables[before_name(name)] = TableInput(earlier.files, tables[name].columns)
    held = TableInput(lake.state(model.name).files, lake.columns(model.name))
    tables[before_name(model.name)] = held
    return (*growth_sql(model, sorted(how.grown), [name for name, _ in held.columns]), tables)


def files_holding(lake: Lake, model: Model, changes: Changes) -> tuple[str, ...]:
    """The model's data files that hold a row of a touched customer or serial number."""
    held = lake.state(model.name).files
    if not held:
        return ()
    conn = lake.connect()
    try:
        for name, table in changes.tables().items():
            conn.register(name, table)
        files = ", ".join(literal(f) for f in held)
        holds_changed = of_changed(model.rows_of)
        found = conn.execute(f"SELECT DISTINCT filename FROM read_parquet([{files}], filename = true) AS held WHERE {holds_changed}").fetchall()
    finally:
        conn.close()
    holding = {row[0] for row in found}
    return tuple(f for f in held if f in holding)


def write(lake: Lake, engine: Engine, model: Model, inputs: Mapping[str, TableState], how: Build, run_id: str, settings: pa.Table) -> Written:
    """Have the engine write the model's new rows: all of them, for an append the added ones, for
    a replacement the touched customers' rows and the others' rows of the files that hold them."""
    path = lake.new_data_file(model.name, run_id)
    if isinstance(how, Replace):
        rewritten = files_holding(lake, model, how.delivery.changes)
        columns = lake.columns(model.name)
        tables = {name: TableInput(how.delivery.touched_rows.get(name, state.files), lake.columns(name)) for name, state in inputs.items()}
        input_columns = {name: [column for column, _ in table.columns] for name, table in tables.items()}
        stages, touched_sql, others_sql = replacement_sql(model, rows_of_tables(load_models()), KEPT, [name for name, _ in columns], input_columns)
        changed = how.delivery.changes.tables()
        rows = engine.build(ModelBuild(touched_sql, tables, settings, path, stages, lake.scratch, lake.storage, changed))
        kept = tuple(f for f in lake.state(model.name).files if f not in set(rewritten))
        carried = lake.new_data_file(model.name, run_id) if rewritten else None
        if carried:
            others = ModelBuild(others_sql, {KEPT: TableInput(rewritten, columns)}, settings, carried, {}, lake.scratch, lake.storage, changed)
            if not engine.build(others):
                lake.storage.delete(carried)  # the rewritten files held only touched customers
                carried = None
        return Written(path, rows, kept, rewritten, carried)
    stages, sql, tables = _query(lake, model, inputs, how)
    rows = engine.build(ModelBuild(sql, tables, settings, path, stages, lake.scratch, lake.storage))
    return Written(path, rows, lake.state(model.name).files if isinstance(how, Append) else ())


# ---- audit: the checks, on the table as it would be published -------------------------------------
def _audit_connection(lake: Lake, settings: pa.Table, all_models: tuple[Model, ...]) -> duckdb.DuckDBPyConnection:
    """A connection with every published table a check may read, and `run_settings`."""
    conn = lake.connect()
    related = [m.name for m in all_models] + sorted(LANDING_TABLES)
    register_tables(conn, published_inputs(lake, related))
    conn.register(RUN_SETTINGS, settings)
    return conn


def audit(lake: Lake, model: Model, written: Written, new_rows_only: bool, settings: pa.Table, all_models: tuple[Model, ...]) -> list[CheckResult]:
    """Run the model's checks on its new contents, against every published table they relate to.
    With `new_rows_only`, a check that judges rows one by one judges just the new rows' file: an
    append's added rows, a replacement's touched customers' rows (the rows it carried over were
    judged before, and nothing they relate to changed)."""
    conn = _audit_connection(lake, settings, all_models)
    columns = tuple(parquet_columns(written.path, lake.storage))
    register_tables(conn, {model.name: TableInput((*written.kept, *written.files), columns)})
    new_rows = added_name(model.name) if new_rows_only else None
    if new_rows:
        register_tables(conn, {new_rows: TableInput((written.path,), columns)})
    try:
        return [run_check(conn, model.name, check, new_rows) for check in model.checks]
    finally:
        conn.close()


def offending_rows(lake: Lake, model: Model, check_name: str, scope: str, limit: int) -> pa.Table | None:
    """The first rows of the model's published table that break the check; None when the table is
    not published or the check counts no rows (`stedi.checks.offending_rows_sql`)."""
    check = next((c for c in model.checks if c.name == check_name), None)
    sql = offending_rows_sql(model.name, check, limit) if check else None
    if sql is None or not lake.has_table(model.name):
        return None
    conn = _audit_connection(lake, run_settings_table(lake, scope), load_models())
    try:
        return conn.sql(sql).to_arrow_table()
    finally:
        conn.close()


# ---- publish: one Iceberg commit that records what the table was built from -----------------------
def publish(lake: Lake, model: Model, written: Written, rebuilt: bool, inputs: Mapping[str, int | None], run_id: str, scope: str) -> int:
    """Commit the written file to the model's table, creating the table if need be.

    The snapshot records the run, the input snapshots, the consent scope and the model's
    fingerprint, which the next `plan` reads. A rebuild replaces the table's content, a
    replacement the files it rewrote; an append or replacement with no row to write commits no
    file. Returns the new snapshot id.
    """
    lake.ensure_table_like(model.name, written.path)
    properties = {
        RUN_PROPERTY: run_id,
        INPUTS_PROPERTY: json.dumps(dict(inputs), sort_keys=True),
        SCOPE_PROPERTY: scope,
        MODEL_PROPERTY: model.fingerprint,
    }
    files = list(written.files)
    if not rebuilt and written.rows == 0:  # nothing new: the snapshot only records what it was built from
        lake.storage.delete(written.path)
        files.remove(written.path)
    return lake.publish(model.name, files, properties, replace=rebuilt, remove=written.replaces)


def describe(how: Build, written: Written) -> tuple[str, int | None, str]:
    """How the table was built, for its manifest entry: the method, the customers touched and a note."""
    if isinstance(how, Append):
        return APPENDED, None, f"appended: {written.rows} new rows from new files of {', '.join(sorted(how.grown))}"
    if isinstance(how, Replace):
        changes = how.delivery.changes
        customers = changes.customers.num_rows
        return (
            REPLACED,
            customers,
            (
                f"customer records arrived: the rows of the {customers} customers and {changes.serials.num_rows} serial numbers "
                f"they touch replaced, {len(written.replaces)} of {len(written.kept) + len(written.replaces)} data files rewritten"
            ),
        )
    return REBUILT, None, f"built in full: {how.reason}"


def build_model(lake: Lake, engine: Engine, model: Model, run_id: str, scope: str, all_models: tuple[Model, ...], delivery: Delivery | None = None) -> TableRun:
    """Plan, write, audit and publish one model: a table that fails a blocking check keeps its
    previous snapshot, and nothing of this build stays on disk. A replacement is recorded in the
    `delivery`, for the models built from this one."""
    started = time.perf_counter()
    missing = sorted(name for name in model.reads if not lake.has_table(name))
    if missing:
        return TableRun(model.name, model.zone, "skipped", note=f"input not built yet: {', '.join(missing)}")
    inputs = {name: lake.state(name) for name in sorted(model.reads)}
    snapshot_ids = {name: state.snapshot_id for name, state in inputs.items()}
    result = TableRun(model.name, model.zone, "unchanged", snapshot_ids, rows_in=sum(s.rows for s in inputs.values()))
    how = plan(lake, model, inputs, scope, delivery)
    log.debug("plan for %s from %s: %s", model.name, snapshot_ids, how)
    before = lake.state(model.name) if lake.has_table(model.name) else TableState.empty(model.name)
    if isinstance(how, Unchanged):
        result.output_snapshot, result.rows_out = before.snapshot_id, before.rows
        return result

    settings = run_settings_table(lake, scope)
    written = write(lake, engine, model, inputs, how, run_id, settings)
    rebuilt = isinstance(how, Rebuild)
    result.method, result.touched_customers, result.note = describe(how, written)
    result.checks = audit(lake, model, written, not rebuilt, settings, all_models)
    if any(c.blocks_publish for c in result.checks):
        for path in written.files:
            lake.storage.delete(path)
        result.status = "failed"
        result.note = "failed checks; the previous snapshot stays live"
        result.output_snapshot, result.rows_out = before.snapshot_id, before.rows
    else:
        result.output_snapshot = publish(lake, model, written, rebuilt, snapshot_ids, run_id, scope)
        result.rows_out = lake.state(model.name).rows
        result.status = "built"
        if isinstance(how, Replace):
            how.delivery.replaced[model.name] = before.snapshot_id
            how.delivery.touched_rows[model.name] = (written.path,) if written.rows else ()
    result.duration_s = round(time.perf_counter() - started, 3)
    return result


TableCallback = Callable[[TableRun], None]


def run(
    lake: Lake,
    engine: Engine,
    source: str | None = None,
    consent_scope: str | None = None,
    on_progress=None,
    on_table: TableCallback | None = None,
    selected: Sequence[str] = (),
    excluded: Sequence[str] = (),
) -> RunReport:
    """Ingest `source` if given, then build the zones: every model, or those the dbt-style
    selectors pick (`stedi.models.selection`). The caller holds the lake's write lock; what an
    interrupted command left behind (an unfinished erasure first) is repaired before anything else."""
    recover(lake)
    run_id = new_run_id()
    scope = consent_scope_of(lake, consent_scope)
    report = RunReport(run_id, engine.name, scope, datetime.now(UTC).isoformat())
    models = load_models()
    order = run_order(models)  # a mistake in a model stops the run before anything is ingested
    validate_checks(models)
    chosen = select(models, selected, excluded)
    log.debug("run %s, consent scope %s, models selected: %s", run_id, scope, ", ".join(m.name for m in order if m.name in chosen))
    if source is None and not lake.has_table("customer_landing"):
        raise LakeError(f"the lake at {lake.location} has no landing tables yet: give a SOURCE to ingest")
    recover_interrupted_runs(lake)

    def keep_record() -> None:
        records.write(lake.storage, UNFINISHED_RUNS, run_id, report.as_dict())

    keep_record()  # before the run's first commit
    if source is not None:
        report.ingest = ingest(lake, source, engine, on_progress, run_id=run_id)
        keep_record()

    delivery = arrived_delivery(lake, models)
    blocked: set[str] = set()
    for model in order:
        if model.name not in chosen:
            table_run = not_selected(lake, model, scope)
        elif model.name in blocked:
            table_run = TableRun(model.name, model.zone, "skipped", note="an upstream table failed its checks")
        else:
            table_run = build_model(lake, engine, model, run_id, scope, models, delivery)
            if table_run.status in ("failed", "skipped"):
                blocked |= downstream_of(model.name, models)
        report.tables.append(table_run)
        keep_record()
        if on_table:
            on_table(table_run)
    replaced = Replaced(delivery.changes, delivery.replaced) if delivery and not delivery.too_broad else None
    report.funnel, report.funnel_over, report.funnel_counted = _funnel(lake, scope, replaced)
    report.finished_at = datetime.now(UTC).isoformat()
    if report.changed:
        records.write(lake.storage, RUNS, run_id, report.as_dict())
    records.delete(lake.storage, UNFINISHED_RUNS, run_id)
    return report


def not_selected(lake: Lake, model: Model, scope: str) -> TableRun:
    """A model a selection left out, and whether that leaves its table behind its inputs: the
    models built from it then read it as last published."""
    result = TableRun(model.name, model.zone, NOT_SELECTED, note="not selected")
    if all(lake.has_table(name) for name in model.reads):
        how = plan(lake, model, {name: lake.state(name) for name in sorted(model.reads)}, scope)  # as if no delivery
        if not isinstance(how, Unchanged):
            result.note = f"not selected, so out of date: {how.reason if isinstance(how, Rebuild) else 'its inputs gained rows'}"
    if lake.has_table(model.name):
        state = lake.state(model.name)
        result.output_snapshot, result.rows_out = state.snapshot_id, state.rows
    return result


def recover_interrupted_runs(lake: Lake) -> None:
    """File the record of every run that was killed before it wrote its manifest, completed with
    the tables it published after its last update (their snapshots carry its run id), marked
    interrupted. A run that changed nothing leaves no record, as when it finishes. The caller
    holds the lake's write lock."""
    for record in records.read_all(lake.storage, UNFINISHED_RUNS):
        recorded = {table["name"] for table in record["tables"]}
        late = [published for model in run_order(load_models()) if model.name not in recorded and (published := _published_by(lake, model, record["run_id"]))]
        record["tables"] += [table.as_dict() for table in late]
        if record["changed"] or late:
            records.write(lake.storage, RUNS, record["run_id"], {**record, "changed": True, "interrupted": True})
        records.delete(lake.storage, UNFINISHED_RUNS, record["run_id"])


def _published_by(lake: Lake, model: Model, run_id: str) -> TableRun | None:
    """The model's table as the run published it, read back from the snapshot the run made."""
    if not lake.has_table(model.name):
        return None
    table = lake.table(model.name)
    made = next((s for s in reversed(table.snapshots()) if s.summary and s.summary.get(RUN_PROPERTY) == run_id), None)
    if made is None:
        return None
    summary = made.summary
    assert summary is not None  # found by the run id its summary holds
    inputs = json.loads(summary.get(INPUTS_PROPERTY, "{}"))
    return TableRun(
        model.name,
        model.zone,
        "built",
        inputs,
        made.snapshot_id,
        rows_in=sum(_rows_at(lake, name, snapshot_id) for name, snapshot_id in inputs.items()),
        rows_out=int(summary.get("total-records", 0)),
        note="published as the run was interrupted: its check results were not recorded",
    )


def _rows_at(lake: Lake, name: str, snapshot_id: int | None) -> int:
    snapshot = lake.table(name).snapshot_by_id(snapshot_id) if snapshot_id else None
    return int(snapshot.summary.get("total-records", 0)) if snapshot and snapshot.summary else 0


def _funnel(lake: Lake, scope: str, replaced: Replaced | None) -> tuple[dict, dict, bool]:
    """The zone funnel, what it counted, and whether it was counted afresh. Counting scans every
    landing row, so when the tables are at the snapshots the last run counted, its funnel is
    reused: a run with nothing new stays cheap however large the lake (counting would be most of a
    no-op run)."""
    over = {"consent_scope": scope, "snapshots": {name: lake.state(name).snapshot_id for name in lake.table_names()}}
    last = latest_run(lake)
    if last and last.get("funnel_over") == over:
        return last["funnel"], over, False
    return funnel(lake, scope, last, replaced), over, True


def latest_run(lake: Lake) -> dict | None:
    """The manifest of the lake's last run that changed something, or None."""
    return records.latest(lake.storage, RUNS)
