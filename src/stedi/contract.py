"""The landing contract (SPEC §2): which feeds exist, which fields they carry and of what type.

Everything that knows about fields — parsing, landing schemas, rejection reasons — is derived from
the declarations below, so the contract lives in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    """How a JSON value must look to fit a field, and the column type it lands as."""

    STRING = "string"
    STRING_OR_NUMBER = "string or number"  # phone numbers: some exports write them as numbers
    EPOCH_MS = "epoch ms"
    INTEGER = "integer"
    DOUBLE = "double"

    @property
    def column_type(self) -> str:
        """The Iceberg column type a value of this kind lands as."""
        return {Kind.EPOCH_MS: "long", Kind.INTEGER: "long", Kind.DOUBLE: "double"}.get(self, "string")


@dataclass(frozen=True)
class Field:
    """One field of a feed's contract: its canonical name, kind, and whether a line needs it."""

    name: str
    kind: Kind
    required: bool = False

    @property
    def key(self) -> str:
        """Field names match case-insensitively: this is the form they are compared in."""
        return self.name.lower()


@dataclass(frozen=True)
class Feed:
    """A feed of the landing zone: the folders its files come in and the fields of its lines."""

    name: str
    folders: tuple[str, ...]
    fields: tuple[Field, ...]
    # At least one of these must be present (older app versions send serialNumber instead of user).
    required_one_of: tuple[str, ...] = ()

    @property
    def landing_table(self) -> str:
        """The table its accepted lines land in."""
        return f"{self.name}_landing"

    @property
    def rejected_table(self) -> str:
        """The quarantine table of its refused lines, each with its raw text and reason."""
        return f"{self.name}_landing_rejected"


CUSTOMER = Feed(
    name="customer",
    folders=("customer", "customers"),
    fields=(
        Field("customerName", Kind.STRING),
        Field("email", Kind.STRING, required=True),
        Field("phone", Kind.STRING_OR_NUMBER),
        Field("birthDay", Kind.STRING),
        Field("serialNumber", Kind.STRING),
        Field("registrationDate", Kind.EPOCH_MS),
        Field("lastUpdateDate", Kind.EPOCH_MS),
        Field("shareWithResearchAsOfDate", Kind.EPOCH_MS),
        Field("shareWithPublicAsOfDate", Kind.EPOCH_MS),
        Field("shareWithFriendsAsOfDate", Kind.EPOCH_MS),
    ),
)

ACCELEROMETER = Feed(
    name="accelerometer",
    folders=("accelerometer",),
    fields=(
        Field("user", Kind.STRING),
        Field("timestamp", Kind.EPOCH_MS, required=True),
        Field("x", Kind.DOUBLE, required=True),
        Field("y", Kind.DOUBLE, required=True),
        Field("z", Kind.DOUBLE, required=True),
        Field("serialNumber", Kind.STRING),
    ),
    required_one_of=("user", "serialNumber"),
)

STEP_TRAINER = Feed(
    name="step_trainer",
    folders=("step_trainer",),
    fields=(
        Field("sensorReadingTime", Kind.EPOCH_MS, required=True),
        Field("serialNumber", Kind.STRING, required=True),
        Field("distanceFromObject", Kind.INTEGER, required=True),
    ),
)

FEEDS: tuple[Feed, ...] = (CUSTOMER, ACCELEROMETER, STEP_TRAINER)
FEED_SUFFIXES = (".jsonl.gz", ".json.gz", ".jsonl", ".json")  # feed file names end so; longest first

# Lineage carried by every landing and quarantine row.
LINEAGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_source_file", "string"),
    ("_source_line", "long"),
    ("_source_sha256", "string"),
    ("_ingested_at", "timestamptz"),
    ("_ingest_run", "string"),
)


def landing_columns(feed: Feed) -> list[tuple[str, str]]:
    """A feed's landing table columns: its fields, `_extra` for unknown fields, and lineage."""
    return [(f.name, f.kind.column_type) for f in feed.fields] + [("_extra", "string"), *LINEAGE_COLUMNS]


def rejected_columns() -> list[tuple[str, str]]:
    """A quarantine table's columns: the raw line, why it was refused, and lineage."""
    return [("raw", "string"), ("reason", "string"), *LINEAGE_COLUMNS]
