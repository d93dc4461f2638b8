"""Quality gates (SPEC §5): each check is a query that counts the rows breaking a rule.

Checks run on DuckDB over the table's new, not yet published Parquet files and the tables it
relates to — whichever engine built it — so the audit is the same for every engine.

A check reads only the table it audits and the tables that table is built from
(`validate_checks`): those are the tables published before it in a run. After an append, a check
that judges row by row therefore judges only the appended rows (see `run_check`), and after a
replacement only the touched customers' rows; the rows held before were judged when they were
published.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass

import duckdb
import sqlglot
from sqlglot import exp

from stedi.errors import ModelError
from stedi.models import CheckSpec, Model, tables_read, upstream_of
from stedi.sql import one_row

# Columns that identify a person directly; none may reach machine_learning_curated.
PII_COLUMNS = ("email", "user", "customername", "phone", "birthday", "serialnumber")


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one table: how many rows broke its rule.

    `judged` says whether all the table's rows were judged or, after an append, only the new ones.
    """

    name: str
    severity: str
    violations: int
    judged: str = "all rows"  # or "new rows": after an append or a replacement, see `run_check`

    @property
    def passed(self) -> bool:
        """Whether no row broke the rule."""
        return self.violations == 0

    @property
    def blocks_publish(self) -> bool:
        """Whether the check failed with severity "error": the table is then not published."""
        return not self.passed and self.severity == "error"

    def as_dict(self) -> dict:
        """The result as run manifests and `--json` carry it, `passed` included."""
        return {**asdict(self), "passed": self.passed}


def _not_null(t: str, column: str) -> str:
    return f'SELECT count(*) FROM {t} WHERE "{column}" IS NULL'


def _unique(t: str, column: str) -> str:
    return f'SELECT count(*) FROM (SELECT "{column}" FROM {t} GROUP BY ALL HAVING count(*) > 1)'


def _not_empty(t: str) -> str:
    return f"SELECT CASE WHEN count(*) = 0 THEN 1 ELSE 0 END FROM {t}"


def _latest_record_with_consent(t: str) -> str:
    return f"""
    SELECT count(*) FROM {t} AS kept
    WHERE kept.shareWithResearchAsOfDate IS NULL
       OR EXISTS (SELECT 1 FROM customer_landing AS newer
                  WHERE lower(trim(newer.email)) = kept.email AND newer.lastUpdateDate > kept.lastUpdateDate)"""


def _consenting_rows(t: str, email: str, time: str | None = None) -> str:
    out_of_scope = f" OR (run_settings.consent_scope = 'since-consent' AND row.\"{time}\" < customer.shareWithResearchAsOfDate)" if time else ""
    return f"""
    SELECT count(*) FROM {t} AS row
    CROSS JOIN run_settings
    LEFT JOIN customer_trusted AS customer ON customer.email = row."{email}"
    WHERE row."{email}" IS NOT NULL AND (customer.email IS NULL{out_of_scope})"""


def _references(t: str, column: str, table: str, key: str) -> str:
    return f"""
    SELECT count(*) FROM {t} AS row
    WHERE row."{column}" IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM {table} AS other WHERE other."{key}" = row."{column}")"""


def _unambiguous_serial_numbers(t: str) -> str:
    return f"""
    SELECT count(*) FROM {t} AS reading
    LEFT JOIN serial_number_owners AS owner ON owner.serialNumber = reading.serialNumber
    WHERE owner.customers IS DISTINCT FROM 1 OR owner.email IS DISTINCT FROM reading.email"""


def _no_pii_columns(t: str) -> str:
    names = ", ".join(f"'{c}'" for c in PII_COLUMNS)
    return f"SELECT count(*) FROM (DESCRIBE {t}) WHERE lower(column_name) IN ({names})"


def _same_customer_pairs(t: str) -> str:
    # Each customer is keyed once, so the anti-join compares plain columns, and only the customers
    # of the rows judged, which after an append are a few. Every Step Trainer row's customer is
    # curated: the curated customers are their list without a pass over the readings.
    return f"""
    WITH keyed AS (
        SELECT email, customer_key FROM (
            SELECT email, sha256(concat(run_settings.key_secret, '|', email)) AS customer_key
            FROM customers_curated CROSS JOIN run_settings)
        WHERE customer_key IN (SELECT customer_key FROM {t})
    ), step AS (
        SELECT customer_key, sensorReadingTime, distanceFromObject FROM step_trainer_trusted JOIN keyed USING (email)
    )
    SELECT count(*) FROM {t} AS pair
    WHERE NOT EXISTS (
        SELECT 1 FROM step
        WHERE step.customer_key = pair.customer_key
          AND step.sensorReadingTime = pair.timestamp
          AND step.distanceFromObject = pair.distanceFromObject)"""


CHECKS: dict[str, Callable[..., str]] = {
    "not_null": _not_null,
    "unique": _unique,
    "not_empty": _not_empty,
    "latest_record_with_consent": _latest_record_with_consent,
    "consenting_rows": _consenting_rows,
    "references": _references,
    "unambiguous_serial_numbers": _unambiguous_serial_numbers,
    "no_pii_columns": _no_pii_columns,
    "same_customer_pairs": _same_customer_pairs,
}


# Checks that judge each row by itself and by whether it finds its match in other tables. A row
# that passed still passes when those tables have only gained rows.
ROW_BY_ROW = frozenset({"not_null", "consenting_rows", "references", "unambiguous_serial_numbers", "same_customer_pairs"})


def check_sql(table: str, check: CheckSpec) -> str:
    """The query that counts the rows of `table` breaking the check's rule."""
    return CHECKS[check.kind](f'"{table}"', **check.params)


def offending_rows_sql(table: str, check: CheckSpec, limit: int) -> str | None:
    """A query for the first `limit` rows breaking the check's rule: its counting query with the
    rows in place of `count(*)`. None for a check that does not count rows (`not_empty`)."""
    try:
        tree = sqlglot.parse_one(check_sql(table, check), read="duckdb")
    except sqlglot.errors.ParseError:
        return None
    if not isinstance(tree, exp.Select) or len(tree.expressions) != 1:
        return None
    counted = tree.expressions[0]
    if not isinstance(counted, exp.Count) or not isinstance(counted.this, exp.Star):
        return None
    audited = tree.find(exp.From)
    alias = audited.this.alias if audited else ""
    # The audited table's columns only: never those of what it is joined to (run_settings holds the lake's secret).
    return tree.select(f"{alias}.*" if alias else "*", append=False).limit(limit).sql("duckdb")


def validate_checks(models: tuple[Model, ...]) -> None:
    """Every check is known, has the parameters it takes, and reads only the table it audits and
    the tables that table is built from: any other table may not be built yet, or be built later
    in the same run."""
    for model in models:
        upstream = upstream_of(model.name, models)
        for check in model.checks:
            if check.kind not in CHECKS:
                raise ModelError(f"unknown check '{check.kind}' on {model.name}: known checks are {', '.join(CHECKS)}")
            takes = list(inspect.signature(CHECKS[check.kind]).parameters.values())[1:]  # after the table
            unexpected = sorted(check.params.keys() - {p.name for p in takes})
            missing = [p.name for p in takes if p.default is inspect.Parameter.empty and p.name not in check.params]
            if unexpected or missing:
                wrong = [f"unexpected parameter '{n}'" for n in unexpected] + [f"missing parameter '{n}'" for n in missing]
                raise ModelError(f"check {check.kind} on {model.name}: {'; '.join(wrong)}")
            outside = tables_read(check_sql(model.name, check)) - {model.name} - upstream
            if outside:
                raise ModelError(
                    f"check {check.name} on {model.name} reads {', '.join(sorted(outside))}, which {model.name} is not "
                    "built from: a check may read only the table it audits and the tables upstream of it"
                )


def run_check(conn: duckdb.DuckDBPyConnection, table: str, check: CheckSpec, appended: str | None = None) -> CheckResult:
    """`conn` has every table the check may read registered, `table` at its new contents.

    `appended`, when given, names the view of the rows just appended to `table`, or of the touched
    customers' rows a replacement wrote. A table is only appended to when every table upstream of
    it only gained rows since, and only replaces the rows of customers whose rows upstream are all
    that changed (anything else rebuilds it); a check reads no other table, so a check that judges
    row by row passes every other row still: it judges the new rows alone.
    """
    if appended and check.kind in ROW_BY_ROW:
        return CheckResult(check.name, check.severity, _count(conn, check_sql(appended, check)), "new rows")
    return CheckResult(check.name, check.severity, _count(conn, check_sql(table, check)))


def _count(conn: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(one_row(conn, sql)[0])
