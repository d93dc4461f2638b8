"""Where files live: one interface, one module per backend (local folders now, object stores later)."""

from __future__ import annotations

from stedi.storage.base import FileInfo, Storage
from stedi.storage.local import LocalStorage


def open_storage(location: str) -> Storage:
    """The storage for a folder path or URI."""
    if "://" in location and not location.startswith("file://"):
        scheme = location.split("://", 1)[0]
        raise ValueError(f"unsupported location scheme '{scheme}://' in {location!r}")
    return LocalStorage(location.removeprefix("file://"))


__all__ = ["FileInfo", "Storage", "LocalStorage", "open_storage"]
