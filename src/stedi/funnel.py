"""The zone funnel: how many rows each step kept, and why the others went."""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb

from stedi.engines.base import TableInput
from stedi.engines.duckdb import connect, register_tables

if TYPE_CHECKING:
    from stedi.lake import Lake

FUNNEL_SQL = {
    "customer": """
        WITH latest AS (
            SELECT lower(trim(email)) AS email,
                   arg_max(shareWithResearchAsOfDate IS NOT NULL, (coalesce(lastUpdateDate, -1), _ingested_at, _source_file, _source_line)) AS consents,
                   bool_or(shareWithResearchAsOfDate IS NOT NULL) AS ever_consented
            FROM customer_landing GROUP BY ALL)
        SELECT (SELECT count(*) FROM customer_landing) AS landing_records,
               (SELECT count(*) FROM customer_landing_rejected) AS rejected_lines,
               count(*) AS distinct_customers,
               count(*) FILTER (WHERE NOT ever_consented) AS no_consent,
               count(*) FILTER (WHERE ever_consented AND NOT consents) AS revoked,
               (SELECT count(*) FROM customer_trusted) AS customer_trusted,
               (SELECT count(*) FROM customers_curated) AS customers_curated
        FROM latest""",
    "accelerometer": """
        WITH attributed AS (
            SELECT reading.*, coalesce(lower(trim(reading.user)), owner.email) AS customer_email,
                   CASE WHEN reading.user IS NULL THEN owner.customers END AS serial_customers
            FROM accelerometer_landing AS reading
            LEFT JOIN serial_number_owners AS owner ON owner.serialNumber = reading.serialNumber)
        SELECT (SELECT count(*) FROM accelerometer_landing) AS landing_rows,
               (SELECT count(*) FROM accelerometer_landing_rejected) AS rejected_lines,
               count(*) FILTER (WHERE serial_customers > 1) AS ambiguous_serial,
               count(*) FILTER (WHERE customer.email IS NULL AND coalesce(serial_customers, 0) <= 1) AS no_consent,
               count(*) FILTER (WHERE customer.email IS NOT NULL AND $scope = 'since-consent' AND timestamp < customer.shareWithResearchAsOfDate) AS out_of_scope,
               count(*) FILTER (WHERE customer.email IS NOT NULL AND NOT ($scope = 'since-consent' AND timestamp < customer.shareWithResearchAsOfDate))
                 - (SELECT count(*) FROM accelerometer_trusted) AS duplicates,
               (SELECT count(*) FROM accelerometer_trusted) AS accelerometer_trusted
        FROM attributed LEFT JOIN customer_trusted AS customer ON customer.email = attributed.customer_email""",
    "step_trainer": """
        WITH attributed AS (
            SELECT reading.*, owner.customers, customer.email, customer.shareWithResearchAsOfDate AS consent
            FROM step_trainer_landing AS reading
            LEFT JOIN serial_number_owners AS owner ON owner.serialNumber = reading.serialNumber
            LEFT JOIN customers_curated AS customer ON customer.email = owner.email)  -- email is set for sole owners only
        SELECT (SELECT count(*) FROM step_trainer_landing) AS landing_rows,
               (SELECT count(*) FROM step_trainer_landing_rejected) AS rejected_lines,
               count(*) FILTER (WHERE customers > 1) AS ambiguous_serial,
               count(*) FILTER (WHERE coalesce(customers, 0) <= 1 AND email IS NULL) AS no_consent,
               count(*) FILTER (WHERE email IS NOT NULL AND $scope = 'since-consent' AND sensorReadingTime < consent) AS out_of_scope,
               count(*) FILTER (WHERE email IS NOT NULL AND NOT ($scope = 'since-consent' AND sensorReadingTime < consent))
                 - (SELECT count(*) FROM step_trainer_trusted) AS duplicates,
               (SELECT count(*) FROM step_trainer_trusted) AS step_trainer_trusted
        FROM attributed""",
    "machine_learning": "SELECT count(*) AS machine_learning_curated, count(DISTINCT customer_key) AS customers FROM machine_learning_curated",
}


def funnel(lake: Lake, scope: str) -> dict[str, dict[str, int]]:
    """Counts per feed; empty when the zone tables do not all exist yet."""
    names = lake.table_names()
    conn = connect()
    register_tables(conn, {name: TableInput(lake.state(name).files, lake.columns(name)) for name in names})
    result = {}
    for feed, sql in FUNNEL_SQL.items():
        try:
            cursor = conn.execute(sql, {"scope": scope} if "$scope" in sql else None)
        except duckdb.CatalogException:  # a table not built yet (its upstream failed): no funnel row for it
            continue
        row = cursor.fetchone()
        result[feed] = dict(zip([d[0] for d in cursor.description], row))
    conn.close()
    return result
