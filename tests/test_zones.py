"""SPEC §3–§5: who reaches the trusted and curated zones, and what the quality gates do.

Each test builds the smallest feeds that exercise one rule; the expected rows are reasoned out in
the test itself.
"""

from __future__ import annotations

import dataclasses

import pytest

from stedi import models as models_module
from stedi import run as run_module
from support.lakes import LakeHarness
from support.records import CONSENT, customer, reading, step


def emails(harness, table, column="email"):
    return sorted(r[0] for r in harness.rows(f"SELECT DISTINCT {column} FROM {table}"))


def test_only_consenting_customers_reach_the_trusted_zone(harness):
    harness.feed("customer/c.json", [customer("yes@x.com", "S1"), customer("no@x.com", "S2", consent=None)])
    harness.feed("accelerometer/a.json", [reading("yes@x.com", 2000), reading("no@x.com", 2000)])
    harness.feed("step_trainer/s.json", [step("S1", 2000), step("S2", 2000)])
    assert harness.run().ok
    assert emails(harness, "customer_trusted") == ["yes@x.com"]
    assert emails(harness, "accelerometer_trusted", "user") == ["yes@x.com"]
    assert emails(harness, "customers_curated") == ["yes@x.com"]
    assert emails(harness, "step_trainer_trusted") == ["yes@x.com"]
    assert harness.count("machine_learning_curated") == 1


@pytest.mark.parametrize(
    "scope, kept",
    [
        ("since-consent", [CONSENT, CONSENT + 1]),  # the reading at the consent millisecond is kept
        ("all", [CONSENT - 1, CONSENT, CONSENT + 1]),
    ],
)
def test_consent_scope_boundary(harness, scope, kept):
    harness.feed("customer/c.json", [customer("a@x.com", "S1")])
    harness.feed("accelerometer/a.json", [reading("a@x.com", t) for t in (CONSENT - 1, CONSENT, CONSENT + 1)])
    harness.feed("step_trainer/s.json", [step("S1", t) for t in (CONSENT - 1, CONSENT, CONSENT + 1)])
    report = harness.run(consent_scope=scope)
    assert report.consent_scope == scope
    assert [r[0] for r in harness.rows("SELECT timestamp FROM accelerometer_trusted ORDER BY 1")] == kept
    assert [r[0] for r in harness.rows("SELECT sensorReadingTime FROM step_trainer_trusted ORDER BY 1")] == kept
    assert [r[0] for r in harness.rows("SELECT timestamp FROM machine_learning_curated ORDER BY 1")] == kept


def test_consent_scope_is_a_lake_setting(harness):
    harness.feed("customer/c.json", [customer("a@x.com", "S1")])
    harness.feed("accelerometer/a.json", [reading("a@x.com", CONSENT - 1)])
    assert harness.run(consent_scope="all").consent_scope == "all"
    assert harness.count("accelerometer_trusted") == 1
    assert harness.run().consent_scope == "all"  # not given again: the lake remembers
    back = harness.run(consent_scope="since-consent")
    assert [t.name for t in back.tables if t.status == "built"][:1] == ["customer_trusted"]  # scope change rebuilds
    assert harness.count("accelerometer_trusted") == 0


def test_a_later_record_without_consent_revokes_it_everywhere(harness):
    harness.feed("customer/c1.json", [customer("a@x.com", "S1", updated=10), customer("b@x.com", "S2", updated=10)])
    harness.feed("accelerometer/a.json", [reading("a@x.com", 2000), reading("b@x.com", 2000)])
    harness.feed("step_trainer/s.json", [step("S1", 2000), step("S2", 2000)])
    harness.run()
    assert harness.count("machine_learning_curated") == 2
    harness.feed("customer/c2.json", [customer("A@X.com ", "S1", consent=None, updated=20)])
    harness.run()
    for table in ("customer_trusted", "customers_curated", "step_trainer_trusted"):
        assert emails(harness, table) == ["b@x.com"], table
    assert emails(harness, "accelerometer_trusted", "user") == ["b@x.com"]
    assert harness.count("machine_learning_curated") == 1
    assert harness.run().funnel["customer"]["revoked"] == 1


def test_a_later_record_with_consent_grants_it(harness):
    harness.feed("customer/c.json", [customer("a@x.com", "S1", consent=None, updated=10), customer("a@x.com", "S1", consent=5_000, updated=20)])
    harness.feed("accelerometer/a.json", [reading("a@x.com", 4_999), reading("a@x.com", 5_000)])
    harness.run()
    assert harness.rows("SELECT email, shareWithResearchAsOfDate FROM customer_trusted") == [("a@x.com", 5_000)]
    assert harness.rows("SELECT timestamp FROM accelerometer_trusted") == [(5_000,)]


@pytest.mark.parametrize(
    "files, trusted",
    [
        # same lastUpdateDate: the later file wins ...
        ({"customer/a.json": [customer("a@x.com", consent=CONSENT)], "customer/b.json": [customer("a@x.com", consent=None)]}, False),
        ({"customer/a.json": [customer("a@x.com", consent=None)], "customer/b.json": [customer("a@x.com", consent=CONSENT)]}, True),
        # ... and within a file, the later line
        ({"customer/a.json": [customer("a@x.com", consent=None), customer("a@x.com", consent=CONSENT)]}, True),
        ({"customer/a.json": [customer("a@x.com", consent=CONSENT), customer("a@x.com", consent=None)]}, False),
        # a higher lastUpdateDate beats file order
        ({"customer/a.json": [customer("a@x.com", consent=CONSENT, updated=99)], "customer/b.json": [customer("a@x.com", consent=None)]}, True),
    ],
)
def test_ties_on_last_update_date(harness, files, trusted):
    for path, lines in files.items():
        harness.feed(path, lines)
    harness.run()
    assert harness.count("customer_trusted") == (1 if trusted else 0)


def test_a_serial_number_shared_by_two_customers_is_attributed_to_nobody(harness):
    # c@ consents, d@ does not, both carry SHARED. e@ consents with an unshared serial number.
    harness.feed("customer/c.json", [customer("c@x.com", "SHARED"), customer("d@x.com", "SHARED", consent=None), customer("e@x.com", "S-E")])
    harness.feed("accelerometer/a.json", [reading("c@x.com", 2000), reading("e@x.com", 2000)])
    harness.feed("step_trainer/s.json", [step("SHARED", 2000), step("SHARED", 2001), step("S-E", 2000)])
    report = harness.run()
    assert emails(harness, "customers_curated") == ["c@x.com", "e@x.com"]
    assert harness.rows("SELECT serialNumber, email FROM step_trainer_trusted") == [("S-E", "e@x.com")]
    assert report.funnel["step_trainer"]["ambiguous_serial"] == 2
    assert harness.rows("SELECT serialNumber, customers, email FROM serial_number_owners ORDER BY 1") == [("S-E", 1, "e@x.com"), ("SHARED", 2, None)]


def test_a_serial_number_of_a_non_consenting_owner_names_nobody(harness):
    harness.feed("customer/c.json", [customer("d@x.com", "S-D", consent=None)])
    harness.run()
    assert harness.rows("SELECT serialNumber, customers, email FROM serial_number_owners") == [("S-D", 1, None)]


def test_devices_sharing_a_millisecond_are_never_cross_joined(harness):
    # Both customers have one phone reading and one Step Trainer reading at t=5000.
    # Joining on time alone would give 4 rows; by customer it is 2, each with its own distance.
    harness.feed("customer/c.json", [customer("a@x.com", "S-A"), customer("b@x.com", "S-B")])
    harness.feed("accelerometer/a.json", [reading("a@x.com", 5000, x=0.1), reading("b@x.com", 5000, x=0.2)])
    harness.feed("step_trainer/s.json", [step("S-A", 5000, distance=11), step("S-B", 5000, distance=22)])
    harness.run()
    pairs = harness.rows("SELECT x, distanceFromObject FROM machine_learning_curated ORDER BY 1")
    assert pairs == [(0.1, 11), (0.2, 22)]
    assert harness.rows("SELECT count(DISTINCT customer_key) FROM machine_learning_curated") == [(2,)]


def test_a_burst_pairs_each_phone_reading_with_the_step_reading(harness):
    harness.feed("customer/c.json", [customer("a@x.com", "S-A")])
    harness.feed("accelerometer/a.json", [reading("a@x.com", 5000, x=x) for x in (0.1, 0.2, 0.3)])
    harness.feed("step_trainer/s.json", [step("S-A", 5000)])
    harness.run()
    assert harness.count("machine_learning_curated") == 3


def test_exact_duplicates_are_collapsed(harness):
    harness.feed("customer/c.json", [customer("a@x.com", "S1")])
    harness.feed("accelerometer/a.json", [reading("a@x.com", 2000)] * 2 + [reading("a@x.com", 2000, x=0.9)])
    harness.feed("accelerometer/redelivered.json", [reading("a@x.com", 2000)])
    harness.feed("step_trainer/s.json", [step("S1", 2000)] * 3)
    report = harness.run()
    assert harness.count("accelerometer_trusted") == 2  # same ms, different x: a burst, not a duplicate
    assert harness.count("step_trainer_trusted") == 1
    assert report.funnel["accelerometer"]["duplicates"] == 2
    assert report.funnel["step_trainer"]["duplicates"] == 2


def test_the_funnel_counts_again_whenever_any_table_changed(harness):
    harness.feed("customer/c.json", [customer("a@x.com", "S1")])
    harness.feed("accelerometer/a.json", [reading("a@x.com", 2000)])
    first = harness.run()
    assert harness.run().funnel == first.funnel  # nothing new: the last run's counts stand

    harness.feed("accelerometer/broken.json", ["not json"])
    harness.ingest()  # only the quarantine table changes, outside any run
    counted = harness.run(with_source=False).funnel["accelerometer"]
    assert counted["rejected_lines"] == first.funnel["accelerometer"]["rejected_lines"] + 1
    assert counted["landing_rows"] == first.funnel["accelerometer"]["landing_rows"]


@pytest.mark.parametrize(
    "serial, attributed",
    [("S-A", True), ("SHARED", False), ("UNKNOWN", False)],
)
def test_readings_that_carry_only_a_serial_number(harness, serial, attributed):
    harness.feed("customer/c.json", [customer("a@x.com", "S-A"), customer("b@x.com", "SHARED"), customer("c@x.com", "SHARED")])
    harness.feed("accelerometer/a.json", [{"serialNumber": serial, "timestamp": 2000, "x": 1, "y": 1, "z": 1}])
    harness.run()
    assert harness.rows("SELECT user FROM accelerometer_trusted") == ([("a@x.com",)] if attributed else [])


def test_user_matches_email_trimmed_and_case_insensitively(harness):
    harness.feed("customer/c.json", [customer(" Mixed.Case@X.com", "S1")])
    harness.feed("accelerometer/a.json", [reading("mixed.case@x.COM  ", 2000)])
    harness.feed("step_trainer/s.json", [step("S1", 2000)])
    harness.run()
    assert emails(harness, "accelerometer_trusted", "user") == ["mixed.case@x.com"]
    assert harness.count("machine_learning_curated") == 1


def test_machine_learning_table_holds_no_direct_identifier(harness):
    harness.feed("customer/c.json", [customer("a@x.com", "S1")])
    harness.feed("accelerometer/a.json", [reading("a@x.com", 2000)])
    harness.feed("step_trainer/s.json", [step("S1", 2000)])
    harness.run()
    columns = [r[0] for r in harness.rows("SELECT column_name FROM (DESCRIBE machine_learning_curated)")]
    assert columns == ["customer_key", "timestamp", "x", "y", "z", "distanceFromObject"]
    [(key,)] = harness.rows("SELECT customer_key FROM machine_learning_curated")
    assert len(key) == 64 and "a@x.com" not in key
    secret = harness.lake.secret.decode()
    assert secret not in str(harness.rows("SELECT * FROM machine_learning_curated"))


def test_customer_key_is_stable_within_a_lake_and_differs_between_lakes(tmp_path):
    keys = []
    for name in ("one", "two"):
        h = LakeHarness(tmp_path / name)
        h.feed("customer/c.json", [customer("a@x.com", "S1")])
        h.feed("accelerometer/a.json", [reading("a@x.com", 2000)])
        h.feed("step_trainer/s.json", [step("S1", 2000)])
        h.run()
        h.feed("accelerometer/b.json", [reading("a@x.com", 2001)])
        h.feed("step_trainer/b.json", [step("S1", 2001)])
        h.run()
        keys.append({r[0] for r in h.rows("SELECT customer_key FROM machine_learning_curated")})
    assert len(keys[0]) == 1 and len(keys[1]) == 1 and keys[0] != keys[1]


def test_a_run_with_nothing_new_is_a_no_op(harness):
    harness.feed("customer/c.json", [customer("a@x.com", "S1")])
    harness.run()
    snapshots = len(harness.lake.table("customer_trusted").snapshots())
    again = harness.run()
    assert not again.changed and {t.status for t in again.tables} == {"unchanged"}
    assert len(harness.lake.table("customer_trusted").snapshots()) == snapshots


def test_only_tables_whose_inputs_changed_are_rebuilt(harness):
    harness.feed("customer/c.json", [customer("a@x.com", "S1")])
    harness.feed("accelerometer/a.json", [reading("a@x.com", 2000)])
    harness.run()
    harness.feed("step_trainer/s.json", [step("S1", 2000)])
    statuses = {t.name: t.status for t in harness.run().tables}
    assert statuses == {
        "customer_trusted": "unchanged",
        "serial_number_owners": "unchanged",
        "accelerometer_trusted": "unchanged",
        "customers_curated": "unchanged",
        "step_trainer_trusted": "built",
        "machine_learning_curated": "built",
    }


def test_a_failing_check_keeps_the_previous_snapshot_and_skips_downstream(harness, monkeypatch):
    harness.feed("customer/c.json", [customer("a@x.com", "S1")])
    harness.feed("accelerometer/a.json", [reading("a@x.com", 2000)])
    harness.run()
    live = harness.lake.table("accelerometer_trusted").current_snapshot().snapshot_id

    # A broken edit to the model: it forgets the consent filter.
    broken = tuple(
        dataclasses.replace(m, sql="SELECT user, timestamp, x, y, z FROM accelerometer_landing") if m.name == "accelerometer_trusted" else m
        for m in models_module.load_models()
    )
    monkeypatch.setattr(run_module, "load_models", lambda: broken)
    harness.feed("customer/c2.json", [customer("b@x.com", "S2", consent=None)])
    harness.feed("accelerometer/b.json", [reading("b@x.com", 2000)])
    report = harness.run()
    assert not report.ok
    by_name = {t.name: t for t in report.tables}
    failed = by_name["accelerometer_trusted"]
    assert failed.status == "failed"
    assert [(c.name, c.violations) for c in failed.checks if not c.passed] == [("consenting_rows(user, timestamp)", 1)]
    assert harness.lake.table("accelerometer_trusted").current_snapshot().snapshot_id == live
    assert {by_name[n].status for n in ("customers_curated", "step_trainer_trusted", "machine_learning_curated")} == {"skipped"}
    assert emails(harness, "accelerometer_trusted", "user") == ["a@x.com"]


def test_a_join_on_time_alone_fails_the_same_customer_gate(harness, monkeypatch):
    # The join many published versions of this pipeline use: two devices sharing t=5000 give four
    # pairs, two of them pairing one customer's phone with the other's Step Trainer.
    harness.feed("customer/c.json", [customer("a@x.com", "S-A"), customer("b@x.com", "S-B")])
    harness.feed("accelerometer/a.json", [reading("a@x.com", 5000), reading("b@x.com", 5000)])
    harness.feed("step_trainer/s.json", [step("S-A", 5000, distance=11), step("S-B", 5000, distance=22)])
    time_only = """
        SELECT sha256(concat(run_settings.key_secret, '|', reading.user)) AS customer_key,
               reading.timestamp, reading.x, reading.y, reading.z, step.distanceFromObject
        FROM accelerometer_trusted AS reading
        JOIN step_trainer_trusted AS step ON step.sensorReadingTime = reading.timestamp
        CROSS JOIN run_settings"""
    broken = tuple(dataclasses.replace(m, sql=time_only) if m.name == "machine_learning_curated" else m for m in models_module.load_models())
    monkeypatch.setattr(run_module, "load_models", lambda: broken)
    report = harness.run()
    ml = {t.name: t for t in report.tables}["machine_learning_curated"]
    assert ml.status == "failed" and not report.ok
    assert [(c.name, c.violations) for c in ml.checks if not c.passed] == [("same_customer_pairs", 2)]
    assert not harness.lake.has_table("machine_learning_curated") or harness.count("machine_learning_curated") == 0
