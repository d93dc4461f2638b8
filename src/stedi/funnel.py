"""The zone funnel: how many rows each step kept, and why the others went.

A table's row count is read from its snapshot. What needs counting is why rows went, and that
depends only on the tables it is counted from, so counts are built on the last run's:

- a customer's fate (no consent, revoked) depends on the customer feed alone: while its landing
  table holds the same files, the last counts stand;
- a reading's fate (ambiguous serial number, no consent, out of scope, kept) depends on that
  reading and on the tables that attribute it to a customer. While the landing table only gained
  files and those tables hold the same files, the last counts stand for the readings counted then,
  and only the new files' readings are counted. A table that may only gain rows names the
  readings whose fate its new rows can change (`ReadingFunnel.growth_affects`): when it did, those
  readings are counted under the table as it was and as it is, and the difference is added;
- when a delivery of customer records replaced the rows of the customers and serial numbers it
  touched (`stedi.changes`), only the readings those customers and numbers name can have a new
  fate: they are counted under the tables as they were and as they are, and the difference added.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import duckdb

from stedi.errors import LakeError
from stedi.models import added_name, columns_read, compile_sql, load_sources, of_changed, tables_read
from stedi.sql import TableInput, one_row, register_tables

if TYPE_CHECKING:
    from stedi.changes import Changes
    from stedi.lake import Lake, TableState

# A customer's fate: whether they ever consented, and whether their latest record does.
CUSTOMER_SQL = compile_sql("""
    WITH customers AS (
        SELECT customer_email,
               bool_or(is_latest AND shareWithResearchAsOfDate IS NOT NULL) AS consents,
               bool_or(shareWithResearchAsOfDate IS NOT NULL) AS ever_consented
        FROM stg_customer_records GROUP BY customer_email)
    SELECT count(*) AS distinct_customers,
           count(*) FILTER (WHERE NOT ever_consented) AS no_consent,
           count(*) FILTER (WHERE ever_consented AND NOT consents) AS revoked
    FROM customers""")
CUSTOMER_TABLES = ("customer_landing", "customer_landing_rejected", "customer_trusted", "customers_curated")

MACHINE_LEARNING_SQL = "SELECT count(DISTINCT customer_key) AS customers FROM machine_learning_curated"

# The view of the landing rows a reading feed's counts are taken over: all of them, or new ones.
READINGS = "readings"


@dataclass(frozen=True)
class ReadingFunnel:
    """How a reading feed's funnel is counted: its landing and trusted tables and the fates' SQL.

    `fates_sql` reads the view `readings` and counts each fate, with the consent scope as the
    query parameter `$scope`. `growth_affects` lets counts be built on the last run's (see the
    module docstring).
    """

    landing: str
    trusted: str
    # Per reading, what became of it; `in_scope` readings are kept, once each, in `trusted`.
    fates_sql: str
    # Tables that decide a reading's fate and may only gain rows between two counts, each with the
    # SELECT of the readings whose fate the new rows (the view `added_name(table)`) can change.
    growth_affects: Mapping[str, str] = field(default_factory=dict)

    @property
    def attribution(self) -> frozenset[str]:
        """The tables, besides the readings, that decide a reading's fate."""
        return tables_read(self.fates_sql) - {READINGS}

    @property
    def tables(self) -> frozenset[str]:
        """Every table the feed's counts depend on: landing, quarantine, trusted and attribution."""
        return self.attribution | {self.landing, f"{self.landing}_rejected", self.trusted}


READING_FEEDS = {
    "accelerometer": ReadingFunnel(
        "accelerometer_landing",
        "accelerometer_trusted",
        f"""
        WITH attributed AS (
            SELECT reading.timestamp, coalesce(lower(trim(reading.user)), owner.email) AS customer_email,
                   CASE WHEN reading.user IS NULL THEN owner.customers END AS serial_customers
            FROM {READINGS} AS reading
            LEFT JOIN serial_number_owners AS owner ON owner.serialNumber = reading.serialNumber)
        SELECT count(*) FILTER (WHERE serial_customers > 1) AS ambiguous_serial,
               count(*) FILTER (WHERE customer.email IS NULL AND coalesce(serial_customers, 0) <= 1) AS no_consent,
               count(*) FILTER (WHERE customer.email IS NOT NULL
                                  AND $scope = 'since-consent' AND timestamp < customer.shareWithResearchAsOfDate) AS out_of_scope,
               count(*) FILTER (WHERE customer.email IS NOT NULL
                                  AND NOT ($scope = 'since-consent' AND timestamp < customer.shareWithResearchAsOfDate)) AS in_scope
        FROM attributed LEFT JOIN customer_trusted AS customer ON customer.email = attributed.customer_email""",
    ),
    "step_trainer": ReadingFunnel(
        "step_trainer_landing",
        "step_trainer_trusted",
        f"""
        WITH curated_owner AS (  -- each serial number's owner, if curated: readings are joined once, not twice
            SELECT owner.serialNumber, owner.customers, customer.email, customer.shareWithResearchAsOfDate AS consent
            FROM serial_number_owners AS owner
            LEFT JOIN customers_curated AS customer ON customer.email = owner.email  -- email is set for sole owners only
        ), attributed AS (
            SELECT reading.sensorReadingTime, owner.customers, owner.email, owner.consent
            FROM {READINGS} AS reading LEFT JOIN curated_owner AS owner ON owner.serialNumber = reading.serialNumber)
        SELECT count(*) FILTER (WHERE customers > 1) AS ambiguous_serial,
               count(*) FILTER (WHERE coalesce(customers, 0) <= 1 AND email IS NULL) AS no_consent,
               count(*) FILTER (WHERE email IS NOT NULL AND $scope = 'since-consent' AND sensorReadingTime < consent) AS out_of_scope,
               count(*) FILTER (WHERE email IS NOT NULL AND NOT ($scope = 'since-consent' AND sensorReadingTime < consent)) AS in_scope
        FROM attributed""",
        growth_affects={
            # A customer newly curated (new phone readings) takes the readings of their serial number along.
            "customers_curated": f"""
            SELECT sensorReadingTime, serialNumber FROM {READINGS} WHERE serialNumber IN (
                SELECT serialNumber FROM serial_number_owners WHERE email IN (SELECT email FROM {added_name("customers_curated")}))""",
        },
    ),
}
FATES = ("ambiguous_serial", "no_consent", "out_of_scope", "in_scope")


@dataclass(frozen=True)
class Replaced:
    """The tables a run replaced the touched customers' rows of, each with the snapshot it
    replaced them in, and what the delivery touched."""

    changes: Changes
    tables: Mapping[str, int | None]


def funnel(lake: Lake, scope: str, last: dict | None = None, replaced: Replaced | None = None) -> dict[str, dict[str, int]]:
    """Counts per feed, without the feeds whose zone tables do not all exist yet (an upstream
    table failed). `last` is the last run's record: its counts are built on where they still hold,
    with what this run `replaced`."""
    tables = {name: lake.state(name) for name in lake.table_names()}
    counted_before = last if last and last.get("funnel_over", {}).get("consent_scope") == scope else {}
    counted = counted_before.get("funnel", {})
    snapshots = counted_before.get("funnel_over", {}).get("snapshots", {})
    conn = lake.connect()
    register_tables(conn, {name: TableInput(state.files, lake.columns(name)) for name, state in tables.items()})
    for name, values in (replaced.changes.tables() if replaced else {}).items():
        conn.register(name, values)
    result = {}
    if set(CUSTOMER_TABLES) <= tables.keys():
        reuse = "customer" in counted and _same_files(lake, tables_read(CUSTOMER_SQL), tables, snapshots)
        fates = counted["customer"] if reuse else _row(conn, CUSTOMER_SQL)
        result["customer"] = {
            "landing_records": tables["customer_landing"].rows,
            "rejected_lines": tables["customer_landing_rejected"].rows,
            **{fate: fates[fate] for fate in ("distinct_customers", "no_consent", "revoked")},
            "customer_trusted": tables["customer_trusted"].rows,
            "customers_curated": tables["customers_curated"].rows,
        }
    for feed, reading in READING_FEEDS.items():
        if reading.tables <= tables.keys():
            recount = _recount_since(lake, reading, tables, snapshots, replaced) if feed in counted else None
            result[feed] = _reading_counts(lake, conn, reading, tables, scope, counted.get(feed), recount)
    if "machine_learning_curated" in tables:
        result["machine_learning"] = {"machine_learning_curated": tables["machine_learning_curated"].rows, **_row(conn, MACHINE_LEARNING_SQL)}
    conn.close()
    return result


@dataclass(frozen=True)
class Recount:
    """What changed since a reading feed was counted, when its last counts can be built on."""

    counted: tuple[str, ...]  # the landing files counted then
    added: tuple[str, ...]  # the landing files since
    grown: dict[str, tuple[str, ...]]  # attribution tables that gained rows, with their files then
    replaced: dict[str, tuple[str, ...]]  # attribution tables whose touched customers' rows were replaced, with their files then


def _reading_counts(
    lake: Lake,
    conn: duckdb.DuckDBPyConnection,
    reading: ReadingFunnel,
    tables: dict[str, TableState],
    scope: str,
    counted: dict[str, int] | None,
    recount: Recount | None,
) -> dict[str, int]:
    """A reading feed's funnel: all its readings counted, or the last counts brought up to date."""
    columns = lake.columns(reading.landing)
    if recount is None:
        register_tables(conn, {READINGS: TableInput(tables[reading.landing].files, columns)})
        fates = _row(conn, reading.fates_sql, {"scope": scope})
    else:
        assert counted is not None, "a recount builds on the feed's last counts"
        # The last funnel reported kept readings as duplicates + trusted rows.
        fates = {**{f: counted[f] for f in FATES[:-1]}, "in_scope": counted["duplicates"] + counted[reading.trusted]}
        # The grown tables go from then to now one at a time, the readings they affect counted
        # before and after each step; the replaced ones all at once, with the touched readings.
        register_tables(conn, {name: TableInput(then, lake.columns(name)) for name, then in {**recount.grown, **recount.replaced}.items()})
        steps = [
            ({name: then}, reading.growth_affects[name], {added_name(name): TableInput(_without(tables[name].files, then), lake.columns(name))})
            for name, then in sorted(recount.grown.items())
        ]
        if recount.replaced:  # only the readings of touched customers and serial numbers can have a new fate
            affected = f"SELECT {columns_read(reading.fates_sql, [c for c, _ in columns])} FROM {READINGS} WHERE {of_changed(load_sources()[reading.landing])}"
            steps.append((recount.replaced, affected, {}))
        for changed, affected_sql, views in steps:
            register_tables(conn, {READINGS: TableInput(recount.counted, columns), **views})
            conn.execute(f"CREATE OR REPLACE TEMP TABLE affected_readings AS {affected_sql}")
            conn.execute(f"CREATE OR REPLACE VIEW {READINGS} AS SELECT * FROM affected_readings")
            before = _row(conn, reading.fates_sql, {"scope": scope})
            register_tables(conn, {name: TableInput(tables[name].files, lake.columns(name)) for name in changed})
            after = _row(conn, reading.fates_sql, {"scope": scope})
            fates = {f: fates[f] + after[f] - before[f] for f in FATES}
        register_tables(conn, {READINGS: TableInput(recount.added, columns)})
        new = _row(conn, reading.fates_sql, {"scope": scope})
        fates = {f: fates[f] + new[f] for f in FATES}
    trusted = tables[reading.trusted].rows
    return {
        "landing_rows": tables[reading.landing].rows,
        "rejected_lines": tables[f"{reading.landing}_rejected"].rows,
        "ambiguous_serial": fates["ambiguous_serial"],
        "no_consent": fates["no_consent"],
        "out_of_scope": fates["out_of_scope"],
        "duplicates": fates["in_scope"] - trusted,
        reading.trusted: trusted,
    }


def _recount_since(
    lake: Lake, reading: ReadingFunnel, tables: dict[str, TableState], snapshots: dict[str, int | None], replaced: Replaced | None
) -> Recount | None:
    """How a feed's readings changed since they were counted at `snapshots`, when the last counts
    can be built on: its landing table only gained files, and each table that decides a reading's
    fate holds the same files, only gained some and names the readings that affects, or had the
    touched customers' rows replaced from the snapshot counted. None when its readings must all be
    counted again."""
    then = _files_at(lake, reading.attribution | {reading.landing}, snapshots)
    if then is None:
        return None
    grown, swapped = {}, {}
    for name in reading.attribution | {reading.landing}:
        before, now = set(then[name]), set(tables[name].files)
        if before == now:
            continue
        if replaced and name in replaced.tables and replaced.tables[name] == snapshots.get(name):
            swapped[name] = then[name]
        elif not before <= now or (name != reading.landing and name not in reading.growth_affects):
            return None
        elif name != reading.landing:
            grown[name] = then[name]
    if grown and swapped:  # counted in one step each; both at once has no single "before"
        return None
    landing = then[reading.landing]
    return Recount(landing, _without(tables[reading.landing].files, landing), grown, swapped)


def _without(files: tuple[str, ...], removed: tuple[str, ...]) -> tuple[str, ...]:
    gone = set(removed)
    return tuple(f for f in files if f not in gone)


def _same_files(lake: Lake, names: frozenset[str], tables: dict[str, TableState], snapshots: dict[str, int | None]) -> bool:
    """Whether each of the tables holds the same data files now as at `snapshots`."""
    then = _files_at(lake, names, snapshots)
    return then is not None and all(set(then[name]) == set(tables[name].files) for name in names)


def _files_at(lake: Lake, names: frozenset[str], snapshots: dict[str, int | None]) -> dict[str, tuple[str, ...]] | None:
    """Each table's data files at `snapshots`; None when one was not counted then, or that
    snapshot is no longer kept."""
    try:  # a table with no snapshot then held no file (`Lake.state` of None is the current snapshot)
        return {name: lake.state(name, snapshots[name]).files if snapshots[name] else () for name in names}
    except (KeyError, LakeError):
        return None


def _row(conn: duckdb.DuckDBPyConnection, sql: str, parameters: dict | None = None) -> dict[str, int]:
    row = one_row(conn, sql, parameters)
    return dict(zip([d[0] for d in conn.description], row))
