"""Where files live: one interface, one module per backend (local folders, Amazon S3)."""

from __future__ import annotations

from stedi.errors import ConfigError
from stedi.storage.base import FileChanged, FileInfo, Storage
from stedi.storage.local import LocalStorage


def open_storage(location: str, for_lake: bool = False) -> Storage:
    """The storage for a folder path or URI (`s3://bucket/prefix`).

    A lake's storage is always signed; a source may be read anonymously (see `stedi.storage.s3`).
    """
    if location.startswith("s3://"):
        from stedi.storage.s3 import S3Storage

        return S3Storage(location, anonymous=False if for_lake else None)
    if "://" in location and not location.startswith("file://"):
        scheme = location.split("://", 1)[0]
        raise ConfigError(f"unsupported location scheme '{scheme}://' in {location!r}: use a folder or s3://bucket/prefix")
    return LocalStorage(location.removeprefix("file://"))


__all__ = ["FileChanged", "FileInfo", "Storage", "LocalStorage", "open_storage"]
