"""What the lake holds now and how it got there."""

from __future__ import annotations

from datetime import UTC, datetime

from stedi import records
from stedi.erasure import pending_erasure
from stedi.ingest import LEDGER_TABLE
from stedi.lake import RUN_PROPERTY, Lake
from stedi.query import lake_connection
from stedi.records import RUNS
from stedi.run import latest_run


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def status(lake: Lake) -> dict:
    """Every table with its rows, snapshots, last commit and the run that made it; the last ingest,
    the last run, and an erasure still pending, if any."""
    tables = []
    for name in lake.table_names():
        table = lake.table(name)
        snapshot = table.current_snapshot()
        props = snapshot.summary.additional_properties if snapshot and snapshot.summary else {}
        tables.append(
            {
                "table": name,
                "rows": lake.state(name).rows,
                "snapshots": len(table.snapshots()),
                "last_commit": _utc(snapshot.timestamp_ms) if snapshot else None,
                "run_id": props.get(RUN_PROPERTY),
            }
        )
    last_ingest = None
    if lake.has_table(LEDGER_TABLE) and lake.state(LEDGER_TABLE).files:
        conn = lake_connection(lake)
        row = conn.execute(f"SELECT run_id, count(*), sum(accepted), sum(rejected) FROM {LEDGER_TABLE} GROUP BY run_id ORDER BY run_id DESC LIMIT 1").fetchone()
        conn.close()
        if row is not None:  # none when the ledger's files hold no row
            last_ingest = dict(zip(["run_id", "files", "accepted", "rejected"], row))
    return {"lake": lake.location, "tables": tables, "last_ingest": last_ingest, "last_run": latest_run(lake), "pending_erasure": pending_erasure(lake)}


def history(lake: Lake, name: str) -> list[dict]:
    """A table's snapshots, oldest first, with the run and operation of each."""
    table = lake.table(name)
    rows = []
    for snapshot in table.snapshots():
        summary = snapshot.summary
        rows.append(
            {
                "snapshot_id": snapshot.snapshot_id,
                "committed_at": _utc(snapshot.timestamp_ms),
                "operation": summary.operation.value if summary else None,
                "run_id": summary.additional_properties.get(RUN_PROPERTY) if summary else None,
                "rows": int(summary.get("total-records", 0)) if summary else None,
            }
        )
    return rows


def run_summary(manifest: dict) -> dict:
    """One line of the run history: when, on what, what changed, how the checks went, and the funnel."""
    tables = manifest.get("tables", [])
    checks = [check for table in tables for check in table.get("checks", [])]
    started, finished = manifest.get("started_at"), manifest.get("finished_at")
    duration = (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds() if started and finished else None
    ingest = manifest.get("ingest") or {}
    return {
        "run_id": manifest["run_id"],
        "started_at": started,
        "duration_s": round(duration, 3) if duration is not None else None,
        "engine": manifest.get("engine"),
        "consent_scope": manifest.get("consent_scope"),
        "ok": manifest.get("ok", True),
        "interrupted": bool(manifest.get("interrupted")),
        "files_ingested": sum(feed.get("files_new", 0) for feed in ingest.get("feeds", {}).values()),
        "tables_built": sorted(t["name"] for t in tables if t.get("status") == "built"),
        "tables_failed": sorted(t["name"] for t in tables if t.get("status") == "failed"),
        "checks_passed": sum(1 for c in checks if c.get("passed")),
        "checks_failed": sum(1 for c in checks if not c.get("passed")),
        "funnel": manifest.get("funnel", {}),
    }


def runs(lake: Lake) -> list[dict]:
    """The run history, oldest first: a summary of every run that changed something."""
    return [run_summary(manifest) for manifest in records.read_all(lake.storage, RUNS)]
