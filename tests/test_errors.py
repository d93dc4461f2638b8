"""How a command ends (SPEC §8, §11): each kind of error has its exit code and a single line on
stderr. The traceback of an internal error is shown only under --debug, and `stedi --help` loads
no engine."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from stedi import models as models_module
from stedi import run as run_module
from stedi.api import Lakehouse
from stedi.cli import app
from stedi.erasure import pending_erasure
from stedi.errors import ConservationError, GateFailure, InternalError, LakeError, StediError, UserError
from support.deletes import delete_rows
from support.lakes import MODEL_TABLES
from support.records import customer, reading


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def raising(error: BaseException):
    def fail(*_args, **_kwargs):
        raise error

    return fail


# What `stedi status` prints and returns when the work under it (`Lakehouse.status`) raises each kind of error.
ENDINGS = [
    pytest.param(LakeError("no lake at /nowhere"), 2, "error: no lake at /nowhere", id="user error: one line, exit 2"),
    pytest.param(GateFailure("run 1 failed quality gates (t)"), 1, "run 1 failed quality gates (t)", id="gate failure: exit 1"),
    pytest.param(
        ConservationError("3 lines lost in a.json"),
        3,
        "internal error: 3 lines lost in a.json (run with --debug for the traceback)",
        id="internal error: exit 3",
    ),
    pytest.param(
        ZeroDivisionError("division by zero"),
        3,
        "internal error: ZeroDivisionError: division by zero (run with --debug for the traceback)",
        id="a library's exception is an internal error",
    ),
]


@pytest.mark.parametrize(("error", "code", "line"), ENDINGS)
def test_each_kind_of_error_ends_a_command_with_its_code_and_one_line(harness, monkeypatch, error, code, line):
    harness.feed("customer/c.json", [customer("a@x.com")])
    harness.run()
    monkeypatch.setattr(Lakehouse, "status", raising(error))
    result = invoke("status", "--lake", harness.lake.location)
    assert (result.exit_code, result.stderr.splitlines()) == (code, [line])
    assert result.stdout == ""


def test_a_table_another_engine_deleted_rows_of_in_place_is_refused_by_every_command_that_reads_it(harness):
    """Athena's DELETE writes Iceberg delete files; stedi reads data files whole, so reading such a
    table would bring the deleted rows back (and build them into the tables downstream)."""
    harness.feed("customer/c.json", [customer("a@x.com"), customer("b@x.com")])
    harness.feed("accelerometer/1.json", [reading("a@x.com", 2000), reading("b@x.com", 2000)])
    assert harness.run().ok
    lake, name = harness.lake, "accelerometer_trusted"
    (data_file,) = lake.state(name).files
    delete_rows(lake, name, {data_file: [0]})
    assert len(lake.table(name).scan().to_arrow()) == 1  # a real delete file: pyiceberg applies it
    models = {t: lake.table(t).metadata.current_snapshot_id for t in MODEL_TABLES}
    harness.feed("customer/d.json", [customer("a@x.com", consent=None, updated=20)])
    location = lake.location
    for args in (("run", str(harness.source)), ("query", f"SELECT count(*) FROM {name}"), ("status",), ("forget", "a@x.com")):
        result = invoke(*args, "--lake", location)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.splitlines() == [
            f"error: the table '{name}' of the lake at {location} holds row-level deletes (Iceberg delete files, as Athena's DELETE "
            "and UPDATE write them), which stedi does not apply: reading it would bring the deleted rows back. Merge them into its data "
            f"files first (in Athena: OPTIMIZE stedi.{name} REWRITE DATA USING BIN_PACK), then run the command again"
        ], args
    assert pending_erasure(lake) is None  # the erasure was refused before it wrote its intent
    lake.refresh()  # the run landed the new customer file, then refused to build anything from the table
    assert {t: lake.table(t).metadata.current_snapshot_id for t in MODEL_TABLES} == models


def test_debug_shows_the_traceback_of_an_internal_error_only(harness, monkeypatch):
    harness.feed("customer/c.json", [customer("a@x.com")])
    harness.run()
    monkeypatch.setattr(Lakehouse, "status", raising(ConservationError("3 lines lost")))
    result = invoke("--debug", "status", "--lake", harness.lake.location)
    assert result.exit_code == 3
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert "stedi.errors.ConservationError: 3 lines lost" in result.stderr
    assert result.stderr.rstrip().endswith("internal error: 3 lines lost")

    monkeypatch.setattr(Lakehouse, "status", raising(LakeError("no such table")))
    result = invoke("--debug", "status", "--lake", harness.lake.location)
    assert (result.exit_code, result.stderr.splitlines()) == (2, ["error: no such table"])


def test_a_run_that_fails_a_quality_gate_exits_1_and_names_the_table(harness, monkeypatch):
    harness.feed("customer/c.json", [customer("a@x.com"), customer("b@x.com", consent=None)])
    harness.feed("accelerometer/a.json", [reading("a@x.com", 2000), reading("b@x.com", 2000)])
    broken = tuple(  # an edit that forgets the consent filter
        dataclasses.replace(m, sql="SELECT user, timestamp, x, y, z FROM accelerometer_landing") if m.name == "accelerometer_trusted" else m
        for m in models_module.load_models()
    )
    monkeypatch.setattr(run_module, "load_models", lambda: broken)
    result = invoke("run", str(harness.source), "--lake", harness.lake.location, "--json")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert "failed quality gates (accelerometer_trusted)" in line and "kept their previous snapshot" in line


def test_every_error_stedi_raises_on_purpose_has_one_base_and_a_kind():
    for error in (LakeError, ConservationError, GateFailure):
        assert issubclass(error, StediError)
    assert issubclass(LakeError, UserError) and not issubclass(ConservationError, UserError)
    assert issubclass(ConservationError, InternalError)


def test_a_usage_mistake_is_typers_own_message():
    result = invoke("status", "--no-such-option")
    assert result.exit_code == 2 and "No such option: --no-such-option" in result.stderr


def test_help_loads_no_engine_catalog_or_table_library():
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.argv = ['stedi', '--help']\n"
            "import stedi.cli\ntry:\n    stedi.cli.app()\nexcept SystemExit:\n    pass\n"
            "print(' '.join(m for m in ('duckdb', 'pyiceberg', 'pyarrow', 'pyspark', 'sqlglot', 'boto3') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()[-1]
    assert loaded == ""
