"""What a command that writes the lake repairs first, after an earlier one was killed (SPEC §4, §11).

- An unfinished erasure is finished before anything else is written.
- Files that no table references, left by a writer that did not end cleanly (Parquet written but
  never committed, the manifests of a commit that never landed), are deleted: they may hold rows
  of customers who were forgotten since.
- Spill files of killed processes are removed.
"""

from __future__ import annotations

from dataclasses import dataclass

from stedi.erasure import ErasureReport, finish_pending_erasure
from stedi.lake import Lake
from stedi.scratch import remove_abandoned
from stedi.snapshots import unreferenced_files


@dataclass(frozen=True)
class Recovery:
    """What repairing an interrupted command did: the erasure it finished, the files it deleted."""

    erasure: ErasureReport | None  # the interrupted erasure that was finished
    files_deleted: int


def recover(lake: Lake) -> Recovery:
    """The caller holds the write lock (`Lake.writing`)."""
    remove_abandoned(lake.storage.join("_stedi", "scratch"))
    erasure = finish_pending_erasure(lake)
    deleted = 0
    if lake.interrupted_before and lake.table_names():  # with no table, every file would look unreferenced
        for path in unreferenced_files(lake):
            lake.storage.delete(path)
            deleted += 1
    lake.interrupted_before = False
    return Recovery(erasure, deleted)
