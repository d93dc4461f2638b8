"""SPEC §8, the Python API: `stedi.open(...)` reads a lake's tables, runs and training data, at any
retained point, and answers the same as the command line."""

from __future__ import annotations

import pytest

import stedi
from stedi.errors import LakeError, StediError
from stedi.export import export
from support.lakes import LakeHarness
from support.runs import ML_TABLE, build_two_runs


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    harness = build_two_runs(LakeHarness(tmp_path_factory.mktemp("api")))
    harness.api = stedi.open(harness.lake.location)
    return harness


def test_open_says_when_there_is_no_lake(tmp_path):
    with pytest.raises(LakeError, match="no lake at"):
        stedi.open(str(tmp_path / "nowhere"))


@pytest.mark.parametrize(
    "table, when, rows",
    [
        (ML_TABLE, "now", 100),
        (ML_TABLE, "first", 80),
        (ML_TABLE, "second", 100),
        ("customer_trusted", "first", 40),
        ("customer_landing", "first", 40),  # a landing table: as the ingest of that run left it
        ("customer_landing", "second", 51),  # 10 more and one who never consented
        (ML_TABLE, "before", 0),
    ],
)
def test_a_table_now_at_a_run_or_at_a_time(two_runs, table, when, rows):
    api = two_runs.api
    if when == "now":
        got = api.table(table)
    elif when == "before":
        got = api.table(table, as_of="2000-01-01T00:00:00Z")
    else:
        run = getattr(two_runs, when)
        got = api.table(table, run=run.run_id)
        assert api.table(table, as_of=run.finished_at).num_rows == rows  # the same state, by time
    assert got.num_rows == rows
    assert got.column_names == [name for name, _ in two_runs.lake.columns(table)]


def test_tables_become_pandas(two_runs):
    frame = two_runs.api.table(ML_TABLE).to_pandas()
    assert len(frame) == 100 and frame["customer_key"].nunique() == 50


def test_training_data_is_what_export_writes(two_runs, tmp_path):
    data = two_runs.api.training_data()
    written = export(two_runs.lake, str(tmp_path / "out"))
    assert data.table.num_rows == written["rows"] == 100
    assert data.manifest["content_sha256"] == written["content_sha256"]
    assert data.manifest["run_id"] == written["run_id"] == two_runs.second.run_id
    assert two_runs.api.training_data(run=two_runs.first.run_id).table.num_rows == 80


def test_training_data_split_by_customer(two_runs, tmp_path):
    data = two_runs.api.training_data(split_by_customer=0.8, seed=3)
    written = export(two_runs.lake, str(tmp_path / "out"), split=0.8, seed=3)
    train, test = (set(side.column("customer_key").to_pylist()) for side in (data.train, data.test))
    assert not train & test and len(train | test) == 50
    assert data.train.num_rows + data.test.num_rows == 100
    for side in ("train", "test"):
        assert data.manifest["split"][side]["content_sha256"] == written["split"][side]["content_sha256"]
    with pytest.raises(Exception, match="not split"):
        _ = two_runs.api.training_data().train


def test_runs_history_and_status(two_runs):
    api = two_runs.api
    history = api.runs()
    assert [r["run_id"] for r in history] == [two_runs.first.run_id, two_runs.second.run_id]
    assert ML_TABLE in history[0]["tables_built"] and history[0]["files_ingested"] == 3
    assert history[1]["checks_failed"] == 0 and history[1]["checks_passed"] > 0
    assert history[1]["funnel"] == two_runs.second.funnel
    assert api.run(two_runs.first.run_id)["tables"][0]["name"] == "customer_trusted"
    assert [s["run_id"] for s in api.history(ML_TABLE)] == [two_runs.first.run_id, two_runs.second.run_id]
    assert {t["table"]: t["rows"] for t in api.status()["tables"]}[ML_TABLE] == 100


def test_query_by_plain_or_athena_name(two_runs):
    assert two_runs.api.query(f"SELECT count(*) AS n FROM stedi.{ML_TABLE}").to_pylist() == [{"n": 100}]
    assert two_runs.api.query(f"SELECT count(*) AS n FROM {ML_TABLE}", as_of=two_runs.first.finished_at).to_pylist() == [{"n": 80}]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda api: api.table("customer_trustd"), "did you mean 'customer_trusted'"),
        (lambda api: api.table(ML_TABLE, run="20990101T000000000000Z"), "stedi runs"),
        (lambda api: api.table(ML_TABLE, run="x", as_of=1), "not both"),
        (lambda api: api.query("DROP TABLE customer_landing"), "read-only"),
    ],
)
def test_mistakes_are_explained(two_runs, call, message):
    with pytest.raises(StediError, match=message):
        call(two_runs.api)
