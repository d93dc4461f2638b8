"""A table's retained snapshots and the files they reference: what an erasure must rewrite, expire
and delete, and nothing more (SPEC §4, "only what it must").

A snapshot holds a customer when one of the data files its manifests list (live or deleted: a
deleted entry keeps the file's column bounds, which may hold the customer's values) holds a row of
theirs. Those snapshots are expired; every other snapshot stays, so time travel and `export --run`
keep working for everything the erasure did not have to destroy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pyiceberg.io.pyarrow import parquet_file_to_data_file
from pyiceberg.manifest import ManifestEntryStatus
from pyiceberg.table.update.snapshot import ExpireSnapshots

from stedi.errors import LakeError
from stedi.lake import Lake, local_path


@dataclass(frozen=True)
class SnapshotFiles:
    """One retained snapshot of a table and every file it references.

    `live` is what the snapshot reads; `mentioned` adds the deleted entries its manifests still
    list, whose column bounds may hold a forgotten customer's values.
    """

    snapshot_id: int
    committed_ms: int
    manifest_list: str
    manifests: frozenset[str]
    live: frozenset[str]  # the data files the snapshot reads
    mentioned: frozenset[str]  # every data file its manifests list, deleted entries included


def snapshot_files(lake: Lake, name: str) -> list[SnapshotFiles]:
    """Every retained snapshot of the table with the files it references, oldest first."""
    table = lake.table(name)
    found = []
    for snapshot in table.snapshots():
        manifests, live, mentioned = set(), set(), set()
        for manifest in snapshot.manifests(table.io):
            manifests.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
                mentioned.add(entry.data_file.file_path)
                if entry.status != ManifestEntryStatus.DELETED:
                    live.add(entry.data_file.file_path)
        found.append(
            SnapshotFiles(snapshot.snapshot_id, snapshot.timestamp_ms, snapshot.manifest_list, frozenset(manifests), frozenset(live), frozenset(mentioned))
        )
    return found


def rewrite(
    lake: Lake, name: str, properties: dict[str, str], remove: Iterable[str], add: Iterable[str], expire: Iterable[int], table_properties: dict[str, str]
) -> int | None:
    """Expire the `expire` snapshots and set `table_properties`, in one atomic commit; returns the
    current snapshot id after it.

    When the current snapshot is among them, the table first gets a new current snapshot: the
    `remove` data files swapped for the `add` ones, then the live files committed once more, so
    that no manifest of the new snapshot mentions a removed file (a fast append keeps only the
    manifests that list added or existing files, and leaves the manifest of the deleted entries
    behind with the snapshot it expires)."""
    table = lake.table(name)
    to_remove, to_expire = set(remove), set(expire)
    current = table.current_snapshot()
    with table.transaction() as tx:
        tx.set_properties(table_properties)
        if current is not None and current.snapshot_id in to_expire:
            if to_remove:
                with tx.update_snapshot(snapshot_properties=properties).overwrite() as commit:
                    for task in table.scan().plan_files():
                        if task.file.file_path in to_remove:
                            commit.delete_data_file(task.file)
                    for path in add:
                        commit.append_data_file(parquet_file_to_data_file(table.io, tx.table_metadata, path))
                rewritten = tx.table_metadata.current_snapshot_id
                assert rewritten is not None  # the table had a current snapshot, and an overwrite only replaces it
                to_expire.add(rewritten)
            with tx.update_snapshot(snapshot_properties=properties).fast_append():
                pass
        head = tx.table_metadata.current_snapshot_id
        doomed = sorted(s.snapshot_id for s in tx.table_metadata.snapshots if s.snapshot_id in to_expire and s.snapshot_id != head)
        if doomed:
            ExpireSnapshots(tx).by_ids(doomed).commit()
    lake.refresh()
    snapshot = lake.table(name).current_snapshot()
    return snapshot.snapshot_id if snapshot else None


def unreferenced_files(lake: Lake, without_history: Iterable[str] = ()) -> list[str]:
    """Files under the warehouse that no table's current metadata or retained snapshot references:
    data files of expired snapshots, their manifests and manifest lists, leftovers of interrupted
    writes, and the older metadata JSON of the tables `without_history` (an erasure expired some
    of their snapshots; the older metadata of other tables stays). Refuses (LakeError) when a file
    that a retained snapshot reads is not where it is expected, so that a path mismatch can never
    make live files look unreferenced."""
    needed: set[str] = set()
    referenced: set[str] = set()
    drop_history = set(without_history)
    for name in lake.table_names():
        table = lake.table(name)
        needed.add(local_path(table.metadata_location))
        if name not in drop_history:
            referenced |= {local_path(e.metadata_file) for e in table.metadata.metadata_log}
        for snapshot in snapshot_files(lake, name):
            needed |= {local_path(p) for p in (snapshot.manifest_list, *snapshot.manifests, *snapshot.live)}
            referenced |= {local_path(p) for p in snapshot.mentioned}
    on_storage = [info.path for info in lake.storage.walk_files(lake.storage.join("warehouse"))]
    missing = sorted(needed - {local_path(path) for path in on_storage})
    if missing:
        raise LakeError(f"the lake references files that are not in its warehouse, e.g. {missing[0]}; nothing was deleted")
    return [path for path in on_storage if local_path(path) not in needed | referenced]
