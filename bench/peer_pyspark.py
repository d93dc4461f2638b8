"""The peer of `make bench`: the same work as bench/floor_duckdb.py, as a plain PySpark job.

What a Glue job runs: a local[*] session, `spark.read.schema(...).json`, the landing tables and the
five zone tables written as Parquet, each zone table read back from its Parquet before the next
one uses it. No quarantine: Spark's PERMISSIVE mode turns what does not fit into NULLs, and rows
missing a required field are dropped. Same zone semantics as the floor and the stedi models.

    python bench/peer_pyspark.py SOURCE OUT [--driver-memory 4g]
"""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import types as T

S, L, D = T.StringType(), T.LongType(), T.DoubleType()
SCHEMAS = {
    "customer": T.StructType([T.StructField(name, kind) for name, kind in [
        ("customerName", S), ("email", S), ("phone", S), ("birthDay", S), ("serialNumber", S), ("registrationDate", L),
        ("lastUpdateDate", L), ("shareWithResearchAsOfDate", L), ("shareWithPublicAsOfDate", L), ("shareWithFriendsAsOfDate", L),
    ]]),
    "accelerometer": T.StructType([T.StructField(name, kind) for name, kind in [
        ("user", S), ("timestamp", L), ("x", D), ("y", D), ("z", D), ("serialNumber", S),
    ]]),
    "step_trainer": T.StructType([T.StructField(name, kind) for name, kind in [
        ("sensorReadingTime", L), ("serialNumber", S), ("distanceFromObject", L),
    ]]),
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
    "latest": """
        SELECT * FROM (
            SELECT *, lower(trim(email)) AS customer_email,
                   row_number() OVER (PARTITION BY lower(trim(email))
                                      ORDER BY lastUpdateDate DESC NULLS LAST, _source_file DESC) AS recency
            FROM customer_landing)
        WHERE recency = 1""",
    "customer_trusted": """
        SELECT customer_email AS email, customerName, phone, birthDay, serialNumber, registrationDate, lastUpdateDate,
               shareWithResearchAsOfDate, shareWithPublicAsOfDate, shareWithFriendsAsOfDate, _source_file
        FROM latest WHERE shareWithResearchAsOfDate IS NOT NULL""",
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
        SELECT sha2(concat(:secret, '|', a.user), 256) AS customer_key, a.timestamp, a.x, a.y, a.z, s.distanceFromObject
        FROM accelerometer_trusted a
        JOIN step_trainer_trusted s ON s.email = a.user AND s.sensorReadingTime = a.timestamp""",
}
HELPERS = ("latest", "serial_owner")  # small views, not written


def feed_files(source: Path, feed: str) -> list[str]:
    return sorted(
        str(path.resolve()) for folder in FOLDERS[feed] for path in (source / folder).rglob("*")
        if path.is_file() and path.name.lower().endswith(SUFFIXES)
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--driver-memory", default=None, help="spark.driver.memory (default: Spark's own default)")
    args = parser.parse_args()

    builder = SparkSession.builder.master("local[*]").appName("stedi-bench-peer").config("spark.ui.enabled", "false")
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    if args.driver_memory:
        builder = builder.config("spark.driver.memory", args.driver_memory)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    out = args.out.resolve()

    def write_and_reread(df, name: str) -> None:
        location = f"file://{out / name}"
        df.write.mode("overwrite").parquet(location)
        spark.read.parquet(location).createOrReplaceTempView(name)

    for feed, schema in SCHEMAS.items():
        files = [f"file://{f}" for f in feed_files(args.source, feed)]
        landing = spark.read.schema(schema).json(files).selectExpr("*", "input_file_name() AS _source_file").where(REQUIRED[feed])
        write_and_reread(landing, f"{feed}_landing")
    secret = secrets.token_hex(32)
    for name, sql in ZONES.items():
        df = spark.sql(sql, args={"secret": secret}) if ":secret" in sql else spark.sql(sql)
        if name in HELPERS:
            df.createOrReplaceTempView(name)
        else:
            write_and_reread(df, name)
    spark.stop()


if __name__ == "__main__":
    main()
