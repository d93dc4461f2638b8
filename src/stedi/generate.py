"""Realistic STEDI landing feeds (customer, accelerometer, step_trainer) for demos, tests and benchmarks.

The feeds mimic real exports: customers with and without research consent (some consenting in the
middle of their readings), phone readings in same-millisecond bursts, devices sharing timestamps,
and Step Trainer readings taken at the customer's own phone timestamps. With ``defects=True`` they
also carry the damage real feeds carry, in small deterministic proportions.

Two shapes of file (SPEC §10): `files`, many files of a thousand customers each, compact JSON; and
`export`, one large file per feed as a bulk export delivers them, its customer records written
with a space after each `:` and `,`.

Lines are assembled column-wise with NumPy and Arrow string kernels, one batch of customers at a
time, on a few threads: a handful of vectorised passes per batch instead of Python work per reading.
"""

from __future__ import annotations

import gzip
import math
import os
import shutil
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from types import TracebackType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from stedi.errors import UserError

_FEEDS = ("customer", "accelerometer", "step_trainer")
SHAPES = ("files", "export")

# Separate random streams: defect draws never shift the base data's draws, and every batch of
# readings has its own stream, so batches can be rendered in any order on any thread.
_POPULATION_STREAM, _CUSTOMER_DEFECT_STREAM, _READING_STREAM, _READING_DEFECT_STREAM = range(4)

# Readings are generated and rendered this many customers at a time, whatever the file size,
# which bounds memory and keeps the output independent of how the work is cut.
_BATCH_CUSTOMERS = 1000
_WORKERS = min(4, os.cpu_count() or 1)

_DAY_MS = 86_400_000
_WINDOW_START_MS = 1_640_995_200_000  # 2022-01-01T00:00:00Z
_WINDOW_MS = 730 * _DAY_MS
_CUSTOMERS_PER_SESSION_SLOT = 8  # sessions start on a shared grid: devices collide on timestamps
_BIRTHDAYS = (np.datetime64("1930-01-01"), np.datetime64("2006-01-01"))

_ACCELEROMETER_READINGS = (80, 90)  # inclusive range per customer
_STEP_READINGS = 30
_BURST_SIZES = np.array([1, 2, 3])  # phone readings written with one and the same millisecond
_BURST_SIZE_WEIGHTS = (0.5, 0.3, 0.2)
# Bursts are a whole number of grid steps apart, so devices that start together keep colliding.
_BURST_GAP_GRID_MS = 100
_BURST_GAP_STEPS = (1, 10)  # inclusive

_RESEARCH_CONSENT = 0.5
_RESEARCH_CONSENT_LATER = 0.3  # of consenting customers: consented in the middle of their readings
_PUBLIC_CONSENT = 0.35
_FRIENDS_CONSENT = 0.3
_PROFILE_EDITED = 0.2  # lastUpdateDate moved on after the last consent

_FIRST_NAMES = (
    "Santosh", "Sarah", "Jo", "Frank", "Bobby", "Lyn", "Liz", "Danny", "Spencer", "Ben", "Senthil",
    "Trevor", "Gail", "Jeff", "Chris", "Eric", "Steph", "Gus", "Travis", "Kathy", "Mohammed", "Neil",
    "Raul", "Aisha", "Priya", "Wei", "Mateo", "Olga", "Kenji", "Amara",
)  # fmt: skip
_LAST_NAMES = (
    "Clayton", "Lincoln", "Jones", "Doshi", "Hansen", "Anandh", "Mitra", "Abram", "Staples", "Davis",
    "Wu", "Habschied", "Olsen", "Lee", "Ahmed", "Stark", "Jackson", "Khan", "Garcia", "Ivanova",
    "Tanaka", "Smith", "Nguyen", "Kim", "Patel", "Mueller", "Silva", "Rossi", "Okafor", "Larsen",
)  # fmt: skip

# Defect mode. Rates are fractions of a feed's lines (at least one line each, so that even a tiny
# feed shows every kind); each damaged line carries exactly one kind of damage.
_BROKEN_LINE_RATE = 0.001  # for each of: truncated, garbage, JSON array, bare number
_BLANK_LINE_RATE = 0.002
_EXTRA_FIELD_RATE = 0.003
_CONSENT_CHANGE_RATE = 0.01  # later customer records that revoke, and that grant, research consent
_CUSTOMERS_PER_SHARED_SERIAL = 1000  # one group of 2-3 customers per this many shares a serial
_TRUNCATE_AT = 40  # characters: every generated line is longer, so the cut always breaks the JSON
_GARBAGE_LINES = (
    "<html><body><h1>504 Gateway Time-out</h1></body></html>",
    "ERROR upload interrupted, retrying",
    "undefined",
    "{{{{",
)


@dataclass(frozen=True)
class GeneratedFeeds:
    """What `generate_feeds` wrote: the source root, each feed's files and lines, the bytes."""

    root: Path
    files: dict[str, int]  # feed name -> number of files written
    records: dict[str, int]  # feed name -> number of JSON lines written (all lines incl. defect lines)
    bytes: int  # total bytes written


@dataclass(frozen=True)
class _FeedDefects:
    """How one feed's lines go wrong in defect mode."""

    wrong_values: tuple[tuple[float, str, str | None], ...]  # (rate, key, JSON text; None drops the key)
    renamed_keys: tuple[float, Mapping[str, str]]
    extra_field: tuple[str, str]  # key, JSON value
    duplicate_rate: float  # exact repeated lines


_CUSTOMER_KEYS = (
    "customerName", "email", "phone", "birthDay", "serialNumber", "registrationDate",
    "lastUpdateDate", "shareWithResearchAsOfDate", "shareWithPublicAsOfDate", "shareWithFriendsAsOfDate",
)  # fmt: skip
_STEP_TRAINER_KEYS = ("sensorReadingTime", "serialNumber", "distanceFromObject")

_CUSTOMER_DEFECTS = _FeedDefects(
    wrong_values=(
        (0.002, "registrationDate", '"yesterday"'),
        (0.002, "email", None),
        (0.002, "birthDay", '"1399-01-01"'),
        (0.002, "birthDay", '"983-01-01"'),
    ),
    renamed_keys=(0.002, {key: key.lower() for key in _CUSTOMER_KEYS}),
    extra_field=("appVersion", '"2.1"'),
    duplicate_rate=0.0,
)
_PHONE_AS_NUMBER_RATE = 0.005

_ACCELEROMETER_DEFECTS = _FeedDefects(
    wrong_values=(
        (0.001, "x", '"abc"'),
        (0.001, "timestamp", '"yesterday"'),
        (0.001, "user", "4815162342"),
        (0.001, "user", None),
        (0.001, "timestamp", None),
        (0.001, "x", None),
    ),
    renamed_keys=(0.002, {"timestamp": "timeStamp"}),
    extra_field=("appVersion", '"2.1"'),
    duplicate_rate=0.003,
)
_SERIAL_INSTEAD_OF_USER_RATE = 0.003  # older app versions identify the device, not the user

_STEP_TRAINER_DEFECTS = _FeedDefects(
    wrong_values=(
        (0.001, "distanceFromObject", '"far"'),
        (0.001, "sensorReadingTime", '"yesterday"'),
        (0.001, "serialNumber", None),
        (0.001, "sensorReadingTime", None),
        (0.001, "distanceFromObject", None),
    ),
    renamed_keys=(0.002, {key: key.lower() for key in _STEP_TRAINER_KEYS}),
    extra_field=("firmwareVersion", '"1.4.2"'),
    duplicate_rate=0.003,
)


def generate_feeds(
    out: Path,
    customers: int,
    seed: int = 0,
    defects: bool = False,
    customers_per_file: int = 1000,
    shape: str = "files",
) -> GeneratedFeeds:
    """Write the three landing feeds under ``out`` and say what was written.

    Output is byte-identical for the same arguments. ``seed`` must be a non-negative integer.
    """
    if customers < 1 or customers_per_file < 1:
        raise ValueError(f"customers ({customers}) and customers_per_file ({customers_per_file}) must be >= 1")
    if shape not in SHAPES:
        raise UserError(f"unknown shape '{shape}': choose one of {', '.join(SHAPES)}")
    spaced = shape == "export"
    if shape == "export":
        customers_per_file = customers
    out = Path(out)
    landing = {feed: out / feed / "landing" for feed in _FEEDS}
    occupied = [str(folder) for folder in landing.values() if folder.is_dir() and any(folder.iterdir())]
    if occupied:
        raise UserError(f"refusing to add generated feeds to folders that already hold files: {', '.join(occupied)}")
    for folder in landing.values():
        folder.mkdir(parents=True, exist_ok=True)

    chunks = math.ceil(customers / customers_per_file)
    tally = _Tally()
    population = _draw_customers(customers, np.random.default_rng([seed, _POPULATION_STREAM]))
    picker = _Picker(np.random.default_rng([seed, _CUSTOMER_DEFECT_STREAM]), customers) if defects else None
    if picker is not None:
        # Chosen before any reading is drawn: shared serials show up in the Step Trainer feed, and
        # consent changes should concern customers whose own records are otherwise clean.
        _share_serial_numbers(population, picker)
        revoked = picker.pick(picker.share(_CONSENT_CHANGE_RATE), within=population.has_research)
        granted = picker.pick(picker.share(_CONSENT_CHANGE_RATE), within=~population.has_research)

    consent_between = _write_readings(landing, population, seed, defects, customers_per_file, tally)
    population.research[population.late_research] = consent_between[population.late_research]

    customer_lines, source_rows = _customer_lines(population, picker, spaced)
    file_starts = np.searchsorted(source_rows, np.arange(chunks + 1) * customers_per_file)
    for chunk in range(chunks):
        style = _file_style(chunk, chunks, defects)
        path = landing["customer"] / _file_name("customer", chunk, style)
        tally.add("customer", _write_file(path, style, customer_lines[file_starts[chunk] : file_starts[chunk + 1]]))

    if picker is not None:
        updates = _consent_change_lines(population, revoked, granted, np.random.default_rng([seed, _CUSTOMER_DEFECT_STREAM, 1]), spaced)
        tally.add("customer", _write_file(landing["customer"] / _file_name("customer", chunks, _PLAIN), _PLAIN, updates))
        for feed in _FEEDS:
            _write_file(landing[feed] / _file_name(feed, chunks + (feed == "customer"), _PLAIN), _PLAIN, pa.array([], pa.string()))
            tally.add(feed, 0)

    written_bytes = sum(path.stat().st_size for folder in landing.values() for path in folder.iterdir())
    return GeneratedFeeds(root=out, files=tally.files, records=tally.records, bytes=written_bytes)


class _Tally:
    def __init__(self) -> None:
        self.files = dict.fromkeys(_FEEDS, 0)
        self.records = dict.fromkeys(_FEEDS, 0)

    def add(self, feed: str, records: int) -> None:
        self.files[feed] += 1
        self.records[feed] += records


# --- customers ---------------------------------------------------------------------------------


@dataclass
class _Customers:
    """Customer attributes by customer number; text columns already hold JSON value text."""

    name: pa.Array
    email: pa.Array
    phone: pa.Array  # digits only, unquoted
    birthday: pa.Array
    serial: pa.Array
    registration: np.ndarray
    session_start: np.ndarray
    research: np.ndarray  # meaningful where has_research; late consents are filled in with the readings
    has_research: np.ndarray
    late_research: np.ndarray
    public: np.ndarray
    has_public: np.ndarray
    friends: np.ndarray
    has_friends: np.ndarray
    profile_edit_ms: np.ndarray

    def last_update(self) -> np.ndarray:
        consents = [np.where(present, date, 0) for date, present in self._consents()]
        return np.maximum.reduce([self.registration, *consents]) + self.profile_edit_ms

    def _consents(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(self.research, self.has_research), (self.public, self.has_public), (self.friends, self.has_friends)]


def _draw_customers(count: int, rng: np.random.Generator) -> _Customers:
    first = pa.array(_FIRST_NAMES).take(rng.integers(len(_FIRST_NAMES), size=count))
    last = pa.array(_LAST_NAMES).take(rng.integers(len(_LAST_NAMES), size=count))
    unique_suffix = _int_text(rng.permutation(count))
    first_birthday, last_birthday = (day.astype(np.int64) for day in _BIRTHDAYS)
    birthdays = rng.integers(first_birthday, last_birthday, size=count).astype("datetime64[D]")

    slots = math.ceil(count / _CUSTOMERS_PER_SESSION_SLOT)
    slot_minutes = (np.arange(slots) * _WINDOW_MS // slots) // 60_000 * 60_000
    slot_starts = _WINDOW_START_MS + slot_minutes + rng.integers(0, _BURST_GAP_GRID_MS, size=slots)
    session_start = slot_starts[rng.integers(slots, size=count)]
    registration = session_start - rng.integers(3_600_000, 60 * _DAY_MS, size=count)

    def later_consent(share: float) -> tuple[np.ndarray, np.ndarray]:
        # Consented at registration or some time before the first session.
        delay = np.where(rng.random(count) < 0.5, 0, rng.integers(0, session_start - registration))
        return registration + delay, rng.random(count) < share

    has_research = rng.random(count) < _RESEARCH_CONSENT
    public, has_public = later_consent(_PUBLIC_CONSENT)
    friends, has_friends = later_consent(_FRIENDS_CONSENT)
    return _Customers(
        name=_quoted(pc.binary_join_element_wise(first, last, " ")),
        email=_quoted(pc.binary_join_element_wise(first, ".", last, ".", unique_suffix, "@test.com", "")),
        phone=_int_text(rng.integers(2_000_000_000, 10_000_000_000, size=count)),
        birthday=_quoted(pa.array(birthdays).cast(pa.string())),
        serial=_quoted(_uuid4_text(count, rng)),
        registration=registration,
        session_start=session_start,
        research=registration.copy(),
        has_research=has_research,
        late_research=has_research & (rng.random(count) < _RESEARCH_CONSENT_LATER),
        public=public,
        has_public=has_public,
        friends=friends,
        has_friends=has_friends,
        profile_edit_ms=np.where(rng.random(count) < _PROFILE_EDITED, rng.integers(1, 30 * _DAY_MS, size=count), 0),
    )


_UUID_HEX_COLUMNS = np.array([column for column in range(36) if column not in (8, 13, 18, 23)])


def _uuid4_text(count: int, rng: np.random.Generator) -> pa.Array:
    """Random version-4 UUIDs built as one byte matrix (uuid.UUID per row is slow at millions of rows)."""
    nibbles = rng.integers(0, 16, size=(count, 32), dtype=np.uint8)
    nibbles[:, 12] = 4
    nibbles[:, 16] = 8 | (nibbles[:, 16] & 3)
    text = np.full((count, 36), ord("-"), dtype=np.uint8)
    text[:, _UUID_HEX_COLUMNS] = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[nibbles]
    return _text_from_bytes(text, np.ones(text.shape, dtype=bool), np.full(count, 36))


def _share_serial_numbers(customers: _Customers, picker: _Picker) -> None:
    """The fulfillment bug: a few groups of 2-3 customers received Step Trainers with one serial."""
    count = len(customers.serial)
    groups = min(max(1, count // _CUSTOMERS_PER_SHARED_SERIAL), count // 3)
    sizes = picker.rng.integers(2, 4, size=groups)
    members = picker.rng.permutation(picker.pick(int(sizes.sum())))
    serial_owner = np.arange(count)
    serial_owner[members] = np.repeat(members[np.cumsum(sizes) - sizes], sizes)
    customers.serial = customers.serial.take(serial_owner)


def _customer_objects(
    customers: _Customers, rows: np.ndarray, last_update: np.ndarray, research: np.ndarray, has_research: np.ndarray, spaced: bool
) -> _JsonObjects:
    objects = _JsonObjects(len(rows), spaced)
    objects.add("customerName", customers.name.take(rows))
    objects.add("email", customers.email.take(rows))
    objects.add("phone", _quoted(customers.phone.take(rows)))
    objects.add("birthDay", customers.birthday.take(rows))
    objects.add("serialNumber", customers.serial.take(rows))
    objects.add("registrationDate", _int_text(customers.registration[rows]))
    objects.add("lastUpdateDate", _int_text(last_update))
    objects.add("shareWithResearchAsOfDate", _int_text(research, present=has_research))
    objects.add("shareWithPublicAsOfDate", _int_text(customers.public[rows], present=customers.has_public[rows]))
    objects.add("shareWithFriendsAsOfDate", _int_text(customers.friends[rows], present=customers.has_friends[rows]))
    return objects


def _customer_lines(customers: _Customers, picker: _Picker | None, spaced: bool) -> tuple[pa.Array, np.ndarray]:
    """All customer lines, and for each line the customer it belongs to (to cut them into files)."""
    rows = np.arange(len(customers.serial))
    objects = _customer_objects(customers, rows, customers.last_update(), customers.research, customers.has_research, spaced)
    if picker is None:
        return objects.render(), rows
    _damage_objects(objects, _CUSTOMER_DEFECTS, picker)
    as_number = picker.pick(picker.share(_PHONE_AS_NUMBER_RATE))
    objects.set_values("phone", as_number, customers.phone.take(as_number))
    lines = _damage_lines(objects.render(), _int_text(customers.registration), picker)
    return _repeat_and_space(lines, picker, _CUSTOMER_DEFECTS.duplicate_rate)


def _consent_change_lines(customers: _Customers, revoked: np.ndarray, granted: np.ndarray, rng: np.random.Generator, spaced: bool) -> pa.Array:
    """Later records of the same customers: revoked ones lose the research key, granted ones gain it."""
    rows = np.sort(np.concatenate([revoked, granted]))
    last_update = customers.last_update()[rows] + rng.integers(_DAY_MS, 30 * _DAY_MS, size=len(rows))
    has_research = np.isin(rows, granted)
    return _customer_objects(customers, rows, last_update, last_update, has_research, spaced).render()


# --- readings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Readings:
    """One batch of customers' readings, each feed in time order as a device would upload them."""

    accelerometer_customer: np.ndarray
    accelerometer_time: np.ndarray
    acceleration: np.ndarray  # (readings, 3): x, y, z in m/s²
    step_customer: np.ndarray
    step_time: np.ndarray
    distance: np.ndarray
    consent_between: np.ndarray  # per customer: a time with readings before and after it


def _draw_readings(customers: _Customers, start: int, stop: int, rng: np.random.Generator) -> _Readings:
    count = stop - start
    slots = _ACCELEROMETER_READINGS[1]
    readings = rng.integers(_ACCELEROMETER_READINGS[0], _ACCELEROMETER_READINGS[1] + 1, size=count)

    sizes = rng.choice(_BURST_SIZES, size=(count, slots), p=_BURST_SIZE_WEIGHTS)
    # Step readings need 30 distinct bursts; in the (astronomically rare) case the readings would fit
    # in fewer, that customer's phone writes single readings instead.
    sizes[np.cumsum(sizes, axis=1)[:, _STEP_READINGS - 2] >= readings] = 1
    burst_starts = np.cumsum(sizes, axis=1) - sizes
    starts_a_burst = np.zeros((count, slots), dtype=bool)
    rows, columns = np.nonzero(burst_starts < slots)
    starts_a_burst[rows, burst_starts[rows, columns]] = True
    burst_of_slot = np.cumsum(starts_a_burst, axis=1) - 1
    bursts = burst_of_slot[np.arange(count), readings - 1] + 1

    gaps = rng.integers(_BURST_GAP_STEPS[0], _BURST_GAP_STEPS[1] + 1, size=(count, slots)) * _BURST_GAP_GRID_MS
    gaps[:, 0] = 0
    burst_time = customers.session_start[start:stop, None] + np.cumsum(gaps, axis=1)

    reading_customer, reading_slot = np.nonzero(np.arange(slots) < readings[:, None])
    accelerometer_time = burst_time[reading_customer, burst_of_slot[reading_customer, reading_slot]]
    acceleration = rng.normal((0.0, 0.0, 9.81), (2.5, 2.5, 2.0), size=(len(reading_customer), 3))

    # The Step Trainer samples at moments the phone also recorded: 30 distinct bursts per customer.
    preference = rng.random((count, slots))
    preference[np.arange(slots) >= bursts[:, None]] = np.inf
    step_bursts = np.sort(np.argsort(preference, axis=1)[:, :_STEP_READINGS], axis=1)
    step_time = np.take_along_axis(burst_time, step_bursts, axis=1)
    # Bursts lie at least one grid step apart, so the midpoint is strictly between two step readings.
    middle = _STEP_READINGS // 2
    consent_between = (step_time[:, middle - 1] + step_time[:, middle]) // 2
    distance = rng.integers(150, 400, size=count)[:, None] + rng.integers(-40, 41, size=(count, _STEP_READINGS))

    accelerometer_order = np.argsort(accelerometer_time, kind="stable")
    step_time = step_time.ravel()
    step_order = np.argsort(step_time, kind="stable")
    return _Readings(
        accelerometer_customer=start + reading_customer[accelerometer_order],
        accelerometer_time=accelerometer_time[accelerometer_order],
        acceleration=acceleration[accelerometer_order],
        step_customer=start + np.repeat(np.arange(count), _STEP_READINGS)[step_order],
        step_time=step_time[step_order],
        distance=distance.ravel()[step_order],
        consent_between=consent_between,
    )


@dataclass(frozen=True)
class _Batch:
    chunk: int  # the file the batch goes to
    start: int  # customer numbers start..stop
    stop: int


@dataclass(frozen=True)
class _RenderedBatch:
    consent_between: np.ndarray
    accelerometer: pa.Array
    step_trainer: pa.Array


def _write_readings(landing: dict[str, Path], customers: _Customers, seed: int, defects: bool, customers_per_file: int, tally: _Tally) -> np.ndarray:
    """Write the accelerometer and Step Trainer files; returns each customer's mid-readings time."""
    count = len(customers.serial)
    chunks = math.ceil(count / customers_per_file)
    batches = [
        _Batch(chunk, start, min(start + _BATCH_CUSTOMERS, (chunk + 1) * customers_per_file, count))
        for chunk in range(chunks)
        for start in range(chunk * customers_per_file, min((chunk + 1) * customers_per_file, count), _BATCH_CUSTOMERS)
    ]
    consent_between = np.empty(count, dtype=np.int64)
    for chunk, rendered_batches in groupby(_render_in_order(customers, batches, seed, defects), key=lambda item: item[0].chunk):
        style = _file_style(chunk, chunks, defects)
        with (
            _LandingFile(landing["accelerometer"] / _file_name("accelerometer", chunk, style), style) as accelerometer,
            _LandingFile(landing["step_trainer"] / _file_name("step_trainer", chunk, style), style) as step_trainer,
        ):
            for batch, rendered in rendered_batches:
                consent_between[batch.start : batch.stop] = rendered.consent_between
                accelerometer.write(rendered.accelerometer)
                step_trainer.write(rendered.step_trainer)
        tally.add("accelerometer", accelerometer.records)
        tally.add("step_trainer", step_trainer.records)
        if defects and chunk == 0:
            shutil.copyfile(accelerometer.path, accelerometer.path.with_name(_file_name("accelerometer", 0, style, "-redelivered")))
            tally.add("accelerometer", accelerometer.records)
    return consent_between


def _render_in_order(customers: _Customers, batches: list[_Batch], seed: int, defects: bool) -> Iterator[tuple[_Batch, _RenderedBatch]]:
    """Render batches on worker threads (NumPy and Arrow kernels release the GIL) and hand them back
    in order, with a bounded lookahead so memory stays flat however large the feed."""
    with ThreadPoolExecutor(_WORKERS) as pool:
        pending: deque[tuple[_Batch, Future[_RenderedBatch]]] = deque()
        for batch in batches:
            pending.append((batch, pool.submit(_render_batch, customers, batch, seed, defects)))
            if len(pending) > 2 * _WORKERS:
                done, rendering = pending.popleft()
                yield done, rendering.result()
        while pending:
            done, rendering = pending.popleft()
            yield done, rendering.result()


def _render_batch(customers: _Customers, batch: _Batch, seed: int, defects: bool) -> _RenderedBatch:
    """Lines for one batch; its random streams are keyed by its first customer."""
    readings = _draw_readings(customers, batch.start, batch.stop, np.random.default_rng([seed, _READING_STREAM, batch.start]))
    defect_rng = np.random.default_rng([seed, _READING_DEFECT_STREAM, batch.start]) if defects else None
    return _RenderedBatch(
        consent_between=readings.consent_between,
        accelerometer=_accelerometer_lines(readings, customers, defect_rng),
        step_trainer=_step_trainer_lines(readings, customers, defect_rng),
    )


def _accelerometer_lines(readings: _Readings, customers: _Customers, defect_rng: np.random.Generator | None) -> pa.Array:
    timestamps = _int_text(readings.accelerometer_time)
    objects = _JsonObjects(len(timestamps))
    objects.add("user", customers.email.take(readings.accelerometer_customer))
    objects.add("timestamp", timestamps)
    for axis, name in enumerate("xyz"):
        objects.add(name, _fixed_point_text(readings.acceleration[:, axis]))
    if defect_rng is None:
        return objects.render()
    picker = _Picker(defect_rng, len(timestamps))
    _damage_objects(objects, _ACCELEROMETER_DEFECTS, picker)
    by_serial = picker.pick(picker.share(_SERIAL_INSTEAD_OF_USER_RATE))
    objects.rename("user", by_serial, "serialNumber")
    objects.set_values("user", by_serial, customers.serial.take(readings.accelerometer_customer[by_serial]))
    lines = _damage_lines(objects.render(), timestamps, picker)
    return _repeat_and_space(lines, picker, _ACCELEROMETER_DEFECTS.duplicate_rate)[0]


def _step_trainer_lines(readings: _Readings, customers: _Customers, defect_rng: np.random.Generator | None) -> pa.Array:
    times = _int_text(readings.step_time)
    objects = _JsonObjects(len(times))
    objects.add("sensorReadingTime", times)
    objects.add("serialNumber", customers.serial.take(readings.step_customer))
    objects.add("distanceFromObject", _int_text(readings.distance))
    if defect_rng is None:
        return objects.render()
    picker = _Picker(defect_rng, len(times))
    _damage_objects(objects, _STEP_TRAINER_DEFECTS, picker)
    lines = _damage_lines(objects.render(), times, picker)
    return _repeat_and_space(lines, picker, _STEP_TRAINER_DEFECTS.duplicate_rate)[0]


# --- JSON text, column-wise --------------------------------------------------------------------


class _JsonObjects:
    """One JSON object per row, rendered column-wise.

    Fields stay apart until rendering so defects can rename, retype, drop or add a field in chosen
    rows. Unedited rows take the fast path (one join with literal keys); edited rows, a small
    minority, are rendered field by field and patched in. A null value leaves its key out of that
    row's object (absent, never ``null``); the first field added must have no nulls. `spaced`
    objects have a space after each `:` and `,`, as the STEDI export writes customer records.
    """

    def __init__(self, rows: int, spaced: bool = False) -> None:
        self.rows = rows
        self._comma, self._colon = (", ", ": ") if spaced else (",", ":")
        self._columns: dict[str, pa.Array] = {}
        self._renames: list[tuple[str, np.ndarray, str]] = []
        self._edits: list[tuple[str, np.ndarray, pa.Array]] = []

    def add(self, key: str, values: pa.Array) -> None:
        self._columns[key] = values

    def rename(self, key: str, rows: np.ndarray, new_key: str) -> None:
        self._renames.append((key, rows, new_key))

    def set_values(self, key: str, rows: np.ndarray, values: str | None | pa.Array) -> None:
        """JSON text for ``key`` in sorted ``rows``: one text for all, one per row, or None to drop
        the key. A key not added before becomes an extra last field of just these rows."""
        if not isinstance(values, pa.Array):
            values = pa.repeat(pa.scalar(values, pa.string()), len(rows))
        self._edits.append((key, rows, values))

    def render(self) -> pa.Array:
        lines = self._render_unedited()
        edited = np.unique(np.concatenate([np.empty(0, np.int64)] + [rows for _, rows, _ in self._renames + self._edits]))
        if len(edited) == 0:
            return lines
        return _replace_rows(lines, edited, self._render_edited(edited))

    def _render_unedited(self) -> pa.Array:
        pieces: list[str | pa.Array] = ["{"]
        for position, (key, values) in enumerate(self._columns.items()):
            key_text = f'{self._comma if position else ""}"{key}"{self._colon}'
            if values.null_count:
                pieces.append(pc.binary_join_element_wise(key_text, values, ""))  # null: whole field skipped
            else:
                pieces += [key_text, values]
        return pc.binary_join_element_wise(*pieces, "}", "", null_handling="skip")

    def _render_edited(self, edited: np.ndarray) -> pa.Array:
        count = len(edited)
        keys = {key: pa.repeat(key, count) for key in self._columns}
        values = {key: column.take(edited) for key, column in self._columns.items()}
        for key, rows, new_key in self._renames:
            keys[key] = _replace_rows(keys[key], np.searchsorted(edited, rows), pa.repeat(new_key, len(rows)))
        for key, rows, new_values in self._edits:
            if key not in values:
                keys[key], values[key] = pa.repeat(key, count), pa.nulls(count, pa.string())
            values[key] = _replace_rows(values[key], np.searchsorted(edited, rows), new_values)
        fields = [pc.binary_join_element_wise('"', keys[key], '"' + self._colon, values[key], "") for key in values]
        body = pc.binary_join_element_wise(*fields, self._comma, null_handling="skip")
        return pc.binary_join_element_wise("{", body, "}", "")


def _replace_rows(array: pa.Array, rows: np.ndarray, replacements: pa.Array) -> pa.Array:
    """``replacements`` are in the order of the sorted ``rows``."""
    mask = np.zeros(len(array), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(array, pa.array(mask), replacements)


def _quoted(text: pa.Array) -> pa.Array:
    """JSON string text; the generated values never need escaping."""
    return pc.binary_join_element_wise('"', text, '"', "")


def _int_text(values: np.ndarray, present: np.ndarray | None = None) -> pa.Array:
    return pa.array(values, mask=None if present is None else ~present).cast(pa.string())


def _fixed_point_text(values: np.ndarray, decimals: int = 3) -> pa.Array:
    """Text such as ``-0.250`` or ``9.000``: always a JSON double, never an integer.

    Digits are written right-aligned into a byte matrix, then the unused leading bytes of each row
    are squeezed out: several times faster than joining sign, whole and fraction strings.
    """
    scaled = np.rint(values * 10**decimals).astype(np.int64)
    magnitude = np.abs(scaled)
    whole_digits = len(str(int(magnitude.max(initial=0)) // 10**decimals))
    width = 1 + whole_digits + 1 + decimals  # sign, whole digits, point, decimals
    point = 1 + whole_digits
    text = np.empty((len(values), width), dtype=np.uint8)
    remaining = magnitude.astype(np.uint32) if whole_digits < 7 else magnitude  # 32-bit division is the faster one
    for column in range(width - 1, 0, -1):
        if column == point:
            text[:, column] = ord(".")
        else:
            remaining, digit = np.divmod(remaining, remaining.dtype.type(10))
            text[:, column] = digit + ord("0")
    text[:, 0] = ord("-")
    negative = scaled < 0
    keep = np.ones(text.shape, dtype=bool)
    keep[:, 0] = negative
    significant_whole = np.ones(len(values), dtype=np.int64)
    for column in range(1, whole_digits):  # leading zeros: JSON numbers must not have them
        keep[:, column] = magnitude >= 10 ** (point - 1 - column + decimals)
        significant_whole += keep[:, column]
    lengths = negative + significant_whole + 1 + decimals
    return _text_from_bytes(text, keep, lengths)


def _text_from_bytes(text: np.ndarray, keep: np.ndarray, lengths: np.ndarray) -> pa.Array:
    """One string per row of a byte matrix, made of the ``lengths`` bytes marked in ``keep``."""
    offsets = np.zeros(len(text) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.StringArray.from_buffers(len(text), pa.py_buffer(offsets), pa.py_buffer(text[keep]))


# --- defects -----------------------------------------------------------------------------------


class _Picker:
    """Chooses rows for each defect without overlap, so every damaged line shows one kind of damage."""

    def __init__(self, rng: np.random.Generator, rows: int) -> None:
        self.rng = rng
        self._free = np.ones(rows, dtype=bool)

    def share(self, rate: float) -> int:
        return max(1, round(rate * len(self._free)))

    def pick(self, count: int, within: np.ndarray | None = None) -> np.ndarray:
        candidates = np.flatnonzero(self._free if within is None else self._free & within)
        chosen = np.sort(self.rng.choice(candidates, min(count, len(candidates)), replace=False))
        self._free[chosen] = False
        return chosen


def _damage_objects(objects: _JsonObjects, defects: _FeedDefects, picker: _Picker) -> None:
    for rate, key, text in defects.wrong_values:
        objects.set_values(key, picker.pick(picker.share(rate)), text)
    rate, renames = defects.renamed_keys
    renamed = picker.pick(picker.share(rate))
    for key, new_key in renames.items():
        objects.rename(key, renamed, new_key)
    extra_key, extra_value = defects.extra_field
    objects.set_values(extra_key, picker.pick(picker.share(_EXTRA_FIELD_RATE)), extra_value)


def _damage_lines(lines: pa.Array, numbers: pa.Array, picker: _Picker) -> pa.Array:
    """Replace a few whole lines: truncated JSON, garbage text, a JSON array, a bare number."""
    truncated, garbage, arrays, bare_numbers = (picker.pick(picker.share(_BROKEN_LINE_RATE)) for _ in range(4))
    rows = np.concatenate([truncated, garbage, arrays, bare_numbers])
    replacements = pa.concat_arrays([
        pc.utf8_slice_codeunits(lines.take(truncated), 0, _TRUNCATE_AT),
        pa.array(_GARBAGE_LINES).take(picker.rng.integers(len(_GARBAGE_LINES), size=len(garbage))),
        pc.binary_join_element_wise("[", lines.take(arrays), "]", ""),
        numbers.take(bare_numbers),
    ])  # fmt: skip
    order = np.argsort(rows)
    return _replace_rows(lines, rows[order], replacements.take(order))


def _repeat_and_space(lines: pa.Array, picker: _Picker, duplicate_rate: float) -> tuple[pa.Array, np.ndarray]:
    """Repeat a few lines exactly and put blank lines after a few; also returns each line's source row."""
    count = len(lines)
    copies = np.ones(count, dtype=np.int64)
    if duplicate_rate:
        copies[picker.pick(picker.share(duplicate_rate))] += 1
    blank_after = picker.pick(picker.share(_BLANK_LINE_RATE))
    copies[blank_after] += 1
    source_rows = np.repeat(np.arange(count), copies)
    taken = source_rows.copy()
    taken[np.cumsum(copies)[blank_after] - 1] = count  # the appended empty string
    with_blank = pa.concat_arrays([lines, pa.array([""])])
    return with_blank.take(pa.array(taken)), source_rows


# --- files -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FileStyle:
    gzip: bool = False
    crlf: bool = False
    bom: bool = False


_PLAIN = _FileStyle()


def _file_style(chunk: int, chunks: int, defects: bool) -> _FileStyle:
    """In defect mode each feed has a CRLF file, a BOM file and a gzip file (one file may be all three)."""
    if not defects:
        return _PLAIN
    return _FileStyle(gzip=chunk == chunks - 1, crlf=chunk == 0, bom=chunk == min(1, chunks - 1))


def _file_name(feed: str, index: int, style: _FileStyle, note: str = "") -> str:
    return f"{feed}-{index:05d}{note}.json" + (".gz" if style.gzip else "")


def _write_file(path: Path, style: _FileStyle, lines: pa.Array) -> int:
    """Write a whole file at once; returns its record count."""
    with _LandingFile(path, style) as landing_file:
        landing_file.write(lines)
    return landing_file.records


class _LandingFile:
    """One feed file written line batch by line batch, with its style's compression, line end and BOM."""

    def __init__(self, path: Path, style: _FileStyle) -> None:
        self.path = path
        self.records = 0  # non-blank lines
        self._style = style

    def __enter__(self) -> _LandingFile:
        self._raw = self.path.open("wb")
        self._stream = gzip.GzipFile(fileobj=self._raw, mode="wb", mtime=0, compresslevel=6) if self._style.gzip else self._raw
        if self._style.bom:
            self._stream.write(b"\xef\xbb\xbf")
        return self

    def write(self, lines: pa.Array) -> None:
        self.records += int(np.count_nonzero(pc.utf8_length(lines).to_numpy(zero_copy_only=False)))
        terminated = pc.binary_join_element_wise(lines, "\r\n" if self._style.crlf else "\n", "")
        self._stream.write(_utf8_bytes(terminated))

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self._stream.close()
        self._raw.close()


def _utf8_bytes(text: pa.Array) -> memoryview:
    """All strings back to back, read straight from Arrow's buffers rather than joined in Python."""
    if len(text) == 0:
        return memoryview(b"")
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32, count=len(text) + 1, offset=text.offset * 4)
    return memoryview(text.buffers()[2])[offsets[0] : offsets[-1]]
