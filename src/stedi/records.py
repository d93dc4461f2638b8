"""stedi's own records: small JSON files in `<lake>/_stedi/<kind>/<key>.json`, apart from the tables.

The kinds: the manifest of each run that changed something (`runs`), the manifest of a run while
it runs (`runs-unfinished`, filed by `stedi.run` when the run was killed), and the audit record of
each erasure (`erasures`). Keys are run ids, which sort by time.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stedi.storage import Storage

RUNS = "runs"
UNFINISHED_RUNS = "runs-unfinished"
ERASURES = "erasures"


def _path(storage: Storage, kind: str, key: str) -> str:
    return storage.join("_stedi", kind, f"{key}.json")


def write(storage: Storage, kind: str, key: str, record: dict) -> None:
    """File a record under its kind and key, replacing any record of the same key atomically."""
    storage.write_bytes(_path(storage, kind, key), json.dumps(record, indent=2).encode())


def delete(storage: Storage, kind: str, key: str) -> None:
    """Remove a record; one that is already gone is not an error."""
    storage.delete(_path(storage, kind, key))


def read(storage: Storage, kind: str, key: str) -> dict | None:
    """The record, or None when there is none."""
    path = _path(storage, kind, key)
    return json.loads(storage.read_bytes(path)) if storage.exists(path) else None


def read_all(storage: Storage, kind: str) -> list[dict]:
    """Every record of the kind, oldest first."""
    return [json.loads(storage.read_bytes(_path(storage, kind, key))) for key in sorted(_keys(storage, kind))]


def latest(storage: Storage, kind: str) -> dict | None:
    """The record with the greatest key, read alone: this stays one read however many runs the
    lake has seen."""
    keys = _keys(storage, kind)
    return read(storage, kind, max(keys)) if keys else None


def _keys(storage: Storage, kind: str) -> list[str]:
    folder = storage.join("_stedi", kind)
    if not storage.is_dir(folder):
        return []
    return [name.removesuffix(".json") for name in storage.list_dir(folder) if name.endswith(".json")]
