"""Engines run the work: DuckDB embedded by default, Spark when one machine is not enough.

An engine is chosen by name and its module imported only then (`open_engine`), so that the DuckDB
engine never loads pyspark, and naming an engine costs nothing until it runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from stedi.errors import EngineUnavailable

if TYPE_CHECKING:
    from stedi.engines.base import Engine

# Each engine's class, by name: "module:class".
ENGINES = {"duckdb": "stedi.engines.duckdb:DuckDBEngine", "spark": "stedi.engines.spark:SparkEngine"}
ENGINE_NAMES = tuple(ENGINES)


def open_engine(name: str) -> Engine:
    """The engine called `name`; EngineUnavailable, with what to install or start, if it cannot run here."""
    if name not in ENGINES:
        raise EngineUnavailable(f"unknown engine '{name}': choose one of {', '.join(ENGINE_NAMES)}")
    module, cls = ENGINES[name].split(":")
    return getattr(importlib.import_module(module), cls)()
