"""Re-rooting the tables of a lake folder that was moved or copied (SPEC §6: a lake is self-contained).

Iceberg writes absolute locations: the catalog names a table's metadata JSON, which names the
table's folder, its manifest lists and its earlier metadata files; a manifest list names its
manifests, a manifest its data files. A lake folder moved or copied elsewhere still names the old
folder everywhere, so a copy would read from the original and write its new files into it, and a
`stedi forget` on the original would then delete them.

A `Relocation` writes a table's metadata tree again with every location re-rooted: the same
snapshots, ids, sequence numbers and data files, only the paths change. Data files are not
touched, and neither are the old metadata files (they are the folder's own copies, left for the
clean-up of the next erasure or interrupted writer to remove). Every table is read, and every file
it uses found, before anything is written; the catalog is switched to the new trees last, in one
transaction (`Lake`), so a copy that is not whole is refused as it is, and an interrupted
re-rooting changes nothing a reader sees.
"""

from __future__ import annotations

import errno
import uuid
from collections.abc import Callable
from copy import copy
from typing import cast

from pyiceberg.avro.codecs import AvroCompressionCodec
from pyiceberg.io import FileIO, InputFile
from pyiceberg.manifest import (
    DATA_FILE_TYPE,
    DEFAULT_READ_VERSION,
    MANIFEST_LIST_FILE_SCHEMAS,
    ManifestContent,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
    read_manifest_list,
    write_manifest,
    write_manifest_list,
)
from pyiceberg.schema import Schema
from pyiceberg.serializers import FromInputFile, ToOutputFile
from pyiceberg.table import TableProperties
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.snapshots import MetadataLogEntry

Move = Callable[[str], str]  # a location as the old metadata has it -> where that file is now

# Table properties that hold locations: where the table's data and metadata files are written.
PATH_PROPERTIES = (TableProperties.WRITE_DATA_PATH, TableProperties.WRITE_METADATA_PATH)


def _field(struct, name: str) -> int:
    """The position of a field in a pyiceberg record, which has no setters for its paths."""
    return next(i for i, field in enumerate(struct.fields) if field.name == name)


MANIFEST_PATH = _field(MANIFEST_LIST_FILE_SCHEMAS[DEFAULT_READ_VERSION], "manifest_path")
MANIFEST_LENGTH = _field(MANIFEST_LIST_FILE_SCHEMAS[DEFAULT_READ_VERSION], "manifest_length")
FILE_PATH = _field(DATA_FILE_TYPE[DEFAULT_READ_VERSION], "file_path")


def present(io: FileIO, location: str) -> InputFile:
    """The file, or FileNotFoundError naming it: a folder copied without all of its files."""
    found = io.new_input(location)
    if not found.exists():
        raise FileNotFoundError(errno.ENOENT, "no such file", location)
    return found


class Relocation:
    """One table's metadata tree, read from the folder it is in now, every file its snapshots use
    found there (FileNotFoundError naming the first one missing); `write` writes it again with
    every location passed through `move`. Nothing is written until every table has been read."""

    def __init__(self, io: FileIO, metadata_location: str, move: Move) -> None:
        self.io, self.move, self.previous = io, move, metadata_location
        self.metadata = FromInputFile.table_metadata(present(io, move(metadata_location)))
        self.listed: dict[int, list[ManifestFile]] = {}  # the manifests of each snapshot, as listed
        self.entries: dict[str, list[ManifestEntry]] = {}  # by listed path: later snapshots list a manifest again
        for snapshot in self.metadata.snapshots:
            assert snapshot.manifest_list is not None  # pyiceberg writes format v2, where every snapshot has one
            self.listed[snapshot.snapshot_id] = list(read_manifest_list(present(io, move(snapshot.manifest_list))))
            for manifest in self.listed[snapshot.snapshot_id]:
                if manifest.manifest_path not in self.entries:
                    self.entries[manifest.manifest_path] = self._moved_entries(manifest)

    def _moved_entries(self, manifest: ManifestFile) -> list[ManifestEntry]:
        if manifest.content != ManifestContent.DATA:
            # A delete file names data files inside its own Parquet rows; stedi never writes one.
            raise ValueError(f"cannot re-root a table with delete files ({manifest.manifest_path})")
        source = copy(manifest)
        source[MANIFEST_PATH] = present(self.io, self.move(manifest.manifest_path)).location
        entries = source.fetch_manifest_entry(self.io, discard_deleted=False)
        for entry in entries:
            entry.data_file[FILE_PATH] = self.move(entry.data_file.file_path)
            if entry.status != ManifestEntryStatus.DELETED:  # a file a snapshot reads, not one it dropped
                present(self.io, entry.data_file.file_path)
        return entries

    def write(self) -> str:
        """Write the re-rooted tree; returns its metadata file's location. The data files and the
        old metadata files stay as they are."""
        metadata, move = self.metadata, self.move
        properties = {key: move(value) if key in PATH_PROPERTIES else value for key, value in metadata.properties.items()}
        provider = load_location_provider(move(metadata.location), properties)
        # Iceberg's codec names (gzip, zstd, ...), which pyiceberg's writers map to Avro's; its type names Avro's alone.
        compression = cast(AvroCompressionCodec, properties.get(TableProperties.WRITE_AVRO_COMPRESSION, TableProperties.WRITE_AVRO_COMPRESSION_DEFAULT))
        commit = uuid.uuid4()
        written: dict[str, ManifestFile] = {}  # by listed path
        snapshots = []
        for snapshot in metadata.snapshots:
            schema = metadata.schema_by_id(snapshot.schema_id) if snapshot.schema_id is not None else metadata.schema()
            if schema is None:
                raise ValueError(f"snapshot {snapshot.snapshot_id} names schema {snapshot.schema_id}, which the table metadata does not hold")
            for manifest in self.listed[snapshot.snapshot_id]:
                if manifest.manifest_path not in written:
                    target = provider.new_metadata_location(f"{commit}-m{len(written)}.avro")
                    written[manifest.manifest_path] = self._write_manifest(manifest, schema, target, compression)
            manifest_list = provider.new_metadata_location(f"snap-{snapshot.snapshot_id}-1-{commit}.avro")
            with write_manifest_list(
                metadata.format_version,
                self.io.new_output(manifest_list),
                snapshot.snapshot_id,
                snapshot.parent_snapshot_id,
                snapshot.sequence_number,
                compression,
            ) as writer:
                writer.add_manifests([written[m.manifest_path] for m in self.listed[snapshot.snapshot_id]])
            snapshots.append(snapshot.model_copy(update={"manifest_list": manifest_list}))

        relocated = metadata.model_copy(
            update={
                "location": move(metadata.location),
                "properties": properties,
                "snapshots": snapshots,
                "metadata_log": [
                    *(entry.model_copy(update={"metadata_file": move(entry.metadata_file)}) for entry in metadata.metadata_log),
                    MetadataLogEntry(metadata_file=move(self.previous), timestamp_ms=metadata.last_updated_ms),
                ],
                "statistics": [s.model_copy(update={"statistics_path": move(s.statistics_path)}) for s in metadata.statistics],
                "partition_statistics": [s.model_copy(update={"statistics_path": move(s.statistics_path)}) for s in metadata.partition_statistics],
            }
        )
        location = provider.new_table_metadata_file_location(_version(self.previous) + 1)
        ToOutputFile.table_metadata(relocated, self.io.new_output(location))
        return location

    def _write_manifest(self, manifest: ManifestFile, schema: Schema, target: str, compression: AvroCompressionCodec) -> ManifestFile:
        spec = self.metadata.specs()[manifest.partition_spec_id]
        assert manifest.added_snapshot_id is not None  # a required field of every manifest list format
        with write_manifest(
            self.metadata.format_version,
            spec,
            schema,
            self.io.new_output(target),
            manifest.added_snapshot_id,
            compression,
        ) as writer:
            for entry in self.entries[manifest.manifest_path]:
                writer.add_entry(entry)
        relocated = copy(manifest)  # the same counts, sequence numbers and partition summaries
        relocated[MANIFEST_PATH] = target
        relocated[MANIFEST_LENGTH] = writer.to_manifest_file().manifest_length
        return relocated


def _version(metadata_location: str) -> int:
    """The version a metadata file's name starts with (`00003-<uuid>.metadata.json`), as pyiceberg
    numbers them: the next commit is numbered after the re-rooted file."""
    prefix = metadata_location.rsplit("/", 1)[-1].split("-", 1)[0]
    return int(prefix) if prefix.isdigit() else -1
