"""`stedi export OUT`: machine_learning_curated as files, with a manifest that says which data it is.

The manifest names the run and the snapshots the rows came from (the ML table's and, from the run
manifest, every input's), the consent scope, the schema, the row count and a content hash that does
not depend on row order — enough to say later which data trained a model, and to rebuild it with
`--run` or `--as-of`. `--split-by-customer` puts every customer wholly in train or in test.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

import stedi
from stedi import records
from stedi.config import EXPORT_FORMATS
from stedi.erasure import pending_erasure
from stedi.errors import ExportError, LakeError
from stedi.lake import BUILT_BY_PROPERTY, ERASURE_PROPERTY, INPUTS_PROPERTY, RUN_PROPERTY, SCOPE_PROPERTY, Lake
from stedi.records import RUNS
from stedi.sql import TableInput, literal, one_row, quote, register_tables
from stedi.timetravel import parse_time, retained_snapshot, snapshot_as_of, utc_text

ML_TABLE = "machine_learning_curated"
ROW_SEPARATOR = "\x1f"
HASH_METHOD = (
    "sha256 of the concatenated, sorted, lower-case hex sha256 digests of the rows; a row is its "
    "values cast to text by DuckDB in schema order, NULL as \\N, joined with U+001F"
)


@dataclass(frozen=True)
class Source:
    """The snapshot of machine_learning_curated an export reads, and the run it belongs to.

    `requested_snapshot_id` is the one asked for; `snapshot_id` the retained one holding its rows,
    which differs when an erasure re-committed the same rows under a new snapshot.
    """

    snapshot_id: int
    requested_snapshot_id: int
    run: dict | None  # the run manifest the snapshot is tied to, if the lake has it
    run_id: str | None


def _ml_entry(run: dict) -> dict | None:
    return next((t for t in run.get("tables", []) if t.get("name") == ML_TABLE), None)


def resolve(lake: Lake, run_id: str | None = None, as_of: str | None = None) -> Source:
    """Which snapshot of machine_learning_curated to export, and the run it belongs to."""
    if run_id and as_of:
        raise ExportError("give --run or --as-of, not both")
    if not lake.has_table(ML_TABLE):
        raise LakeError(f"the lake has no {ML_TABLE} yet: run `stedi run SOURCE` first")
    table = lake.table(ML_TABLE)
    if run_id:
        run = records.read(lake.storage, RUNS, run_id)
        if run is None:
            raise LakeError(f"no run '{run_id}' in the lake: `stedi status` shows the last run, `stedi history {ML_TABLE}` the runs that built it")
        entry = _ml_entry(run)
        if not entry or entry.get("output_snapshot") is None:
            raise LakeError(f"run {run_id} published no {ML_TABLE}")
        requested = int(entry["output_snapshot"])
        return Source(retained_snapshot(lake, ML_TABLE, requested), requested, run, run_id)
    if as_of:
        when = parse_time(as_of)
        found = snapshot_as_of(lake, ML_TABLE, when)
        if found is None:
            raise LakeError(f"{ML_TABLE} had no snapshot yet at {utc_text(when)}")
        snapshot_id = found
    else:
        current = table.current_snapshot()
        if current is None:
            raise LakeError(f"{ML_TABLE} has no snapshot yet: run `stedi run` first")
        snapshot_id = current.snapshot_id
    properties = lake.state(ML_TABLE, snapshot_id).properties
    built_by = properties.get(BUILT_BY_PROPERTY) or properties.get(RUN_PROPERTY)
    run = records.read(lake.storage, RUNS, built_by) if built_by else None
    return Source(snapshot_id, snapshot_id, run, built_by)


def content_hash(conn: duckdb.DuckDBPyConnection, relation: str, columns: list[str]) -> tuple[int, str]:
    """Row count and an order-independent hash of a relation's rows (see HASH_METHOD)."""
    row_text = " || chr(31) || ".join(f"coalesce(CAST({quote(c)} AS VARCHAR), '\\N')" for c in columns)
    count, digest = one_row(conn, f"SELECT count(*), sha256(coalesce(string_agg(h, '' ORDER BY h), '')) FROM (SELECT sha256({row_text}) AS h FROM {relation})")
    return count, digest


def split_sides(keys: list[str], fraction: float, seed: int) -> dict[str, str]:
    """train or test for each customer_key: a keyed hash of (seed, key) below the fraction is train."""
    sides = {}
    for key in keys:
        point = int.from_bytes(hashlib.sha256(f"{seed}|{key}".encode()).digest()[:8], "big") / 2**64
        sides[key] = "train" if point < fraction else "test"
    return sides


def _prepare_out(out: str) -> Path:
    folder = Path(out)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ExportError(f"{out} already exists and is not an empty folder: export into a new folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ExportError(f"cannot create the export folder {out}: {error.strerror}") from None
    return folder


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class TrainingData:
    """The training data of one run in memory: what `stedi export` writes, with its manifest.

    `parts` maps the file stem to its rows: `machine_learning_curated`, or `train` and `test` when
    split by customer. The manifest is the one the export writes, without the file entries' names
    and file hashes (there are no files)."""

    parts: dict[str, pa.Table]
    manifest: dict

    @property
    def table(self) -> pa.Table:
        """Every row, whether split or not."""
        return pa.concat_tables(self.parts.values())

    @property
    def train(self) -> pa.Table:
        """The train side of a split by customer."""
        return self._side("train")

    @property
    def test(self) -> pa.Table:
        """The test side of a split by customer."""
        return self._side("test")

    def _side(self, side: str) -> pa.Table:
        if side not in self.parts:
            raise ExportError("the training data is not split: give split_by_customer=FRACTION")
        return self.parts[side]


@dataclass
class _Selection:
    """The snapshot an export reads, open in a DuckDB connection: the relation of each part (by
    file stem) and the manifest so far."""

    conn: duckdb.DuckDBPyConnection
    relations: dict[str, str]
    order: str
    names: list[str]
    manifest: dict

    def part(self, relation: str) -> dict:
        """Rows, customers and content hash of one part."""
        count, digest = content_hash(self.conn, relation, self.names)
        (customers,) = one_row(self.conn, f"SELECT count(DISTINCT customer_key) FROM {relation}")
        return {"rows": count, "customers": customers, "content_sha256": digest}


def _select(lake: Lake, run_id: str | None, as_of: str | None, split: float | None, seed: int) -> _Selection:
    lake.require()
    if split is not None and not 0 < split < 1:
        raise ExportError(f"--split-by-customer must be a fraction between 0 and 1 (exclusive), not {split}")
    if pending_erasure(lake):
        raise ExportError(
            f"the erasure {pending_erasure(lake)} is unfinished, and the training data may still hold its "
            "customers: `stedi forget` or `stedi run` finishes it, then export"
        )
    source = resolve(lake, run_id, as_of)
    state = lake.state(ML_TABLE, source.snapshot_id)
    columns = lake.columns(ML_TABLE)
    names = [name for name, _ in columns]
    conn = lake.connect()
    register_tables(conn, {ML_TABLE: TableInput(state.files, columns)})
    rows, digest = content_hash(conn, ML_TABLE, names)
    (customers,) = one_row(conn, f"SELECT count(DISTINCT customer_key) FROM {ML_TABLE}")

    relations = {ML_TABLE: ML_TABLE}
    split_info = None
    if split is not None:
        keys = sorted(k for (k,) in conn.execute(f"SELECT DISTINCT customer_key FROM {ML_TABLE}").fetchall())
        sides = split_sides(keys, split, seed)
        conn.register("customer_sides", pa.table({"customer_key": list(sides), "side": list(sides.values())}))
        relations = {side: f"(SELECT m.* FROM {ML_TABLE} AS m JOIN customer_sides USING (customer_key) WHERE side = '{side}')" for side in ("train", "test")}
        split_info = {"by": "customer_key", "train_fraction": split, "seed": seed}

    snapshot = lake.table(ML_TABLE).snapshot_by_id(source.snapshot_id)
    properties = state.properties
    run = source.run or {}
    entry = _ml_entry(run) if run else None
    inputs = entry.get("inputs") if entry else json.loads(properties.get(INPUTS_PROPERTY, "{}"))
    manifest = {
        "table": ML_TABLE,
        "run_id": source.run_id,
        "snapshot_id": source.snapshot_id,
        "snapshot_committed_at": utc_text(snapshot.timestamp_ms) if snapshot else None,
        "inputs": inputs,
        "run_tables": {t["name"]: {"output_snapshot": t.get("output_snapshot"), "inputs": t.get("inputs", {})} for t in run.get("tables", [])},
        "consent_scope": properties.get(SCOPE_PROPERTY) or run.get("consent_scope"),
        "schema": [{"name": name, "type": kind} for name, kind in columns],
        "rows": rows,
        "customers": customers,
        "content_sha256": digest,
        "content_hash_method": HASH_METHOD,
        "files": [],
        "split": split_info,
        "exported_at": datetime.now(UTC).isoformat(),
        "stedi_version": getattr(stedi, "__version__", None),
        "lake": lake.location,
    }
    if source.requested_snapshot_id != source.snapshot_id:
        manifest["requested_snapshot_id"] = source.requested_snapshot_id
        manifest["note"] = "the requested snapshot was re-committed unchanged by an erasure; its rows are served from snapshot_id"
    if ERASURE_PROPERTY in properties:
        manifest["erasure"] = properties[ERASURE_PROPERTY]
    return _Selection(conn, relations, ", ".join(quote(n) for n in names), names, manifest)


def _add_part(selection: _Selection, stem: str, entry: dict) -> None:
    selection.manifest["files"].append(entry)
    if selection.manifest["split"] is not None:
        selection.manifest["split"][stem] = entry


def training_data(lake: Lake, run_id: str | None = None, as_of: str | None = None, split: float | None = None, seed: int = 0) -> TrainingData:
    """The training data `export` would write (at the chosen snapshot, split by customer if asked), in memory."""
    selection = _select(lake, run_id, as_of, split, seed)
    parts = {}
    try:
        for stem, relation in selection.relations.items():
            parts[stem] = selection.conn.sql(f"SELECT * FROM {relation} ORDER BY {selection.order}").to_arrow_table()
            _add_part(selection, stem, {"part": stem, **selection.part(relation)})
    finally:
        selection.conn.close()
    return TrainingData(parts, selection.manifest)


def export(
    lake: Lake,
    out: str,
    fmt: str = "parquet",
    run_id: str | None = None,
    as_of: str | None = None,
    split: float | None = None,
    seed: int = 0,
) -> dict:
    """Write the ML table (at the chosen snapshot) and manifest.json into `out`; returns the manifest."""
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown format '{fmt}': choose {' or '.join(EXPORT_FORMATS)}")
    selection = _select(lake, run_id, as_of, split, seed)
    copy_options = "FORMAT parquet, COMPRESSION zstd" if fmt == "parquet" else "FORMAT csv, HEADER true"
    try:
        folder = _prepare_out(out)
        for stem, relation in selection.relations.items():
            path = folder / f"{stem}.{fmt}"
            selection.conn.execute(f"COPY (SELECT * FROM {relation} ORDER BY {selection.order}) TO {literal(str(path))} ({copy_options})")
            _add_part(selection, stem, {"file": path.name, **selection.part(relation), "file_sha256": _file_sha256(path)})
    finally:
        selection.conn.close()
    manifest = {**selection.manifest, "format": fmt}
    manifest_path = folder / "manifest.json"
    partial = folder / ".manifest.json.partial"
    partial.write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    os.replace(partial, manifest_path)  # last: a folder without manifest.json is an unfinished export
    return manifest
