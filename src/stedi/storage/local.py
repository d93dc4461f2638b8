from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from stedi.storage.base import FileInfo, Storage


class LakeBusyError(RuntimeError):
    pass


class LocalStorage(Storage):
    def __init__(self, root: str) -> None:
        self.root = str(Path(root).expanduser().absolute())

    def uri(self, location: str) -> str:
        return Path(location).absolute().as_uri()

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
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(partial, path)

    def delete(self, location: str) -> None:
        Path(location).unlink(missing_ok=True)

    def make_dirs(self, location: str) -> None:
        Path(location).mkdir(parents=True, exist_ok=True)

    @contextmanager
    def exclusive_lock(self, location: str, wait: bool) -> Iterator[None]:
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        with open(location, "a") as handle:
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
