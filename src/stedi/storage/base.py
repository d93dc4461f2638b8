"""The interface every storage backend implements, and the facts a listing reports about a file."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FileInfo:
    """A file as a listing or a read found it: its location, size and modification time.

    `mtime_ns` is `UNKNOWN_MTIME` when the bytes were read while the file was changing.
    """

    path: str  # full location, as `read_bytes` accepts it
    size: int
    mtime_ns: int


# The mtime recorded for bytes read while their file was changing: no later mtime vouches for
# them, so the next ingest compares the file's content instead.
UNKNOWN_MTIME = -1


class FileChanged(OSError):
    """A file read in ranges is no longer the version its first range came from."""


SkipCallback = Callable[[str, str], None]  # (path, printable and valid UTF-8; why it is not read)


class Storage(ABC):
    """A tree of files addressed by '/'-separated locations under a root."""

    root: str

    def join(self, *parts: str) -> str:
        """A location under the root, from parts whose outer slashes are dropped."""
        return "/".join([self.root.rstrip("/"), *(p.strip("/") for p in parts)])

    @abstractmethod
    def uri(self, location: str) -> str:
        """The location as a URI that pyiceberg and DuckDB understand."""

    @abstractmethod
    def exists(self, location: str) -> bool:
        """Whether a file or a folder is at the location."""

    @abstractmethod
    def is_dir(self, location: str) -> bool:
        """Whether the location is a folder."""

    @abstractmethod
    def list_dir(self, location: str) -> list[str]:
        """Names of the direct children of a folder."""

    @abstractmethod
    def walk_files(self, location: str, on_skipped: SkipCallback | None = None) -> Iterator[FileInfo]:
        """Every regular file below a folder, in a stable order. An entry that is not one to read (a
        FIFO, a socket, a device, a dangling link, a name that is not UTF-8) is given to `on_skipped`."""

    @abstractmethod
    def read_bytes(self, location: str) -> bytes:
        """A file's whole content; raises FileNotFoundError when there is no file."""

    @abstractmethod
    def read_file(self, location: str) -> tuple[bytes, FileInfo]:
        """A file's bytes and the size and mtime of exactly those bytes, however the file changes
        meanwhile (`UNKNOWN_MTIME` when it changed while it was read). Never blocks on an entry
        that is not a regular file: raises OSError instead."""

    @abstractmethod
    def read_range(self, location: str, start: int, end: int, expected: FileInfo) -> bytes:
        """Bytes [start, end) of a file that is still the one `expected` describes (same size and
        mtime), so that ranges read apart come from one version of it; raises FileChanged otherwise.
        Never blocks on an entry that is not a regular file: raises OSError instead."""

    @abstractmethod
    def write_bytes(self, location: str, data: bytes, private: bool = False) -> None:
        """Write atomically: readers see the old content or the new one, never a part."""

    @abstractmethod
    def delete(self, location: str) -> None:
        """Remove a file; one that is already gone is not an error."""

    @abstractmethod
    def make_dirs(self, location: str) -> None:
        """Create a folder and its missing parents (private ones, where the backend has modes)."""

    def arrow_file(self, location: str) -> tuple[str, Any]:
        """A data file as pyarrow opens it: (path, filesystem), the filesystem None for a local file."""
        return location.removeprefix("file://"), None

    @property
    def fsspec_filesystem(self) -> Any:
        """The filesystem a DuckDB connection registers to reach these files by URI; None when
        DuckDB reaches them by path."""
        return None

    def iceberg_properties(self) -> dict[str, str]:
        """The pyiceberg FileIO properties that reach these files."""
        return {}

    def make_private(self, location: str) -> None:  # noqa: B027 - a no-op unless the backend has file modes
        """Make an existing file or folder its owner's only. Objects in a bucket have no modes: who
        may read them is the bucket's policy."""

    @abstractmethod
    def exclusive_lock(self, location: str, wait: bool) -> AbstractContextManager[None]:
        """Held while one process writes a lake; a second one waits or fails clearly."""
