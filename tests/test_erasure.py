"""SPEC §4 Erasure: `stedi forget` removes a customer from every table, physically, for good.

The lake is scanned byte by byte afterwards — Parquet decoded, Avro manifests decompressed,
metadata JSON and the SQLite catalog as they are — so "gone" means no file holds the customer.
Expected counts are reasoned out from the hand-made feeds below.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from stedi import records
from stedi.cli import app
from stedi.erasure import forget
from stedi.ingest import landing_tables
from stedi.records import ERASURES
from stedi.secret import customer_key
from support.lakes import MODEL_TABLES, LakeHarness, killed_before_commit
from support.leftovers import files_holding
from support.records import customer as customer_record

CONSENT = 1_000
ERIN = "erin.gone@example.org"
ERIN_SERIAL, ERIN_OLD_SERIAL = "SER-ERIN-0001", "SER-ERIN-OLD1"
ERIN_IDENTITY = [ERIN, "Erin Gone", ERIN_SERIAL, ERIN_OLD_SERIAL, "8015550199", "1977-07-07"]


def customer(email, name, serial, consent=CONSENT, updated=10, phone="8015551212", birthday="1990-01-01"):
    return customer_record(email, serial, consent, updated, customerName=name, phone=phone, birthDay=birthday)


def reading(user, t, serial=None):
    record = {"timestamp": t, "x": 0.5, "y": 1.0, "z": -1.0}
    if user is not None:
        record["user"] = user
    if serial is not None:
        record["serialNumber"] = serial
    return record


def step(serial, t):
    return {"sensorReadingTime": t, "serialNumber": serial, "distanceFromObject": 42}


def erin_record(**changes):
    return customer("Erin.Gone@Example.org", "Erin Gone", ERIN_SERIAL, phone="8015550199", birthday="1977-07-07", updated=20, **changes)


def write_feeds(harness):
    """Erin (consenting, two records: an old Step Trainer and a new one), Ann (consenting), Bob (no
    consent); quarantined lines of each, one of them naming Erin only by her serial number."""
    harness.feed(
        "customer/c.json",
        [
            customer(ERIN, "Erin Gone", ERIN_OLD_SERIAL, phone="8015550199", birthday="1977-07-07", updated=10),
            erin_record(),
            customer("ann@x.com", "Ann Keep", "SER-ANN"),
            customer("bob@x.com", "Bob Stay", "SER-BOB", consent=None),
            json.dumps({"customerName": "Erin Gone", "email": "ERIN.GONE@EXAMPLE.ORG", "phone": [1]}),
            "{not json",
        ],
    )
    harness.feed(
        "accelerometer/a.json",
        [
            reading(" ERIN.GONE@example.org ", 2000),
            reading(ERIN, 2001),
            reading(None, 2002, serial=ERIN_SERIAL),
            reading("ann@x.com", 2000),
            reading("ann@x.com", 2001),
            reading("bob@x.com", 2000),
            json.dumps({"user": ERIN, "timestamp": "late", "x": 1, "y": 1, "z": 1}),
            json.dumps({"user": "ann@x.com", "timestamp": "late", "x": 1, "y": 1, "z": 1}),
        ],
    )
    harness.feed(
        "step_trainer/s.json",
        [
            step(ERIN_SERIAL, 2000),
            step(ERIN_SERIAL, 2001),
            step(ERIN_SERIAL, 2002),
            step(ERIN_OLD_SERIAL, 1500),
            step("SER-ANN", 2000),
            step("SER-ANN", 2001),
            step("SER-BOB", 2000),
            json.dumps({"sensorReadingTime": 1, "serialNumber": ERIN_SERIAL}),
            json.dumps({"sensorReadingTime": 1, "serialNumber": "SER-ANN"}),
        ],
    )


TABLES = [*landing_tables(), *MODEL_TABLES]
# Before: Erin 2 records + Ann + Bob; Erin's readings 2000-2002 (the last by serial only) and Ann's
# two, since consent; Erin's three steps on her new serial (the old one has no owner) and Ann's two.
BEFORE = dict(zip(TABLES, [4, 2, 6, 2, 7, 2, 2, 3, 5, 2, 5, 5]))
# Erin's rows: 2 records, 2 quarantined lines naming her, 3 readings (2 by user, 1 by serial), 1
# quarantined reading, 4 steps (both serials), 1 quarantined step, and downstream her 1 customer,
# 1 owned serial, 3 readings, 1 curated customer, 3 steps and 3 training rows.
ERIN_ROWS = dict(zip(TABLES, [2, 1, 3, 1, 4, 1, 1, 1, 3, 1, 3, 3]))


def counts(harness) -> dict[str, int]:
    return {name: harness.count(name) for name in TABLES}


def lake_files(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


# ---- the tests -----------------------------------------------------------------------------------
@pytest.fixture
def lake(harness):
    write_feeds(harness)
    assert harness.run().ok
    assert counts(harness) == BEFORE
    return harness


def test_forget_removes_every_row_and_every_byte(lake):
    root = Path(lake.lake.location)
    key = customer_key(lake.lake.secret, ERIN)
    before = files_holding(root, [*ERIN_IDENTITY, key])
    assert set(before) == {*ERIN_IDENTITY, key}  # the scan sees them before

    with lake.lake.writing():
        report = forget(lake.lake, ["  Erin.GONE@example.org "])
    assert report.rows_removed == {**ERIN_ROWS, "ingested_files": 0}
    assert report.unknown == [] and report.serial_numbers == 2 and report.shared_serial_numbers == 0
    assert counts(lake) == {name: BEFORE[name] - ERIN_ROWS[name] for name in TABLES}
    # Everyone else is untouched.
    assert lake.rows("SELECT email FROM customer_trusted") == [("ann@x.com",)]
    assert sorted(lake.rows("SELECT DISTINCT lower(trim(email)) FROM customer_landing")) == [("ann@x.com",), ("bob@x.com",)]
    assert lake.rows("SELECT raw FROM customer_landing_rejected") == [("{not json",)]
    assert lake.rows("SELECT count(*) FROM accelerometer_landing_rejected WHERE raw LIKE '%ann@x.com%'") == [(1,)]

    assert files_holding(root, [*ERIN_IDENTITY, key, ERIN[:16]]) == {}
    for name in TABLES:  # one snapshot left per table: nothing to travel back to
        assert len(lake.lake.table(name).snapshots()) == 1

    # The audit record says what happened, without saying who was forgotten.
    (record,) = records.read_all(lake.lake.storage, ERASURES)
    assert record["customers_requested"] == 1 and record["customers_found"] == 1
    assert record["rows_removed"]["accelerometer_landing"] == 3 and record["files_deleted"] > 0
    assert record["by"]
    tombstones = (root / "_stedi" / "tombstones.json").read_text()
    assert len(json.loads(tombstones)["emails"]) == 1 and len(json.loads(tombstones)["serial_numbers"]) == 2

    # Erin shared no serial number: the next run keeps every table as the erasure left it, and nothing comes back.
    assert lake.run(with_source=False).ok
    assert counts(lake) == {name: BEFORE[name] - ERIN_ROWS[name] for name in TABLES}
    assert files_holding(root, [ERIN, ERIN_SERIAL, "Erin Gone", key]) == {}

    # Bob never consented: his rows are in landing only, and in serial_number_owners as the
    # unnamed (email-less) owner of his serial number.
    with lake.lake.writing():
        report = forget(lake.lake, ["bob@x.com"])
    removed = {name: n for name, n in report.rows_removed.items() if n}
    assert removed == {"customer_landing": 1, "accelerometer_landing": 1, "step_trainer_landing": 1, "serial_number_owners": 1}
    assert lake.count("machine_learning_curated") == BEFORE["machine_learning_curated"] - ERIN_ROWS["machine_learning_curated"]
    assert files_holding(root, ["bob@x.com", "SER-BOB", "Bob Stay"]) == {}


def test_reingesting_old_raw_files_does_not_resurrect(lake):
    with lake.lake.writing():
        forget(lake.lake, [ERIN])
    after = counts(lake)
    # Touched: same content, new mtime — skipped. Copied to new paths: ingested again, Erin dropped.
    for feed in ("customer/c.json", "accelerometer/a.json", "step_trainer/s.json"):
        original = lake.source / feed
        original.touch()
        copy = lake.source / feed.replace("/", "/again/")
        copy.parent.mkdir()
        shutil.copy(original, copy)
    report = lake.run()
    assert report.ok
    feeds = report.ingest.feeds
    # customer file: 6 lines = Ann, Bob, {not json} + Erin's 2 records and her quarantined line.
    assert (feeds["customer"].files_new, feeds["customer"].lines) == (1, 6)
    assert (feeds["customer"].accepted, feeds["customer"].rejected, feeds["customer"].erased) == (2, 1, 3)
    assert (feeds["accelerometer"].accepted, feeds["accelerometer"].rejected, feeds["accelerometer"].erased) == (3, 1, 4)
    assert (feeds["step_trainer"].accepted, feeds["step_trainer"].rejected, feeds["step_trainer"].erased) == (3, 1, 5)
    # Conservation holds for every file of the ledger, erased lines included.
    assert lake.rows("SELECT count(*) FROM ingested_files WHERE accepted + rejected + coalesce(erased, 0) <> non_blank_lines") == [(0,)]
    # Landing holds Ann's and Bob's copies; the curated zones collapse the exact duplicates.
    landing = landing_tables()
    assert counts(lake) == {name: after[name] * 2 if name in landing else after[name] for name in TABLES}
    assert files_holding(Path(lake.lake.location), [ERIN, ERIN_SERIAL, ERIN_OLD_SERIAL, "Erin Gone"]) == {}


def test_dry_run_changes_nothing_twice_is_harmless_unknown_is_reported(lake):
    root = Path(lake.lake.location)
    files = lake_files(root)
    with lake.lake.writing():
        dry = forget(lake.lake, [ERIN], dry_run=True)
    assert dry.dry_run and dry.rows_removed == {**ERIN_ROWS, "ingested_files": 0}
    assert lake_files(root) == files and counts(lake) == BEFORE

    with lake.lake.writing():
        first = forget(lake.lake, [ERIN, "nobody@nowhere.org"])
    assert first.unknown == ["nobody@nowhere.org"] and first.rows_removed == dry.rows_removed
    snapshot = {name: lake.lake.table(name).current_snapshot().snapshot_id for name in TABLES}
    files = lake_files(root / "warehouse")
    with lake.lake.writing():
        second = forget(lake.lake, [ERIN])
    assert second.unknown == [ERIN]
    assert sum(second.rows_removed.values()) == 0 and second.files_deleted == 0 and second.snapshots_expired == 0
    lake.lake.refresh()
    assert {name: lake.lake.table(name).current_snapshot().snapshot_id for name in TABLES} == snapshot
    assert lake_files(root / "warehouse") == files
    assert len(records.read_all(lake.lake.storage, ERASURES)) == 2


def test_a_quarantined_line_of_a_longer_email_is_not_matched(harness):
    harness.feed("customer/c.json", [customer("bob@x.com", "Bob", "S1")])
    harness.feed(
        "accelerometer/a.json",
        [
            '{"user": "jimbob@x.com", "timestamp": "late"}',
            '{"user": "bob@x.com.au", "timestamp": "late"}',
            '{"user": "Bob@X.com", "timestamp": "late"}',
            "free text bob@x.com. then more",
        ],
    )
    harness.ingest()
    with harness.lake.writing():
        report = forget(harness.lake, ["bob@x.com"])
    assert report.rows_removed["accelerometer_landing_rejected"] == 2
    assert sorted(r[0] for r in harness.rows("SELECT raw FROM accelerometer_landing_rejected")) == [
        '{"user": "bob@x.com.au", "timestamp": "late"}',
        '{"user": "jimbob@x.com", "timestamp": "late"}',
    ]


def test_a_row_whose_unknown_fields_name_the_customer_goes_too(harness, tmp_path):
    """`_extra` keeps fields outside the contract: one naming the customer would keep them in the
    lake, so the row goes, even a reading of someone else."""
    harness.feed("customer/c.json", [customer("bob@x.com", "Bob", "S-BOB"), customer("ann@x.com", "Ann", "S-ANN")])
    harness.feed(
        "accelerometer/a.json",
        [
            {**reading("ann@x.com", 2000), "sharedWith": "Bob@X.com"},
            {**reading("ann@x.com", 2001), "pairedDevice": {"serial": "S-BOB"}},
            {**reading("ann@x.com", 2002), "sharedWith": "carl@x.com"},
            reading("ann@x.com", 2003),
        ],
    )
    assert harness.run().ok
    with harness.lake.writing():
        report = forget(harness.lake, ["bob@x.com"])
    assert report.rows_removed["accelerometer_landing"] == 2
    assert harness.rows("SELECT timestamp FROM accelerometer_landing ORDER BY 1") == [(2002,), (2003,)]
    assert files_holding(Path(harness.lake.location), ["bob@x.com", "S-BOB"]) == {}
    # Re-ingesting the same raw file, under a new path: the tombstone keeps those rows out.
    shutil.copytree(harness.source, tmp_path / "again")
    with harness.lake.writing():
        from stedi.run import run

        assert run(harness.lake, harness.engine, str(tmp_path / "again")).ok
    assert harness.rows("SELECT DISTINCT timestamp FROM accelerometer_landing ORDER BY 1") == [(2002,), (2003,)]


def test_shared_serial_numbers_take_their_readings_along(harness):
    """Two customers got one serial number: its step readings cannot be attributed, so forgetting
    one of them removes them too; the other customer's own records stay."""
    harness.feed("customer/c.json", [customer("a@x.com", "A", "SHARED"), customer("b@x.com", "B", "SHARED")])
    harness.feed("step_trainer/s.json", [step("SHARED", 2000)])
    harness.ingest()
    with harness.lake.writing():
        report = forget(harness.lake, ["a@x.com"])
    assert report.shared_serial_numbers == 1
    assert report.rows_removed["step_trainer_landing"] == 1
    assert harness.rows("SELECT email FROM customer_landing") == [("b@x.com",)]


def test_forget_on_a_generated_lake_with_defects(tmp_path, harness):
    from stedi.generate import generate_feeds
    from stedi.run import run

    generate_feeds(harness.source, 30, seed=11, defects=True)
    assert harness.run().ok
    # A consenting customer who reached the training data and owns their serial number alone.
    secret = harness.lake.secret.decode()
    email, serial, key, ml_rows = harness.rows(
        f"""SELECT o.email, o.serialNumber, m.customer_key, count(*) FROM serial_number_owners AS o
            JOIN machine_learning_curated AS m ON m.customer_key = sha256(concat('{secret}', '|', o.email))
            WHERE o.customers = 1 GROUP BY ALL ORDER BY o.email LIMIT 1"""
    )[0]
    ml_total = harness.count("machine_learning_curated")
    landing_total = harness.count("accelerometer_landing")
    assert set(files_holding(Path(harness.lake.location), [email, serial, key])) == {email, serial, key}

    with harness.lake.writing():
        report = forget(harness.lake, [email.upper()])
    assert report.unknown == []
    assert report.rows_removed["machine_learning_curated"] == ml_rows
    assert harness.count("machine_learning_curated") == ml_total - ml_rows
    assert harness.count("accelerometer_landing") == landing_total - report.rows_removed["accelerometer_landing"]
    assert files_holding(Path(harness.lake.location), [email, serial, key]) == {}

    # All the raw files again, under new paths: the customer stays gone.
    shutil.copytree(harness.source, tmp_path / "again")
    with harness.lake.writing():
        again = run(harness.lake, harness.engine, str(tmp_path / "again"))
    assert again.ok and sum(f.erased for f in again.ingest.feeds.values()) > 0
    assert harness.count("machine_learning_curated") == ml_total - ml_rows  # duplicates collapse
    assert files_holding(Path(harness.lake.location), [email, serial, key]) == {}


# ---- the command -------------------------------------------------------------------------------
runner = CliRunner()


def test_cli_forget(lake, tmp_path):
    lake_arg = ["--lake", lake.lake.location]
    (tmp_path / "emails.txt").write_text(f"# erasure requests\n{ERIN}\n\nnobody@nowhere.org\n")
    dry = runner.invoke(app, ["forget", "--file", str(tmp_path / "emails.txt"), "--dry-run", "--json", *lake_arg])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["rows_removed"]["machine_learning_curated"] == 3
    assert counts(lake) == BEFORE

    result = runner.invoke(app, ["forget", "--file", str(tmp_path / "emails.txt"), *lake_arg])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "Forgot 1 of 2 customer(s): 24 rows removed from 12 table(s)" in text
    assert "not found in the lake (1): nobody@nowhere.org" in text

    for args, message in [
        (["forget", *lake_arg], "give at least one EMAIL"),
        (["forget", "--file", str(tmp_path / "missing.txt"), *lake_arg], "cannot read the email list"),
        (["forget", "a@x.com", "--lake", str(tmp_path / "nolake")], "no lake at"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("error: ") and message in " ".join(result.stderr.split())


# ---- crash-atomic (SPEC §4) ------------------------------------------------------------------------
def test_an_erasure_killed_at_any_commit_is_finished_by_the_next_writing_command(tmp_path):
    """Killed before each of its commits in turn, the erasure is finished by running it again or by
    `stedi run`; then no byte of the lake holds the customer and every count is right."""
    tried = 0
    while True:
        harness = LakeHarness(tmp_path / f"kill-{tried}")
        write_feeds(harness)
        assert harness.run().ok
        root = Path(harness.lake.location)
        key = customer_key(harness.lake.secret, ERIN)
        if not killed_before_commit(str(root), tried, lambda lake: forget(lake, [ERIN])):
            break
        harness.lake.refresh()
        assert runner.invoke(app, ["status", "--lake", str(root), "--json"]).stdout.count('"pending_erasure": "') == 1
        if tried % 2:
            assert harness.run(with_source=False).ok  # a writing command finishes the erasure first
        else:
            with harness.lake.writing():
                forget(harness.lake, [ERIN])
        assert harness.run(with_source=False).ok
        assert counts(harness) == {name: BEFORE[name] - ERIN_ROWS[name] for name in TABLES}, f"killed after {tried} commits"
        assert files_holding(root, [*ERIN_IDENTITY, key, ERIN[:16]]) == {}, f"killed after {tried} commits"
        audits = records.read_all(harness.lake.storage, ERASURES)
        assert all(r["completed"] for r in audits)
        assert sum(r["rows_removed"]["step_trainer_landing"] for r in audits) == ERIN_ROWS["step_trainer_landing"]
        assert not (root / "_stedi" / "pending-erasure.json").exists()
        tried += 1
    assert tried >= 8  # one kill per table the erasure rewrites, at least


def test_an_erasure_that_finds_nobody_expires_and_deletes_nothing(lake):
    root = Path(lake.lake.location)
    snapshots = {name: [s.snapshot_id for s in lake.lake.table(name).snapshots()] for name in TABLES}
    files = lake_files(root / "warehouse")
    with lake.lake.writing():
        report = forget(lake.lake, ["nobody@example.com"])
    assert report.unknown == ["nobody@example.com"] and report.snapshots_expired == 0 and report.files_deleted == 0
    lake.lake.refresh()
    assert {name: [s.snapshot_id for s in lake.lake.table(name).snapshots()] for name in TABLES} == snapshots
    assert lake_files(root / "warehouse") == files


def test_escaped_spellings_and_file_names_that_name_the_customer(harness):
    """A quarantined line may spell the email with JSON or URL escapes, and a feed file may be named
    after the customer: neither keeps them in the lake, and re-ingesting that file adds nothing."""
    harness.feed("customer/c.json", [customer(ERIN, "Erin Gone", ERIN_SERIAL), customer("ann@x.com", "Ann Keep", "SER-ANN")])
    harness.feed(
        "accelerometer/a.json",
        [
            '{"user": "erin.gone\\u0040example.org", "timestamp": "late"}',
            '{"user": "erin.gone%40example.org", "timestamp": "late"}',
            '{"user": "ann@x.com", "timestamp": "late"}',
        ],
    )
    harness.feed(f"accelerometer/export-{ERIN}.json", [reading("ann@x.com", 2000), reading(ERIN, 2001)])
    assert harness.run().ok
    with harness.lake.writing():
        report = forget(harness.lake, [ERIN])
    assert report.rows_removed["accelerometer_landing_rejected"] == 2
    assert harness.rows("SELECT timestamp FROM accelerometer_landing") == [(2000,)]  # Ann's reading stays
    root = Path(harness.lake.location)
    assert files_holding(root, [ERIN, "erin.gone%40", "erin.gone\\u0040"]) == {}
    again = harness.ingest()
    assert again.new_files == 0  # the file is known under its redacted name
    assert harness.count("accelerometer_landing") == 1


# (as written in a feed): Python's strip() and lower() differ from the models' DuckDB lower(trim()).
NORMALIZATION = ["  Ann@X.com ", "tab.tab@test.com\t", "İvan@test.com", "ΟΔΟΣ@test.com", "\u00a0nbsp@x.com\u3000", "STRAßE@x.de"]


@pytest.mark.parametrize("written", NORMALIZATION)
def test_identities_are_normalized_as_the_models_normalize_them(written):
    import duckdb

    from stedi.identities import normalize

    assert normalize(written) == duckdb.execute("SELECT lower(trim(?))", [written]).fetchone()[0]


@pytest.mark.parametrize("secret", [b"k" * 32, b"s" * 64, b"a longer key than a SHA-256 block" * 3, b""], ids=["32 bytes", "64 bytes", "99 bytes", "empty"])
def test_a_tombstone_is_the_same_computed_in_sql(secret):
    """A table's many identity values are looked up among the tombstones in DuckDB, a short text's
    tokens in Python: both must mark a value alike."""
    import duckdb

    from stedi.identities import normalize
    from stedi.tombstones import mark, mark_sql, register_key

    values = [normalize(v) for v in NORMALIZATION] + ["", "a@x.com", "zoë 🏃@x.com", "eca7f9f1-ab69-4a96-a0ad-b3f552c0bff4"]
    conn = duckdb.connect()
    register_key(conn, secret, "key")
    conn.register("identities", pa.table({"value": values}))
    for kind in ("email", "serial"):
        in_sql = dict(conn.execute(f"SELECT value, {mark_sql(kind, 'value', 'key')} FROM identities").fetchall())
        assert in_sql == {v: mark(secret, kind, v) for v in values}


def test_a_tombstone_predicate_reads_its_own_tombstones_when_another_was_made_after_it():
    import duckdb

    from stedi.tombstones import Tombstones

    first, second = Tombstones(b"k1"), Tombstones(b"k2")
    first.add(["a@x.com"], [])
    second.add(["b@x.com"], [])
    conn = duckdb.connect()
    conn.register("identities", pa.table({"value": ["a@x.com", "b@x.com"]}))
    predicates = [t.erased_sql(conn, "email", "value") for t in (first, second)]
    found = [conn.execute(f"SELECT value FROM identities WHERE {p}").fetchall() for p in predicates]
    assert found == [[("a@x.com",)], [("b@x.com",)]]


def test_a_customer_whose_email_python_and_duckdb_would_normalize_apart_is_forgotten(harness):
    """Trailing tabs and letters such as İ and Σ: the pseudonym, the serial numbers and the rows
    are all found the way the models found them."""
    emails = ["tab.tab@test.com\t", "İvan@test.com", "ΟΔΟΣ@test.com"]
    harness.feed("customer/c.json", [customer(email, f"Name {i}", f"S-{i}") for i, email in enumerate(emails)])
    harness.feed("accelerometer/a.json", [reading(email, 2000) for email in emails])
    harness.feed("step_trainer/s.json", [step(f"S-{i}", 2000) for i in range(len(emails))])
    assert harness.run().ok
    assert harness.count("machine_learning_curated") == 3
    with harness.lake.writing():
        report = forget(harness.lake, emails)
    assert report.unknown == []
    assert {name: harness.count(name) for name in TABLES if harness.count(name)} == {}


def test_an_erasure_killed_between_its_intent_and_its_tombstones_is_finished_by_a_run(lake):
    """The pending record is written first and names the tombstones, so no instant of an erasure
    leaves a customer behind that the next writer would not remove."""
    from stedi import erasure

    root = Path(lake.lake.location)
    assert killed_before_commit(str(root), 0, lambda lake_: forget(lake_, [ERIN]), at=(erasure, "_tombstone"))
    lake.lake.refresh()
    assert lake.run(with_source=False).ok
    assert counts(lake) == {name: BEFORE[name] - ERIN_ROWS[name] for name in TABLES}
    assert files_holding(root, [*ERIN_IDENTITY, ERIN[:16]]) == {}
    with lake.lake.writing():
        again = forget(lake.lake, [ERIN])
    assert again.unknown == [ERIN]  # finished by the run already: nothing of hers left to find


def test_a_resumed_erasure_reports_what_the_whole_erasure_did(lake):
    """Killed after some of its commits, the erasure finished by running it again reports every
    row and snapshot, as the one that was never interrupted would."""
    root = Path(lake.lake.location)
    assert killed_before_commit(str(root), 6, lambda lake_: forget(lake_, [ERIN]))
    lake.lake.refresh()
    with lake.lake.writing():
        report = forget(lake.lake, [ERIN])
    assert report.unknown == [] and report.rows_removed == {**ERIN_ROWS, "ingested_files": 0}
    (record,) = records.read_all(lake.lake.storage, ERASURES)
    assert record["completed"] and record["rows_removed"] == report.rows_removed
    assert record["snapshots_expired"] == sum(len(v) for v in record["expired_snapshots"].values()) > 0


def test_no_export_while_an_erasure_is_unfinished(lake, tmp_path):
    from stedi.errors import ExportError
    from stedi.export import export

    assert killed_before_commit(lake.lake.location, 0, lambda lake_: forget(lake_, [ERIN]))
    lake.lake.refresh()
    with pytest.raises(ExportError, match="is unfinished"):
        export(lake.lake, str(tmp_path / "out"))
    assert runner.invoke(app, ["query", "SELECT 1 AS n", "--as-of", "²", "--lake", lake.lake.location]).exit_code == 2


def test_the_people_an_erasure_holds_match_the_rows_their_tombstones_match(lake):
    """A fresh erasure finds the customers by their values, one finished after an interruption by
    their tombstones: in every table, the ledger included, both must find the same free text and
    file names and take the same rows (Erin's, as ERIN_ROWS counts)."""
    import duckdb

    from stedi.identities import KnownPeople, column_names, parquet_source, touched_sql
    from stedi.tombstones import Tombstones

    serials = {ERIN_SERIAL.lower(), ERIN_OLD_SERIAL.lower()}
    tombstones = Tombstones(lake.lake.secret)
    tombstones.add([ERIN], serials)
    people = KnownPeople(frozenset([ERIN]), frozenset(serials), tombstones)
    keys = {customer_key(lake.lake.secret, ERIN)}
    matched = {}
    for name in lake.lake.table_names():
        source = parquet_source(lake.lake.state(name).files)
        conn = duckdb.connect()
        columns = column_names(conn, source)
        for finder in (people, tombstones):
            found = finder.find(conn, source, columns, keys)
            found.register(conn)
            rows = conn.execute(f"SELECT * FROM {source} WHERE {touched_sql(columns)} ORDER BY ALL").fetchall()
            matched.setdefault(name, []).append((rows, found.texts, found.paths))
        conn.close()
    assert {name: len(by_values[0]) for name, (by_values, _) in matched.items() if name in TABLES} == ERIN_ROWS
    assert all(by_values == by_tombstones for by_values, by_tombstones in matched.values())
