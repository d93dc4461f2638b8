"""Private scratch folders for the engines' spill files (SPEC §6).

What DuckDB spills past its memory limit is rows of the lake, raw PII included. It goes to a folder
of this process only, mode 0700: inside the lake (`_stedi/scratch/<pid>-<random>`) for a local
lake, so it is covered by the lake's own permissions and by erasure; in the system's temporary
folder for a lake on S3. The folder is removed when the process ends; one left by a killed
process is removed by the next command that writes the lake (`remove_abandoned`).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from functools import cache


def private_folder(parent: str | None) -> str:
    """A new folder of this process under `parent` (the system's temporary folder when None),
    readable by its owner only whatever the umask, removed when the process exits."""
    if parent is None:
        folder = tempfile.mkdtemp(prefix=f"stedi-{os.getpid()}-")
    else:
        os.makedirs(parent, mode=0o700, exist_ok=True)
        folder = os.path.join(parent, f"{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.mkdir(folder, mode=0o700)
    os.chmod(folder, 0o700)  # mkdir's mode is narrowed by the umask, never widened: this is exact
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@cache
def system_scratch() -> str:
    """This process's scratch folder for work that belongs to no local lake."""
    return private_folder(None)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_abandoned(parent: str) -> int:
    """Remove the scratch folders under `parent` whose process has ended; returns how many."""
    if not os.path.isdir(parent):
        return 0
    removed = 0
    for name in os.listdir(parent):
        pid = name.split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
            removed += 1
    return removed
