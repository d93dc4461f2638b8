"""SPEC §11: `stedi query` is read-only and sees the lake's tables and nothing else.

Every attack below is refused with one clear line, and no file inside or outside the lake changes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stedi.cli import app
from support.lakes import LakeHarness

runner = CliRunner()

# (name, statement): {data} is a live data file of customer_landing, {lake} the lake root,
# {outside} a folder beside the lake, {feed} a raw feed file.
ATTACKS = [
    ("explain analyze copy over a live data file", "EXPLAIN ANALYZE COPY (SELECT * FROM customer_landing WHERE false) TO '{data}' (FORMAT parquet)"),
    ("explain analyze copy of raw PII to a csv", "EXPLAIN ANALYZE COPY (SELECT * FROM customer_landing) TO '{outside}/pii.csv'"),
    ("explain analyze copy over the secret", "EXPLAIN ANALYZE COPY (SELECT 'known') TO '{lake}/_stedi/secret' (FORMAT csv)"),
    ("explain analyze create table", "EXPLAIN ANALYZE CREATE TABLE planted AS SELECT 1"),
    ("explain analyze set", "EXPLAIN ANALYZE SET threads = 1"),
    ("explain explain analyze copy", "EXPLAIN EXPLAIN ANALYZE COPY (SELECT 1) TO '{outside}/x.csv'"),
    ("copy", "COPY (SELECT * FROM customer_landing) TO '{outside}/pii.parquet'"),
    ("create table", "CREATE TABLE planted AS SELECT 1"),
    ("insert", "INSERT INTO customer_landing SELECT * FROM customer_landing"),
    ("attach", "ATTACH '{outside}/other.db'"),
    ("install", "INSTALL httpfs"),
    ("set", "SET enable_external_access = true"),
    ("pragma", "PRAGMA threads = 1"),
    ("two statements", "SELECT 1; COPY (SELECT 1) TO '{outside}/x.csv'"),
    ("read_text of a system file", "SELECT * FROM read_text('/etc/passwd')"),
    ("read_csv of a system file", "SELECT * FROM read_csv('/etc/passwd')"),
    ("read_blob of the secret", "SELECT * FROM read_blob('{lake}/_stedi/secret')"),
    ("read_text of the secret", "SELECT content FROM read_text('{lake}/_stedi/secret')"),
    ("glob", "SELECT * FROM glob('/etc/*')"),
    ("read_json_auto of a raw feed", "SELECT * FROM read_json_auto('{feed}')"),
    ("read_parquet of a data file", "SELECT * FROM read_parquet('{data}')"),
    ("parquet_metadata of a data file", "SELECT * FROM parquet_metadata('{data}')"),
    ("a file path as a table", "SELECT * FROM '{feed}'"),
    ("the catalog", "SELECT * FROM sqlite_scan('{lake}/catalog.db', 'iceberg_tables')"),
    ("not sql", "SELEKT everything"),
]

READ_ONLY = [
    ("SELECT count(*) AS n FROM customer_landing", [{"n": 2}]),
    ("SELECT email FROM customer_trusted", [{"email": "a@x.com"}]),
    ("SELECT count(*) AS n FROM (DESCRIBE customer_trusted) WHERE column_name = 'email'", [{"n": 1}]),
    ("SELECT count(*) AS n FROM (SHOW TABLES) WHERE name = 'machine_learning_curated'", [{"n": 1}]),
]


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> LakeHarness:
    harness = LakeHarness(tmp_path_factory.mktemp("query"))
    harness.feed(
        "customer/c.json",
        [
            {"email": "a@x.com", "customerName": "Ann", "serialNumber": "S1", "shareWithResearchAsOfDate": 1},
            {"email": "b@x.com", "customerName": "Bob", "serialNumber": "S2"},
        ],
    )
    harness.feed("accelerometer/a.json", [{"user": "a@x.com", "timestamp": 5, "x": 1, "y": 2, "z": 3}])
    harness.feed("step_trainer/s.json", [{"sensorReadingTime": 5, "serialNumber": "S1", "distanceFromObject": 9}])
    assert harness.run().ok
    return harness


def every_file(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def query(lake: LakeHarness, sql: str, *options: str):
    return runner.invoke(app, ["query", sql, "--lake", lake.lake.location, *options])


@pytest.mark.parametrize("name, statement", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_every_attack_is_refused_and_changes_no_file(lake, name, statement):
    root = Path(lake.lake.location).parent
    sql = statement.format(
        data=lake.lake.state("customer_landing").files[0],
        lake=lake.lake.location,
        outside=root,
        feed=lake.source / "customer" / "c.json",
    )
    before = every_file(root)
    result = query(lake, sql)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    assert every_file(root) == before
    assert lake.count("customer_landing") == 2


@pytest.mark.parametrize("sql, rows", READ_ONLY)
def test_read_only_statements_work(lake, sql, rows):
    result = query(lake, sql, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == rows


@pytest.mark.parametrize("sql", ["EXPLAIN SELECT * FROM customer_landing", "EXPLAIN ANALYZE SELECT count(*) FROM customer_landing"])
def test_explain_of_a_select_works(lake, sql):
    result = query(lake, sql)
    assert result.exit_code == 0, result.output


def test_time_travel_queries_are_sandboxed_too(lake):
    as_of = "2999-01-01T00:00:00Z"
    assert json.loads(query(lake, "SELECT count(*) AS n FROM customer_landing", "--as-of", as_of, "--json").stdout) == [{"n": 2}]
    result = query(lake, "SELECT * FROM read_text('/etc/passwd')", "--as-of", as_of)
    assert result.exit_code == 2 and result.stderr.startswith("error: ")


def test_the_secret_cannot_reidentify_the_training_table_through_query(lake):
    """With the secret, sha256(secret || '|' || email) re-identifies every customer_key: no
    statement of `stedi query` may reach it, wherever it is kept."""
    secret = lake.lake.secret.decode()
    assert secret not in query(lake, "SELECT * FROM machine_learning_curated", "--json").stdout
    for sql in ("SELECT current_setting('temp_directory')", "SELECT * FROM duckdb_settings()"):
        result = query(lake, sql, "--json")
        assert secret not in result.stdout
