"""Every byte of a lake, scanned: Parquet decoded, Avro manifests decompressed, metadata JSON and
the SQLite catalog as they are, so that "gone" means no file holds a customer."""

from __future__ import annotations

import zlib
from pathlib import Path

import pyarrow.parquet as pq


def _avro_payload(data: bytes) -> bytes:
    """An Avro object container file with its blocks decompressed (manifests are deflated)."""
    assert data[:4] == b"Obj\x01"
    pos = 4

    def long() -> int:
        nonlocal pos
        shift = result = 0
        while True:
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return (result >> 1) ^ -(result & 1)

    def raw() -> bytes:
        nonlocal pos
        size = long()
        pos += size
        return data[pos - size : pos]

    meta = {}
    while (count := long()) != 0:
        if count < 0:
            count = -count
            long()
        for _ in range(count):
            key = raw()
            meta[key] = raw()
    pos += 16
    codec = meta.get(b"avro.codec", b"null")
    assert codec in (b"null", b"deflate"), codec
    parts = [data[:pos]]
    while pos < len(data):
        long()
        block = raw()
        pos += 16
        parts.append(zlib.decompress(block, -15) if codec == b"deflate" else block)
    return b"".join(parts)


def lake_text(root: Path) -> dict[Path, str]:
    """Every file under the lake as lower-case text: raw bytes, plus decoded Parquet rows and
    decompressed Avro blocks."""
    texts = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        extra = b""
        if path.suffix == ".parquet":
            extra = repr(pq.read_table(path).to_pylist()).encode()
        elif path.suffix == ".avro":
            extra = _avro_payload(data)
        texts[path] = (data + b"\n" + extra).decode("utf-8", "replace").lower()
    return texts


def files_holding(root: Path, needles: list[str]) -> dict[str, list[str]]:
    texts = lake_text(root)
    found = {}
    for needle in needles:
        where = [str(p.relative_to(root)) for p, text in texts.items() if needle.lower() in text]
        if where:
            found[needle] = where
    return found
