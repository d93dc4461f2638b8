"""The interface every engine implements, and the batches and results that pass through it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import pyarrow as pa

from stedi.contract import Feed
from stedi.lines import FilePiece
from stedi.sql import TableInput
from stedi.storage import Storage

ReadCallback = Callable[[int], None]  # bytes of a landing batch's files read so far


@dataclass(frozen=True)
class LandingBatch:
    """Feed files, or pieces of them, that an engine reads, judges and lands together."""

    feed: Feed
    source: str  # the source root, which `stedi.storage.open_storage` opens (also on Spark executors)
    lake: str  # the lake's root, where the landed files are written (also from Spark executors)
    files: tuple[FilePiece, ...]  # the lines of files[i] carry `_file` = i; pieces of one file may be several
    run_id: str
    ingested_at: str  # ISO-8601 UTC
    scratch: str | None = None  # where DuckDB may spill (`Lake.scratch`); None: a private folder of the process


@dataclass(frozen=True)
class LandedFile:
    """What landing one file (or some of its pieces) gave: the ledger records it and conservation
    is checked on it, once every piece of the file has landed (`plus`)."""

    sha256: str  # of the bytes read, which `size` and `mtime_ns` describe too (see `Storage.read_file`)
    size: int
    mtime_ns: int
    problem: str | None  # why the file could not be read to its end
    non_blank: int
    accepted: int
    rejected: int  # quarantined lines; a file's own problem row is not a line and is not counted

    def plus(self, other: LandedFile) -> LandedFile:
        """The two landings of pieces of the same file as one."""
        return replace(
            self,
            problem=self.problem or other.problem,
            non_blank=self.non_blank + other.non_blank,
            accepted=self.accepted + other.accepted,
            rejected=self.rejected + other.rejected,
        )


def merge_landed(files: dict[str, LandedFile], landed: Mapping[str, LandedFile]) -> None:
    """Add what a landing gave, by file, to `files`, adding up the pieces of a file."""
    for path, facts in landed.items():
        files[path] = files[path].plus(facts) if path in files else facts


@dataclass(frozen=True)
class Landed:
    """What landing a batch gave: per source file what landed, and the Parquet files written."""

    files: dict[str, LandedFile]  # by source file
    accepted: list[str]  # the Parquet files written for the landing table
    rejected: list[str]  # and for its quarantine


@dataclass(frozen=True)
class ModelBuild:
    """One model for an engine to build: its SQL, what it reads, and where it writes."""

    sql: str
    inputs: Mapping[str, TableInput]
    settings: pa.Table  # the one-row `run_settings`
    out_path: str
    stages: Mapping[str, str] = field(default_factory=dict)
    scratch: str | None = None  # where DuckDB spills (`Lake.scratch`)
    storage: Storage | None = None  # the lake's, through which DuckDB reaches its data files
    given: Mapping[str, pa.Table] = field(default_factory=dict)  # tables handed in memory, by name (the touched customers)


class Engine(ABC):
    """What runs the work: it lands feed batches and builds models, as Parquet files.

    An engine writes at (or named after) the paths it is given and commits nothing: `stedi.lake`
    publishes the files.
    """

    name: str

    @abstractmethod
    def land(self, batch: LandingBatch, accepted_path: str, rejected_path: str, on_read: ReadCallback | None = None) -> Landed:
        """Read the batch's files (`stedi.lines.numbered_lines`), judge every line against the feed
        contract, write accepted rows and quarantine rows as Parquet files (at the paths given, or
        named after them), and say per file what landed, counted from the files written.

        `on_read`, if given, is told now and then how many bytes of the batch's files were read."""

    @abstractmethod
    def build(self, job: ModelBuild) -> int:
        """Run a model's SELECT (DuckDB dialect) over its input tables, the one-row `run_settings`
        and the `given` tables, and write the result as one Parquet file at `job.out_path`; returns the rows written.

        `stages` are SELECTs that later stages and `sql` read by name, in order. An engine may
        compute each before the next: DuckDB does, so that its planner knows how many rows a stage
        holds; Spark plans them all as one query. DuckDB spills to `scratch` (`Lake.scratch`)
        and reaches the lake's data files through its `storage`."""
