"""The floor of `make bench`: the same work as `stedi run`, as one plain DuckDB script.

Reads the three feeds with a fixed schema (no quarantine: lines that do not fit become NULLs or
are skipped, and rows missing a required field are dropped), writes them and the five zone tables
as Parquet. Same zone semantics as the stedi models (SPEC §3-4, consent scope `since-consent`).

    python bench/floor_duckdb.py SOURCE OUT
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import duckdb

SCHEMAS = {
    "customer": {
        "customerName": "VARCHAR", "email": "VARCHAR", "phone": "VARCHAR", "birthDay": "VARCHAR",
        "serialNumber": "VARCHAR", "registrationDate": "BIGINT", "lastUpdateDate": "BIGINT",
        "shareWithResearchAsOfDate": "BIGINT", "shareWithPublicAsOfDate": "BIGINT", "shareWithFriendsAsOfDate": "BIGINT",
    },
    "accelerometer": {"user": "VARCHAR", "timestamp": "BIGINT", "x": "DOUBLE", "y": "DOUBLE", "z": "DOUBLE", "serialNumber": "VARCHAR"},
    "step_trainer": {"sensorReadingTime": "BIGINT", "serialNumber": "VARCHAR", "distanceFromObject": "BIGINT"},
}  # fmt: skip
REQUIRED = {
    "customer": "email IS NOT NULL",
    "accelerometer": "timestamp IS NOT NULL AND x IS NOT NULL AND y IS NOT NULL AND z IS NOT NULL "
                     "AND (user IS NOT NULL OR serialNumber IS NOT NULL)",
    "step_trainer": "sensorReadingTime IS NOT NULL AND serialNumber IS NOT NULL AND distanceFromObject IS NOT NULL",
}  # fmt: skip
FOLDERS = {"customer": ("customer", "customers"), "accelerometer": ("accelerometer",), "step_trainer": ("step_trainer",)}
SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")

ZONES = {
    # The latest record of every customer (helper, not written).
    "latest": """
        SELECT *, lower(trim(email)) AS customer_email FROM customer_landing
        QUALIFY row_number() OVER (PARTITION BY lower(trim(email))
                                   ORDER BY lastUpdateDate DESC NULLS LAST, _source_file DESC) = 1""",
    "customer_trusted": """
        SELECT customer_email AS email, customerName, phone, birthDay, serialNumber, registrationDate, lastUpdateDate,
               shareWithResearchAsOfDate, shareWithPublicAsOfDate, shareWithFriendsAsOfDate, _source_file
        FROM latest WHERE shareWithResearchAsOfDate IS NOT NULL""",
    # Serial numbers carried by exactly one customer (helper, not written).
    "serial_owner": """
        SELECT serialNumber, min(customer_email) AS email FROM latest WHERE serialNumber IS NOT NULL
        GROUP BY serialNumber HAVING count(DISTINCT customer_email) = 1""",
    "accelerometer_trusted": """
        SELECT DISTINCT r.user, r.timestamp, r.x, r.y, r.z
        FROM (SELECT coalesce(lower(trim(a.user)), o.email) AS user, a.timestamp, a.x, a.y, a.z
              FROM accelerometer_landing a LEFT JOIN serial_owner o ON o.serialNumber = a.serialNumber) r
        JOIN customer_trusted c ON c.email = r.user
        WHERE r.timestamp >= c.shareWithResearchAsOfDate""",
    "customers_curated": """
        SELECT * FROM customer_trusted c WHERE EXISTS (SELECT 1 FROM accelerometer_trusted a WHERE a.user = c.email)""",
    "step_trainer_trusted": """
        SELECT DISTINCT s.sensorReadingTime, s.serialNumber, s.distanceFromObject, c.email
        FROM step_trainer_landing s
        JOIN serial_owner o ON o.serialNumber = s.serialNumber
        JOIN customers_curated c ON c.email = o.email
        WHERE s.sensorReadingTime >= c.shareWithResearchAsOfDate""",
    "machine_learning_curated": """
        SELECT sha256(concat($secret, '|', a.user)) AS customer_key, a.timestamp, a.x, a.y, a.z, s.distanceFromObject
        FROM accelerometer_trusted a
        JOIN step_trainer_trusted s ON s.email = a.user AND s.sensorReadingTime = a.timestamp""",
}
HELPERS = ("latest", "serial_owner")


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def feed_files(source: Path, feed: str) -> list[str]:
    return sorted(
        str(path) for folder in FOLDERS[feed] for path in (source / folder).rglob("*")
        if path.is_file() and path.name.lower().endswith(SUFFIXES)
    )  # fmt: skip


def main(source: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    for feed, schema in SCHEMAS.items():
        files = "[" + ", ".join(quote(f) for f in feed_files(source, feed)) + "]"
        columns = "{" + ", ".join(f"{quote(name)}: {quote(kind)}" for name, kind in schema.items()) + "}"
        con.execute(
            f"CREATE TABLE {feed}_landing AS SELECT * EXCLUDE (filename), filename AS _source_file "
            f"FROM read_json({files}, columns = {columns}, format = 'newline_delimited', ignore_errors = true, filename = true) "
            f"WHERE {REQUIRED[feed]}"
        )
        con.execute(f"COPY {feed}_landing TO {quote(str(out / f'{feed}_landing.parquet'))} (FORMAT parquet, COMPRESSION zstd)")
    for name, sql in ZONES.items():
        params = {"secret": secrets.token_hex(32)} if "$secret" in sql else None
        con.execute(f"CREATE TABLE {name} AS {sql}", params)
        if name not in HELPERS:
            con.execute(f"COPY {name} TO {quote(str(out / f'{name}.parquet'))} (FORMAT parquet, COMPRESSION zstd)")
    con.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python bench/floor_duckdb.py SOURCE OUT")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
