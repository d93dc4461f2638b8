"""A SQL catalog: by default a SQLite file in the lake folder, which moves with the folder.

Its rows name each table's metadata file by absolute path. A moved or copied folder therefore
needs its rows re-rooted (`stedi.lake`); the helpers below read and write those rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from stedi.catalog import NAMESPACE
from stedi.errors import InternalError

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.catalog.sql import SqlCatalog

    from stedi.config import Config
    from stedi.storage import Storage

CATALOG_FILE = "catalog.db"


def properties(storage: Storage, config: Config) -> dict[str, str]:
    """The pyiceberg properties a SQL catalog adds: `catalog_uri`, else the lake's SQLite file."""
    return {"uri": config.catalog_uri or f"sqlite:///{storage.join(CATALOG_FILE)}"}


def claim_namespace(catalog: Catalog, storage: Storage) -> None:
    """Create the `stedi` namespace if the catalog does not have it yet."""
    catalog.create_namespace_if_not_exists(NAMESPACE)


def lake_exists(storage: Storage, config: Config, catalog: Callable[[], Catalog]) -> bool:
    """Whether the catalog holds this lake; asking never creates the lake's SQLite file.

    With a `catalog_uri`, the lake exists once the namespace has a table; else once the file does.
    """
    if config.catalog_uri:
        return bool(catalog().list_tables(NAMESPACE))
    return storage.exists(storage.join(CATALOG_FILE))  # without opening it: that would create the file


def _sql_catalog(catalog: Catalog) -> SqlCatalog:
    """The catalog as pyiceberg's SqlCatalog, which `load_catalog` returns for this kind."""
    from pyiceberg.catalog.sql import SqlCatalog

    if not isinstance(catalog, SqlCatalog):
        raise InternalError(f"a catalog of kind sql is a {type(catalog).__name__}, not pyiceberg's SqlCatalog")
    return catalog


def metadata_locations(catalog: Catalog) -> dict[str, str]:
    """The metadata location of every table, as the catalog's rows hold it (loading a table of a
    moved folder would fail: its metadata is no longer where the row says)."""
    from pyiceberg.catalog.sql import IcebergTables
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    with Session(_sql_catalog(catalog).engine) as session:
        rows = session.execute(
            select(IcebergTables.table_name, IcebergTables.metadata_location).where(
                IcebergTables.catalog_name == NAMESPACE, IcebergTables.table_namespace == NAMESPACE
            )
        ).all()
    return {name: location for name, location in rows if location}


def set_metadata_locations(catalog: Catalog, locations: Mapping[str, tuple[str, str | None]]) -> None:
    """Point tables at new metadata files, (current, previous) by table name, in one transaction."""
    from pyiceberg.catalog.sql import IcebergTables
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    with Session(_sql_catalog(catalog).engine) as session, session.begin():
        for name, (current, previous) in locations.items():
            session.execute(
                update(IcebergTables)
                .where(IcebergTables.catalog_name == NAMESPACE, IcebergTables.table_namespace == NAMESPACE, IcebergTables.table_name == name)
                .values(metadata_location=current, previous_metadata_location=previous)
            )
