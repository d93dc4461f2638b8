"""Local folders. A lake's files and folders are its owner's only (SPEC §6): what stedi writes
itself is made 0600 and 0700 whatever the umask, and `owner_only_files` narrows the umask for what
DuckDB, pyarrow and pyiceberg write into it meanwhile."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import takewhile
from pathlib import Path

from stedi.errors import LakeBusyError
from stedi.storage.base import UNKNOWN_MTIME, FileChanged, FileInfo, SkipCallback, Storage

OWNER_ONLY_UMASK = 0o077
PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700


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


def printable_path(path: str) -> str:
    """A path as valid UTF-8 text: bytes of its name that are not UTF-8 are written as \\xNN."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _kind_of(mode: int) -> str:
    return next((kind for is_kind, kind in _KINDS if is_kind(mode)), "not a regular file")


def _what_entry_names(entry: os.DirEntry) -> os.stat_result | str:
    """The status of a folder entry (of its target, for a link), or why it is not read: only
    regular files and folders with UTF-8 names are."""
    try:
        os.fsencode(entry.path).decode("utf-8")
    except UnicodeDecodeError:
        return "its name is not valid UTF-8"
    try:
        found = entry.stat()
    except OSError as error:
        if not entry.is_symlink():
            return f"it cannot be looked at: {error.strerror}"
        if error.errno == errno.ELOOP:
            return "a symbolic link loop"
        if error.errno == errno.ENOENT:
            return "a dangling symbolic link: its target does not exist"
        return f"a symbolic link that cannot be followed: {error.strerror}"
    if stat.S_ISDIR(found.st_mode):
        return "a symbolic link to a folder, which is not followed" if entry.is_symlink() else found
    if not stat.S_ISREG(found.st_mode):
        return f"not a regular file but {_kind_of(found.st_mode)}"
    return found


class LocalStorage(Storage):
    """Files in a folder on this machine, private to their owner when they are a lake's."""

    def __init__(self, root: str) -> None:
        self.root = str(Path(root).expanduser().absolute())

    def uri(self, location: str) -> str:
        """The location as an absolute path."""
        # A plain path, not a file:// URI: pyiceberg does not decode URIs, so a lake in a folder
        # whose name has a space would write its tables into `name%20with%20space`, beside it.
        return str(Path(location).absolute())

    def exists(self, location: str) -> bool:
        """Whether anything is at the path; a dangling link counts as nothing."""
        return os.path.exists(location)

    def is_dir(self, location: str) -> bool:
        """Whether the path is a folder, or a link to one."""
        return os.path.isdir(location)

    def list_dir(self, location: str) -> list[str]:
        """Names of the folder's entries, sorted."""
        return sorted(os.listdir(location))

    def walk_files(self, location: str, on_skipped: SkipCallback | None = None) -> Iterator[FileInfo]:
        """Depth first, by name. A link to a file is followed; a link to a folder is not, as it may
        lead back up the tree."""
        skipped = on_skipped or (lambda path, reason: None)
        folders = [location]
        while folders:
            folder = folders.pop()
            try:
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda entry: entry.name)
            except OSError as error:
                skipped(printable_path(folder), f"the folder cannot be listed: {error.strerror}")
                continue
            subfolders = []
            for entry in entries:
                found = _what_entry_names(entry)
                if isinstance(found, str):  # why the entry is not read
                    skipped(printable_path(entry.path), found)
                elif stat.S_ISDIR(found.st_mode):
                    subfolders.append(entry.path)
                else:
                    yield FileInfo(path=entry.path, size=found.st_size, mtime_ns=found.st_mtime_ns)
            folders.extend(reversed(subfolders))

    def read_bytes(self, location: str) -> bytes:
        """The file's content."""
        return Path(location).read_bytes()

    def read_file(self, location: str) -> tuple[bytes, FileInfo]:
        """Read a regular file, checking that its size and mtime did not move meanwhile.

        An entry that is not a regular file raises OSError (EINVAL) at once, a FIFO included.
        """
        # Opening a FIFO for reading waits for a writer, unless non-blocking; a regular file reads the same either way.
        fd = os.open(location, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                raise OSError(errno.EINVAL, f"not a regular file but {_kind_of(before.st_mode)}", location)
            data = handle.read()
            after = os.fstat(fd)
        unchanged = (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns) and after.st_size == len(data)
        return data, FileInfo(location, len(data), after.st_mtime_ns if unchanged else UNKNOWN_MTIME)

    def read_range(self, location: str, start: int, end: int, expected: FileInfo) -> bytes:
        """Read bytes [start, end), checking the file's size and mtime before and after."""
        fd = os.open(location, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                raise OSError(errno.EINVAL, f"not a regular file but {_kind_of(before.st_mode)}", location)
            handle.seek(start)
            data = handle.read(end - start)
            after = os.fstat(fd)
        if any((s.st_size, s.st_mtime_ns) != (expected.size, expected.mtime_ns) for s in (before, after)):
            raise FileChanged(location)
        return data

    def write_bytes(self, location: str, data: bytes, private: bool = False) -> None:
        """Write through a hidden `.NAME.partial` file renamed into place, so the write is atomic.

        The file is made 0600 and any new parent folder 0700 whether or not `private` is set.
        """
        path = Path(location)
        self.make_dirs(str(path.parent))
        partial = path.with_name(f".{path.name}.partial")
        # Every file of a lake is private, not only the `private` ones (that flag is for S3).
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(partial, path)

    def delete(self, location: str) -> None:
        """Remove the file; one that is already gone is not an error."""
        Path(location).unlink(missing_ok=True)

    def make_dirs(self, location: str) -> None:
        """Create the folder and its missing parents, each one 0700 whatever the umask."""
        missing = list(takewhile(lambda folder: not folder.exists(), (Path(location), *Path(location).parents)))
        for folder in reversed(missing):  # each one private: `mkdir(parents=True)` gives the parents the umask's mode
            folder.mkdir(mode=PRIVATE_FOLDER, exist_ok=True)

    def make_private(self, location: str) -> None:
        """Narrow a file to 0600 or a folder to 0700 when this user owns it.

        A missing location is ignored, and another user's file is left as it is.
        """
        try:
            found = os.stat(location)
        except FileNotFoundError:
            return
        # Another user's lake, which this one may only read, is its owner's to change.
        if found.st_mode & OWNER_ONLY_UMASK and found.st_uid == os.geteuid():
            os.chmod(location, PRIVATE_FOLDER if stat.S_ISDIR(found.st_mode) else PRIVATE_FILE)

    @contextmanager
    def exclusive_lock(self, location: str, wait: bool) -> Iterator[None]:
        """Hold an exclusive flock on the lock file, created if need be.

        Without `wait`, raises LakeBusyError when another process holds it. The kernel drops the
        lock when its process dies, so a crashed writer leaves nothing to clean up.
        """
        self.make_dirs(str(Path(location).parent))
        with open(os.open(location, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE), "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise LakeBusyError("another stedi process is writing this lake; try again when it has finished") from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
