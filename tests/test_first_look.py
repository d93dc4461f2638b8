"""The first look is a shortcut, never a different answer.

DuckDB lands most lines after one parse (`first_look_sql`) and sends only the rest to the full
judge (`judge_sql`): see `land_lines`. Whatever the line, landing it that way must give exactly what the full judge
gives on its own: the same values, reasons, `_extra` and raw text. A plain line
(`plain_line_pattern`) is typed by its shape alone, so every hand-made line is also tried compact,
spaced, with its fields in reverse order and with its non-ASCII characters escaped.
"""

from __future__ import annotations

import json
import random

import pytest

from stedi.contract import ACCELEROMETER, CUSTOMER, FEEDS, STEP_TRAINER, Kind
from stedi.engines.duckdb import connect, judge_sql, land_lines
from stedi.generate import generate_feeds
from stedi.lines import FilePiece, FileStream
from stedi.storage import open_storage
from support.landing_cases import ACCEPTED_VALUES, REJECTIONS

GOOD = {"user": "a@x.com", "timestamp": 5, "x": 1.5, "y": 2, "z": -3}

# Lines the first look could get wrong, if it trusted what it parsed too easily.
TRICKY = {
    ACCELEROMETER: [
        json.dumps(GOOD),
        json.dumps(GOOD, separators=(",", ":")),
        "   " + json.dumps(GOOD),  # not starting with "{"
        json.dumps({**GOOD, "x": None}),  # a required field null
        json.dumps({**GOOD, "serialNumber": None}),  # an optional field null: absent
        json.dumps({**GOOD, "timestamp": 1.0}),  # an integral double
        json.dumps({**GOOD, "timestamp": 2**63}),  # beyond BIGINT
        json.dumps({**GOOD, "timestamp": -(2**63) - 1}),
        json.dumps({**GOOD, "x": "1.5"}),  # a number as text
        json.dumps({**GOOD, "user": 12}),
        json.dumps({**GOOD, "user": {"email": "a@x.com"}}),
        json.dumps({**GOOD, "x": [1]}),
        '{"user": "a@x.com", "timestamp": 5, "x": 1, "y": 2, "z": 3, "x": 4}',  # a duplicate key
        '{"\\u0075ser": "a@x.com", "timestamp": 5, "x": 1, "y": 2, "z": 3}',  # an escaped key
        '{"user": "a\\"user\\":\\"b", "timestamp": 5, "x": 1, "y": 2, "z": 3}',
        '{"user": "a@x.com", "timestamp": 5, "x": 1, "y": 2, "z": 3,}',  # a trailing comma
        '{"user": "a@x.com", "timestamp": 5, "x": NaN, "y": 2, "z": 3}',
        '{"user": "a@x.com", "timestamp": 5, "x": 1, "y": 2, "z": 3} {"user": "b"}',
        "{}",
        "null",
        '"text"',
    ],
    CUSTOMER: [
        json.dumps({"email": "a@x.com"}),
        json.dumps({"email": "a@x.com", "phone": 8015551212}),
        json.dumps({"email": "a@x.com", "phone": 8.5}),
        json.dumps({"email": "a@x.com", "phone": True}),
        json.dumps({"email": "a@x.com", "registrationDate": "1"}),
        json.dumps({"email": ""}),
    ],
    STEP_TRAINER: [
        json.dumps({"sensorReadingTime": 1, "serialNumber": "s", "distanceFromObject": 2}),
        json.dumps({"sensorReadingTime": 1, "serialNumber": "s", "distanceFromObject": 2.5}),
        json.dumps({"sensorReadingTime": 1, "serialNumber": "s", "distanceFromObject": 2e0}),
        json.dumps({"sensorReadingTime": 1, "serialNumber": "s", "distanceFromObject": 2, "extra": 1}),
    ],
}

# Lines at the edges of what lands at first look. (feed, line, fits at first look?)
FIRST_LOOK = [
    (ACCELEROMETER, '{"user":"a@x.com","timestamp":5,"x":1.5,"y":2,"z":-3}', True),
    (ACCELEROMETER, '{"user":"a@x.com","timestamp":5,"x":1.5,"y":2,"z":-3}  ', True),  # a blanked CRLF
    (ACCELEROMETER, '{"timestamp":5,"x":1.5,"y":2,"z":-3,"serialNumber":"s-1"}', True),
    (ACCELEROMETER, '{"timestamp":5,"x":1.5,"y":2,"z":-3}', False),  # neither user nor serial: judged, not landed
    (ACCELEROMETER, '{"user":"","timestamp":-0,"x":-0.0,"y":0e0,"z":1E+9}', True),
    (ACCELEROMETER, '{"user":"Zoë ☃","timestamp":123456789012345678,"x":1e99,"y":-1e-99,"z":0.000000000000000000000001}', True),
    (ACCELEROMETER, '{"user":"a","timestamp":1234567890123456789,"x":1,"y":2,"z":3}', False),  # may not fit a BIGINT
    (ACCELEROMETER, '{"user":"a","timestamp":5,"x":1e100,"y":2,"z":3}', False),  # may overflow a DOUBLE
    (ACCELEROMETER, '{"user":"a","timestamp":1.0,"x":1,"y":2,"z":3}', False),
    (ACCELEROMETER, '{"user":"a","timestamp":5,"x":1.,"y":2,"z":3}', False),
    (ACCELEROMETER, '{"user":"a","timestamp":05,"x":1,"y":2,"z":3}', False),
    (ACCELEROMETER, '{"user":"a","timestamp":5,"x":+1,"y":2,"z":3}', False),
    (ACCELEROMETER, '{"user":"a","timestamp":5,"x":"1","y":2,"z":3}', False),
    (ACCELEROMETER, '{"user":5,"timestamp":5,"x":1,"y":2,"z":3}', False),
    (ACCELEROMETER, '{"user":null,"timestamp":5,"x":1,"y":2,"z":3}', False),
    (ACCELEROMETER, '{"user":"a\\u0041","timestamp":5,"x":1,"y":2,"z":3}', False),  # an escape
    (ACCELEROMETER, '{"user":"a","user":"b","timestamp":5,"x":1,"y":2,"z":3}', False),  # plain, but a key twice
    (ACCELEROMETER, '{"user":"a","timestamp":5,"x":1,"y":2,"z":3,"x":1}', False),
    (ACCELEROMETER, '{"User":"a","timestamp":5,"x":1,"y":2,"z":3}', False),
    (ACCELEROMETER, '{"timestamp":5,"user":"a","x":1,"y":2,"z":3}', True),  # another order
    (ACCELEROMETER, '{"serialNumber":"s-1","z":3,"y":2,"x":1,"timestamp":5}', True),
    (ACCELEROMETER, '{"user":"a","timestamp":5,"x":1,"y":2,"z":3,"appVersion":"2.1"}', False),
    (ACCELEROMETER, '{"user":"a","timestamp":5,"x":1,"y":2,"z":3}}', False),
    (ACCELEROMETER, '{"user":"a","timestamp":5,"x":1,"y":2,"z":3} x', False),
    (ACCELEROMETER, ' {"user":"a","timestamp":5,"x":1,"y":2,"z":3}', True),
    (ACCELEROMETER, '{"user": "a", "timestamp": 5, "x": 1, "y": 2, "z": 3}', True),
    (ACCELEROMETER, '{ "user" : "a" ,\t"timestamp":5 , "x":1,"y":2,"z":3 }', True),
    (ACCELEROMETER, '\t\r {"user":"a","timestamp":5,"x":1,"y":2,"z":3}\t\r ', True),  # JSON whitespace outside
    (ACCELEROMETER, '\x0c{"user":"a","timestamp":5,"x":1,"y":2,"z":3}', False),  # a form feed is not JSON whitespace
    (ACCELEROMETER, '{"user": "a", "timestamp": 5, "x": 1, "y": 2, "z": 3 , }', False),  # a trailing comma
    (ACCELEROMETER, '{"user":"a","timestamp":5,"x":1,"y":2,"z":3,"x":null}', False),
    (ACCELEROMETER, '{"user":"a","timestamp":5,"x":1,"y":2,"z":3,"serialNumber":null}', False),  # null is judged
    # What DuckDB's parser takes and JSON does not is never plain.
    (ACCELEROMETER, '{"user":"a","timestamp":5,"x":NaN,"y":2,"z":3}', False),
    (ACCELEROMETER, '{"user":"a","timestamp":5,"x":-Infinity,"y":2,"z":3}', False),
    (ACCELEROMETER, '{"user":"a","timestamp":5,"x":1e400,"y":2,"z":3}', False),
    (ACCELEROMETER, '{"user":"a","timestamp":1655564444103.0000001,"x":1,"y":2,"z":3}', False),
    (ACCELEROMETER, '{"user":"a","timestamp":5,"x":1,"y":2,"z":3,}', False),
    (CUSTOMER, '{"email":"a@x.com"}', True),
    (CUSTOMER, '{"phone":"801","email":"a@x.com","customerName":"A"}', True),
    (CUSTOMER, '{"customerName":"A","email":"a@x.com","phone":"801","shareWithResearchAsOfDate":5}', True),
    (CUSTOMER, '{"customerName":"A","email":"a@x.com","phone":801}', False),  # a number here is judged
    (CUSTOMER, '{"customerName":"A"}', False),
    (STEP_TRAINER, '{"sensorReadingTime":1,"serialNumber":"s","distanceFromObject":2}', True),
    (STEP_TRAINER, '{"sensorReadingTime":1,"serialNumber":"s","distanceFromObject":2.0}', False),
    (STEP_TRAINER, '{"sensorReadingTime":1,"serialNumber":"s"}', False),
]


@pytest.mark.parametrize("feed, line, fits", FIRST_LOOK, ids=[f"{f.name}: {line}" for f, line, _ in FIRST_LOOK])
def test_what_fits_at_first_look(tmp_path, feed, line, fits):
    path = tmp_path / "line.json"
    path.write_text(line + "\n")
    conn = connect()
    conn.register("lines", FileStream(open_storage("/"), [FilePiece(str(path))]).reader().read_all())
    land_lines(conn, feed)
    assert conn.execute("SELECT fits FROM first_look").fetchone()[0] is fits


def rewritten(line: str) -> list[str]:
    """The line as other writers would write the same object: compact, spaced, with its fields
    in reverse order, and with every character outside ASCII escaped (repeated keys collapse:
    json.loads keeps the last)."""
    try:
        document = json.loads(line)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    reversed_fields = dict(reversed(document.items()))
    return [
        json.dumps(document, separators=(",", ":"), ensure_ascii=False),
        json.dumps(document, separators=(" , ", " : "), ensure_ascii=False),
        json.dumps(reversed_fields, ensure_ascii=False),
        json.dumps(document, ensure_ascii=True),
    ]


def hand_made_lines(feed) -> list[str]:
    lines = [line for name, line, _ in REJECTIONS if name == feed.name] + TRICKY[feed]
    if feed is ACCELEROMETER:
        lines += [line for line, _, _ in ACCEPTED_VALUES]
    lines += [line for f, line, _ in FIRST_LOOK if f is feed]
    return lines + [other for line in lines for other in rewritten(line)]


def both_ways(feed, paths: list[str]) -> tuple[list[str], list[str], tuple[int, int]]:
    """Every landed row, through the first look and through the full judge alone (as text, so that
    NaN, which DuckDB reads as a number, equals NaN), and how many lines fit at first look."""
    conn = connect()
    conn.register("lines", FileStream(open_storage("/"), [FilePiece(path) for path in paths]).reader().read_all())
    land_lines(conn, feed)
    values = ", ".join(f"v_{f.key}" for f in feed.fields)
    shortcut = conn.execute(f"SELECT _file, _source_line, reason, _extra, {values}, raw FROM landed ORDER BY ALL").fetchall()
    judged = conn.execute(
        f"SELECT _file, _source_line, reason, _extra, {values}, CASE WHEN reason IS NOT NULL THEN rtrim(raw) END FROM ({judge_sql(feed, 'lines')}) ORDER BY ALL"
    ).fetchall()
    fits = conn.execute("SELECT count(*) FILTER (WHERE fits), count(*) FROM first_look").fetchone()
    conn.close()
    return [repr(row) for row in shortcut], [repr(row) for row in judged], fits


@pytest.mark.parametrize("feed", FEEDS, ids=[f.name for f in FEEDS])
def test_hand_made_lines_land_the_same_either_way(tmp_path, feed):
    path = tmp_path / "batch.json"
    path.write_text("\n".join(hand_made_lines(feed)) + "\n")
    shortcut, judged, (fits, looked_at) = both_ways(feed, [str(path)])
    assert shortcut == judged
    assert 0 < fits < looked_at  # both ways were taken


# Values at the edges of what a plain line holds, for lines made at random (`random_lines`).
EDGE_VALUES = {
    "string": ['"a@x.com"', '""', '"Zoë 🏃"', '"a\\"b"', '"\\u0041"', "5", "null", '"  A@X.com "'],
    "number": ["0", "-0", "-0.0", "1.5", "-3", "1e5", "2E-3", "999999999999999999", "1.0", "1655564444103", "NaN", '"1"', "null", "1e400"],
    "whole": ["0", "-0", "5", "1655564444103", "999999999999999999", "9223372036854775808", "1.0", "1.6e12", "5.5", '"5"', "null"],
}
KIND_VALUES = {Kind.STRING: "string", Kind.STRING_OR_NUMBER: "string", Kind.EPOCH_MS: "whole", Kind.INTEGER: "whole", Kind.DOUBLE: "number"}


def random_lines(feed, count: int, seed: int) -> list[str]:
    """Lines of the feed's fields in a random order, with random JSON whitespace (and a form feed
    now and then), edge values, and now and then a missing, repeated or unknown key."""
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        members = [(f.name, rng.choice(EDGE_VALUES[KIND_VALUES[f.kind]])) for f in feed.fields if rng.random() > 0.1]
        if rng.random() < 0.05 and members:
            members.append(rng.choice(members))
        if rng.random() < 0.05:
            members.append(("appVersion", '"2.1"'))
        rng.shuffle(members)
        space = lambda: rng.choice(["", "", " ", "\t", "\r", "  ", "\x0c" if rng.random() < 0.02 else ""])  # noqa: E731
        body = ",".join(f"{space()}{json.dumps(name)}{space()}:{space()}{value}{space()}" for name, value in members)
        lines.append(f"{space()}{{{body}}}{space()}")
    return lines


@pytest.mark.parametrize("feed", FEEDS, ids=[f.name for f in FEEDS])
def test_random_lines_land_the_same_either_way(tmp_path, feed):
    path = tmp_path / "random.json"
    path.write_text("\n".join(random_lines(feed, 1500, seed=7)) + "\n")
    shortcut, judged, (fits, looked_at) = both_ways(feed, [str(path)])
    assert shortcut == judged
    assert 0 < fits < looked_at


def test_generated_feeds_with_defects_land_the_same_either_way(tmp_path):
    generate_feeds(tmp_path, customers=150, seed=5, defects=True, customers_per_file=40)
    for feed in FEEDS:
        paths = sorted(str(p) for p in (tmp_path / feed.folders[0]).rglob("*.json*"))
        shortcut, judged, (fits, looked_at) = both_ways(feed, paths)
        assert shortcut == judged, feed.name
        assert fits > 0.9 * looked_at, feed.name  # nearly every line lands at first look
