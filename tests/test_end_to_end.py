"""The whole lakehouse on generated feeds with defects: invariants that must hold for any data."""

from __future__ import annotations

import hashlib

import pytest

from stedi.generate import generate_feeds
from support.lakes import LakeHarness


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    harness = LakeHarness(tmp_path_factory.mktemp("e2e"))
    generate_feeds(harness.source, customers=300, seed=11, defects=True, customers_per_file=100)
    report = harness.run()
    assert report.ok, [(t.name, t.checks) for t in report.tables if t.status != "built"]
    harness.report = report
    return harness


def consenting_customers(lake) -> dict[str, int]:
    """Recomputed from landing in Python: the latest record per customer, if it consents."""
    latest: dict[str, tuple] = {}
    for email, updated, ingested, file, line, consent in lake.rows(
        "SELECT email, lastUpdateDate, _ingested_at, _source_file, _source_line, shareWithResearchAsOfDate FROM customer_landing"
    ):
        key = email.strip().lower()
        order = (updated if updated is not None else -1, ingested, file, line)
        if key not in latest or order > latest[key][0]:
            latest[key] = (order, consent)
    return {email: consent for email, (_, consent) in latest.items() if consent is not None}


def test_conservation_for_every_file(lake):
    rows = lake.rows("SELECT path, non_blank_lines, accepted, rejected FROM ingested_files")
    assert len(rows) == sum(len(list((lake.source / feed / "landing").iterdir())) for feed in ("customer", "accelerometer", "step_trainer"))
    assert all(non_blank == accepted + rejected for _, non_blank, accepted, rejected in rows)
    assert sum(r[3] for r in rows) > 0  # defects were quarantined


def test_every_trusted_and_curated_row_belongs_to_a_consenting_customer_in_scope(lake):
    consent = consenting_customers(lake)
    assert sorted(consent) == sorted(r[0] for r in lake.rows("SELECT email FROM customer_trusted"))
    for table, email, time in [("accelerometer_trusted", "user", "timestamp"), ("step_trainer_trusted", "email", "sensorReadingTime")]:
        rows = lake.rows(f"SELECT {email}, {time} FROM {table}")
        assert rows, table
        assert all(who in consent and at >= consent[who] for who, at in rows), table
    assert {r[0] for r in lake.rows("SELECT email FROM customers_curated")} <= set(consent)


def test_machine_learning_rows_never_exceed_the_customers_own_pairs(lake):
    secret = lake.lake.secret.decode()
    key_of = {email: hashlib.sha256(f"{secret}|{email}".encode()).hexdigest() for (email,) in lake.rows("SELECT email FROM customer_trusted")}
    phone = dict(lake.rows("SELECT user, count(*) FROM accelerometer_trusted GROUP BY ALL"))
    steps = dict(lake.rows("SELECT email, count(*) FROM step_trainer_trusted GROUP BY ALL"))
    produced = dict(lake.rows("SELECT customer_key, count(*) FROM machine_learning_curated GROUP BY ALL"))
    assert produced
    for email, key in key_of.items():
        assert produced.get(key, 0) <= phone.get(email, 0) * steps.get(email, 0), email
    assert set(produced) <= set(key_of.values())


def test_the_funnel_accounts_for_every_landing_row(lake):
    funnel = lake.report.funnel
    for feed, kept in [("accelerometer", "accelerometer_trusted"), ("step_trainer", "step_trainer_trusted")]:
        steps = funnel[feed]
        dropped = steps["ambiguous_serial"] + steps["no_consent"] + steps["out_of_scope"] + steps["duplicates"]
        assert steps["landing_rows"] == dropped + steps[kept], feed
    assert funnel["customer"]["revoked"] > 0
    assert funnel["step_trainer"]["ambiguous_serial"] > 0


def test_rerunning_over_the_same_source_changes_nothing(lake):
    before = {t: lake.count(t) for t in ("accelerometer_landing", "customer_landing_rejected", "machine_learning_curated")}
    again = lake.run()
    assert not again.changed
    assert {t: lake.count(t) for t in before} == before


def test_both_shapes_of_the_same_data_give_the_same_zones(tmp_path):
    """SPEC §10: many small files or one export file per feed, the zones are the same."""
    funnels = {}
    for shape in ("files", "export"):
        harness = LakeHarness(tmp_path / shape)
        generate_feeds(harness.source, customers=1200, seed=4, shape=shape)
        report = harness.run()
        assert report.ok
        funnels[shape] = report.funnel
    assert funnels["export"] == funnels["files"]
    assert funnels["files"]["machine_learning"]["machine_learning_curated"] > 0
