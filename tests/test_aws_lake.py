"""A lake on S3 with the Glue Data Catalog: `stedi run`, `stedi query`, `stedi status`, the Glue job's
entry point, `stedi forget`, and the guards (one lake per Glue database, the S3 lock).

Against moto's server on 127.0.0.1 (tests/aws_support.py), never AWS.
"""

from __future__ import annotations

import json

from stedi.aws.glue_job import main as glue_job_main
from stedi.engines import open_engine
from stedi.ingest import LEDGER_TABLE, landing_tables
from support.aws import Aws, ok_json, stedi
from support.lakes import MODEL_TABLES

LAKE = "s3://stedi-lake/zones"
TABLES = {*landing_tables(), LEDGER_TABLE, *MODEL_TABLES}
CHECK = (
    "SELECT (SELECT count(*) FROM customer_trusted), (SELECT count(*) FROM accelerometer_trusted), "
    "(SELECT count(*) FROM step_trainer_trusted), (SELECT count(*) FROM machine_learning_curated), "
    "(SELECT sum(distanceFromObject) FROM machine_learning_curated)"
)


def test_run_into_an_s3_lake_with_the_glue_catalog_and_query_it(aws: Aws, feeds, tmp_path):
    aws.bucket("stedi-source")
    aws.bucket("stedi-lake")
    aws.upload(feeds, "stedi-source", "starter")

    report = ok_json("run", "s3://stedi-source/starter", "--lake", LAKE)
    assert report["ok"] and {t["status"] for t in report["tables"]} == {"built"}

    # The tables are Iceberg tables in the Glue database `stedi`, as Athena reads them.
    database = aws.glue.get_database(Name="stedi")["Database"]
    assert database["LocationUri"] == f"{LAKE}/warehouse/stedi.db"
    tables = aws.glue.get_tables(DatabaseName="stedi")["TableList"]
    assert {t["Name"] for t in tables} == TABLES
    for table in tables:
        assert table["Parameters"]["table_type"] == "ICEBERG"
        assert table["Parameters"]["metadata_location"].startswith(f"{LAKE}/warehouse/stedi.db/{table['Name']}/metadata/")
    # The lake's secret and records live under its prefix; no SQLite catalog, no lock left behind.
    keys = aws.keys("stedi-lake")
    assert "zones/_stedi/secret" in keys
    assert f"zones/_stedi/runs/{report['run_id']}.json" in keys
    assert "zones/_stedi/lock" not in keys
    assert not any(k.endswith("catalog.db") for k in keys)
    assert all(k.startswith(("zones/_stedi/", "zones/warehouse/stedi.db/")) for k in keys)
    assert not list(tmp_path.rglob("catalog.db"))

    # `stedi query` over the S3 lake gives what the same run gives in a local lake.
    on_s3 = ok_json("query", CHECK, "--lake", LAKE)
    ok_json("run", "s3://stedi-source/starter", "--lake", str(tmp_path / "local-lake"))
    local = ok_json("query", CHECK, "--lake", str(tmp_path / "local-lake"))
    assert [list(r.values()) for r in on_s3] == [list(r.values()) for r in local]
    assert list(on_s3[0].values())[3] > 0

    status = ok_json("status", "--lake", LAKE)
    assert {t["table"] for t in status["tables"]} >= TABLES
    assert status["last_run"]["run_id"] == report["run_id"]

    # The Glue job's entry point (here on DuckDB: the job gives it Glue's Spark session): nothing new.
    result = glue_job_main(
        ["--lake", LAKE, "--source", "s3://stedi-source/starter", "--JOB_ID", "j_1", "--job-bookmark-option", "job-bookmark-disable"],
        engine=open_engine("duckdb"),
    )
    assert result["ok"] and {t["status"] for t in result["tables"]} == {"unchanged"}
    assert result["ingest"]["feeds"]["customer"]["files_new"] == 0

    # Erasure on S3: the customer's rows go from every table and the rewritten data files from the bucket.
    paired = (
        "SELECT min(s.email) AS email FROM step_trainer_trusted AS s JOIN accelerometer_trusted AS a ON a.user = s.email AND a.timestamp = s.sensorReadingTime"
    )
    (email,) = ok_json("query", paired, "--lake", LAKE)[0].values()
    data_files_before = {k for k in aws.keys("stedi-lake", "zones/warehouse/") if k.endswith(".parquet")}
    erasure = ok_json("forget", email, "--lake", LAKE)
    assert erasure["rows_removed"]["customer_landing"] > 0 and erasure["rows_removed"]["machine_learning_curated"] > 0
    left = ok_json("query", f"SELECT count(*) AS n FROM customer_landing WHERE lower(trim(email)) = '{email}'", "--lake", LAKE)
    assert left == [{"n": 0}]
    data_files_after = {k for k in aws.keys("stedi-lake", "zones/warehouse/") if k.endswith(".parquet")}
    assert data_files_before - data_files_after, "the data files that held the customer are deleted from S3"
    assert "zones/_stedi/lock" not in aws.keys("stedi-lake")


def test_a_glue_database_of_another_lake_is_refused(aws: Aws):
    aws.bucket("stedi-lake")
    aws.glue.create_database(DatabaseInput={"Name": "stedi", "LocationUri": "s3://elsewhere/lake/warehouse/stedi.db"})
    result = stedi("status", "--lake", LAKE)
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "the Glue database 'stedi' belongs to the lake at s3://elsewhere/lake/warehouse/stedi.db" in message


def test_a_held_s3_lock_fails_a_second_writer_clearly(aws: Aws, feeds):
    aws.bucket("stedi-lake")
    aws.upload(feeds, "stedi-lake", "feeds")
    holder = {"token": "t", "host": "elsewhere", "pid": 42, "acquired_at": "2024-01-01T00:00:00+00:00"}
    aws.s3.put_object(Bucket="stedi-lake", Key="zones/_stedi/lock", Body=json.dumps(holder).encode())
    result = stedi("run", "s3://stedi-lake/feeds", "--lake", LAKE)
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "another stedi process is writing this lake (held by elsewhere pid 42" in message
    assert f"delete {LAKE}/_stedi/lock" in message
    assert aws.keys("stedi-lake", "zones/") == ["zones/_stedi/lock"]  # nothing was written


def test_an_s3_lake_may_keep_its_catalog_in_a_sql_database(aws: Aws, feeds, tmp_path, monkeypatch):
    aws.bucket("stedi-lake")
    monkeypatch.setenv("STEDI_CATALOG", "sql")
    result = stedi("ingest", str(feeds), "--lake", LAKE)
    assert result.exit_code == 2 and "SQLite cannot live in S3" in " ".join(result.stderr.split())

    monkeypatch.setenv("STEDI_CATALOG_URI", f"sqlite:///{tmp_path / 'catalog.db'}")
    report = ok_json("ingest", str(feeds), "--lake", LAKE)
    rows = ok_json("query", "SELECT count(*) AS n FROM customer_landing", "--lake", LAKE)
    assert rows == [{"n": report["feeds"]["customer"]["accepted"]}] and rows[0]["n"] > 0
    assert aws.glue.get_databases()["DatabaseList"] == []
    assert any(k.startswith("zones/warehouse/stedi/customer_landing/data/") for k in aws.keys("stedi-lake"))


def test_a_delivery_of_customer_records_replaces_the_touched_rows_on_s3_as_in_a_local_lake(aws: Aws, feeds, tmp_path):
    aws.bucket("stedi-source")
    aws.bucket("stedi-lake")
    aws.upload(feeds, "stedi-source", "starter")
    local = tmp_path / "local-lake"
    ok_json("run", "s3://stedi-source/starter", "--lake", LAKE)
    ok_json("run", "s3://stedi-source/starter", "--lake", str(local))

    # The customer with the most training rows revokes their consent.
    (email,) = ok_json("query", "SELECT min(email) AS email FROM step_trainer_trusted", "--lake", LAKE)[0].values()
    revocation = tmp_path / "delivery" / "customer" / "landing" / "revocation.json"
    revocation.parent.mkdir(parents=True)
    revocation.write_text(json.dumps({"customerName": "Revoking", "email": email, "serialNumber": None, "lastUpdateDate": 9_999_999_999_999}) + "\n")
    aws.upload(tmp_path / "delivery", "stedi-source", "starter")

    on_s3 = ok_json("run", "s3://stedi-source/starter", "--lake", LAKE)
    in_folder = ok_json("run", "s3://stedi-source/starter", "--lake", str(local))
    for report in (on_s3, in_folder):
        built = {t["name"]: t for t in report["tables"] if t["status"] == "built"}
        assert {t["method"] for t in built.values()} == {"customers replaced"}
        assert not built["accelerometer_trusted"]["note"].endswith(" 0 of 1 data files rewritten")  # the file holding them is found
    assert ok_json("query", f"SELECT count(*) AS n FROM accelerometer_trusted WHERE user = '{email}'", "--lake", LAKE) == [{"n": 0}]
    assert [list(r.values()) for r in ok_json("query", CHECK, "--lake", LAKE)] == [list(r.values()) for r in ok_json("query", CHECK, "--lake", str(local))]
