"""SPEC §5 reproducibility: `stedi export` hands out the training table with a manifest that says
which data it is, splits by customer, and rebuilds an earlier run's data exactly (time travel) —
unless an erasure took that data away, which it then says plainly.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from stedi.cli import app
from stedi.erasure import forget
from stedi.errors import ExpiredSnapshotError, LakeError
from stedi.export import ML_TABLE, content_hash, export
from stedi.timetravel import query_lake_as_of
from support.lakes import LakeHarness
from support.runs import build_two_runs, feed_customers

runner = CliRunner()


@pytest.fixture
def two_runs(harness):
    return build_two_runs(harness)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """The same lake for the tests that only read it."""
    return build_two_runs(LakeHarness(tmp_path_factory.mktemp("shared")))


def ml_entry(report):
    return next(t for t in report.tables if t.name == ML_TABLE)


def file_hash(path: Path, columns: list[str], order: str = "") -> tuple[int, str]:
    conn = duckdb.connect()
    reader = "read_csv" if path.suffix == ".csv" else "read_parquet"
    relation = f"(SELECT * FROM {reader}('{path}') {order})"
    return content_hash(conn, relation, columns)


def test_manifest_says_which_data_it_is(shared, tmp_path):
    two_runs = shared
    lake = two_runs.lake
    manifest = export(lake, str(tmp_path / "out"))
    saved = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert saved == json.loads(json.dumps(manifest, default=str))
    current = {name: lake.state(name).snapshot_id for name in lake.table_names()}
    assert manifest["run_id"] == two_runs.second.run_id
    assert manifest["snapshot_id"] == current[ML_TABLE] == ml_entry(two_runs.second).output_snapshot
    assert manifest["inputs"] == {"accelerometer_trusted": current["accelerometer_trusted"], "step_trainer_trusted": current["step_trainer_trusted"]}
    assert {name: t["output_snapshot"] for name, t in manifest["run_tables"].items()} == {t.name: t.output_snapshot for t in two_runs.second.tables}
    assert manifest["consent_scope"] == "since-consent"
    columns = ["customer_key", "timestamp", "x", "y", "z", "distanceFromObject"]
    assert [c["name"] for c in manifest["schema"]] == columns
    assert (manifest["rows"], manifest["customers"], manifest["split"]) == (100, 50, None)
    (written,) = manifest["files"]
    path = tmp_path / "out" / written["file"]
    # The hash is of the rows, whatever their order.
    assert file_hash(path, columns) == file_hash(path, columns, "ORDER BY random()") == (100, manifest["content_sha256"])
    assert written["content_sha256"] == manifest["content_sha256"]

    as_csv = export(lake, str(tmp_path / "csv"), fmt="csv")
    assert as_csv["files"][0]["file"] == f"{ML_TABLE}.csv"
    assert as_csv["content_sha256"] == manifest["content_sha256"]
    assert len((tmp_path / "csv" / f"{ML_TABLE}.csv").read_text().splitlines()) == 101  # header + rows


def test_split_by_customer(shared, tmp_path):
    two_runs = shared
    manifest = export(two_runs.lake, str(tmp_path / "a"), split=0.8, seed=7)
    split = manifest["split"]
    keys = {}
    for side in ("train", "test"):
        rows = duckdb.sql(f"SELECT customer_key FROM read_parquet('{tmp_path / 'a' / (side + '.parquet')}')").fetchall()
        keys[side] = {k for (k,) in rows}
        assert (split[side]["rows"], split[side]["customers"]) == (len(rows), len(keys[side]))
    assert not keys["train"] & keys["test"]  # no customer on both sides
    assert len(keys["train"] | keys["test"]) == 50
    assert split["train"]["rows"] + split["test"]["rows"] == 100
    assert 0.6 <= len(keys["train"]) / 50 <= 0.95  # roughly the fraction asked for
    again = export(two_runs.lake, str(tmp_path / "b"), split=0.8, seed=7)["split"]
    other = export(two_runs.lake, str(tmp_path / "c"), split=0.8, seed=8)["split"]
    assert again["train"]["content_sha256"] == split["train"]["content_sha256"]  # same seed, same split
    assert other["train"]["content_sha256"] != split["train"]["content_sha256"]


def test_an_older_run_is_reproduced_exactly(harness, tmp_path):
    feed_customers(harness, 0, 40, "first")
    first = harness.run()
    at_first = export(harness.lake, str(tmp_path / "then"))
    feed_customers(harness, 40, 50, "second")
    assert harness.run().ok and harness.count(ML_TABLE) == 100

    by_run = export(harness.lake, str(tmp_path / "by-run"), run_id=first.run_id)
    assert (by_run["run_id"], by_run["rows"]) == (first.run_id, 80)
    assert by_run["snapshot_id"] == ml_entry(first).output_snapshot
    assert by_run["content_sha256"] == at_first["content_sha256"]

    committed = harness.lake.table(ML_TABLE).snapshot_by_id(ml_entry(first).output_snapshot).timestamp_ms
    by_time = export(harness.lake, str(tmp_path / "by-time"), as_of=str(committed))
    assert by_time["content_sha256"] == at_first["content_sha256"]
    columns, rows = query_lake_as_of(harness.lake, f"SELECT count(*) FROM {ML_TABLE}", committed)
    assert rows == [(80,)]
    with pytest.raises(LakeError, match="had no snapshot yet"):
        export(harness.lake, str(tmp_path / "too-early"), as_of="2000-01-01T00:00:00Z")


def test_erased_snapshots_cannot_be_exported(two_runs, tmp_path):
    lake = two_runs.lake
    committed = lake.table(ML_TABLE).snapshot_by_id(ml_entry(two_runs.first).output_snapshot).timestamp_ms
    with lake.writing():
        forget(lake, ["c00@x.com"])
    for kwargs in ({"run_id": two_runs.first.run_id}, {"run_id": two_runs.second.run_id}, {"as_of": str(committed)}):
        with pytest.raises(ExpiredSnapshotError, match="was expired by the erasure"):
            export(lake, str(tmp_path / "expired"), **kwargs)
    assert not (tmp_path / "expired").exists()
    with pytest.raises(ExpiredSnapshotError, match="was expired by the erasure"):
        query_lake_as_of(lake, f"SELECT count(*) FROM {ML_TABLE}", committed)
    lake_arg = ["--lake", lake.location]
    assert "was expired by the erasure" in cli_error(["export", str(tmp_path / "e"), "--run", two_runs.first.run_id, *lake_arg])
    assert "was expired by the erasure" in cli_error(["query", "SELECT 1", "--as-of", str(committed), *lake_arg])
    now = export(lake, str(tmp_path / "now"))
    assert now["rows"] == 98 and now["run_id"] == two_runs.second.run_id and now["erasure"]


def test_an_erasure_that_leaves_the_training_rows_keeps_every_run_exportable(two_runs, tmp_path):
    """SPEC §4, only what it must: a customer who is in landing only takes the landing snapshots
    that hold them, and nothing of the training data."""
    first = export(two_runs.lake, str(tmp_path / "first-before"), run_id=two_runs.first.run_id)
    before = export(two_runs.lake, str(tmp_path / "before"), run_id=two_runs.second.run_id)
    with two_runs.lake.writing():
        report = forget(two_runs.lake, ["never@x.com"])  # in landing only
    assert report.rows_removed["customer_landing"] > 0 and report.rows_removed[ML_TABLE] == 0
    assert ML_TABLE not in report.expired and report.unreproducible_runs == []
    after = export(two_runs.lake, str(tmp_path / "after"), run_id=two_runs.second.run_id)
    assert (after["content_sha256"], after["snapshot_id"]) == (before["content_sha256"], before["snapshot_id"])
    assert export(two_runs.lake, str(tmp_path / "first"), run_id=two_runs.first.run_id)["content_sha256"] == first["content_sha256"]
    # Landing changed, so the next run rebuilds; the training rows stay the same.
    assert two_runs.run(with_source=False).ok
    assert export(two_runs.lake, str(tmp_path / "rerun"))["content_sha256"] == before["content_sha256"]


def test_cli(shared, tmp_path):
    lake_arg = ["--lake", shared.lake.location]
    ok = runner.invoke(app, ["export", str(tmp_path / "out"), "--split-by-customer", "0.8", *lake_arg])
    assert ok.exit_code == 0, ok.output
    assert "train.parquet" in ok.stdout and (tmp_path / "out" / "manifest.json").exists()
    as_json = runner.invoke(app, ["export", str(tmp_path / "json"), "--run", shared.first.run_id, "--json", *lake_arg])
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["rows"] == 80
    query = runner.invoke(app, ["query", f"SELECT count(*) AS n FROM {ML_TABLE}", "--as-of", "1970-01-02", "--json", *lake_arg])
    assert query.exit_code == 0 and json.loads(query.stdout) == [{"n": 0}]

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    for args, message in [
        (["export", str(tmp_path / "full")], "already exists and is not an empty folder"),
        (["export", str(tmp_path / "e1"), "--run", "nope"], "no run 'nope'"),
        (["export", str(tmp_path / "e2"), "--run", shared.first.run_id, "--as-of", "2024-01-01"], "not both"),
        (["export", str(tmp_path / "e3"), "--format", "xml"], "unknown format 'xml'"),
        (["export", str(tmp_path / "e4"), "--split-by-customer", "1.5"], "between 0 and 1"),
        (["export", str(tmp_path / "e5"), "--as-of", "yesterday"], "cannot read the time 'yesterday'"),
        (["query", "SELECT 1", "--as-of", "yesterday"], "cannot read the time 'yesterday'"),
        (["export", str(tmp_path / "e7"), "--lake", str(tmp_path / "nolake")], "no lake at"),
    ]:
        assert message in cli_error(args if "--lake" in args else [*args, *lake_arg])


def cli_error(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (args, result.output)
    assert "Traceback" not in result.output and result.stderr.startswith("error: "), result.stderr
    return " ".join(result.stderr.split())
