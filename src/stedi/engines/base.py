from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa

from stedi.contract import Feed


class EngineUnavailable(RuntimeError):
    """The engine asked for cannot run here (not installed, no Java, unknown name)."""


@dataclass(frozen=True)
class LandingBatch:
    """Numbered lines of one or more feed files, as `stedi.ingest` hands them to an engine.

    Columns: _source_file, _source_sha256, _source_line, line, blank (whitespace only, not a
    record), problem (a file-level failure,
    e.g. a corrupt gzip stream, recorded as a quarantine row of its own).
    """

    feed: Feed
    lines: pa.Table
    run_id: str
    ingested_at: str  # ISO-8601 UTC


@dataclass(frozen=True)
class TableInput:
    """A published table as a model reads it: its Parquet files and its columns (name, type)."""

    files: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class LandedCounts:
    non_blank: int
    accepted: int
    rejected: int


class Engine(ABC):
    name: str

    @abstractmethod
    def land(self, batch: LandingBatch, accepted_path: str, rejected_path: str) -> dict[str, LandedCounts]:
        """Type-check the batch's lines against the feed contract; write accepted rows and quarantine
        rows as one Parquet file each; return per source file the counts that conservation checks."""

    @abstractmethod
    def build(self, sql: str, inputs: Mapping[str, TableInput], settings: pa.Table, out_path: str) -> int:
        """Run a model's SELECT (DuckDB dialect) over its input tables and the one-row `run_settings`
        and write the result as one Parquet file; returns the number of rows written."""
