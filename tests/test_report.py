"""SPEC §8, `stedi report OUT.html`: one self-contained page, checked in a real browser (Debian's
chromium, headless): the counts on it are the lake's, the charts are drawn with no network, nothing
logs an error, and a hostile value from the feeds shows as text and never runs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

import stedi
from stedi.cli import app
from stedi.generate import generate_feeds
from stedi.report import lineage_svg
from support.lakes import write_feed_file
from support.records import customer, reading

runner = CliRunner()
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOSTILE = "<script>document.body.dataset.pwned='script'</script><img src=x onerror=\"document.title='pwned'\">"


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """A generated lake with defects, plus a hostile customer name (in a quarantined record) and a
    hostile field name (kept in `_extra`), run and reported."""
    root = tmp_path_factory.mktemp("report")
    generate_feeds(root / "feeds", 150, seed=3, defects=True)
    write_feed_file(root / "feeds", "customer/hostile.json", [{"customerName": HOSTILE, "phone": "1"}])  # no email: quarantined
    write_feed_file(root / "feeds", "customer/consenting.json", [customer("eve@x.com", "S-EVE")])
    write_feed_file(root / "feeds", "accelerometer/hostile.json", [{**reading("eve@x.com", 5000), HOSTILE: 1}])
    lake = str(root / "lake")
    assert runner.invoke(app, ["run", str(root / "feeds"), "--lake", lake]).exit_code == 0
    out = root / "report.html"
    result = runner.invoke(app, ["report", str(out), "--lake", lake, "--json"])
    assert result.exit_code == 0, result.output
    return {"lake": stedi.open(lake), "out": out, "summary": json.loads(result.stdout), "root": root}


def test_the_page_is_self_contained(reported):
    page = reported["out"].read_text()
    outside_plotly = re.sub(r"<script>.*?</script>", "", page, flags=re.DOTALL)
    assert not re.search(r"<(script|link|img|iframe)[^>]*(src|href)=", outside_plotly), "the page loads something"
    assert "Plotly" in page and reported["summary"]["charts"] == 8


def test_every_value_from_the_data_is_escaped_in_the_html(reported):
    page = reported["out"].read_text()
    assert HOSTILE not in page
    assert "&lt;script&gt;document.body.dataset.pwned" in page  # the quarantined line, as text
    assert "&lt;img src=x onerror=" in page  # the field name in schema drift, as text


@pytest.fixture(scope="module")
def browser(reported):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium; .ci/run installs it)")
    root, page = reported["root"], reported["out"].as_uri()
    offline = "--host-resolver-rules=MAP * ~NOTFOUND"  # no host resolves: the page must need no network
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", offline, f"--user-data-dir={root / 'profile'}", "--virtual-time-budget=10000"]
    dom = subprocess.run([*flags, "--enable-logging=stderr", "--v=0", "--dump-dom", page], capture_output=True, text=True, timeout=120)
    screenshot = root / "report.png"
    subprocess.run([*flags, "--window-size=1400,3000", "--hide-scrollbars", f"--screenshot={screenshot}", page], capture_output=True, timeout=120)
    return {"dom": dom.stdout, "log": dom.stderr, "screenshot": screenshot}


def test_the_charts_render_in_a_browser(browser, reported):
    dom = browser["dom"]
    assert dom.count('class="main-svg"') >= reported["summary"]["charts"]
    assert ">This chart could not be drawn" not in dom and ">Nothing to draw yet." not in dom
    assert dom.count('class="sankey"') == 3
    assert browser["screenshot"].stat().st_size > 50_000


def test_nothing_logs_an_error_in_the_browser(browser):
    console = [line for line in browser["log"].splitlines() if ":CONSOLE(" in line or "Uncaught" in line]
    assert console == []


def test_the_hostile_values_did_not_run(browser):
    dom = browser["dom"]
    assert "data-pwned" not in dom and "<title>pwned" not in dom
    assert "<img" not in dom
    assert "&lt;script&gt;document.body.dataset.pwned" in dom


def test_the_counts_on_the_page_are_the_lakes(browser, reported):
    dom, lake = browser["dom"], reported["lake"]
    for table in ("customer_trusted", "accelerometer_landing", "machine_learning_curated"):
        assert f'data-table="{table}">{lake.table(table).num_rows}<' in dom
    funnel = lake.runs()[-1]["funnel"]
    for feed, step in (("accelerometer", "landing_rows"), ("customer", "no_consent"), ("step_trainer", "ambiguous_serial")):
        assert f'data-step="{feed}.{step}">{funnel[feed][step]}<' in dom


def test_the_lineage_is_the_model_graph():
    drawn = lineage_svg([("b", "trusted", ["a_landing"]), ("c", "curated", ["a_landing", "b"])])
    assert [(n["name"], n["y"] > 0) for n in sorted(drawn["nodes"], key=lambda n: n["y"])] == [("a_landing", False), ("b", True), ("c", True)]
    assert len(drawn["edges"]) == 3


def test_a_lake_with_no_run_yet_still_reports(tmp_path):
    write_feed_file(tmp_path / "feeds", "customer/c.json", [customer("a@x.com")])
    assert runner.invoke(app, ["ingest", str(tmp_path / "feeds"), "--lake", str(tmp_path / "lake")]).exit_code == 0
    result = runner.invoke(app, ["report", str(tmp_path / "r.html"), "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 0, result.output
    assert "No run yet." in (tmp_path / "r.html").read_text()


def test_a_report_into_a_folder_is_a_clear_error(tmp_path, reported):
    result = runner.invoke(app, ["report", str(tmp_path), "--lake", reported["lake"].location])
    assert result.exit_code == 2 and "is a folder" in result.stderr
