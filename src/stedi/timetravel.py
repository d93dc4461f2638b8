"""Time travel within the snapshots the lake retains (SPEC §5), and clear answers for the others.

`stedi forget` expires every snapshot but the current one (the erased rows must be physically
gone); its audit record lists each expired snapshot, so a request for one of them is answered with
the erasure that expired it rather than with a bare "not found". When an erasure only re-committed a
table without changing its rows, the new snapshot names the expired ones it stands for
(SAME_CONTENT_PROPERTY), and they are served from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from stedi import records
from stedi.errors import ExpiredSnapshotError, LakeError
from stedi.lake import SAME_CONTENT_PROPERTY, Lake
from stedi.query import query_lake
from stedi.records import ERASURES


@dataclass(frozen=True)
class Expiry:
    """An erasure that expired a table's older snapshots: past it, time travel cannot go back."""

    erasure_id: str
    finished_at: str
    committed_ms: int


def parse_time(text: str) -> int:
    """An instant as epoch milliseconds: ISO 8601 (`2024-05-01`, `2024-05-01T12:00:00`, with `Z` or
    an offset; without one it is UTC, as `stedi history` prints it) or epoch milliseconds."""
    value = text.strip()
    if value.isascii() and value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise LakeError(f"cannot read the time '{text}': give ISO 8601 such as 2024-05-01T12:00:00Z (UTC when no offset) or epoch milliseconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def utc_text(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 text in UTC, to the millisecond, with a `Z`."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def expiries(lake: Lake, name: str) -> dict[int, Expiry]:
    """The snapshots of a table that erasures expired, by id."""
    found: dict[int, Expiry] = {}
    for record in records.read_all(lake.storage, ERASURES):
        for entry in record.get("expired_snapshots", {}).get(name, []):
            found[entry["snapshot_id"]] = Expiry(record["erasure_id"], record.get("finished_at", ""), entry["committed_ms"])
    return found


def retained_snapshot(lake: Lake, name: str, snapshot_id: int) -> int:
    """A retained snapshot holding the rows of `snapshot_id`: itself, or the snapshot an erasure
    re-committed them under. Raises ExpiredSnapshotError when the rows are gone."""
    table = lake.table(name)
    if table.snapshot_by_id(snapshot_id) is not None:
        return snapshot_id
    for snapshot in table.snapshots():
        same = json.loads((snapshot.summary.additional_properties if snapshot.summary else {}).get(SAME_CONTENT_PROPERTY, "[]"))
        if snapshot_id in same:
            return snapshot.snapshot_id
    expiry = expiries(lake, name).get(snapshot_id)
    if expiry:
        raise ExpiredSnapshotError(
            f"snapshot {snapshot_id} of {name} was expired by the erasure {expiry.erasure_id} "
            f"(stedi forget, {expiry.finished_at}): the data it held is gone and cannot be read any more"
        )
    raise ExpiredSnapshotError(f"snapshot {snapshot_id} of {name} is not retained by the lake")


def snapshot_as_of(lake: Lake, name: str, when_ms: int) -> int | None:
    """The retained snapshot holding the rows a table had at `when_ms`; None when the table had
    no snapshot yet then. Raises ExpiredSnapshotError when that state was expired."""
    table = lake.table(name)
    # (committed at, retained?, id): on a tie of milliseconds the retained snapshot is the later one.
    known = [(entry.timestamp_ms, 1, entry.snapshot_id) for entry in table.metadata.snapshot_log]
    known += [(expiry.committed_ms, 0, snapshot_id) for snapshot_id, expiry in expiries(lake, name).items()]
    earlier = [item for item in known if item[0] <= when_ms]
    if not earlier:
        return None
    _, _, snapshot_id = max(earlier)
    return retained_snapshot(lake, name, snapshot_id)


def snapshots_as_of(lake: Lake, when_ms: int) -> dict[str, int | None]:
    """Each table's snapshot current at `when_ms` (None for a table that did not exist yet)."""
    return {name: snapshot_as_of(lake, name, when_ms) for name in lake.table_names()}


def query_lake_as_of(lake: Lake, sql: str, when_ms: int) -> tuple[list[str], list[tuple]]:
    """Run a read-only query against the lake as it was at `when_ms`."""
    return query_lake(lake, sql, snapshots_as_of(lake, when_ms))
