"""Row-level deletes written into a stedi table the way another engine would (Athena's DELETE
writes Iceberg position-delete files): a Parquet file of (data file, row position) pairs, committed
in a manifest of delete files. pyiceberg reads such files but has no public call to write them."""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat, ManifestContent, ManifestEntry, ManifestEntryStatus, ManifestWriterV2
from pyiceberg.table.update.snapshot import Operation, _FastAppendFiles
from pyiceberg.typedef import Record

from stedi.lake import Lake

# The reserved field ids of a position-delete file's columns (Iceberg spec, "Position Delete Files").
POSITION_DELETE_SCHEMA = pa.schema(
    [
        pa.field("file_path", pa.string(), nullable=False, metadata={b"PARQUET:field_id": b"2147483546"}),
        pa.field("pos", pa.int64(), nullable=False, metadata={b"PARQUET:field_id": b"2147483545"}),
    ]
)


class _DeleteManifestWriter(ManifestWriterV2):
    def content(self) -> ManifestContent:
        return ManifestContent.DELETES

    @property
    def _meta(self) -> dict[str, str]:
        return {**super()._meta, "content": "deletes"}


class _RowDelta(_FastAppendFiles):
    """A commit that adds delete files only."""

    def __init__(self, delete_files: list[DataFile], **kwargs) -> None:
        super().__init__(**kwargs)
        self.delete_files = delete_files

    def _manifests(self):
        writer = _DeleteManifestWriter(self._transaction.table_metadata.spec(), self.schema(), self.new_manifest_output(), self._snapshot_id, self._compression)
        with writer:
            for delete_file in self.delete_files:
                writer.add(ManifestEntry.from_args(status=ManifestEntryStatus.ADDED, snapshot_id=self._snapshot_id, data_file=delete_file))
        return [*super()._manifests(), writer.to_manifest_file()]


def delete_rows(lake: Lake, name: str, positions: dict[str, list[int]]) -> None:
    """Commit a position-delete file to the table: `positions` maps its data files to the 0-based
    positions of the rows to delete."""
    table = lake.table(name)
    path = lake.new_data_file(name, "deletes")
    pairs = [(file, pos) for file, rows in sorted(positions.items()) for pos in sorted(rows)]
    pq.write_table(pa.Table.from_pylist([{"file_path": f, "pos": p} for f, p in pairs], schema=POSITION_DELETE_SCHEMA), path)
    delete_file = DataFile.from_args(
        content=DataFileContent.POSITION_DELETES,
        file_path=path,
        file_format=FileFormat.PARQUET,
        partition=Record(),
        record_count=len(pairs),
        file_size_in_bytes=os.path.getsize(path),
    )
    delete_file.spec_id = table.spec().spec_id
    with table.transaction() as tx:
        with _RowDelta([delete_file], operation=Operation.OVERWRITE, transaction=tx, io=table.io, snapshot_properties={}):
            pass
    lake.refresh()
