"""A lake: a root holding an Iceberg warehouse, its catalog and stedi's own small files.

All table writes go through here: the engine writes Parquet files into the table's data folder and
`publish` commits them with pyiceberg, one atomic commit per table.

A lake is self-contained (SPEC §6). Its tables must lie inside its root: a table found elsewhere is
refused with one clear line, never read or written. A lake folder that was moved or copied names
its old place in its catalog and Iceberg metadata; the first command to open it re-roots its tables
(`stedi.relocation`), under the write lock, so the folder then works on its own and never touches
the one it came from. A copy missing some of its files is refused and left as it was.

A local lake is its owner's only (SPEC §6): `_stedi/` and `warehouse/` are 0700 and the catalog
0600, tightened on open when an older stedi or a copy left them looser, and whatever a command
writes into the lake (stedi's records, and the Parquet, Avro and JSON files of DuckDB, pyarrow and
pyiceberg) is created while the umask is 077 (`owner_only_files`).
"""

from __future__ import annotations

import difflib
import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.io.pyarrow import PyArrowFileIO, parquet_file_to_data_file
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.name_mapping import create_mapping_from_schema
from pyiceberg.types import DoubleType, LongType, NestedField, StringType, TimestampType, TimestamptzType

from stedi.catalog import NAMESPACE, lake_exists, open_catalog
from stedi.catalog.sql import CATALOG_FILE, metadata_locations, set_metadata_locations
from stedi.config import is_s3, lake_location, load_config
from stedi.errors import LakeError
from stedi.relocation import Relocation
from stedi.scratch import private_folder
from stedi.secret import load_secret
from stedi.sql import connect
from stedi.storage import LocalStorage, Storage, open_storage
from stedi.storage.local import owner_only_files

# Made private on open: an older stedi made them with the umask's modes, and a copy keeps its modes.
PRIVATE_PATHS = (("_stedi",), ("warehouse",), (CATALOG_FILE,), ("_stedi", "secret"))

ICEBERG_TYPES = {
    "string": StringType(),
    "long": LongType(),
    "double": DoubleType(),
    "timestamp": TimestampType(),
    "timestamptz": TimestamptzType(),
}
ARROW_TYPES = {
    "string": pa.string(),
    "long": pa.int64(),
    "double": pa.float64(),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}

# Snapshot summary keys stedi writes on every commit: who made it and from what.
RUN_PROPERTY = "stedi.run-id"
INPUTS_PROPERTY = "stedi.inputs"
SCOPE_PROPERTY = "stedi.consent-scope"
# Written by `stedi forget` on the snapshot it leaves: which erasure made it, and (when the rows did
# not change) the ids of the expired snapshots that held exactly the same rows.
ERASURE_PROPERTY = "stedi.erasure"
SAME_CONTENT_PROPERTY = "stedi.same-content-as"
BUILT_BY_PROPERTY = "stedi.built-by-run"  # the run whose rows an erasure's snapshot carries on

# An append merges the table's small manifests into one once there are this many, so that planning
# a table that only grows (landing, quarantine, the ledger) reads a bounded number of manifests
# however many ingests it has seen. Without it, every ingest added one manifest to read, forever.
MANIFEST_MERGING = {"commit.manifest-merge.enabled": "true", "commit.manifest.min-count-to-merge": "16"}


@dataclass(frozen=True)
class TableState:
    """What one snapshot of a table holds: its row count, summary properties and data files.

    `snapshot_id` is None for a table with no snapshot yet (see `empty`).
    """

    name: str
    snapshot_id: int | None
    rows: int
    properties: dict[str, str]
    files: tuple[str, ...]

    @classmethod
    def empty(cls, name: str) -> TableState:
        """A table with no snapshot yet."""
        return cls(name, None, 0, {}, ())


def new_run_id() -> str:
    """The id of an ingest, run or erasure: its start time, so ids sort by time."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def run_of_data_file(path: str) -> str:
    """The id of the run that wrote a data file (`Lake.new_data_file` names files after it)."""
    return path.rsplit("/", 1)[-1].split("__", 1)[0]


def local_path(location: str) -> str:
    """A file location as Iceberg metadata writes it (a path or a file:// URI) as a plain path;
    a remote URI (s3://) as it is."""
    if "://" in location and not location.startswith("file://"):
        return location
    return os.path.abspath(location.removeprefix("file://"))


def within(location: str, folder: str) -> bool:
    """Whether a location is the folder or lies under it, compared as text (no link followed)."""
    return location == folder or location.startswith(folder.rstrip("/") + "/")


def lake_root_of(metadata_location: str) -> str | None:
    """The root of the lake a table's metadata file lies in, by the layout of every stedi lake:
    `<root>/warehouse/<namespace>/<table>/metadata/<file>`; None for another layout."""
    parts = metadata_location.removeprefix("file://").split("/")
    if len(parts) > 5 and parts[-2] == "metadata" and parts[-5] == "warehouse":
        return "/".join(parts[:-5])
    return None


def parquet_columns(path: str, storage: Storage | None = None) -> list[tuple[str, str]]:
    """The columns (name, kind) of a Parquet file, local or in `storage`."""

    def kind(arrow_type: pa.DataType) -> str:
        if pa.types.is_timestamp(arrow_type):
            return "timestamptz" if arrow_type.tz else "timestamp"
        if pa.types.is_integer(arrow_type):
            return "long"
        if pa.types.is_floating(arrow_type):
            return "double"
        return "string"

    where, filesystem = storage.arrow_file(path) if storage else (path, None)
    return [(f.name, kind(f.type)) for f in pq.read_schema(where, filesystem=filesystem)]


class Lake:
    """One lake: its storage, its catalog and its tables, at a location or the configured one.

    Raises LakeError when the catalog kind cannot serve the location (Glue needs a lake on S3; a
    lake on S3 cannot keep a SQLite catalog). The catalog is opened, and folders made, when needed.
    """

    def __init__(self, location: str | None = None) -> None:
        self.location = lake_location(location)
        self.storage: Storage = open_storage(self.location, for_lake=True)
        self.config = load_config()
        self.catalog_kind = self.config.catalog_for(self.location)  # sql or glue (stedi.config)
        self.catalog_uri = self.config.catalog_uri
        if self.catalog_kind == "glue" and not is_s3(self.location):
            raise LakeError(f"the Glue catalog needs a lake on S3 (s3://bucket/prefix), not {self.location}")
        if self.catalog_kind == "sql" and is_s3(self.location) and not self.catalog_uri:
            raise LakeError(
                "a lake on S3 keeps its catalog in AWS Glue (STEDI_CATALOG=glue) or in a SQL database named by STEDI_CATALOG_URI; SQLite cannot live in S3"
            )
        self._loaded: dict[str, Table] = {}
        self.interrupted_before = False  # set by `writing`
        self._states: dict[tuple[str, int], TableState] = {}
        self._locked = False  # this process holds the lake's write lock

    # ---- layout -------------------------------------------------------------------------------
    @property
    def meta_dir(self) -> str:
        """The folder of stedi's own files beside the warehouse: records, lock and secret."""
        return self.storage.join("_stedi")

    def exists(self) -> bool:
        """Whether the catalog knows this lake; asking creates nothing."""
        return lake_exists(self.catalog_kind, self.storage, self.config)

    def create(self) -> None:
        """Make the lake's warehouse and `_stedi` folders, private, where they are missing.

        Raises LakeError when they cannot be made or a local lake folder is not writable.
        """
        try:
            self.storage.make_dirs(self.storage.join("warehouse"))
            self.storage.make_dirs(self.meta_dir)
            self._keep_private()
        except OSError as error:
            raise LakeError(f"cannot create the lake at {self.location}: {error.strerror}") from None
        if isinstance(self.storage, LocalStorage) and not os.access(self.storage.root, os.W_OK):
            raise LakeError(f"the lake folder {self.location} is not writable")

    def require(self) -> None:
        """Raise LakeError, naming the commands that make a lake, when there is none here."""
        if not self.exists():
            raise LakeError(f"no lake at {self.location}: run `stedi ingest SOURCE` or `stedi run SOURCE` first")

    def _keep_private(self) -> None:
        for parts in PRIVATE_PATHS:
            self.storage.make_private(self.storage.join(*parts))

    def holds(self, location: str) -> bool:
        """Whether a file location lies inside this lake (through whatever symbolic links)."""
        if isinstance(self.storage, LocalStorage):
            return within(os.path.realpath(local_path(location)), os.path.realpath(self.storage.root))
        return within(location, self.storage.root)

    def settings(self) -> dict:
        """The lake's own settings (`_stedi/settings.json`): the consent scope, the demo's source."""
        path = self.storage.join("_stedi", "settings.json")
        return json.loads(self.storage.read_bytes(path)) if self.storage.exists(path) else {}

    def update_settings(self, **values: object) -> None:
        """Change some of the lake's settings, keeping the others."""
        settings = self.settings()
        if any(settings.get(key) != value for key, value in values.items()):
            self.storage.write_bytes(self.storage.join("_stedi", "settings.json"), json.dumps({**settings, **values}).encode())

    @cached_property
    def catalog(self) -> Catalog:
        """The lake's catalog, opened once, with the `stedi` namespace.

        A folder's own SQLite catalog is made private on open and, if the folder was moved or
        copied, its tables are re-rooted first (LakeError when that cannot be done whole).
        """
        catalog = open_catalog(self.catalog_kind, self.storage, self.config)
        if self.catalog_kind == "sql" and not self.catalog_uri:  # the catalog is the folder's own: it moved with it
            self._keep_private()
            self._reroot(catalog)
        return catalog

    @contextmanager
    def writing(self, wait: bool = False) -> Iterator[None]:
        """Held for the whole of an ingest, a run or an erasure, so two writers never interleave.

        A marker file lives as long as a writer works: found by the next writer, it says that the
        last one was killed or failed, and may have left files no table references
        (`interrupted_before`; `stedi.recovery` sweeps them)."""
        with owner_only_files():
            self.create()
            with self._exclusive(wait):
                self.refresh()  # another process may have committed before we got the lock
                _ = self.catalog  # opened first: a moved lake is re-rooted, or refused, before anything is written
                marker = self.storage.join("_stedi", "writing")
                self.interrupted_before = self.storage.exists(marker)
                self.storage.write_bytes(marker, str(os.getpid()).encode(), private=True)
                yield
                self.storage.delete(marker)

    @contextmanager
    def _exclusive(self, wait: bool) -> Iterator[None]:
        """The lake's write lock, taken once however often this process asks for it."""
        if self._locked:
            yield
            return
        with self.storage.exclusive_lock(self.storage.join("_stedi", "lock"), wait=wait):
            self._locked = True
            try:
                yield
            finally:
                self._locked = False

    # ---- a moved or copied lake folder ----------------------------------------------------------
    def _reroot(self, catalog: Catalog) -> None:
        """Re-root the tables that the catalog places outside this folder (see the module docstring):
        every one or none, in one catalog transaction."""
        if all(self.holds(location) for location in metadata_locations(catalog).values()):
            return
        with owner_only_files(), self._exclusive(wait=True):
            strays = {name: location for name, location in metadata_locations(catalog).items() if not self.holds(location)}
            relocations = {name: self._relocation(name, location) for name, location in strays.items()}
            set_metadata_locations(catalog, {name: (relocation.write(), relocation.move(relocation.previous)) for name, relocation in relocations.items()})

    def _relocation(self, name: str, metadata_location: str) -> Relocation:
        """The table's metadata tree, read from this folder, ready to be written re-rooted."""
        old_root = lake_root_of(metadata_location)
        if old_root is None:
            raise LakeError(
                f"the table '{name}' of the lake at {self.location} is kept at {metadata_location}, "
                "outside the lake; stedi reads and writes only a lake's own tables"
            )
        try:
            return Relocation(PyArrowFileIO(), metadata_location, self._mover(old_root))
        except FileNotFoundError as missing:
            raise LakeError(
                f"the lake at {self.location} was moved or copied from {old_root}, but not whole: "
                f"{missing.filename} is missing; nothing was changed (copy the whole lake folder)"
            ) from None

    def _mover(self, old_root: str) -> Callable[[str], str]:
        """Where a location of a table that lay under `old_root` is now, as a plain path."""
        root = self.storage.root

        def move(location: str) -> str:
            path = location.removeprefix("file://")
            if self.holds(path):
                return path
            if within(path, old_root):
                return root + path[len(old_root) :]
            raise LakeError(
                f"the lake at {self.location}, moved or copied from {old_root}, has a table file outside both folders ({location}); nothing was changed"
            )

        return move

    @cached_property
    def secret(self) -> bytes:
        """The lake's key for pseudonyms and tombstones, kept out of every table (`stedi.secret`)."""
        return load_secret(self.storage)

    def connect(self):
        """A fresh DuckDB connection that spills to this process's scratch folder and reaches the
        lake's data files (`stedi.sql.connect`)."""
        return connect(self.scratch, self.storage)

    @cached_property
    def scratch(self) -> str:
        """This process's private folder for the engines' spill files (see `stedi.scratch`)."""
        if isinstance(self.storage, LocalStorage):
            try:
                return private_folder(self.storage.join("_stedi", "scratch"))
            except OSError:  # a lake this user may read but not write: nothing of it spills there
                pass
        return private_folder(None)

    # ---- tables -------------------------------------------------------------------------------
    def table_names(self) -> list[str]:
        """Names of the lake's tables, sorted."""
        return sorted(name for _, name in self.catalog.list_tables(NAMESPACE))

    def has_table(self, name: str) -> bool:
        """Whether the lake has a table of that name, loaded or in the catalog."""
        return name in self._loaded or self.catalog.table_exists((NAMESPACE, name))

    def table(self, name: str) -> Table:
        """The table as last loaded by this process; `publish` reloads it, and the write lock
        guarantees no other process commits meanwhile."""
        if name not in self._loaded:
            try:
                table = self.catalog.load_table((NAMESPACE, name))
            except NoSuchTableError:
                close = difflib.get_close_matches(name, self.table_names(), n=1)
                hint = f": did you mean '{close[0]}'?" if close else f"; it has {', '.join(self.table_names()) or 'no tables yet'}"
                raise LakeError(f"no table '{name}' in the lake at {self.location}{hint}") from None
            if not self.holds(table.metadata_location):  # a catalog shared with another lake
                raise LakeError(
                    f"the table '{name}' is kept at {table.location()}, outside the lake at {self.location}; stedi reads and writes only a lake's own tables"
                )
            self._loaded[name] = table
        return self._loaded[name]

    def refresh(self) -> None:
        """Forget the tables loaded so far: the next use reads each from the catalog again."""
        self._loaded.clear()

    def ensure_table_like(self, name: str, parquet_file: str) -> Table:
        """The table, created with the columns of a Parquet file if it does not exist yet."""
        return self.ensure_table(name, parquet_columns(parquet_file, self.storage))

    def ensure_table(self, name: str, columns: Iterable[tuple[str, str]]) -> Table:
        """The table, created with these (name, kind) columns if it does not exist yet.

        Every column is optional, and Parquet columns are matched by name: DuckDB and Spark write no
        Iceberg field ids. A kind is a key of ICEBERG_TYPES.
        """
        if self.has_table(name):
            return self.table(name)
        schema = Schema(*(NestedField(i, col, ICEBERG_TYPES[kind], required=False) for i, (col, kind) in enumerate(columns, 1)))
        self._loaded[name] = self.catalog.create_table(
            (NAMESPACE, name),
            schema=schema,
            # Parquet written by DuckDB or Spark carries no Iceberg field ids: columns are matched by name.
            properties={"schema.name-mapping.default": create_mapping_from_schema(schema).model_dump_json(), **MANIFEST_MERGING},
        )
        return self._loaded[name]

    def state(self, name: str, snapshot_id: int | None = None) -> TableState:
        """What the table's current snapshot, or the given one, holds.

        Raises LakeError for a snapshot that is no longer retained. A snapshot never changes, so its
        files are planned once per process.
        """
        table = self.table(name)
        snapshot = table.snapshot_by_id(snapshot_id) if snapshot_id else table.current_snapshot()
        if snapshot_id and snapshot is None:
            raise LakeError(f"snapshot {snapshot_id} of '{name}' is no longer retained")
        if snapshot is None:
            return TableState.empty(name)
        key = (name, snapshot.snapshot_id)
        if key not in self._states:  # a snapshot never changes: plan its files once
            try:
                tasks = list(table.scan(snapshot_id=snapshot.snapshot_id).plan_files())
            except ValueError as error:  # pyiceberg plans no equality delete
                if "equality deletes" not in str(error):
                    raise
                raise self._row_level_deletes(name) from None
            if any(task.delete_files for task in tasks):
                raise self._row_level_deletes(name)
            files = tuple(task.file.file_path for task in tasks)
            summary = snapshot.summary
            rows = int(summary.get("total-records", 0)) if summary else 0
            properties = dict(summary.additional_properties) if summary else {}
            self._states[key] = TableState(name, snapshot.snapshot_id, rows, properties, files)
        return self._states[key]

    def _row_level_deletes(self, name: str) -> LakeError:
        """The refusal to read a table that another engine deleted rows of in place (Athena's DELETE
        and UPDATE write Iceberg delete files): stedi reads data files whole, so it would bring the
        deleted rows back, and the tables built from them."""
        return LakeError(
            f"the table '{name}' of the lake at {self.location} holds row-level deletes (Iceberg delete files, as Athena's "
            "DELETE and UPDATE write them), which stedi does not apply: reading it would bring the deleted rows back. "
            f"Merge them into its data files first (in Athena: OPTIMIZE {NAMESPACE}.{name} REWRITE DATA USING BIN_PACK), then run the command again"
        )

    def columns(self, name: str) -> tuple[tuple[str, str], ...]:
        """The table's columns as (name, kind), each kind a key of ICEBERG_TYPES."""
        kinds = {str(t): kind for kind, t in ICEBERG_TYPES.items()}
        return tuple((f.name, kinds[str(f.field_type)]) for f in self.table(name).schema().fields)

    def new_data_file(self, name: str, run_id: str) -> str:
        """A fresh Parquet path inside the table's data folder, named after the run that writes it.

        The table need not exist yet: a model's first output decides its schema.
        """
        location = self.table(name).location() if self.has_table(name) else self.storage.join("warehouse", f"{NAMESPACE}.db", name)
        folder = location.removeprefix("file://") + "/data"
        self.storage.make_dirs(folder)
        return f"{folder}/{run_id}__{uuid.uuid4().hex[:12]}.parquet"

    def write_parquet(self, table: pa.Table, path: str) -> None:
        """Write rows as a data file at a path from `new_data_file` (local or in the lake's bucket)."""
        where, filesystem = self.storage.arrow_file(path)
        pq.write_table(table, where, filesystem=filesystem, compression="zstd")

    def publish(
        self,
        name: str,
        files: list[str],
        properties: dict[str, str],
        replace: bool = False,
        remove: Iterable[str] = (),
    ) -> int:
        """Commit new Parquet files to a table in one atomic Iceberg commit; returns the snapshot id.

        `replace` swaps the table's whole content for `files`; `remove` drops just those data files
        (the files a replacement rewrote, or an interrupted ingest's).
        """
        table = self.table(name)
        to_remove = set(remove)
        current = list(table.scan().plan_files()) if (replace or to_remove) and table.current_snapshot() else []
        with table.transaction() as tx:
            if any(table.properties.get(key) != value for key, value in MANIFEST_MERGING.items()):
                tx.set_properties(MANIFEST_MERGING)  # a table made before appends merged manifests
            update = tx.update_snapshot(snapshot_properties=properties)
            producer = update.overwrite() if current else update.merge_append()
            with producer as commit:
                for task in current:
                    if replace or task.file.file_path in to_remove:
                        commit.delete_data_file(task.file)
                for path in files:
                    commit.append_data_file(parquet_file_to_data_file(table.io, tx.table_metadata, path))
        self._loaded.pop(name, None)
        snapshot = self.table(name).current_snapshot()
        assert snapshot is not None
        return snapshot.snapshot_id
