"""Engines run the work: DuckDB embedded by default, Spark when one machine is not enough."""

from __future__ import annotations

from stedi.engines.base import Engine, EngineUnavailable

ENGINE_NAMES = ("duckdb", "spark")


def open_engine(name: str) -> Engine:
    if name == "duckdb":
        from stedi.engines.duckdb import DuckDBEngine

        return DuckDBEngine()
    if name == "spark":
        from stedi.engines.spark import SparkEngine

        return SparkEngine()
    raise EngineUnavailable(f"unknown engine '{name}': choose one of {', '.join(ENGINE_NAMES)}")


__all__ = ["Engine", "EngineUnavailable", "ENGINE_NAMES", "open_engine"]
