"""Where files live: one interface, one module per backend (local folders, Amazon S3)."""

from __future__ import annotations

from typing import Any

from stedi.config import ConfigError
from stedi.storage.base import FileInfo, Storage
from stedi.storage.local import LocalStorage

# The storage of the lake this process opened last, by URI scheme: DuckDB connections and pyarrow
# reach the lake's data files through it (see `duckdb_filesystems`, `arrow_file`).
_LAKE_STORAGES: dict[str, Any] = {}


def open_storage(location: str, for_lake: bool = False) -> Storage:
    """The storage for a folder path or URI (`s3://bucket/prefix`).

    A lake's storage is always signed, and its data files become readable and writable by path
    from DuckDB and pyarrow; a source may be read anonymously (see `stedi.storage.s3`).
    """
    if location.startswith("s3://"):
        from stedi.storage.s3 import S3Storage

        storage = S3Storage(location, anonymous=False if for_lake else None)
        if for_lake:
            _LAKE_STORAGES["s3"] = storage
        return storage
    if "://" in location and not location.startswith("file://"):
        scheme = location.split("://", 1)[0]
        raise ConfigError(f"unsupported location scheme '{scheme}://' in {location!r}: use a folder or s3://bucket/prefix")
    return LocalStorage(location.removeprefix("file://"))


def duckdb_filesystems() -> list[Any]:
    """fsspec filesystems to register on a DuckDB connection, so it reads and writes the lake's
    remote data files by their URIs (DuckDB's own httpfs extension cannot be installed offline)."""
    return [storage.fsspec_filesystem for storage in _LAKE_STORAGES.values()]


def arrow_file(location: str) -> tuple[str, Any]:
    """A data file as pyarrow opens it: (path, filesystem), the filesystem None for a local file."""
    if location.startswith("s3://"):
        storage = _LAKE_STORAGES.get("s3")
        if storage is None or not location.startswith(f"s3://{storage.bucket}/"):
            storage = open_storage(location.rsplit("/", 1)[0])
        return location[len("s3://"):], storage.arrow_filesystem
    return location.removeprefix("file://"), None


__all__ = ["FileInfo", "Storage", "LocalStorage", "open_storage", "duckdb_filesystems", "arrow_file"]
