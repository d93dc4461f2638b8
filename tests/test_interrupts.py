"""SPEC §11: a command stopped on the way. Ctrl-C is one line and exit code 130, with nothing
half-published and the lock released; a run killed after its commits still gets its manifest."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stedi import records
from stedi import run as run_module
from stedi.cli import app
from stedi.commands import INTERRUPTED
from stedi.generate import generate_feeds
from stedi.lake import Lake
from stedi.records import RUNS, UNFINISHED_RUNS
from support.lakes import LakeHarness

runner = CliRunner()
STEDI = str(Path(sys.executable).with_name("stedi"))
ML_TABLE = "machine_learning_curated"


def stedi_json(*args: str):
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


class Killed(BaseException):
    """Stands for the process being killed: nothing in stedi catches it."""


def killed_before_the_manifest(monkeypatch, lake: Lake) -> None:
    write_record = records.write

    def write_or_die(storage, kind, key, record):
        if kind == RUNS:
            raise Killed
        write_record(storage, kind, key, record)

    monkeypatch.setattr(records, "write", write_or_die)


def killed_after_the_last_commit(monkeypatch, lake: Lake) -> None:
    """Killed as the last table's commit returns, before the run notes it anywhere."""
    build_model = run_module.build_model

    def build_then_die(lake, engine, model, *args):
        built = build_model(lake, engine, model, *args)
        if model.name == ML_TABLE:
            raise Killed
        return built

    monkeypatch.setattr(run_module, "build_model", build_then_die)


@pytest.mark.parametrize("kill", [killed_before_the_manifest, killed_after_the_last_commit])
def test_a_run_killed_after_its_commits_gets_its_manifest_at_the_next_ingest(harness, monkeypatch, tmp_path, kill):
    harness.feed("customer/c.json", [{"email": "a@x.com", "serialNumber": "S1", "shareWithResearchAsOfDate": 1}])
    harness.feed("accelerometer/a.json", [{"user": "a@x.com", "timestamp": 5, "x": 1, "y": 2, "z": 3}])
    harness.feed("step_trainer/s.json", [{"sensorReadingTime": 5, "serialNumber": "S1", "distanceFromObject": 9}])
    kill(monkeypatch, harness.lake)
    with pytest.raises(Killed):
        harness.run()
    monkeypatch.undo()
    lake = ["--lake", harness.lake.location]
    killed_run = stedi_json("history", ML_TABLE, *lake)[-1]["run_id"]
    assert stedi_json("status", *lake)["last_run"] is None

    stedi_json("ingest", str(harness.source), *lake)

    last = stedi_json("status", *lake)["last_run"]
    assert (last["run_id"], last["interrupted"]) == (killed_run, True)
    assert [t["name"] for t in last["tables"]][-1] == ML_TABLE
    manifest = stedi_json("export", str(tmp_path / "out"), "--run", killed_run, *lake)
    assert (manifest["run_id"], manifest["rows"]) == (killed_run, 1)
    assert not list(Path(harness.lake.location, "_stedi", UNFINISHED_RUNS).glob("*.json"))


def test_a_run_that_changed_nothing_leaves_no_record_even_when_killed(harness, monkeypatch):
    harness.feed("customer/c.json", [{"email": "a@x.com", "serialNumber": "S1", "shareWithResearchAsOfDate": 1}])
    first = harness.run()

    def killed(*args):
        raise Killed

    monkeypatch.setattr(run_module, "_funnel", killed)  # after the models, which had nothing to build
    with pytest.raises(Killed):
        harness.run()  # nothing new to ingest or build
    monkeypatch.undo()
    harness.ingest()
    assert stedi_json("status", "--lake", harness.lake.location)["last_run"]["run_id"] == first.run_id


# ---- Ctrl-C, in a real process ------------------------------------------------------------------
@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A generated source and the row counts of every table after one clean run of it."""
    root = tmp_path_factory.mktemp("generated")
    generate_feeds(root / "source", customers=3000, seed=5)
    clean = LakeHarness(root)
    clean.run()
    return root / "source", table_counts(clean.lake)


def table_counts(lake: Lake) -> dict[str, int]:
    return {name: lake.state(name).rows for name in lake.table_names()}


# The first data file of a table appears as the run starts writing it.
@pytest.mark.parametrize("table", ["customer_landing", "accelerometer_trusted"], ids=["while ingesting", "between models"])
def test_ctrl_c_stops_a_run_cleanly(generated, tmp_path, table):
    source, clean_counts = generated
    lake = tmp_path / "lake"
    command = subprocess.Popen([STEDI, "run", str(source), "--lake", str(lake)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while command.poll() is None and time.monotonic() < deadline and not any(lake.glob(f"warehouse/*/{table}/data/*")):
        time.sleep(0.005)
    command.send_signal(signal.SIGINT)
    _, stderr = command.communicate(timeout=60)

    assert command.returncode == 130, stderr
    assert [line for line in stderr.splitlines() if line.strip()] == [INTERRUPTED]
    again = subprocess.run([STEDI, "run", str(source), "--lake", str(lake), "--json"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert table_counts(Lake(str(lake))) == clean_counts
