"""Incremental runs: a model whose inputs only gained files gains just the rows they add, and ends
up holding exactly what a full build over the same inputs would.

Every step below is checked against that invariant (`assert_every_model_is_its_sql`), and against
how each model was built: rows added to it, the touched customers' rows replaced, or rebuilt in full.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from stedi import run as run_module
from stedi.engines import open_engine
from stedi.engines.base import ModelBuild
from stedi.erasure import forget
from stedi.funnel import funnel
from stedi.generate import generate_feeds
from stedi.lake import parquet_columns
from stedi.models import load_models
from stedi.run import published_inputs, run_settings_table
from stedi.secret import customer_key
from support.lakes import MODEL_TABLES
from support.leftovers import files_holding
from support.records import customer, reading, step

INCREMENTAL = {"accelerometer_trusted", "customers_curated", "step_trainer_trusted", "machine_learning_curated"}


def assert_every_model_is_its_sql(harness, tmp_path: Path) -> None:
    """Each published model holds exactly the rows its SQL gives over its published inputs."""
    engine = open_engine("duckdb")
    settings = run_settings_table(harness.lake, "since-consent")
    for model in load_models():
        out = str(tmp_path / f"full-{model.name}.parquet")
        engine.build(ModelBuild(model.sql, published_inputs(harness.lake, sorted(model.reads)), settings, out))
        columns = ", ".join(f'"{name}"' for name, _ in parquet_columns(out))
        full = Counter(duckdb.sql(f"SELECT {columns} FROM read_parquet('{out}')").fetchall())
        assert Counter(harness.rows(f"SELECT {columns} FROM {model.name}")) == full, model.name


def how_built(report) -> dict[str, str]:
    """Per built table: 'added' when it gained rows incrementally, 'replaced' when it replaced the
    rows of the customers a delivery touched, 'full' when rebuilt."""
    short = {run_module.APPENDED: "added", run_module.REPLACED: "replaced", run_module.REBUILT: "full"}
    return {t.name: short[t.method] for t in report.tables if t.status == "built"}


def test_new_readings_are_added_not_rebuilt(harness, tmp_path):
    harness.feed("customer/c.json", [customer("a@x.com", "S1"), customer("b@x.com", "S2"), customer("no@x.com", "S3", consent=None)])
    harness.feed("accelerometer/1.json", [reading("a@x.com", 2000), reading("b@x.com", 2000)])
    harness.feed("step_trainer/1.json", [step("S1", 2000), step("S2", 3000)])
    assert how_built(harness.run()) == dict.fromkeys(["customer_trusted", "serial_number_owners", *INCREMENTAL], "full")

    harness.feed(
        "accelerometer/2.json",
        [
            reading("a@x.com", 2000),  # already landed: no second row anywhere
            reading("b@x.com", 3000),  # pairs with a Step Trainer reading landed before
            reading("no@x.com", 3000),  # no consent: goes nowhere
            {"serialNumber": "S1", "timestamp": 4000, "x": 1.0, "y": 1.0, "z": 1.0},  # by serial number
        ],
    )
    harness.feed("step_trainer/2.json", [step("S1", 4000), step("S3", 4000)])
    report = harness.run()
    assert report.ok
    assert how_built(report) == dict.fromkeys(INCREMENTAL, "added")
    assert {t.name: t.status for t in report.tables if t.name not in INCREMENTAL} == {
        "customer_trusted": "unchanged",
        "serial_number_owners": "unchanged",
    }
    assert harness.rows("SELECT timestamp FROM machine_learning_curated ORDER BY 1") == [(2000,), (3000,), (4000,)]
    assert harness.count("accelerometer_trusted") == 4
    assert_every_model_is_its_sql(harness, tmp_path)


def checks_judged(report) -> dict[str, dict[str, str]]:
    return {t.name: {c.name: c.judged for c in t.checks} for t in report.tables if t.status == "built"}


def test_after_an_append_row_by_row_checks_judge_only_the_new_rows(harness):
    harness.feed("customer/c.json", [customer("a@x.com", "S1")])
    harness.feed("accelerometer/1.json", [reading("a@x.com", 2000)])
    harness.feed("step_trainer/1.json", [step("S1", 2000)])
    assert {judged for checks in checks_judged(harness.run()).values() for judged in checks.values()} == {"all rows"}

    harness.feed("accelerometer/2.json", [reading("a@x.com", 3000)])
    harness.feed("step_trainer/2.json", [step("S1", 3000)])
    assert checks_judged(harness.run()) == {
        "accelerometer_trusted": {"not_null(user)": "new rows", "consenting_rows(user, timestamp)": "new rows"},
        "customers_curated": {
            "unique(email)": "all rows",  # a new row may repeat a held one
            "consenting_rows(email)": "new rows",
            "references(email, accelerometer_trusted, user)": "new rows",
        },
        "step_trainer_trusted": {
            "not_null(email)": "new rows",
            "consenting_rows(email, sensorReadingTime)": "new rows",
            "references(email, customers_curated, email)": "new rows",
            "unambiguous_serial_numbers": "new rows",
        },
        "machine_learning_curated": {
            "no_pii_columns": "all rows",
            "not_null(customer_key)": "new rows",
            "same_customer_pairs": "new rows",
            "not_empty": "all rows",
        },
    }


def test_appended_rows_that_break_a_rule_fail_the_append(harness, monkeypatch):
    harness.feed("customer/c.json", [customer("a@x.com", "S1"), customer("no@x.com", "S2", consent=None)])
    harness.feed("accelerometer/1.json", [reading("a@x.com", 2000)])
    assert harness.run().ok
    live = harness.lake.table("accelerometer_trusted").current_snapshot().snapshot_id

    # A broken growth step: it lets a reading of a customer without consent through.
    growth_sql = run_module.growth_sql
    leaky = "SELECT 'no@x.com' AS user, 3000::BIGINT AS timestamp, 1.0::DOUBLE AS x, 1.0::DOUBLE AS y, 1.0::DOUBLE AS z"

    def leaky_growth(*args):
        stages, sql = growth_sql(*args)
        return stages, f"{sql} UNION ALL {leaky}"

    monkeypatch.setattr(run_module, "growth_sql", leaky_growth)
    harness.feed("accelerometer/2.json", [reading("a@x.com", 3000)])
    report = harness.run()
    failed = {t.name: t for t in report.tables}["accelerometer_trusted"]
    assert failed.status == "failed" and not report.ok
    assert [(c.name, c.violations, c.judged) for c in failed.checks if not c.passed] == [("consenting_rows(user, timestamp)", 1, "new rows")]
    assert harness.lake.table("accelerometer_trusted").current_snapshot().snapshot_id == live


def test_a_batch_that_adds_nothing_new_records_it_and_adds_no_rows(harness, tmp_path):
    harness.feed("customer/c.json", [customer("a@x.com", "S1")])
    harness.feed("accelerometer/1.json", [reading("a@x.com", 2000)])
    harness.feed("step_trainer/1.json", [step("S1", 2000)])
    assert harness.run().ok
    harness.feed("accelerometer/again.json", [reading("a@x.com", 2000)])
    report = harness.run()
    # The reading adds no row, so no table downstream has anything new to read.
    assert how_built(report) == {"accelerometer_trusted": "added"}
    assert [t.rows_out for t in report.tables if t.name == "accelerometer_trusted"] == [1]
    assert all(t.status == "unchanged" for t in harness.run().tables)
    assert_every_model_is_its_sql(harness, tmp_path)


def test_a_consent_change_replaces_the_rows_of_the_customers_it_touches(harness, tmp_path):
    harness.feed("customer/c.json", [customer("a@x.com", "S1"), customer("b@x.com", "S2")])
    harness.feed("accelerometer/1.json", [reading("a@x.com", 2000), reading("b@x.com", 2000)])
    harness.feed("step_trainer/1.json", [step("S1", 2000), step("S2", 2000)])
    assert harness.run().ok

    harness.feed("customer/later.json", [customer("a@x.com", "S1", consent=None, updated=20)])  # a revokes
    harness.feed("accelerometer/2.json", [reading("a@x.com", 3000), reading("b@x.com", 3000)])
    report = harness.run()
    assert how_built(report) == dict.fromkeys(["customer_trusted", "serial_number_owners", *INCREMENTAL], "replaced")
    assert {t.touched_customers for t in report.tables} == {2}  # a revokes, b sent readings
    assert harness.rows("SELECT DISTINCT user FROM accelerometer_trusted") == [("b@x.com",)]
    assert_every_model_is_its_sql(harness, tmp_path)

    harness.feed("accelerometer/3.json", [reading("b@x.com", 4000)])  # b is curated already; no step at 4000
    assert how_built(harness.run()) == dict.fromkeys(["accelerometer_trusted", "customers_curated", "machine_learning_curated"], "added")
    assert_every_model_is_its_sql(harness, tmp_path)


def test_a_run_reads_only_the_latest_run_record(harness):
    """However many runs a lake has seen, the next run reads one record: an old one that cannot
    be read any more does not matter."""
    harness.feed("customer/c.json", [customer("a@x.com", "S1")])
    harness.feed("accelerometer/1.json", [reading("a@x.com", 2000)])
    first = harness.run()
    harness.feed("accelerometer/2.json", [reading("a@x.com", 3000)])
    second = harness.run()
    (Path(harness.lake.location) / "_stedi" / "runs" / f"{first.run_id}.json").write_text("{damaged")
    third = harness.run()  # nothing new: the latest run's funnel is reused
    assert third.ok and third.funnel == second.funnel
    assert run_module.latest_run(harness.lake)["run_id"] == second.run_id


def test_the_funnel_after_each_delivery_is_what_a_fresh_count_gives(harness):
    """The funnel counts only new readings when what decides a reading's fate is unchanged."""

    def run_and_count(consent_scope: str = "since-consent") -> dict:
        report = harness.run(consent_scope)
        assert report.ok
        assert report.funnel == funnel(harness.lake, consent_scope), "a fresh count differs"
        return report.funnel

    harness.feed(
        "customer/c.json",
        [
            customer("a@x.com", "S1", consent=1500),
            customer("b@x.com", "S2"),
            customer("c@x.com", "SHARED"),
            customer("d@x.com", "SHARED"),
            customer("e@x.com", "S5", consent=None),
            customer("f@x.com", "S6"),
        ],
    )
    harness.feed("accelerometer/1.json", [reading("a@x.com", 2000), reading("b@x.com", 2000)])
    harness.feed("step_trainer/1.json", [step("S1", 2000), step("S6", 2000)])  # f has no reading: not curated yet
    first = run_and_count()
    assert first["step_trainer"]["no_consent"] == 1

    # New readings of every fate: kept, repeated, before consent, no consent, ambiguous serial.
    harness.feed(
        "accelerometer/2.json",
        [
            reading("a@x.com", 3000),
            reading("a@x.com", 3000),
            reading("a@x.com", 1000),
            reading("e@x.com", 3000),
            {"serialNumber": "SHARED", "timestamp": 3000, "x": 1.0, "y": 1.0, "z": 1.0},
        ],
    )
    second = run_and_count()
    assert second["accelerometer"]["duplicates"] == 1 and second["accelerometer"]["out_of_scope"] == 1

    # f's first phone reading makes f curated: the Step Trainer reading counted as "no consent"
    # before now belongs to f, so its feed is counted again in full.
    harness.feed("accelerometer/3.json", [reading("f@x.com", 2000)])
    third = run_and_count()
    assert third["step_trainer"]["no_consent"] == 0

    harness.feed("customer/later.json", [customer("b@x.com", "S2", consent=None, updated=20)])  # b revokes
    harness.feed("accelerometer/4.json", [reading("b@x.com", 4000)])
    run_and_count()
    run_and_count("all")


def deliver_generated(harness, generated: Path, paths, tmp_path: Path) -> dict[str, str]:
    """Copy generated feed files into the source, run, and hold every table and the funnel to a
    full build and a fresh count; returns how each table was built."""
    for path in paths:
        target = harness.source / path.relative_to(generated)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    report = harness.run()
    assert report.ok
    assert_every_model_is_its_sql(harness, tmp_path)
    assert report.funnel == funnel(harness.lake, "since-consent")
    return how_built(report)


def test_generated_batches_in_turn_match_a_full_build(harness, tmp_path):
    """Realistic feeds with defects: all but the last file of each feed, then the last reading
    files (added), then the last customer file, which changes consents (customers replaced)."""
    generated = tmp_path / "generated"
    generate_feeds(generated, customers=300, seed=7, defects=True, customers_per_file=100)
    files = sorted(p for p in generated.rglob("*") if p.is_file() and p.stat().st_size > 0)
    last = {max(p for p in files if p.parent == folder) for folder in {p.parent for p in files}}
    last_readings = {p for p in last if p.parts[len(generated.parts)] != "customer"}

    def deliver(paths) -> dict[str, str]:
        return deliver_generated(harness, generated, paths, tmp_path)

    deliver(p for p in files if p not in last)
    assert set(deliver(last_readings).values()) == {"added"}
    assert set(deliver(last - last_readings).values()) == {"replaced"}


# ---- deliveries of customer records: the touched customers' rows replaced ---------------------------
def base_lake(harness) -> None:
    """Customers of every kind, their readings, one full build."""
    harness.feed(
        "customer/c.json",
        [
            customer("a@x.com", "S1"),
            customer("b@x.com", "S2"),
            customer("c@x.com", "S3", consent=None),
            customer("d@x.com", "S4", consent=2500),
            customer("e@x.com", "SHARED"),
            customer("f@x.com", "SHARED"),
            customer("g@x.com", "S7"),  # has Step Trainer readings, no phone reading: not curated
        ],
    )
    harness.feed(
        "accelerometer/1.json",
        [
            reading("a@x.com", 2000),
            reading("b@x.com", 2000),
            reading("c@x.com", 2000),
            reading("d@x.com", 2000),
            reading("d@x.com", 3000),
            reading("e@x.com", 2000),
            reading("f@x.com", 2000),
            {"serialNumber": "S1", "timestamp": 2500, "x": 1.0, "y": 1.0, "z": 1.0},  # a's, by serial number
        ],
    )
    harness.feed("step_trainer/1.json", [step("S1", 2000), step("S1", 2500), step("S3", 2000), step("S4", 3000), step("SHARED", 2000), step("S7", 2000)])
    assert harness.run().ok


def count_of(sql: str) -> str:
    return f"SELECT count(*) FROM {sql}"


# (what arrives, the feed files it holds, a query on the lake after it, and its answer reasoned out)
DELIVERIES = [
    pytest.param(
        {"customer/d.json": [customer("a@x.com", "S1", consent=None, updated=20)]},
        count_of("accelerometer_trusted WHERE user = 'a@x.com'") + " UNION ALL " + count_of("step_trainer_trusted WHERE email = 'a@x.com'"),
        [(0,), (0,)],
        id="a revocation removes every row of the customer",
    ),
    pytest.param(
        {"customer/d.json": [customer(" A@X.COM ", "S1", consent=None, updated=20)]},
        count_of("machine_learning_curated"),
        [(1,)],  # d's pair is left
        id="a revocation spelled with capitals and spaces",
    ),
    pytest.param(
        {"customer/d.json": [customer("c@x.com", "S3", updated=20)]},
        count_of("step_trainer_trusted WHERE email = 'c@x.com'") + " UNION ALL " + count_of("customers_curated WHERE email = 'c@x.com'"),
        [(1,), (1,)],
        id="a new consent brings the readings in scope",
    ),
    pytest.param(
        {"customer/d.json": [customer("d@x.com", "S4", consent=1500, updated=20)]},
        count_of("accelerometer_trusted WHERE user = 'd@x.com'"),
        [(2,)],
        id="a consent date moved earlier takes in earlier readings",
    ),
    pytest.param(
        {"customer/d.json": [customer("d@x.com", "S4", consent=3500, updated=20)]},
        count_of("accelerometer_trusted WHERE user = 'd@x.com'") + " UNION ALL " + count_of("step_trainer_trusted WHERE email = 'd@x.com'"),
        [(0,), (0,)],
        id="a consent date moved later leaves the earlier readings out",
    ),
    pytest.param(
        {
            "customer/d.json": [customer("h@x.com", "S8")],
            "accelerometer/2.json": [reading("h@x.com", 2000)],
            "step_trainer/2.json": [step("S8", 2000)],
        },
        "SELECT count(*), count(DISTINCT customer_key) FROM machine_learning_curated",
        [(4, 3)],  # a's two pairs (2000, and 2500 by serial number), d's at 3000 and h's
        id="a new customer with readings",
    ),
    pytest.param(
        {"customer/d.json": [customer("i@x.com", "S1")]},
        count_of("step_trainer_trusted WHERE serialNumber = 'S1'") + " UNION ALL " + count_of("accelerometer_trusted WHERE user = 'a@x.com'"),
        [(0,), (1,)],  # S1 has no owner now: its Step Trainer readings and a's reading by serial number go
        id="a serial number becomes shared",
    ),
    pytest.param(
        {"customer/d.json": [customer("f@x.com", "S9", updated=20)]},
        "SELECT email FROM step_trainer_trusted WHERE serialNumber = 'SHARED'",
        [("e@x.com",)],
        id="a serial number stops being shared",
    ),
    pytest.param(
        {"customer/d.json": [customer("g@x.com", "S7", updated=20)], "accelerometer/2.json": [reading("g@x.com", 2000)]},
        count_of("customers_curated WHERE email = 'g@x.com'") + " UNION ALL " + count_of("machine_learning_curated"),
        [(1,), (4,)],
        id="a customer whose first phone reading arrives becomes curated",
    ),
    pytest.param(
        {
            "customer/d.json": [
                customer("a@x.com", "S1", consent=None, updated=20),
                customer("c@x.com", "S3", updated=20),
                customer("f@x.com", "S9", updated=20),
                customer("h@x.com", "S4"),
            ],
            "accelerometer/2.json": [reading("b@x.com", 3000), reading("h@x.com", 2000)],
            "step_trainer/2.json": [step("S2", 3000), step("S9", 2000)],
        },
        "SELECT DISTINCT email FROM step_trainer_trusted ORDER BY 1",
        # a revoked; c consents; SHARED is e's alone and S9 is f's; S4 is shared by d and h now
        [("b@x.com",), ("c@x.com",), ("e@x.com",), ("f@x.com",)],
        id="a mix of all of these",
    ),
]


@pytest.mark.parametrize(("files", "query", "expected"), DELIVERIES)
def test_a_delivery_replaces_the_touched_customers_and_equals_a_full_build(harness, tmp_path, files, query, expected):
    base_lake(harness)
    for relative, lines in files.items():
        harness.feed(relative, lines)
    report = harness.run()
    assert report.ok
    assert set(how_built(report).values()) == {"replaced"}
    assert harness.rows(query) == expected
    assert_every_model_is_its_sql(harness, tmp_path)
    assert report.funnel == funnel(harness.lake, "since-consent")


def test_a_replacement_rewrites_only_the_files_that_hold_the_touched_customers(harness):
    harness.feed("customer/c.json", [customer("a@x.com", "S1"), customer("b@x.com", "S2")])
    harness.feed("accelerometer/1.json", [reading("a@x.com", 2000)])
    assert harness.run().ok
    harness.feed("accelerometer/2.json", [reading("b@x.com", 2000)])  # appended: a second file, b's alone
    assert how_built(harness.run())["accelerometer_trusted"] == "added"
    files_before = set(harness.lake.state("accelerometer_trusted").files)

    harness.feed("customer/d.json", [customer("b@x.com", "S2", consent=None, updated=20), customer("n@x.com", "S3")])
    report = harness.run()
    trusted = {t.name: t for t in report.tables}["accelerometer_trusted"]
    assert trusted.method == run_module.REPLACED and trusted.touched_customers == 2
    assert trusted.note.endswith("1 of 2 data files rewritten")
    files_after = set(harness.lake.state("accelerometer_trusted").files)
    assert len(files_before & files_after) == 1  # a's file is untouched
    assert harness.rows("SELECT user FROM accelerometer_trusted") == [("a@x.com",)]

    harness.feed("customer/e.json", [customer("z@x.com", "S9")])  # a new customer with no reading yet
    trusted = {t.name: t for t in harness.run().tables}["accelerometer_trusted"]
    assert trusted.note.endswith("0 of 1 data files rewritten")
    assert set(harness.lake.state("accelerometer_trusted").files) == files_after


@pytest.mark.parametrize("touched, built", [(1, "replaced"), (2, "replaced"), (3, "full"), (10, "full")])
def test_a_delivery_that_touches_most_customers_is_built_in_full(harness, tmp_path, monkeypatch, touched, built):
    """Replacing holds every touched row at once: past a fifth of the customer records (and past
    ALWAYS_REPLACED customers, none here), a full build costs less and gives the same tables."""
    monkeypatch.setattr(run_module, "ALWAYS_REPLACED", 0)
    emails = [f"c{i}@x.com" for i in range(10)]
    harness.feed("customer/c.json", [customer(e, f"S{i}") for i, e in enumerate(emails)])
    harness.feed("accelerometer/1.json", [reading(e, 2000) for e in emails])
    harness.feed("step_trainer/1.json", [step(f"S{i}", 2000) for i in range(10)])
    assert harness.run().ok
    harness.feed("customer/again.json", [customer(e, f"S{i}", consent=None, updated=20) for i, e in enumerate(emails[:touched])])
    report = harness.run()
    assert set(how_built(report).values()) == {built}
    if built == "full":
        assert all("a full build costs less than replacing" in t.note for t in report.tables if t.status == "built")
    assert harness.count("customer_trusted") == 10 - touched
    assert_every_model_is_its_sql(harness, tmp_path)


def test_a_replacement_that_breaks_a_rule_fails_and_keeps_the_table(harness, monkeypatch):
    harness.feed("customer/c.json", [customer("a@x.com", "S1"), customer("no@x.com", "S2", consent=None)])
    harness.feed("accelerometer/1.json", [reading("a@x.com", 2000), reading("no@x.com", 2000)])
    assert harness.run().ok
    live = harness.lake.table("accelerometer_trusted").current_snapshot().snapshot_id

    # A broken replacement: it lets a reading of the customer without consent through.
    replacement_sql = run_module.replacement_sql
    leaky = "SELECT 'no@x.com' AS user, 2000::BIGINT AS timestamp, 0.5::DOUBLE AS x, 1.0::DOUBLE AS y, -1.0::DOUBLE AS z"

    def leaky_replacement(model, *args):
        stages, touched, others = replacement_sql(model, *args)
        return stages, f"{touched} UNION ALL {leaky}" if model.name == "accelerometer_trusted" else touched, others

    monkeypatch.setattr(run_module, "replacement_sql", leaky_replacement)
    harness.feed("customer/d.json", [customer("no@x.com", "S2", consent=None, updated=20)])
    report = harness.run()
    tables = {t.name: t for t in report.tables}
    assert tables["accelerometer_trusted"].status == "failed" and not report.ok
    assert [c.name for c in tables["accelerometer_trusted"].checks if not c.passed] == ["consenting_rows(user, timestamp)"]
    assert {tables[name].status for name in INCREMENTAL - {"accelerometer_trusted"}} == {"skipped"}
    assert harness.lake.table("accelerometer_trusted").current_snapshot().snapshot_id == live


def test_erasure_after_a_replacement_leaves_no_byte_behind(harness):
    base_lake(harness)
    zed, serial = "zed.forgotten@example.org", "SER-ZED-FORGOTTEN-1"  # long enough to match no other bytes
    harness.feed("customer/d.json", [customer("a@x.com", "S1", consent=None, updated=20), customer(zed, serial)])
    harness.feed("accelerometer/2.json", [reading(zed, 2000)])
    harness.feed("step_trainer/2.json", [step(serial, 2000)])
    assert set(how_built(harness.run()).values()) == {"replaced"}
    assert harness.count("machine_learning_curated") == 2  # d's pair and zed's
    with harness.lake.writing():
        forget(harness.lake, [zed])
    assert files_holding(Path(harness.lake.location), [zed, serial, customer_key(harness.lake.secret, zed)]) == {}
    assert harness.run(with_source=False).ok
    assert harness.rows("SELECT DISTINCT user FROM accelerometer_trusted ORDER BY 1") == [("b@x.com",), ("d@x.com",), ("e@x.com",), ("f@x.com",)]


def test_forgetting_a_customer_a_delivery_touched_leaves_the_other_customers_files_as_they_were(harness):
    """A replacement writes the touched customers' rows apart from the rows it carries over, so the
    erasure of a customer it touched removes that small file and rewrites no file of anyone else."""
    base_lake(harness)
    zed, serial = "zed@x.com", "S-ZED"
    harness.feed("customer/d.json", [customer("a@x.com", "S1", consent=None, updated=20), customer(zed, serial)])
    harness.feed("accelerometer/2.json", [reading(zed, 2000)])
    harness.feed("step_trainer/2.json", [step(serial, 2000)])
    assert set(how_built(harness.run()).values()) == {"replaced"}
    files = {name: set(harness.lake.state(name).files) for name in INCREMENTAL}
    others = {name: sorted(harness.rows(f"SELECT * FROM {name} WHERE {key} <> '{zed}'")) for name, key in KEYED_BY_ZED}
    with harness.lake.writing():
        forget(harness.lake, [zed])
    for name, before in files.items():
        after = set(harness.lake.state(name).files)
        assert after < before and len(before - after) == 1, name  # one file dropped, none written
    assert {name: sorted(harness.rows(f"SELECT * FROM {name}")) for name, _ in KEYED_BY_ZED} == others


# The column that names zed in the tables whose other rows the test above compares.
KEYED_BY_ZED = [("accelerometer_trusted", "user"), ("customers_curated", "email"), ("step_trainer_trusted", "email")]


def test_after_forgetting_a_customer_who_shares_no_serial_number_the_next_run_builds_nothing(harness, tmp_path):
    """Every table the erasure leaves is still its SQL over its inputs: the next run keeps them all,
    counts the funnel over them once, and a later delivery replaces customers as usual."""
    base_lake(harness)
    with harness.lake.writing():
        assert forget(harness.lake, ["b@x.com"]).shared_serial_numbers == 0
    after = harness.run(with_source=False)
    assert after.ok and {t.name: t.status for t in after.tables} == dict.fromkeys(MODEL_TABLES, "unchanged")
    assert after.changed and after.funnel == funnel(harness.lake, "since-consent")
    assert_every_model_is_its_sql(harness, tmp_path)
    assert not harness.run(with_source=False).changed  # its funnel is kept, and reused

    harness.feed("customer/d.json", [customer("a@x.com", "S1", consent=None, updated=20)])
    assert set(how_built(harness.run()).values()) == {"replaced"}
    assert_every_model_is_its_sql(harness, tmp_path)


# When the erasure changes a row of someone who stays, the next run rebuilds: (what the lake holds
# besides base_lake, whom the erasure forgets).
ERASURES_THAT_REACH_OTHERS = [
    pytest.param({}, "e@x.com", id="a serial number shared with one who stays: the number's readings went, and f owns it now"),
    pytest.param(
        {"customer/d.json": [customer("h@x.com", "S8", referredBy="a@x.com")], "accelerometer/2.json": [reading("h@x.com", 2000)]},
        "a@x.com",
        id="another customer's only record names them in a field outside the contract, and goes with them",
    ),
    pytest.param(
        {"accelerometer/2.json": [{**reading("b@x.com", 2500), "note": "with a@x.com"}]},
        "a@x.com",
        id="another customer's reading names them in a field outside the contract, and goes with them",
    ),
    pytest.param(
        {"customer/d.json": [customer("h@x.com", ""), customer("i@x.com", "")], "step_trainer/2.json": [step("", 2000)]},
        "h@x.com",
        id="a blank serial number that one who stays carries too: theirs now",
    ),
]


@pytest.mark.parametrize("extra, forgotten", ERASURES_THAT_REACH_OTHERS)
def test_after_an_erasure_that_reaches_someone_who_stays_the_next_run_rebuilds(harness, tmp_path, extra, forgotten):
    for path, lines in extra.items():
        harness.feed(path, lines)
    base_lake(harness)
    with harness.lake.writing():
        forget(harness.lake, [forgotten])
    assert "full" in set(how_built(harness.run(with_source=False)).values())
    assert_every_model_is_its_sql(harness, tmp_path)


def test_generated_deliveries_over_several_runs_match_a_full_build(harness, tmp_path):
    """Realistic feeds with defects, delivered a customer file and some reading files at a time:
    later customer files revoke, grant and change consents and serial numbers."""
    generated = tmp_path / "generated"
    generate_feeds(generated, customers=240, seed=11, defects=True, customers_per_file=40)
    files = sorted(p for p in generated.rglob("*") if p.is_file())
    by_feed = {feed: [p for p in files if p.parts[len(generated.parts)] == feed] for feed in ("customer", "accelerometer", "step_trainer")}
    rounds = len(by_feed["customer"])
    methods = set()
    for i in range(rounds):
        share = [p for paths in by_feed.values() for p in paths[len(paths) * i // rounds : len(paths) * (i + 1) // rounds]]
        methods |= set(deliver_generated(harness, generated, share, tmp_path).values())
    assert "replaced" in methods


def test_a_feed_counted_before_its_first_file_arrived_is_counted_in_full_after(harness):
    harness.feed("customer/c.json", [customer("a@x.com", "S1")])
    harness.feed("accelerometer/1.json", [reading("a@x.com", 2000)])
    assert harness.run().ok  # the Step Trainer feed is counted while its landing table holds no file
    harness.feed("step_trainer/1.json", [step("S1", 2000), step("S9", 2000)])
    report = harness.run()
    assert report.funnel == funnel(harness.lake, "since-consent")
    assert report.funnel["step_trainer"]["no_consent"] == 1
