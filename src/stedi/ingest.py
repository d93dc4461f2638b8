"""Landing ingestion (SPEC §2): raw feed files into typed landing tables and their quarantine.

Incremental and idempotent through a ledger table, `ingested_files`, committed last: a file whose
path and content are in the ledger is skipped. Data files carry the id of the ingest that wrote
them, so an ingest interrupted between its commits is undone by the next one before it starts.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

import pyarrow as pa

from stedi.contract import FEED_SUFFIXES, FEEDS, Feed, landing_columns, rejected_columns
from stedi.engines.base import Engine, LandedFile, LandingBatch, merge_landed
from stedi.errors import ConservationError, SourceError
from stedi.lake import ARROW_TYPES, RUN_PROPERTY, Lake, TableState, new_run_id, run_of_data_file
from stedi.lines import FilePiece, cut, read_feed_file
from stedi.recovery import recover
from stedi.sql import TableInput, register_tables
from stedi.storage import FileInfo, Storage, open_storage
from stedi.storage.local import printable_path
from stedi.tombstones import drop_tombstoned, load_tombstones

LEDGER_TABLE = "ingested_files"
LEDGER_COLUMNS = (
    ("feed", "string"),
    ("path", "string"),
    ("size", "long"),  # size, mtime and sha256 of exactly the bytes that landed, not of the file as listed
    ("mtime_ns", "long"),  # UNKNOWN_MTIME when the file changed while it was read
    ("sha256", "string"),
    ("non_blank_lines", "long"),
    ("accepted", "long"),
    ("rejected", "long"),
    ("erased", "long"),  # lines of forgotten customers (tombstoned), dropped on the way in
    ("problem", "string"),
    ("run_id", "string"),
    ("ingested_at", "timestamptz"),
)
LEDGER_SCHEMA = pa.schema([(name, ARROW_TYPES[kind]) for name, kind in LEDGER_COLUMNS])
BATCH_BYTES = 256 * 1024 * 1024  # feed text handed to the engine at once; bounds memory
GZIP_INFLATION = 8  # a gzipped feed file counts as this many times its size towards a batch

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, int, int], None]  # feed, bytes done, bytes total


@dataclass
class FeedReport:
    """What an ingest did with one feed's files and lines."""

    feed: str
    files_new: int = 0
    files_skipped: int = 0
    lines: int = 0
    accepted: int = 0
    rejected: int = 0
    erased: int = 0  # lines of forgotten customers, dropped (see stedi.tombstones)
    problems: list[str] = field(default_factory=list)  # unreadable files, by path and reason


@dataclass
class IngestReport:
    """What an ingest did, per feed, and the entries under the source it did not read."""

    run_id: str
    source: str
    feeds: dict[str, FeedReport]
    ignored_files: list[str]
    skipped: dict[str, str]  # entries that are not files to read (FIFOs, broken links, ...): why, by path
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the ingest
    cpu_seconds: float = 0.0  # CPU time of this process (every thread) meanwhile; Spark's executors are not in it

    @property
    def new_files(self) -> int:
        """How many files this ingest landed, over all feeds."""
        return sum(r.files_new for r in self.feeds.values())

    def as_dict(self) -> dict:
        """The report as JSON-ready data, for `--json` and the run records."""
        return {
            "run_id": self.run_id,
            "source": self.source,
            "feeds": {name: vars(report) for name, report in self.feeds.items()},
            "ignored_files": self.ignored_files,
            "skipped": self.skipped,
            "warnings": self.warnings,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
        }


# ---- discovery ---------------------------------------------------------------------------------
def _feed_for_folder(name: str) -> Feed | None:
    return next((feed for feed in FEEDS if name.lower() in feed.folders), None)


def discover(storage: Storage) -> tuple[dict[str, list[FileInfo]], list[str], dict[str, str]]:
    """The feed files under a source root, by feed, the files that are not feed files, and why
    the entries that are not files to read are skipped."""
    root = storage.root
    if not storage.exists(root):
        raise SourceError(f"source not found: {root}")
    if not storage.is_dir(root):
        raise SourceError(f"source must be a folder holding customer/, accelerometer/ and step_trainer/: {root}")
    found: dict[str, list[FileInfo]] = {}
    ignored: list[str] = []
    skipped: dict[str, str] = {}

    def skip(path: str, reason: str) -> None:
        if not path.rsplit("/", 1)[-1].startswith("."):
            skipped[path] = reason

    for child in storage.list_dir(root):
        location = storage.join(child)
        if child.startswith((".", "_")) or not storage.is_dir(location):
            continue
        feed = _feed_for_folder(child)
        if feed is None:
            expected = ", ".join(f"{f.folders[0]}/" for f in FEEDS)
            raise SourceError(f"unknown feed folder '{printable_path(child)}/' in {root}: expected {expected}")
        for info in storage.walk_files(location, skip):
            name = info.path.rsplit("/", 1)[-1]
            if name.startswith("."):
                continue
            if name.lower().endswith(FEED_SUFFIXES):
                found.setdefault(feed.name, []).append(info)
            else:
                ignored.append(info.path)
    if not found:
        raise SourceError(f"no feed files (*.json, *.jsonl, optionally .gz) under {root}")
    return found, ignored, skipped


# ---- the ledger --------------------------------------------------------------------------------
@dataclass(frozen=True)
class LedgerEntry:
    """What the ledger knows of an ingested file, to tell whether it changed since."""

    size: int
    mtime_ns: int
    sha256: str


def read_ledger(lake: Lake) -> tuple[dict[str, LedgerEntry], set[str]]:
    """Ingested files by path (latest content) and the ids of the ingests that completed."""
    state = lake.state(LEDGER_TABLE)
    if not state.files:
        return {}, set()
    conn = lake.connect()
    register_tables(conn, {LEDGER_TABLE: TableInput(state.files, LEDGER_COLUMNS)})
    rows = conn.execute(f"SELECT path, size, mtime_ns, sha256, run_id FROM {LEDGER_TABLE} ORDER BY ingested_at, run_id").fetchall()
    conn.close()
    return {path: LedgerEntry(size, mtime, sha) for path, size, mtime, sha, _ in rows}, {row[4] for row in rows}


def is_already_ingested(info: FileInfo, entry: LedgerEntry | None, sha256: Callable[[], str]) -> bool:
    """Whether a listed file is the one the ledger holds: same size and mtime, else same content.

    `sha256` is only called (the file read) when size matches and mtime does not."""
    if entry is None:
        return False
    if entry.size == info.size and entry.mtime_ns == info.mtime_ns:
        return True
    return entry.size == info.size and entry.sha256 == sha256()


def _file_sha256(storage: Storage, path: str) -> str:
    return hashlib.sha256(read_feed_file(storage, path)[0]).hexdigest()


# ---- ingestion ---------------------------------------------------------------------------------
def ensure_landing_tables(lake: Lake) -> None:
    """Create the landing, quarantine and ledger tables a lake does not have yet."""
    for feed in FEEDS:
        lake.ensure_table(feed.landing_table, landing_columns(feed))
        lake.ensure_table(feed.rejected_table, rejected_columns())
    lake.ensure_table(LEDGER_TABLE, LEDGER_COLUMNS)


def landing_tables() -> list[str]:
    """The landing and quarantine tables, in feed order."""
    return [name for feed in FEEDS for name in (feed.landing_table, feed.rejected_table)]


def recover_interrupted_ingest(lake: Lake, completed_runs: set[str]) -> None:
    """Remove data files of ingests that never committed their ledger rows (interrupted ones)."""
    for name in landing_tables():
        state: TableState = lake.state(name)
        orphans = [path for path in state.files if run_of_data_file(path) not in completed_runs]
        if orphans:
            lake.publish(name, [], {RUN_PROPERTY: "recovery"}, remove=orphans)


def _batch_progress(on_progress: ProgressCallback, feed: str, done_before: int, total: int, read: int) -> None:
    on_progress(feed, done_before + read, total)


def _batches(pieces: Iterable[tuple[FilePiece, int]]) -> Iterator[list[tuple[FilePiece, int]]]:
    """Pieces of about BATCH_BYTES at a time, as stored (a gzipped file holds several times more text)."""
    batch: list[tuple[FilePiece, int]] = []
    size = 0
    for piece, stored in pieces:
        batch.append((piece, stored))
        size += stored * (GZIP_INFLATION if piece.path.lower().endswith(".gz") else 1)
        if size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


DEMO_SOURCE = "demo_source"  # the lake setting `stedi demo` leaves: where its generated feeds are


def source_identity(source: str) -> str:
    """A source as the same text however it is written (a local folder by its real path)."""
    return source.rstrip("/") if "://" in source else os.path.realpath(source)


def ingest(lake: Lake, source: str, engine: Engine, on_progress: ProgressCallback | None = None, run_id: str | None = None) -> IngestReport:
    """Ingest every new feed file under `source`. The caller holds the lake's write lock; what an
    interrupted command left behind (an unfinished erasure first) is repaired before anything else."""
    started, cpu_at_start = time.perf_counter(), time.process_time()
    recover(lake)
    storage = open_storage(source)
    found, ignored, skipped = discover(storage)
    ensure_landing_tables(lake)
    ledger, completed_runs = read_ledger(lake)
    recover_interrupted_ingest(lake, completed_runs)

    run_id = run_id or new_run_id()
    ingested_at = datetime.now(UTC)
    report = IngestReport(run_id, source, {feed.name: FeedReport(feed.name) for feed in FEEDS}, ignored, skipped)
    demo_source = lake.settings().get(DEMO_SOURCE)
    if demo_source and source_identity(source) != demo_source and any(found.values()):
        report.warnings.append(
            f"this lake was made by `stedi demo` from {demo_source}: the feeds of {source} are added to the demo's, "
            "and every table mixes the two (give --lake NEW_FOLDER for a lake of their own)"
        )
    written: dict[str, list[str]] = {name: [] for name in landing_tables()}
    ledger_rows: list[dict] = []
    tombstones = load_tombstones(lake)

    new_files: dict[str, list[FileInfo]] = {feed.name: [] for feed in FEEDS}
    for feed in FEEDS:
        for info in found.get(feed.name, []):
            recorded = tombstones.recorded_path(info.path) if tombstones else info.path
            if is_already_ingested(info, ledger.get(recorded), partial(_file_sha256, storage, info.path)):
                report.feeds[feed.name].files_skipped += 1
            else:
                new_files[feed.name].append(info)
    # Large files are cut in the background, in the order they land, while the files before them land.
    cutter, stopped = ThreadPoolExecutor(max_workers=1), threading.Event()
    pieces = {info.path: cutter.submit(cut, storage, info, stopped) for feed in FEEDS for info in new_files[feed.name]}
    try:
        for feed in FEEDS:
            feed_report = report.feeds[feed.name]
            feed_files = new_files[feed.name]
            total = sum(info.size for info in feed_files)
            log.debug("%s: %d new file(s) of %d bytes, %d already ingested", feed.name, len(feed_files), total, feed_report.files_skipped)
            landed_files: dict[str, LandedFile] = {}
            erased: dict[str, tuple[int, int]] = {}
            done = 0
            for batch in _batches((piece, piece.size or info.size) for info in feed_files for piece in pieces[info.path].result()):
                accepted_path = lake.new_data_file(feed.landing_table, run_id)
                rejected_path = lake.new_data_file(feed.rejected_table, run_id)
                log.debug("%s: landing %d piece(s) with the %s engine into %s", feed.name, len(batch), engine.name, accepted_path)
                landing = LandingBatch(feed, source, lake.location, tuple(piece for piece, _ in batch), run_id, ingested_at.isoformat(), lake.scratch)
                on_read = partial(_batch_progress, on_progress, feed.name, done, total) if on_progress else None
                landed_batch = engine.land(landing, accepted_path, rejected_path, on_read)
                written[feed.landing_table] += landed_batch.accepted
                written[feed.rejected_table] += landed_batch.rejected
                merge_landed(landed_files, landed_batch.files)
                if tombstones:
                    for path, (accepted, rejected) in drop_tombstoned(lake, tombstones, landed_batch.accepted + landed_batch.rejected).items():
                        before = erased.get(path, (0, 0))
                        erased[path] = (before[0] + accepted, before[1] + rejected)
                done += sum(size for _, size in batch)
                if on_progress:
                    on_progress(feed.name, done, total)
            for info in feed_files:
                landed = landed_files[info.path]
                erased_accepted, erased_rejected = erased.get(info.path, (0, 0))
                accepted, rejected = landed.accepted - erased_accepted, landed.rejected - erased_rejected
                erased_lines = erased_accepted + erased_rejected
                if accepted + rejected + erased_lines != landed.non_blank:
                    raise ConservationError(
                        f"conservation failed for {info.path}: {landed.non_blank} non-blank lines, "
                        f"{accepted} accepted + {rejected} rejected + {erased_lines} erased; nothing was published"
                    )
                if landed.problem:
                    feed_report.problems.append(f"{info.path}: {landed.problem}")
                feed_report.files_new += 1
                feed_report.lines += landed.non_blank
                feed_report.accepted += accepted
                feed_report.rejected += rejected
                feed_report.erased += erased_lines
                ledger_rows.append(
                    {
                        "feed": feed.name,
                        "path": tombstones.recorded_path(info.path) if tombstones else info.path,
                        "size": landed.size,
                        "mtime_ns": landed.mtime_ns,
                        "sha256": landed.sha256,
                        "non_blank_lines": landed.non_blank,
                        "accepted": accepted,
                        "rejected": rejected,
                        "erased": erased_lines,
                        "problem": landed.problem,
                        "run_id": run_id,
                        "ingested_at": ingested_at,
                    }
                )
            if on_progress and not feed_files:
                on_progress(feed.name, 0, 0)
    finally:
        stopped.set()  # an ingest that stops (an error, Ctrl-C) does not wait for a large file's cut
        cutter.shutdown(cancel_futures=True)

    if ledger_rows:
        properties = {RUN_PROPERTY: run_id}
        for name, files in written.items():
            if files:
                lake.publish(name, files, properties)
        ledger_path = lake.new_data_file(LEDGER_TABLE, run_id)
        lake.write_parquet(pa.Table.from_pylist(ledger_rows, schema=LEDGER_SCHEMA), ledger_path)
        lake.publish(LEDGER_TABLE, [ledger_path], properties)
    report.seconds = round(time.perf_counter() - started, 3)
    report.cpu_seconds = round(time.process_time() - cpu_at_start, 3)
    return report
