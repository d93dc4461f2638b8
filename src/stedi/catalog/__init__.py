"""The lake's Iceberg catalog, opened through pyiceberg's own `load_catalog`.

A lake's catalog is of one kind (`stedi.config`): `sql`, a SQLite file in the lake folder or a SQL
database named by `catalog_uri`, or `glue`, the AWS Glue Data Catalog of an account and region. Each
kind is one module of this package, imported only when a lake of that kind is opened. It adds its
own properties to pyiceberg's and looks after the `stedi` namespace.

A catalog outside the lake folder may serve other lakes too (Glue has one per account and region).
So each module also says whether the namespace is this lake's.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from stedi.errors import ConfigError

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from stedi.config import Config
    from stedi.storage import Storage

NAMESPACE = "stedi"
# The module of each kind of catalog, with what to install when pyiceberg cannot load it.
KINDS = {
    "sql": ("stedi.catalog.sql", "pip install stedi"),
    "glue": ("stedi.catalog.glue", "pip install 'stedi[aws]'"),
}


def _kind(name: str):
    if name not in KINDS:
        raise ConfigError(f"unknown catalog '{name}': choose one of {', '.join(KINDS)}")
    return importlib.import_module(KINDS[name][0])


def load(kind: str, storage: Storage, config: Config) -> Catalog:
    """The catalog as pyiceberg loads it, with the properties its kind adds."""
    from pyiceberg.catalog import load_catalog
    from pyiceberg.exceptions import NotInstalledError

    properties = {"type": kind, "warehouse": storage.uri(storage.join("warehouse")), **storage.iceberg_properties(), **_kind(kind).properties(storage, config)}
    try:
        return load_catalog(NAMESPACE, **properties)
    except NotInstalledError as missing:
        raise ConfigError(f"the {kind} catalog cannot be loaded ({missing}): {KINDS[kind][1]}") from missing


def open_catalog(kind: str, storage: Storage, config: Config) -> Catalog:
    """The lake's catalog, with the `stedi` namespace made if it is not there yet."""
    catalog = load(kind, storage, config)
    _kind(kind).claim_namespace(catalog, storage)
    return catalog


def lake_exists(kind: str, storage: Storage, config: Config) -> bool:
    """Whether the catalog knows this lake, without making anything."""
    return _kind(kind).lake_exists(storage, config, lambda: load(kind, storage, config))
