"""What the report shows, read from the lake: plain values, escaped only when the page renders them.

Everything is read through the Python API (`stedi.api.Lakehouse`) and its read-only queries, except
the offending rows of a failed check, which need the check's own SQL (`stedi.run.offending_rows`).
Customers appear only as counts, and in the sensor trace as their pseudonymous key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import stedi
from stedi.api import Lakehouse
from stedi.contract import FEEDS, Feed
from stedi.ingest import LEDGER_TABLE
from stedi.models import LANDING_TABLES, Model, load_models, run_order

SAMPLES = 3  # sample lines per quarantine reason, offending rows per failed check
SAMPLE_CHARS = 300  # a sample line is cut after this many characters
TRACE_POINTS = 200  # the first readings of the customer in the sensor trace: a session or two


@dataclass
class CheckFacts:
    """One check of the last run on one table, with a few offending rows if it failed."""

    table: str
    name: str
    severity: str
    violations: int
    judged: str
    passed: bool
    columns: list[str] = field(default_factory=list)
    samples: list[list[object]] = field(default_factory=list)
    sample_note: str = ""


@dataclass
class Facts:
    """Everything the page shows about one lake."""

    location: str
    generated_at: str
    version: str
    tables: list[dict]
    last_run: dict | None
    funnel: dict
    lineage: list[tuple[str, str, list[str]]]  # (table, zone, the tables it reads), in run order
    checks: list[CheckFacts]
    quarantine: list[dict]  # feed, reason, lines, samples
    drift: list[dict]  # feed, field, rows, first_seen
    runs: list[dict]
    rows_per_run: dict[str, list[int | None]]  # table: rows after each run in `runs`
    consent: dict[str, list]  # day, consenting (cumulative), revocations
    trace: dict[str, list]  # customer_key, timestamp, x, y, z, distanceFromObject


def gather(lake: Lakehouse) -> Facts:
    """Read the report's facts from the lake."""
    models = load_models()
    order = run_order(models)
    runs = lake.runs()
    manifests = [lake.run(summary["run_id"]) for summary in runs]  # each read once, oldest first
    manifest = manifests[-1] if manifests else None
    return Facts(
        location=lake.location,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        version=stedi.__version__,
        tables=_tables(lake, models, manifests),
        last_run=manifest,
        funnel=manifest["funnel"] if manifest else {},
        lineage=[(model.name, model.zone, sorted(model.reads)) for model in order],
        checks=_checks(lake, models, manifest),
        quarantine=_quarantine(lake),
        drift=_drift(lake),
        runs=runs,
        rows_per_run=_rows_per_run([m.name for m in order], manifests),
        consent=_consent(lake),
        trace=_trace(lake),
    )


def zone_of(table: str, models: tuple[Model, ...]) -> str:
    """The zone a table belongs to: a model's own, landing, quarantine or the ingest ledger."""
    by_name = {m.name: m.zone for m in models}
    if table in by_name:
        return by_name[table]
    if table in LANDING_TABLES:
        return "landing"
    if table.endswith("_rejected"):
        return "quarantine"
    return "ledger" if table == LEDGER_TABLE else "other"


def _tables(lake: Lakehouse, models: tuple[Model, ...], manifests: list[dict]) -> list[dict]:
    """Each table with its zone, rows, snapshots, last change, run, and how that run built it."""
    notes = {}
    for manifest in manifests:
        for table in manifest["tables"]:
            if table["status"] in ("built", "failed"):
                notes[table["name"]] = table.get("note", "")
    zones = ["landing", "quarantine", "ledger", "trusted", "curated", "other"]
    rows = [{**t, "zone": zone_of(t["table"], models), "how": notes.get(t["table"], "")} for t in lake.status()["tables"]]
    return sorted(rows, key=lambda t: (zones.index(t["zone"]) if t["zone"] in zones else len(zones), t["table"]))


def _checks(lake: Lakehouse, models: tuple[Model, ...], manifest: dict | None) -> list[CheckFacts]:
    if not manifest:
        return []
    by_name = {m.name: m for m in models}
    found = []
    for table in manifest["tables"]:
        for check in table.get("checks", []):
            facts = CheckFacts(table["name"], check["name"], check["severity"], check["violations"], check.get("judged", "all rows"), check["passed"])
            if not facts.passed and table["name"] in by_name:
                _add_offending_rows(lake, by_name[table["name"]], facts, table["status"])
            found.append(facts)
    return found


def _add_offending_rows(lake: Lakehouse, model: Model, facts: CheckFacts, status: str) -> None:
    """A failed check's offending rows, as the published table holds them. A table that failed a
    blocking check was not published: its rows were thrown away, and the published table is the
    one from before, which passed."""
    rows = lake.failing_rows(model.name, facts.name, SAMPLES)
    if status == "failed":
        facts.sample_note = "the table was not published: the rows that broke the rule were not kept; the published table is the previous one"
    if rows is None or not rows.num_rows:
        facts.sample_note = facts.sample_note or "this check counts no rows to show"
        return
    facts.columns = rows.column_names
    facts.samples = [[_cut(value) for value in row.values()] for row in rows.to_pylist()]


def _cut(value: object) -> object:
    text = value if isinstance(value, str) else None
    return text[:SAMPLE_CHARS] + "…" if text is not None and len(text) > SAMPLE_CHARS else value


def _per_feed(lake: Lakehouse, table_of: Callable[[Feed], str], sql: str) -> list[dict]:
    """The rows of `sql` (its table as `{table}`) over each feed's table that exists, with the feed's name."""
    return [{"feed": feed.name, **row} for feed in FEEDS if table_of(feed) in lake.tables() for row in lake.query(sql.format(table=table_of(feed))).to_pylist()]


def _quarantine(lake: Lakehouse) -> list[dict]:
    """Each feed's quarantine reasons, with their lines and a few samples."""
    sql = f"""
        SELECT reason, count(*) AS lines, list(raw ORDER BY _source_file, _source_line)[1:{SAMPLES}] AS samples
        FROM {{table}} WHERE raw IS NOT NULL GROUP BY reason ORDER BY lines DESC, reason"""
    return [{**row, "samples": [_cut(s) for s in row["samples"]]} for row in _per_feed(lake, lambda feed: feed.rejected_table, sql)]


def _drift(lake: Lakehouse) -> list[dict]:
    """The fields seen in `_extra` (fields the contract does not know), per feed."""
    sql = """
        SELECT field, count(*) AS rows, CAST(min(_ingested_at) AS VARCHAR)[:19] AS first_seen
        FROM (SELECT unnest(json_keys(_extra)) AS field, _ingested_at FROM {table} WHERE _extra IS NOT NULL)
        GROUP BY field ORDER BY rows DESC, field"""
    return _per_feed(lake, lambda feed: feed.landing_table, sql)


def _rows_per_run(tables: list[str], manifests: list[dict]) -> dict[str, list[int | None]]:
    rows: dict[str, list[int | None]] = {name: [] for name in tables}
    for manifest in manifests:
        after = {t["name"]: t.get("rows_out") for t in manifest["tables"] if t["status"] != "not selected"}
        for name in tables:
            rows[name].append(after.get(name))
    return rows


def _consent(lake: Lakehouse) -> dict[str, list]:
    """Per day: customers consenting by then (as customer_trusted stands) and consents revoked that
    day (a customer whose latest record withdrew the consent an earlier one gave)."""
    if "customer_trusted" not in lake.tables():
        return {"day": [], "consenting": [], "revocations": []}
    sql = """
        WITH grants AS (
            SELECT CAST(to_timestamp(shareWithResearchAsOfDate / 1000) AS DATE) AS day, count(*) AS n
            FROM customer_trusted GROUP BY 1),
        records AS (
            SELECT lower(trim(email)) AS customer, lastUpdateDate, shareWithResearchAsOfDate IS NOT NULL AS consents,
                   row_number() OVER (PARTITION BY lower(trim(email)) ORDER BY lastUpdateDate DESC) AS newest
            FROM customer_landing WHERE email IS NOT NULL),
        revoked AS (
            SELECT CAST(to_timestamp(latest.lastUpdateDate / 1000) AS DATE) AS day, count(*) AS n
            FROM records AS latest
            WHERE latest.newest = 1 AND NOT latest.consents
              AND EXISTS (SELECT 1 FROM records AS earlier WHERE earlier.customer = latest.customer AND earlier.consents)
            GROUP BY 1),
        days AS (SELECT day FROM grants UNION SELECT day FROM revoked)
        SELECT CAST(days.day AS VARCHAR) AS day,
               CAST(sum(coalesce(grants.n, 0)) OVER (ORDER BY days.day) AS BIGINT) AS consenting,
               coalesce(revoked.n, 0) AS revocations
        FROM days LEFT JOIN grants USING (day) LEFT JOIN revoked USING (day) ORDER BY days.day"""
    return lake.query(sql).to_pydict()


def _trace(lake: Lakehouse) -> dict[str, list]:
    """The readings of the pseudonymous customer with the most training rows, in time order."""
    if "machine_learning_curated" not in lake.tables():
        return {}
    sql = f"""
        WITH chosen AS (
            SELECT customer_key FROM machine_learning_curated GROUP BY customer_key ORDER BY count(*) DESC, customer_key LIMIT 1)
        SELECT customer_key, timestamp, x, y, z, distanceFromObject FROM machine_learning_curated
        WHERE customer_key IN (SELECT customer_key FROM chosen) ORDER BY timestamp LIMIT {TRACE_POINTS}"""
    return lake.query(sql).to_pydict()
