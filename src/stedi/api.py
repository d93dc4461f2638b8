"""The Python API: a lake opened by `stedi.open`, its tables as Arrow, its training data in memory.

    import stedi
    lake = stedi.open("lakehouse")                         # or "s3://bucket/prefix"
    readings = lake.table("machine_learning_curated").to_pandas()
    data = lake.training_data(split_by_customer=0.8)       # data.train, data.test, data.manifest

The command line is a layer over the same modules. Reading never takes the lake's write lock: an
Iceberg snapshot never changes, so a reader sees one consistent state while a run commits.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from stedi import records
from stedi.errors import LakeError
from stedi.export import TrainingData, training_data
from stedi.lake import Lake
from stedi.models import load_models
from stedi.query import stream_query, table_dataset
from stedi.records import RUNS
from stedi.run import consent_scope_of, offending_rows
from stedi.status import history, runs, status
from stedi.timetravel import parse_time, retained_snapshot, snapshot_as_of, snapshots_as_of


class Lakehouse:
    """One stedi lake, read-only: its tables, runs, status and training data.

    Raises LakeError when there is no lake at the location.
    """

    def __init__(self, location: str | None = None) -> None:
        self._lake = Lake(location)
        self._lake.require()

    @property
    def location(self) -> str:
        """The lake's root: a folder or an s3:// URI."""
        return self._lake.location

    def __repr__(self) -> str:
        return f"stedi.open({self.location!r})"

    def tables(self) -> list[str]:
        """The names of the lake's tables, sorted."""
        return self._lake.table_names()

    def table(self, name: str, as_of: str | int | None = None, run: str | None = None) -> pa.Table:
        """A table's rows: now, as they were at `as_of` (ISO 8601 text or epoch ms), or as the run
        `run` left them. Raises LakeError for an unknown table or run, ExpiredSnapshotError for a
        state an erasure expired."""
        if as_of is not None and run is not None:
            raise LakeError("give as_of or run, not both")
        self._lake.table(name)  # an unknown name: LakeError with the closest one
        snapshot_id = self._snapshot_of_run(name, run) if run else self._snapshot_at(name, as_of) if as_of is not None else None
        if (as_of is not None or run) and snapshot_id is None:
            return table_dataset(self._lake, self._lake.state(name)).schema.empty_table()
        return table_dataset(self._lake, self._lake.state(name, snapshot_id)).to_table()

    def _snapshot_at(self, name: str, as_of: str | int) -> int | None:
        return snapshot_as_of(self._lake, name, as_of if isinstance(as_of, int) else parse_time(as_of))

    def _snapshot_of_run(self, name: str, run_id: str) -> int | None:
        """The snapshot the run published or kept (for a zone table), or the one current when it
        finished (for a landing table, which an ingest writes)."""
        run = self.run(run_id)
        entry = next((t for t in run["tables"] if t["name"] == name), None)
        if entry is not None and entry.get("output_snapshot") is not None:
            return retained_snapshot(self._lake, name, int(entry["output_snapshot"]))
        return snapshots_as_of(self._lake, parse_time(run["finished_at"])).get(name)

    def query(self, sql: str, as_of: str | int | None = None) -> pa.Table:
        """The result of one read-only SQL statement over the tables (DuckDB's dialect), as `stedi query` runs it."""
        snapshots = None if as_of is None else snapshots_as_of(self._lake, as_of if isinstance(as_of, int) else parse_time(as_of))
        with stream_query(self._lake, sql, snapshots) as result:
            return pa.Table.from_batches(list(result.batches()), schema=result.reader.schema)

    def training_data(self, run: str | None = None, split_by_customer: float | None = None, seed: int = 0) -> TrainingData:
        """What `stedi export` writes, in memory: machine_learning_curated (of the last run, or of
        `run`), split so that each customer is wholly in train or in test when a fraction is given,
        with the manifest that makes it reproducible."""
        return training_data(self._lake, run, None, split_by_customer, seed)

    def failing_rows(self, table: str, check: str, limit: int = 3) -> pa.Table | None:
        """The first rows of a model's table, as published, that break one of its checks (by the
        check's name); None when the check counts no rows or the table is not built yet."""
        model = next((m for m in load_models() if m.name == table), None)
        if model is None:
            raise LakeError(f"'{table}' is not a model's table: only those have checks")
        return offending_rows(self._lake, model, check, consent_scope_of(self._lake, None), limit)

    def runs(self) -> list[dict[str, Any]]:
        """The run history, oldest first, as `stedi runs --json` prints it: each run that changed
        something, its tables built, checks and funnel. `run(run_id)` gives a run's whole manifest."""
        return runs(self._lake)

    def run(self, run_id: str) -> dict[str, Any]:
        """One run's manifest. Raises LakeError when the lake has no such run."""
        found = records.read(self._lake.storage, RUNS, run_id)
        if found is None:
            raise LakeError(f"no run '{run_id}' in the lake at {self.location}: `stedi runs` lists them")
        return found

    def history(self, name: str) -> list[dict[str, Any]]:
        """A table's snapshots, oldest first, with the run and operation of each (`stedi history`)."""
        return history(self._lake, name)

    def status(self) -> dict[str, Any]:
        """What `stedi status --json` prints: tables, rows, snapshots, the last ingest and run."""
        return status(self._lake)
