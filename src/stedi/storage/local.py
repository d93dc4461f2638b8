"""Local folders. A lake's files and folders are its owner's only (SPEC §6): what stedi writes
itself is made 0600 and 0700 whatever the umask, and `owner_only_files` narrows the umask for what
DuckDB, pyarrow and pyiceberg write into it meanwhile."""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import takewhile
from pathlib import Path

from stedi.storage.base import FileInfo, Storage


OWNER_ONLY_UMASK = 0o077
PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700


class LakeBusyError(RuntimeError):
    pass


@contextmanager
def owner_only_files() -> Iterator[None]:
    """Files and folders created meanwhile, by any library of this process, are readable by their
    owner only. The umask is the one setting they all honour; it is the process's, so this is held
    only while a lake is written."""
    previous = os.umask(OWNER_ONLY_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


class LocalStorage(Storage):
    def __init__(self, root: str) -> None:
        self.root = str(Path(root).expanduser().absolute())

    def uri(self, location: str) -> str:
        # A plain path, not a file:// URI: pyiceberg does not decode URIs, so a lake in a folder
        # whose name has a space would write its tables into `name%20with%20space`, beside it.
        return str(Path(location).absolute())

    def exists(self, location: str) -> bool:
        return os.path.exists(location)

    def is_dir(self, location: str) -> bool:
        return os.path.isdir(location)

    def list_dir(self, location: str) -> list[str]:
        return sorted(os.listdir(location))

    def walk_files(self, location: str) -> Iterator[FileInfo]:
        for folder, dirs, files in os.walk(location):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                stat = os.stat(path)
                yield FileInfo(path=path, size=stat.st_size, mtime_ns=stat.st_mtime_ns)

    def read_bytes(self, location: str) -> bytes:
        return Path(location).read_bytes()

    def write_bytes(self, location: str, data: bytes, private: bool = False) -> None:
        path = Path(location)
        self.make_dirs(str(path.parent))
        partial = path.with_name(f".{path.name}.partial")
        # Every file of a lake is private, not only the `private` ones (that flag is for S3).
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(partial, path)

    def delete(self, location: str) -> None:
        Path(location).unlink(missing_ok=True)

    def make_dirs(self, location: str) -> None:
        missing = list(takewhile(lambda folder: not folder.exists(), (Path(location), *Path(location).parents)))
        for folder in reversed(missing):  # each one private: `mkdir(parents=True)` gives the parents the umask's mode
            folder.mkdir(mode=PRIVATE_FOLDER, exist_ok=True)

    def make_private(self, location: str) -> None:
        try:
            found = os.stat(location)
        except FileNotFoundError:
            return
        # Another user's lake, which this one may only read, is its owner's to change.
        if found.st_mode & OWNER_ONLY_UMASK and found.st_uid == os.geteuid():
            os.chmod(location, PRIVATE_FOLDER if stat.S_ISDIR(found.st_mode) else PRIVATE_FILE)

    @contextmanager
    def exclusive_lock(self, location: str, wait: bool) -> Iterator[None]:
        self.make_dirs(str(Path(location).parent))
        with open(os.open(location, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE), "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise LakeBusyError(
                    "another stedi process is writing this lake; try again when it has finished"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
