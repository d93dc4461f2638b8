"""The command line: clear one-line errors with exit code 2, summaries, --json."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from stedi.cli import app
from stedi.lake import Lake
from support.lakes import write_feed_file
from support.landing_cases import writer_turns_up

runner = CliRunner()


def stedi(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture
def source(tmp_path):
    write_feed_file(tmp_path / "src", "customer/c.json", [{"email": "a@x.com", "serialNumber": "S1", "shareWithResearchAsOfDate": 1}])
    write_feed_file(tmp_path / "src", "accelerometer/a.json", [{"user": "a@x.com", "timestamp": 5, "x": 1, "y": 2, "z": 3}, "broken"])
    write_feed_file(tmp_path / "src", "step_trainer/s.json", [{"sensorReadingTime": 5, "serialNumber": "S1", "distanceFromObject": 9}])
    return tmp_path / "src"


def user_error(tmp_path, *args) -> str:
    result = stedi(*args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error: ")
    return " ".join(result.stderr.split())


@pytest.mark.parametrize(
    "args, message",
    [
        (["ingest", "{tmp}/nowhere"], "source not found"),
        (["ingest", "{tmp}/empty"], "no feed files"),
        (["ingest", "{tmp}/odd"], "unknown feed folder 'pictures/'"),
        (["run"], "no lake at"),
        (["status"], "no lake at"),
        (["query", "SELECT 1"], "no lake at"),
        (["run", "{tmp}/empty", "--engine", "oracle"], "unknown engine 'oracle'"),
    ],
)
def test_user_errors_are_one_clear_line(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "odd" / "pictures").mkdir(parents=True)
    args = [a.format(tmp=tmp_path) for a in args] + ["--lake", str(tmp_path / "lake")]
    assert message in user_error(tmp_path, *args)


def test_unwritable_lake(tmp_path, source):
    (tmp_path / "a-file").write_text("")
    assert "cannot create the lake" in user_error(tmp_path, "ingest", str(source), "--lake", str(tmp_path / "a-file" / "lake"))


def test_unknown_consent_scope(tmp_path, source):
    assert "unknown consent scope 'some'" in user_error(tmp_path, "run", str(source), "--lake", str(tmp_path / "lake"), "--consent-scope", "some")


def test_ingest_json_summary(tmp_path, source):
    result = stedi("ingest", str(source), "--lake", str(tmp_path / "lake"), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    feeds = summary["feeds"]
    assert (feeds["accelerometer"]["accepted"], feeds["accelerometer"]["rejected"]) == (1, 1)
    assert feeds["customer"]["files_new"] == 1
    assert summary["seconds"] > 0 and summary["cpu_seconds"] > 0  # what `make bench` reads as the landing's CPU use
    assert "CPU" in stedi("ingest", str(source), "--lake", str(tmp_path / "other")).stdout


def test_run_status_history_and_query(tmp_path, source):
    lake = ["--lake", str(tmp_path / "lake")]
    result = stedi("run", str(source), *lake)
    assert result.exit_code == 0, result.output
    assert "consent scope since-consent" in result.stdout and "published" in result.stdout
    again = stedi("run", *lake)
    assert "Nothing new" in again.stdout

    status = json.loads(stedi("status", *lake, "--json").stdout)
    rows = {t["table"]: t["rows"] for t in status["tables"]}
    assert rows["machine_learning_curated"] == 1 and rows["accelerometer_landing_rejected"] == 1
    assert status["last_run"]["consent_scope"] == "since-consent"
    assert all(c["passed"] for t in status["last_run"]["tables"] for c in t["checks"])

    history = json.loads(stedi("history", "customer_trusted", *lake, "--json").stdout)
    assert [h["run_id"] for h in history] == [status["last_run"]["run_id"]]

    rows = json.loads(stedi("query", "SELECT distanceFromObject FROM machine_learning_curated", *lake, "--json").stdout)
    assert rows == [{"distanceFromObject": 9}]


@pytest.mark.parametrize(
    "sql, message",
    [
        ("DROP TABLE customer_landing", "read-only"),
        ("COPY customer_landing TO 'x.csv'", "read-only"),
        ("SELECT 1; SELECT 2", "exactly one SQL statement"),
        ("SELECT * FROM nowhere", "nowhere"),
        ("SELEC oops", "cannot parse"),
    ],
)
def test_query_is_read_only_and_explains_errors(tmp_path, source, sql, message):
    stedi("ingest", str(source), "--lake", str(tmp_path / "lake"))
    assert message in user_error(tmp_path, "query", sql, "--lake", str(tmp_path / "lake"))


def test_values_from_the_data_are_escaped_on_the_terminal(tmp_path):
    write_feed_file(tmp_path / "src", "customer/c.json", [{"email": "a@x.com", "customerName": "[bold red]boom[/] \x1b[31mred"}])
    stedi("ingest", str(tmp_path / "src"), "--lake", str(tmp_path / "lake"))
    result = stedi("query", "SELECT customerName FROM customer_landing", "--lake", str(tmp_path / "lake"))
    assert "[bold red]boom[/]" in result.stdout
    assert "\x1b[31m" not in result.stdout and "\\x1b[31mred" in result.stdout


def test_column_names_are_escaped_on_the_terminal(tmp_path, source):
    stedi("ingest", str(source), "--lake", str(tmp_path / "lake"))
    result = stedi("query", 'SELECT 1 AS "[bold red]key\x1b[31m"', "--lake", str(tmp_path / "lake"))
    assert "[bold red]key" in result.stdout
    assert "\x1b[31m" not in result.stdout and "\\x1b[31m" in result.stdout


def test_skipped_entries_are_reported_escaped(tmp_path, source):
    fifo = source / "accelerometer" / "[bold]fifo\x1b[31m.json"
    os.mkfifo(fifo)
    writer_turns_up(fifo)
    result = stedi("ingest", str(source), "--lake", str(tmp_path / "lake"))
    unwrapped = "".join(result.stdout.split())  # however the terminal wraps the long path
    assert "skipped" in result.stdout and "[bold]fifo\\x1b[31m.json:notaregularfilebutaFIFO" in unwrapped
    assert "\x1b[31m" not in result.stdout
    result = stedi("ingest", str(source), "--lake", str(tmp_path / "lake"), "--json")
    assert list(json.loads(result.stdout)["skipped"].values()) == ["not a regular file but a FIFO"]


def test_a_second_writer_fails_clearly(tmp_path, source):
    lake = Lake(str(tmp_path / "lake"))
    with lake.writing():
        message = user_error(tmp_path, "ingest", str(source), "--lake", str(tmp_path / "lake"))
    assert "another stedi process is writing this lake" in message


def test_runs_lists_the_run_history(tmp_path, source):
    lake = ["--lake", str(tmp_path / "lake")]
    first = json.loads(stedi("run", str(source), *lake, "--json").stdout)
    stedi("run", *lake)  # nothing new: no record
    history = json.loads(stedi("runs", *lake, "--json").stdout)
    assert [r["run_id"] for r in history] == [first["run_id"]]
    assert history[0]["files_ingested"] == 3 and history[0]["checks_failed"] == 0 and "machine_learning_curated" in history[0]["tables_built"]
    shown = stedi("runs", *lake)
    assert shown.exit_code == 0 and first["run_id"][:10] in shown.stdout and "published" in shown.stdout


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--format", "csv"], "email,serialNumber\na@x.com,S1\n"),
        (["--format", "json"], '[\n  {"email": "a@x.com", "serialNumber": "S1"}\n]\n'),
        (["--json", "--limit", "0"], "[\n]\n"),
        (["--format", "vertical"], "email        | a@x.com"),
    ],
)
def test_query_formats(tmp_path, source, args, expected):
    stedi("run", str(source), "--lake", str(tmp_path / "lake"))
    result = stedi("query", "SELECT email, serialNumber FROM stedi.customer_trusted", "--lake", str(tmp_path / "lake"), *args)
    assert result.exit_code == 0, result.output
    assert expected in result.stdout


def test_query_limit_says_more_rows_follow(tmp_path, source):
    stedi("run", str(source), "--lake", str(tmp_path / "lake"))
    result = stedi("query", "SELECT * FROM range(5)", "--lake", str(tmp_path / "lake"), "--limit", "2")
    assert "the first 2 rows; more follow" in result.stdout and "│ 1 " in result.stdout and "│ 2 " not in result.stdout
    assert len(stedi("query", "SELECT * FROM range(5)", "--lake", str(tmp_path / "lake"), "--format", "csv", "--limit", "3").stdout.splitlines()) == 4


@pytest.mark.parametrize(
    "sql, message",
    [
        ("SELECT * FROM customer_trustd", 'Did you mean "customer_trusted"?'),
        ("SELECT emial FROM customer_landing", 'Candidate bindings: "email"'),
    ],
)
def test_query_keeps_duckdbs_hint(tmp_path, source, sql, message):
    stedi("ingest", str(source), "--lake", str(tmp_path / "lake"))
    stedi("run", "--lake", str(tmp_path / "lake"))
    assert message in user_error(tmp_path, "query", sql, "--lake", str(tmp_path / "lake"))


def test_query_refuses_an_unknown_format(tmp_path, source):
    stedi("ingest", str(source), "--lake", str(tmp_path / "lake"))
    assert "unknown format 'xml'" in user_error(tmp_path, "query", "SELECT 1", "--format", "xml", "--lake", str(tmp_path / "lake"))


def test_run_select_builds_the_chosen_models_and_says_what_it_left(tmp_path, source):
    lake = ["--lake", str(tmp_path / "lake")]
    first = json.loads(stedi("run", str(source), *lake, "--select", "+customers_curated", "--json").stdout)
    status = {t["name"]: t["status"] for t in first["tables"]}
    assert status == {
        "customer_trusted": "built",
        "serial_number_owners": "built",
        "accelerometer_trusted": "built",
        "customers_curated": "built",
        "step_trainer_trusted": "not selected",
        "machine_learning_curated": "not selected",
    }
    assert "out of date" in next(t["note"] for t in first["tables"] if t["name"] == "step_trainer_trusted")
    rest = stedi("run", *lake, "--exclude", "customer_trusted")
    assert rest.exit_code == 0, rest.output
    lines = {line.split()[1]: line for line in rest.stdout.splitlines() if line[:1] in "✓·✗–" and len(line.split()) > 1}
    assert "built in full" in lines["machine_learning_curated"] and "checks 4/4" in lines["machine_learning_curated"]
    assert "unchanged" in lines["customers_curated"] and "not selected" in lines["customer_trusted"]
    assert json.loads(stedi("query", "SELECT count(*) AS n FROM machine_learning_curated", *lake, "--json").stdout) == [{"n": 1}]


def test_verbose_logs_what_the_run_decided(tmp_path, source):
    """In a process of its own, as logging is set up once per process."""

    def stedi_process(*args):
        return subprocess.run([sys.executable, "-c", "from stedi.cli import main; main()", *args], capture_output=True, text=True, timeout=120)

    verbose = stedi_process("-v", "run", str(source), "--lake", str(tmp_path / "lake"))
    assert verbose.returncode == 0, verbose.stderr
    assert "plan for customer_trusted" in verbose.stderr and "Rebuild(reason='first build')" in verbose.stderr
    assert "DEBUG" not in stedi_process("run", "--lake", str(tmp_path / "lake")).stderr  # quiet by default


def test_demo_json_and_a_warning_when_other_feeds_join_the_demos_lake(tmp_path, source):
    lake = ["--lake", str(tmp_path / "lake")]
    demo = stedi("demo", *lake, "--data", str(tmp_path / "demo-data"), "--customers", "60", "--json")
    assert demo.exit_code == 0, demo.output
    summary = json.loads(demo.stdout)
    assert summary["run"]["ok"] and summary["generated"]["records"]["customer"] >= 60
    again = stedi("demo", *lake, "--data", str(tmp_path / "demo-data"), "--customers", "60", "--json")
    assert again.exit_code == 0, again.output  # the demo may run again on its own lake
    mixed = stedi("ingest", str(source), *lake)
    assert mixed.exit_code == 0 and "warning: this lake was made by `stedi demo`" in mixed.stderr


def test_demo_refuses_a_lake_that_holds_other_feeds(tmp_path, source):
    stedi("ingest", str(source), "--lake", str(tmp_path / "lake"))
    message = user_error(tmp_path, "demo", "--lake", str(tmp_path / "lake"), "--data", str(tmp_path / "demo-data"), "--customers", "60")
    assert "holds feeds that are not the demo's" in message
    assert not (tmp_path / "demo-data").exists()


def test_shell_completion_is_offered():
    script = subprocess.run([os.path.join(os.path.dirname(sys.executable), "stedi"), "--show-completion", "bash"], capture_output=True, text=True, timeout=60)
    assert script.returncode == 0 and "_stedi_completion" in script.stdout
