"""The AWS Glue Data Catalog as the lake's catalog (pyiceberg's GlueCatalog).

The Glue database is the lake's namespace, `stedi`, so Athena sees `stedi.customer_trusted` and the
others as Iceberg tables. Its location is `<lake>/warehouse/stedi.db`. A Glue catalog (one per
account and region) holds one stedi lake: a database with another location is refused, not mixed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stedi.aws import aws_errors
from stedi.catalog import NAMESPACE
from stedi.errors import LakeError

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from stedi.config import Config
    from stedi.storage import Storage


def database_location(lake_location: str) -> str:
    """Where the lake's Glue database lives: `<lake>/warehouse/stedi.db`.

    The location marks the database as this lake's: one found with another location is refused.
    """
    return f"{lake_location.rstrip('/')}/warehouse/{NAMESPACE}.db"


def database_description(lake_location: str) -> str:
    """The description the Glue database carries, naming the lake it belongs to."""
    return f"stedi lakehouse at {lake_location.rstrip('/')}: Iceberg tables written by stedi"


def properties(storage: Storage, config: Config) -> dict[str, str]:
    """The pyiceberg properties a Glue catalog adds: the lake bucket's region, and any endpoint."""
    s3: Any = storage  # a Glue lake is on S3 (`stedi.lake` checks): its region is the catalog's
    found = {"glue.region": s3.region}
    if config.glue_endpoint:
        found["glue.endpoint"] = config.glue_endpoint
    return found


def _owned(catalog: Catalog, storage: Storage) -> bool:
    """Whether the Glue database exists (False if not); refuses one that belongs to another lake."""
    from pyiceberg.exceptions import NoSuchNamespaceError

    try:
        namespace = catalog.load_namespace_properties(NAMESPACE)
    except NoSuchNamespaceError:
        return False
    expected = database_location(storage.root)
    found = (namespace.get("location") or "").rstrip("/")
    if found != expected:
        raise LakeError(
            f"the Glue database '{NAMESPACE}' belongs to the lake at {found or 'no location'}, not {expected}: "
            "one stedi lake per Glue catalog (account and region)"
        )
    return True


def claim_namespace(catalog: Catalog, storage: Storage) -> None:
    """Creates the Glue database, with the lake's location, on first use."""
    with aws_errors("open the Glue Data Catalog"):
        if not _owned(catalog, storage):
            catalog.create_namespace(NAMESPACE, {"location": database_location(storage.root), "Description": database_description(storage.root)})


def lake_exists(storage: Storage, config: Config, catalog: Callable[[], Catalog]) -> bool:
    """Whether the Glue database exists and is this lake's; one of another lake raises LakeError."""
    with aws_errors("read the Glue Data Catalog"):
        return _owned(catalog(), storage)
