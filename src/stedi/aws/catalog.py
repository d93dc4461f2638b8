"""The AWS Glue Data Catalog as the lake's Iceberg catalog (pyiceberg's GlueCatalog).

The Glue database is the lake's namespace, `stedi`, so Athena sees `stedi.customer_trusted` and the
others as Iceberg tables. Its location is `<lake>/warehouse/stedi.db`: a Glue catalog (one per
account and region) holds one stedi lake, and a lake at another prefix is refused rather than mixed
into it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stedi.aws import INSTALL_HINT, AwsError, aws_errors
from stedi.lake import NAMESPACE, LakeError

if TYPE_CHECKING:
    from stedi.lake import Lake


def database_location(lake_location: str) -> str:
    return f"{lake_location.rstrip('/')}/warehouse/{NAMESPACE}.db"


def database_description(lake_location: str) -> str:
    return f"stedi lakehouse at {lake_location.rstrip('/')}: Iceberg tables written by stedi"


def catalog_properties(lake: Lake) -> dict[str, str]:
    storage: Any = lake.storage
    properties = {
        "warehouse": storage.join("warehouse"),
        "glue.region": storage.region,
        **storage.iceberg_properties(),
    }
    if storage.config.glue_endpoint:
        properties["glue.endpoint"] = storage.config.glue_endpoint
    return properties


def _open(lake: Lake) -> Any:
    try:
        from pyiceberg.catalog.glue import GlueCatalog
    except ImportError:
        raise AwsError(INSTALL_HINT) from None
    return GlueCatalog(NAMESPACE, **catalog_properties(lake))


def _owned_location(lake: Lake, catalog: Any) -> bool:
    """Whether the Glue database exists (False if not); refuses one that belongs to another lake."""
    from pyiceberg.exceptions import NoSuchNamespaceError

    try:
        properties = catalog.load_namespace_properties(NAMESPACE)
    except NoSuchNamespaceError:
        return False
    expected = database_location(lake.storage.root)
    found = (properties.get("location") or "").rstrip("/")
    if found != expected:
        raise LakeError(
            f"the Glue database '{NAMESPACE}' belongs to the lake at {found or 'no location'}, not {expected}: "
            "one stedi lake per Glue catalog (account and region)"
        )
    return True


def glue_catalog(lake: Lake) -> Any:
    """The lake's catalog; creates the Glue database (with the lake's location) on first use."""
    with aws_errors("open the Glue Data Catalog"):
        catalog = _open(lake)
        if not _owned_location(lake, catalog):
            catalog.create_namespace(
                NAMESPACE, {"location": database_location(lake.storage.root), "Description": database_description(lake.storage.root)}
            )
    return catalog


def glue_lake_exists(lake: Lake) -> bool:
    with aws_errors("read the Glue Data Catalog"):
        return _owned_location(lake, _open(lake))
