"""The generated feeds look like real exports, and with defects carry every kind of damage, by reading them back."""

from __future__ import annotations

import gzip
import json
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from stedi.errors import UserError
from stedi.generate import GeneratedFeeds, generate_feeds

FEEDS = ("customer", "accelerometer", "step_trainer")
CUSTOMERS = 120
CUSTOMERS_PER_FILE = 40  # three regular files per feed
CUSTOMER_KEYS = {
    "customerName", "email", "phone", "birthDay", "serialNumber", "registrationDate", "lastUpdateDate",
    "shareWithResearchAsOfDate", "shareWithPublicAsOfDate", "shareWithFriendsAsOfDate",
}  # fmt: skip
OPTIONAL_CUSTOMER_KEYS = {"shareWithResearchAsOfDate", "shareWithPublicAsOfDate", "shareWithFriendsAsOfDate"}
READING_KEYS = {"accelerometer": {"user", "timestamp", "x", "y", "z"}, "step_trainer": {"sensorReadingTime", "serialNumber", "distanceFromObject"}}
UNPARSEABLE = object()


def feed_files(root: Path, feed: str) -> list[Path]:
    return sorted((root / feed / "landing").iterdir())


def file_text(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8").removeprefix("\ufeff")


def file_lines(path: Path) -> list[str]:
    """Lines without their CRLF or LF end; blank lines kept."""
    text = file_text(path)
    return [line.removesuffix("\r") for line in text.split("\n")[:-1]] if text else []


def parsed(line: str) -> object:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return UNPARSEABLE


@dataclass(frozen=True)
class Feeds:
    result: GeneratedFeeds
    lines: dict[str, list[tuple[Path, str]]]  # non-blank lines with their file, in file order

    def values(self, feed: str) -> list[object]:
        return [parsed(line) for _, line in self.lines[feed]]

    def objects(self, feed: str) -> list[dict]:
        return [value for value in self.values(feed) if isinstance(value, dict)]


def generate(root: Path, defects: bool, seed: int = 3) -> Feeds:
    result = generate_feeds(root, CUSTOMERS, seed=seed, defects=defects, customers_per_file=CUSTOMERS_PER_FILE)
    lines = {feed: [(path, line) for path in feed_files(root, feed) for line in file_lines(path) if line] for feed in FEEDS}
    return Feeds(result, lines)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Feeds:
    return generate(tmp_path_factory.mktemp("clean"), defects=False)


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Feeds:
    return generate(tmp_path_factory.mktemp("damaged"), defects=True)


def all_bytes(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


# --- determinism and layout ------------------------------------------------------------------


@pytest.mark.parametrize("defects", [False, True])
def test_a_seed_reproduces_identical_bytes_and_another_seed_differs(tmp_path: Path, defects: bool) -> None:
    for name, seed in (("first", 11), ("again", 11), ("other", 12)):
        generate_feeds(tmp_path / name, 30, seed=seed, defects=defects, customers_per_file=10)
    first = all_bytes(tmp_path / "first")
    assert first == all_bytes(tmp_path / "again")
    other = all_bytes(tmp_path / "other")
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first if first[name])


def test_clean_layout_has_one_file_per_chunk_and_counts_match(clean: Feeds) -> None:
    root = clean.result.root
    for feed in FEEDS:
        assert [path.name for path in feed_files(root, feed)] == [f"{feed}-{index:05d}.json" for index in range(3)]
    assert clean.result.files == dict.fromkeys(FEEDS, 3)
    assert clean.result.records == {feed: len(clean.lines[feed]) for feed in FEEDS}
    assert clean.result.records["customer"] == CUSTOMERS
    assert clean.result.bytes == sum(len(data) for data in all_bytes(root).values())


def test_defect_layout_adds_gzip_redelivered_update_and_empty_files(damaged: Feeds) -> None:
    root = damaged.result.root
    assert [path.name for path in feed_files(root, "accelerometer")] == [
        "accelerometer-00000-redelivered.json", "accelerometer-00000.json", "accelerometer-00001.json",
        "accelerometer-00002.json.gz", "accelerometer-00003.json",
    ]  # fmt: skip
    assert [path.name for path in feed_files(root, "step_trainer")][-2:] == ["step_trainer-00002.json.gz", "step_trainer-00003.json"]
    assert [path.name for path in feed_files(root, "customer")][-3:] == ["customer-00002.json.gz", "customer-00003.json", "customer-00004.json"]
    assert damaged.result.files == {feed: len(feed_files(root, feed)) for feed in FEEDS}
    # Blank lines are not records; every other line is, broken or not.
    assert damaged.result.records == {feed: len(damaged.lines[feed]) for feed in FEEDS}
    assert damaged.result.bytes == sum(len(data) for data in all_bytes(root).values())


@pytest.mark.parametrize("occupied", ["customer", "accelerometer", "step_trainer"])
def test_refuses_a_target_whose_feed_folder_holds_files(tmp_path: Path, occupied: str) -> None:
    (tmp_path / occupied / "landing").mkdir(parents=True)
    (tmp_path / occupied / "landing" / "old.json").write_text("{}\n")
    with pytest.raises(UserError, match="already hold files"):
        generate_feeds(tmp_path, 5)


def test_accepts_an_existing_target_with_empty_feed_folders(tmp_path: Path) -> None:
    for feed in FEEDS:
        (tmp_path / feed / "landing").mkdir(parents=True)
    assert generate_feeds(tmp_path, 5).records["customer"] == 5


@pytest.mark.parametrize(("customers", "customers_per_file"), [(0, 10), (10, 0)])
def test_rejects_empty_sizes(tmp_path: Path, customers: int, customers_per_file: int) -> None:
    with pytest.raises(ValueError):
        generate_feeds(tmp_path, customers, customers_per_file=customers_per_file)


# --- clean data looks like real exports --------------------------------------------------------


def test_clean_lines_are_objects_with_canonical_keys_and_no_nulls(clean: Feeds) -> None:
    for feed in FEEDS:
        values = clean.values(feed)
        assert all(isinstance(value, dict) for value in values)
        assert all(None not in value.values() for value in values)
    for customer in clean.objects("customer"):
        assert CUSTOMER_KEYS - OPTIONAL_CUSTOMER_KEYS <= customer.keys() <= CUSTOMER_KEYS
    for feed, keys in READING_KEYS.items():
        assert all(reading.keys() == keys for reading in clean.objects(feed))


def test_clean_values_have_the_documented_types(clean: Feeds) -> None:
    customers = clean.objects("customer")
    assert len({customer["email"] for customer in customers}) == CUSTOMERS
    assert len({customer["serialNumber"] for customer in customers}) == CUSTOMERS
    for customer in customers:
        assert customer["phone"].isdigit() and len(customer["phone"]) == 10
        assert len(customer["birthDay"]) == 10 and customer["birthDay"][4] == "-"
        assert all(isinstance(customer[key], int) for key in customer.keys() & {"registrationDate", "lastUpdateDate", *OPTIONAL_CUSTOMER_KEYS})
    assert all(isinstance(r["timestamp"], int) and all(isinstance(r[axis], float) for axis in "xyz") for r in clean.objects("accelerometer"))
    assert all(isinstance(r["sensorReadingTime"], int) and isinstance(r["distanceFromObject"], int) for r in clean.objects("step_trainer"))


def test_optional_consents_are_present_for_some_and_missing_for_others(clean: Feeds) -> None:
    customers = clean.objects("customer")
    for key in OPTIONAL_CUSTOMER_KEYS:
        present = sum(key in customer for customer in customers)
        assert 0 < present < CUSTOMERS, key
    research = sum("shareWithResearchAsOfDate" in customer for customer in customers)
    assert 0.35 < research / CUSTOMERS < 0.65


def test_each_customer_has_80_to_90_phone_and_exactly_30_step_readings(clean: Feeds) -> None:
    customers = clean.objects("customer")
    phone_readings = Counter(reading["user"] for reading in clean.objects("accelerometer"))
    step_readings = Counter(reading["serialNumber"] for reading in clean.objects("step_trainer"))
    assert {80 <= phone_readings[customer["email"]] <= 90 for customer in customers} == {True}
    assert {step_readings[customer["serialNumber"]] for customer in customers} == {30}


def test_dates_are_ordered_and_readings_follow_registration(clean: Feeds) -> None:
    first_reading: dict[str, int] = {}
    for reading in clean.objects("accelerometer"):
        first_reading[reading["user"]] = min(reading["timestamp"], first_reading.get(reading["user"], reading["timestamp"]))
    for customer in clean.objects("customer"):
        consents = [customer[key] for key in OPTIONAL_CUSTOMER_KEYS if key in customer]
        assert customer["registrationDate"] <= min(consents, default=customer["lastUpdateDate"])
        assert max(consents, default=0) <= customer["lastUpdateDate"]
        assert customer["registrationDate"] < first_reading[customer["email"]]


def test_some_customers_consent_to_research_in_the_middle_of_their_readings(clean: Feeds) -> None:
    phone_times: dict[str, list[int]] = defaultdict(list)
    for reading in clean.objects("accelerometer"):
        phone_times[reading["user"]].append(reading["timestamp"])
    step_times: dict[str, list[int]] = defaultdict(list)
    for reading in clean.objects("step_trainer"):
        step_times[reading["serialNumber"]].append(reading["sensorReadingTime"])

    consenting = [customer for customer in clean.objects("customer") if "shareWithResearchAsOfDate" in customer]
    later = [customer for customer in consenting if customer["shareWithResearchAsOfDate"] > customer["registrationDate"]]
    assert 0.15 < len(later) / len(consenting) < 0.45
    for customer in later:
        consent = customer["shareWithResearchAsOfDate"]
        for times in (phone_times[customer["email"]], step_times[customer["serialNumber"]]):
            assert min(times) < consent < max(times)
    at_registration = [customer for customer in consenting if customer not in later]
    assert all(customer["shareWithResearchAsOfDate"] == customer["registrationDate"] for customer in at_registration)


def test_phone_writes_bursts_of_two_or_three_readings_in_one_millisecond(clean: Feeds) -> None:
    per_millisecond = Counter((reading["user"], reading["timestamp"]) for reading in clean.objects("accelerometer"))
    sizes = Counter(per_millisecond.values())
    assert set(sizes) == {1, 2, 3}
    assert sizes[2] + sizes[3] > CUSTOMERS


def test_different_customers_share_timestamps(clean: Feeds) -> None:
    users_at: dict[int, set[str]] = defaultdict(set)
    for reading in clean.objects("accelerometer"):
        users_at[reading["timestamp"]].add(reading["user"])
    shared = [time for time, users in users_at.items() if len(users) > 1]
    assert len(shared) > CUSTOMERS


def test_step_readings_happen_at_the_same_customers_phone_timestamps(clean: Feeds) -> None:
    email_of = {customer["serialNumber"]: customer["email"] for customer in clean.objects("customer")}
    phone_times: dict[str, set[int]] = defaultdict(set)
    for reading in clean.objects("accelerometer"):
        phone_times[reading["user"]].add(reading["timestamp"])
    steps = clean.objects("step_trainer")
    assert all(step["sensorReadingTime"] in phone_times[email_of[step["serialNumber"]]] for step in steps)
    # Distinct moments: one Step Trainer reading per phone burst at most.
    assert len({(step["serialNumber"], step["sensorReadingTime"]) for step in steps}) == len(steps)


# --- defects ---------------------------------------------------------------------------------


def has_key(feeds: Feeds, feed: str, key: str) -> bool:
    return any(key in value for value in feeds.objects(feed))


def has_value(feeds: Feeds, feed: str, key: str, kind: type) -> bool:
    return any(isinstance(value.get(key), kind) and not isinstance(value.get(key), bool) for value in feeds.objects(feed))


def lacks_keys(feeds: Feeds, feed: str, *keys: str) -> bool:
    return any(not any(key in value for key in keys) for value in feeds.objects(feed))


def files_where(feeds: Feeds, feed: str, test: Callable[[Path], bool]) -> list[Path]:
    return [path for path in feed_files(feeds.result.root, feed) if test(path)]


def repeated_lines(feeds: Feeds, feed: str) -> bool:
    regular = [line for path, line in feeds.lines[feed] if "redelivered" not in path.name]
    return any(count > 1 for count in Counter(regular).values())


def ancient_birthdays(feeds: Feeds) -> set[str]:
    return {customer.get("birthDay") for customer in feeds.objects("customer")} & {"1399-01-01", "983-01-01"}


def shared_serials(feeds: Feeds) -> list[set[str]]:
    owners: dict[str, set[str]] = defaultdict(set)
    for customer in feeds.objects("customer"):
        if "serialNumber" in customer and "email" in customer:
            owners[customer["serialNumber"]].add(customer["email"])
    return [emails for emails in owners.values() if len(emails) > 1]


def consent_changes(feeds: Feeds) -> Counter[str]:
    """Per email, 'revoked' or 'granted' where a later record (later file, later update) changed research consent."""
    history: dict[str, list[tuple[str, dict]]] = defaultdict(list)
    for path, line in feeds.lines["customer"]:
        value = parsed(line)
        if isinstance(value, dict) and isinstance(value.get("email"), str):
            history[value["email"]].append((path.name, value))
    changes: Counter[str] = Counter()
    for records in history.values():
        for (earlier_file, earlier), (later_file, later) in zip(records, records[1:]):
            assert earlier_file < later_file and earlier["lastUpdateDate"] < later["lastUpdateDate"]
            was, now = "shareWithResearchAsOfDate" in earlier, "shareWithResearchAsOfDate" in later
            if was != now:
                changes["revoked" if was else "granted"] += 1
    return changes


DEFECTS: dict[str, Callable[[Feeds], object]] = {
    "unparseable lines in every feed": lambda f: all(UNPARSEABLE in f.values(feed) for feed in FEEDS),
    "truncated JSON": lambda f: any(line.startswith('{"user"') and parsed(line) is UNPARSEABLE for _, line in f.lines["accelerometer"]),
    "a JSON array line": lambda f: all(any(isinstance(value, list) for value in f.values(feed)) for feed in FEEDS),
    "a bare number line": lambda f: all(any(isinstance(value, int) for value in f.values(feed)) for feed in FEEDS),
    "x as text": lambda f: has_value(f, "accelerometer", "x", str),
    "timestamp as text": lambda f: has_value(f, "accelerometer", "timestamp", str),
    "email as a number": lambda f: has_value(f, "accelerometer", "user", int),
    "distanceFromObject as text": lambda f: has_value(f, "step_trainer", "distanceFromObject", str),
    "registrationDate as text": lambda f: has_value(f, "customer", "registrationDate", str),
    "phone as a number": lambda f: has_value(f, "customer", "phone", int),
    "customer without email": lambda f: lacks_keys(f, "customer", "email"),
    "reading without user or serial": lambda f: lacks_keys(f, "accelerometer", "user", "serialNumber"),
    "reading without timestamp": lambda f: lacks_keys(f, "accelerometer", "timestamp", "timeStamp"),
    "reading without x": lambda f: lacks_keys(f, "accelerometer", "x"),
    "step reading without time": lambda f: lacks_keys(f, "step_trainer", "sensorReadingTime", "sensorreadingtime"),
    "timeStamp key": lambda f: has_key(f, "accelerometer", "timeStamp"),
    "lower-case step keys": lambda f: has_key(f, "step_trainer", "serialnumber") and has_key(f, "step_trainer", "sensorreadingtime"),
    "lower-case customer keys": lambda f: has_key(f, "customer", "serialnumber"),
    "unknown extra field": lambda f: has_key(f, "accelerometer", "appVersion") and has_key(f, "customer", "appVersion"),
    "serialNumber instead of user": lambda f: any("serialNumber" in r and "user" not in r for r in f.objects("accelerometer")),
    "ancient birthdays": lambda f: ancient_birthdays(f) == {"1399-01-01", "983-01-01"},
    "exact duplicate readings": lambda f: repeated_lines(f, "accelerometer") and repeated_lines(f, "step_trainer"),
    "serial shared by 2-3 customers": lambda f: shared_serials(f) and all(2 <= len(group) <= 3 for group in shared_serials(f)),
    "revoked and granted research consent": lambda f: consent_changes(f).keys() == {"revoked", "granted"},
    "gzip file per feed": lambda f: (
        all(any(parsed(line) is not UNPARSEABLE for line in file_lines(path)) for feed in FEEDS for path in files_where(f, feed, lambda p: p.suffix == ".gz"))
        and all(files_where(f, feed, lambda p: p.suffix == ".gz") for feed in FEEDS)
    ),
    "CRLF file per feed": lambda f: all(files_where(f, feed, lambda p: "\r\n" in file_text(p)) for feed in FEEDS),
    "BOM file per feed": lambda f: all(files_where(f, feed, lambda p: p.suffix == ".json" and p.read_bytes().startswith(b"\xef\xbb\xbf")) for feed in FEEDS),
    "empty file per feed": lambda f: all(files_where(f, feed, lambda p: p.stat().st_size == 0) for feed in FEEDS),
    "blank lines per feed": lambda f: all(any(line == "" for path in feed_files(f.result.root, feed) for line in file_lines(path)) for feed in FEEDS),
    "redelivered accelerometer file": lambda f: (
        (f.result.root / "accelerometer/landing/accelerometer-00000-redelivered.json").read_bytes()
        == (f.result.root / "accelerometer/landing/accelerometer-00000.json").read_bytes()
    ),
}


@pytest.mark.parametrize("kind", DEFECTS)
def test_defect_mode_carries(damaged: Feeds, kind: str) -> None:
    assert DEFECTS[kind](damaged)


@pytest.mark.parametrize("kind", ["unparseable lines in every feed", "lower-case step keys", "revoked and granted research consent"])
def test_clean_mode_carries_none_of(clean: Feeds, kind: str) -> None:
    assert not DEFECTS[kind](clean)


def test_defects_stay_a_small_share_of_lines(damaged: Feeds) -> None:
    for feed in ("accelerometer", "step_trainer"):
        values = damaged.values(feed)
        broken = sum(not isinstance(value, dict) or value.keys() != READING_KEYS[feed] for value in values)
        assert broken / len(values) < 0.05, feed


def test_the_export_shape_holds_the_same_records_in_one_spaced_file_per_feed(tmp_path: Path) -> None:
    """SPEC §10's second shape: the same customers and readings as the many-file shape for the same
    seed, delivered as one file per feed, its customer records spaced as the bulk export writes them."""
    shapes = {shape: generate_feeds(tmp_path / shape, 1200, seed=5, shape=shape) for shape in ("files", "export")}
    assert shapes["files"].files == dict.fromkeys(FEEDS, 2) and shapes["export"].files == dict.fromkeys(FEEDS, 1)
    assert shapes["export"].records == shapes["files"].records
    for feed in FEEDS:
        lines = {shape: [line for path in feed_files(tmp_path / shape, feed) for line in file_lines(path)] for shape in shapes}
        as_sorted_objects = {shape: sorted(json.dumps(json.loads(line), sort_keys=True) for line in lines[shape]) for shape in shapes}
        assert as_sorted_objects["export"] == as_sorted_objects["files"]
        spaced = feed == "customer"
        assert all(('", "' in line and '": ' in line) == spaced for line in lines["export"])
        assert not any('": ' in line for line in lines["files"])


def test_an_unknown_shape_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown shape 'one-file': choose one of files, export"):
        generate_feeds(tmp_path, 5, shape="one-file")
