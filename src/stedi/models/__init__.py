"""The zone models: one SQL file per table, its description and checks in a YAML file beside it.

A model's inputs are the tables its SQL reads, found by parsing it; the run order is derived from
them, never listed by hand.

The models in `staging/` clean a source once for the models that read it (dbt's staging pattern).
They are not tables: each is inlined, as a CTE of its name, into the SQL of every model that reads
it (`compile_sql`), so a model's `sql` is what runs and its `reads` are tables of the lake.

A model whose YAML says `incremental: true` promises that appending rows to its inputs only adds
rows to its output, that its rows are distinct, and that the rows new input rows add are found by
running its SQL with that input replaced by just those new rows. Joins, filters, EXISTS and
DISTINCT keep that promise; latest-record windows, counts and NOT EXISTS do not.

A model whose YAML has `rows_of` promises that its rows of some customers (or serial numbers) are
its SQL over just those customers' rows of its inputs: `rows_of` names the columns that say whose
a row is, `customer` (an email), `customer_key` or `serial`, and that key is never NULL (a
`not_null` check on it says so). The landing tables declare theirs in
`staging/sources.yml`. A delivery of customer records then replaces only the rows of the customers
it touches (`stedi.changes`, `replacement_sql`).
"""

from __future__ import annotations

import graphlib
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

import sqlglot
import yaml
from sqlglot import exp

from stedi.contract import FEEDS
from stedi.errors import ModelError

# Values a model reads that are not tables: the consent scope and the pseudonym key of this run.
RUN_SETTINGS = "run_settings"
STAGING = "staging"  # the folder of the models that are inlined, not built
SOURCES = "sources.yml"  # in STAGING: whose rows each landing table holds (`rows_of`)
# The customers and serial numbers a delivery touches, handed to the engine as in-memory tables.
CHANGED_CUSTOMERS = "changed_customers"  # changed_email, changed_customer_key
CHANGED_SERIALS = "changed_serials"  # changed_serial
# For each kind of key a `rows_of` may name: the changed table and its column holding such keys.
CHANGED_KEYS = {
    "customer": (CHANGED_CUSTOMERS, "changed_email"),
    "customer_key": (CHANGED_CUSTOMERS, "changed_customer_key"),
    "serial": (CHANGED_SERIALS, "changed_serial"),
}
LANDING_TABLES = frozenset(feed.landing_table for feed in FEEDS)


@dataclass(frozen=True)
class CheckSpec:
    """A check as a model's YAML declares it: its kind, its parameters and its severity."""

    kind: str
    params: dict
    severity: str  # "error" or "warn"

    @property
    def name(self) -> str:
        """The check as reports name it: its kind and its parameters' values, `not_null(email)`."""
        detail = ", ".join(f"{v}" for k, v in self.params.items())
        return f"{self.kind}({detail})" if detail else self.kind


@dataclass(frozen=True)
class Model:
    """One model: the table it builds, its compiled SQL, its checks and the tables it reads.

    `sql` already has its staging models inlined, so `reads` names tables of the lake only.
    """

    name: str
    zone: str
    sql: str
    description: str
    checks: tuple[CheckSpec, ...]
    reads: frozenset[str]
    incremental: bool = False
    staging: frozenset[str] = frozenset()  # the staging models inlined into `sql`
    rows_of: Mapping[str, str] = field(default_factory=dict, hash=False)  # kind of key -> the SQL of a row's key

    @property
    def fingerprint(self) -> str:
        """Changes when the definition changes, so an edited model is rebuilt."""
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]


@cache  # the same model, check and funnel SQL is parsed on every run, some of it more than once
def tables_read(sql: str) -> frozenset[str]:
    """The tables a SQL statement reads, found by parsing it (DuckDB dialect).

    Its own CTEs and `run_settings` are not tables and are left out. Cached: the same SQL is parsed
    on every run.
    """
    tree = sqlglot.parse_one(sql, read="duckdb")
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    return frozenset(t.name for t in tree.find_all(exp.Table) if t.name not in ctes and t.name != RUN_SETTINGS)


@cache
def _names_spelled(sql: str) -> frozenset[str] | None:
    """Every name a SQL statement spells (columns, tables, aliases, USING lists), lower-cased;
    None when it may read a column without spelling it: a star other than `count(*)`, `COLUMNS`,
    a PIVOT, a NATURAL join, a positional column (`#1`), or a whole row named by its table."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    if any(not isinstance(star.parent, exp.Count) for star in tree.find_all(exp.Star)):
        return None
    if tree.find(exp.Columns, exp.Pivot, exp.PositionalColumn) or any(join.args.get("method") for join in tree.find_all(exp.Join)):
        return None
    tables = {name.lower() for table in tree.find_all(exp.Table) for name in (table.name, table.alias) if name}
    if any(column.name.lower() in tables for column in tree.find_all(exp.Column) if not column.table):
        return None
    return frozenset(identifier.name.lower() for identifier in tree.find_all(exp.Identifier))


def columns_read(sql: str, columns: Iterable[str]) -> str:
    """The select list of the table's `columns` that `sql` may read: those it names, or `*` when
    it may read one without naming it (`_names_spelled`).

    A stage that filters a wide table for a few rows reads much less this way: DuckDB cannot push
    an `IN (SELECT ...)` filter into the scan, so each column selected is decoded for every row
    (for 76 million phone readings: 3.5 s selecting every column, 1.7 s the six a model reads)."""
    named = _names_spelled(sql)
    if named is None:
        return "*"
    return ", ".join(f'"{c}"' for c in columns if c.lower() in named) or "*"


def added_name(table: str) -> str:
    """The view of the rows a table gained since a model was last built."""
    return f"{table}__added"


def before_name(table: str) -> str:
    """The view of a table as it was when a model was last built."""
    return f"{table}__before"


def candidates_name(table: str) -> str:
    """The rows an append to a table may add, before those it holds already are left out."""
    return f"{table}__candidates"


def growth_sql(model: Model, grown: list[str], columns: list[str]) -> tuple[dict[str, str], str]:
    """The rows an incremental model gains when the tables `grown` only gained rows: its SQL once
    per grown table, reading that table's new rows, the grown tables before it in full and those
    after it as they were before. Together these derive every output row that needs at least one
    new input row; the rows the model already holds (`columns` all equal) are left out.

    Returned as a stage the engine computes first (the candidate rows, by `candidates_name`) and
    the SELECT that reads it. In one statement, DuckDB cannot tell the candidates are few, and
    hashes the held rows instead of probing them. The held rows are left out with NOT EXISTS:
    EXCEPT hashes the whole table too.
    """
    terms = []
    for i, name in enumerate(grown):
        tree = sqlglot.parse_one(model.sql, read="duckdb")
        # Each term's CTEs get names of their own: Spark lifts CTEs out of subqueries into one WITH.
        ctes = {cte.alias_or_name: f"{cte.alias_or_name}__{i}" for cte in tree.find_all(exp.CTE)}
        for cte in tree.find_all(exp.CTE):
            cte.set("alias", exp.TableAlias(this=exp.to_identifier(ctes[cte.alias_or_name])))
        renames = {name: added_name(name), **{later: before_name(later) for later in grown[i + 1 :]}, **ctes}
        for table in tree.find_all(exp.Table):
            if table.name in renames:
                original = table.name
                table.set("this", exp.to_identifier(renames[original]))
                if not table.alias:
                    table.set("alias", exp.TableAlias(this=exp.to_identifier(original)))
        terms.append(tree.sql(dialect="duckdb", comments=False))
    union = "\nUNION ALL\n".join(f"SELECT * FROM ({term})" for term in terms)
    held = " AND ".join(f'held."{c}" IS NOT DISTINCT FROM new."{c}"' for c in columns)
    candidates = candidates_name(model.name)
    return (
        {candidates: f"SELECT DISTINCT * FROM ({union})"},
        f"SELECT * FROM {candidates} AS new\nWHERE NOT EXISTS (SELECT 1 FROM {before_name(model.name)} AS held WHERE {held})",
    )


def changed_name(table: str) -> str:
    """The view of a table's rows that belong to the customers a delivery touches."""
    return f"{table}__changed"


def of_changed(rows_of: Mapping[str, str]) -> str:
    """The condition that a row, whose keys `rows_of` gives, belongs to a changed customer or
    serial number. IN, not a correlated EXISTS: DuckDB then reads just the matching rows' other
    columns, several times faster on a landing table."""
    return " OR ".join(f"{_key_sql(key)} IN (SELECT {CHANGED_KEYS[kind][1]} FROM {CHANGED_KEYS[kind][0]})" for kind, key in sorted(rows_of.items()))


def not_of_changed(rows_of: Mapping[str, str]) -> str:
    """The condition that a row belongs to no changed customer or serial number, a row without a
    key included (where `NOT (key IN ...)` would be NULL)."""
    return " AND ".join(
        f"({_key_sql(key)} IS NULL OR {_key_sql(key)} NOT IN (SELECT {CHANGED_KEYS[kind][1]} FROM {CHANGED_KEYS[kind][0]}))"
        for kind, key in sorted(rows_of.items())
    )


def _key_sql(key: str) -> str:
    """A `rows_of` key as sqlglot writes it: `user` quoted, as a column and not the current user."""
    return sqlglot.parse_one(key, read="duckdb").sql(dialect="duckdb")


def replacement_sql(
    model: Model, rows_of: Mapping[str, Mapping[str, str]], kept: str, columns: list[str], input_columns: Mapping[str, list[str]]
) -> tuple[dict[str, str], str, str]:
    """What a model's table holds after a delivery, in the files it rewrites, as two SELECTs: the
    touched customers' rows, by its SQL over just the changed customers' rows of each input whose
    `rows_of` is known (a stage each, of the columns the model reads, `columns_read`), limited to
    those customers; and the rows of `kept` (the table's files that hold changed customers) that
    belong to someone else. Both list the table's `columns`, in order.

    The inputs' `rows_of` may name more rows than the changed customers' own (a reading that names
    a user and a changed serial number): the result is limited to the model's own `rows_of`."""
    stages = {
        changed_name(name): f"SELECT {columns_read(model.sql, input_columns[name])} FROM {name} WHERE {of_changed(rows_of[name])}"
        for name in sorted(model.reads)
        if name in rows_of
    }
    tree = sqlglot.parse_one(model.sql, read="duckdb")
    for table in tree.find_all(exp.Table):
        if table.name in rows_of and table.name in model.reads:
            original = table.name
            table.set("this", exp.to_identifier(changed_name(original)))
            if not table.alias:
                table.set("alias", exp.TableAlias(this=exp.to_identifier(original)))
    listed = ", ".join(f'"{c}"' for c in columns)
    return (
        stages,
        f"SELECT {listed} FROM ({tree.sql(dialect='duckdb', comments=False)}) AS replacing WHERE {of_changed(model.rows_of)}",
        f"SELECT {listed} FROM {kept} WHERE {not_of_changed(model.rows_of)}",
    )


def compile_sql(sql: str) -> str:
    """`sql` with each staging model it reads inlined as a CTE of that name, first in its WITH."""
    staging = load_staging()
    tree = sqlglot.parse_one(sql, read="duckdb")
    own = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    used = sorted({t.name for t in tree.find_all(exp.Table) if t.name in staging and t.name not in own})
    if not used:
        return sql
    ctes = [exp.CTE(this=sqlglot.parse_one(staging[name], read="duckdb"), alias=exp.TableAlias(this=exp.to_identifier(name))) for name in used]
    existing = tree.args.get("with_")
    tree.set("with_", exp.With(expressions=[*ctes, *(existing.expressions if existing else [])]))
    return tree.sql(dialect="duckdb", pretty=True)


def _parse_check(entry: dict) -> CheckSpec:
    ((kind, params),) = entry.items()
    if isinstance(params, str):
        params = {"column": params}
    params = dict(params or {})
    severity = params.pop("severity", "error")
    return CheckSpec(kind, params, severity)


def _model_files(zone: str):
    """(name, SQL, YAML document) of each model of a zone folder."""
    folder = resources.files("stedi.models").joinpath(zone)
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if path.name.endswith(".sql"):
            name = path.name.removesuffix(".sql")
            doc_path = folder.joinpath(f"{name}.yml")
            yield name, path.read_text(), (yaml.safe_load(doc_path.read_text()) if doc_path.is_file() else {}) or {}


@cache
def load_staging() -> dict[str, str]:
    """The SQL of each staging model, by name."""
    return {name: sql for name, sql, _ in _model_files(STAGING)}


@cache
def load_models() -> tuple[Model, ...]:
    """Every model built as a table, with its staging models inlined."""
    root = resources.files("stedi.models")
    models = []
    zones = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_") and p.name != STAGING)
    for zone in zones:
        for name, written, doc in _model_files(zone):
            sql = compile_sql(written)
            models.append(
                Model(
                    name,
                    zone,
                    sql,
                    (doc.get("description") or "").strip(),
                    tuple(_parse_check(c) for c in doc.get("checks", [])),
                    tables_read(sql),
                    bool(doc.get("incremental")),
                    tables_read(written) & load_staging().keys(),
                    dict(doc.get("rows_of") or {}),
                )
            )
    return tuple(models)


@cache
def load_sources() -> dict[str, dict[str, str]]:
    """Each landing table's `rows_of`, from `staging/sources.yml`."""
    text = resources.files("stedi.models").joinpath(STAGING, SOURCES).read_text()
    return {table: dict(doc.get("rows_of") or {}) for table, doc in (yaml.safe_load(text) or {}).items()}


def rows_of_tables(models: tuple[Model, ...]) -> dict[str, Mapping[str, str]]:
    """The `rows_of` of every table that declares one: the landing tables' and the models'."""
    return {**load_sources(), **{m.name: m.rows_of for m in models if m.rows_of}}


def run_order(models: tuple[Model, ...]) -> list[Model]:
    """The models in an order where each comes after every model it reads.

    Raises ModelError when a model reads a table that is neither a model nor a landing table, when
    its `rows_of` names an unknown kind of key, or when models read each other in a cycle.
    """
    by_name = {m.name: m for m in models}
    for model in models:
        unknown = model.reads - by_name.keys() - LANDING_TABLES
        if unknown:
            raise ModelError(f"model {model.name} reads unknown tables: {', '.join(sorted(unknown))}")
        if kinds := sorted(set(model.rows_of) - CHANGED_KEYS.keys()):
            raise ModelError(f"model {model.name}: unknown kind of key in rows_of: {', '.join(kinds)} (known: {', '.join(sorted(CHANGED_KEYS))})")
    graph = {m.name: {r for r in m.reads if r in by_name} for m in models}
    try:
        return [by_name[name] for name in graphlib.TopologicalSorter(graph).static_order()]
    except graphlib.CycleError as error:
        raise ModelError(f"models read each other in a cycle: {', '.join(sorted(set(error.args[1])))}") from None


def downstream_of(name: str, models: tuple[Model, ...]) -> set[str]:
    """Every model that reads `name`, directly or through other models."""
    return _reachable(name, lambda table: {m.name for m in models if table in m.reads})


def upstream_of(name: str, models: tuple[Model, ...]) -> set[str]:
    """Every table `name` is built from, directly or through other models, landing tables included."""
    reads = {m.name: m.reads for m in models}
    return _reachable(name, lambda table: reads.get(table, frozenset()))


def _reachable(start: str, step: Callable[[str], Iterable[str]]) -> set[str]:
    found: set[str] = set()
    frontier = {start}
    while frontier:
        frontier = {reached for table in frontier for reached in step(table)} - found
        found |= frontier
    return found
