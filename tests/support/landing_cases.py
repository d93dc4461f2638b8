"""What landing is tested with in more than one module: feed lines with the reason each is
quarantined for or the value it lands as, and a writer for a FIFO that no ingest may wait for."""

from __future__ import annotations

import os
import threading
from pathlib import Path

# (feed, line as written, expected rejection reason)
REJECTIONS = [
    ("accelerometer", "{not json", "not valid JSON"),
    ("accelerometer", "[1, 2, 3]", "not a JSON object: the line holds an array"),
    ("accelerometer", "42", "not a JSON object: the line holds an integer"),
    ("accelerometer", "null", "not a JSON object: the line holds null"),
    ("accelerometer", '"text"', "not a JSON object: the line holds a string"),
    ("accelerometer", '{"user": "a@x.com", "x": 1, "y": 2, "z": 3}', "missing required field: timestamp"),
    ("accelerometer", '{"timestamp": 1, "x": 1, "y": 2, "z": 3}', "missing required field: user or serialNumber"),
    ("accelerometer", '{"user": "a@x.com", "timestamp": 1, "x": "abc", "y": 2, "z": 3}', "field x: expected a number, got a string"),
    ("accelerometer", '{"user": "a@x.com", "timestamp": 1.5, "x": 1, "y": 2, "z": 3}', "field timestamp: expected a whole number, got a number"),
    ("accelerometer", '{"user": "a@x.com", "timestamp": "yesterday", "x": 1, "y": 2, "z": 3}', "field timestamp: expected a whole number, got a string"),
    ("accelerometer", '{"user": "a@x.com", "timestamp": 1, "x": true, "y": 2, "z": 3}', "field x: expected a number, got a boolean"),
    ("accelerometer", '{"user": "a@x.com", "timestamp": null, "x": 1, "y": 2, "z": 3}', "missing required field: timestamp"),
    ("accelerometer", '{"user": "a@x.com", "Timestamp": 1, "timestamp": 2, "x": 1, "y": 2, "z": 3}', "field names collide when compared case-insensitively"),
    ("accelerometer", '{"user": "a@x.com", "user": "b@x.com", "timestamp": 1, "x": 1, "y": 2, "z": 3}', "field names collide when compared case-insensitively"),
    ("customer", '{"customerName": "No Mail"}', "missing required field: email"),
    ("customer", '{"email": 12}', "field email: expected a string, got an integer"),
    ("customer", '{"email": "a@x.com", "phone": [1]}', "field phone: expected a string or a number, got an array"),
    ("customer", '{"email": "a@x.com", "shareWithResearchAsOfDate": "2020-01-01"}', "field shareWithResearchAsOfDate: expected a whole number, got a string"),
    ("step_trainer", '{"sensorReadingTime": 1, "serialNumber": "s"}', "missing required field: distanceFromObject"),
    (
        "step_trainer",
        '{"sensorReadingTime": 1, "serialNumber": "s", "distanceFromObject": "far"}',
        "field distanceFromObject: expected a whole number, got a string",
    ),
    ("step_trainer", '{"sensorReadingTime": 1, "serialNumber": 7, "distanceFromObject": 1}', "field serialNumber: expected a string, got an integer"),
    # What DuckDB's parser takes and JSON does not: NaN, Infinity, trailing commas.
    ("accelerometer", '{"user": "a@x.com", "timestamp": 1, "x": NaN, "y": 2, "z": 3}', "field x: expected a number, got NaN"),
    ("accelerometer", '{"user": "a@x.com", "timestamp": 1, "x": 1, "y": Infinity, "z": 3}', "field y: expected a number, got Infinity"),
    ("accelerometer", '{"user": "a@x.com", "timestamp": 1, "x": 1, "y": 2, "z": -Infinity}', "field z: expected a number, got -Infinity"),
    ("accelerometer", '{"user": "a@x.com", "timestamp": 1, "x": 1e400, "y": 2, "z": 3}', "field x: expected a number, got a number too large for a double"),
    ("accelerometer", '{"user": "a@x.com", "timestamp": 1, "x": 1, "y": 2, "z": 3, "battery": NaN}', "not valid JSON: NaN and Infinity are not JSON numbers"),
    ("accelerometer", '{"user": "a@x.com", "timestamp": 1, "x": 1, "y": 2, "z": 3,}', "not valid JSON"),
    ("accelerometer", '{"user": "a@x.com", "timestamp": 1, "x": 1, "y": 2, "z": 3, "tags": [1, 2,]}', "not valid JSON"),
    (
        "accelerometer",
        '{"user": "a@x.com", "timestamp": 1655564444103.0000001, "x": 1, "y": 2, "z": 3}',
        "field timestamp: expected a whole number, got a number",
    ),
    ("customer", '{"email": "a@x.com", "phone": NaN}', "field phone: expected a string or a number, got NaN"),
    (
        "step_trainer",
        '{"sensorReadingTime": 1, "serialNumber": "s", "distanceFromObject": 1e400}',
        "field distanceFromObject: expected a whole number, got a number too large for a double",
    ),
]


# (line as written, column, expected landed value)
ACCEPTED_VALUES = [
    ('{"USER": "a@x.com", "TimeStamp": 5, "X": 1, "y": 2, "z": 3}', "user", "a@x.com"),
    ('{"user": "a@x.com", "timeStamp": 5, "x": 1, "y": 2, "z": 3}', "timestamp", 5),
    ('{"user": "a@x.com", "timestamp": 1.6e12, "x": 1, "y": 2, "z": 3}', "timestamp", 1_600_000_000_000),
    ('{"user": "a@x.com", "timestamp": 5, "x": 1, "y": 2, "z": 3}', "x", 1.0),
    ('{"serialNumber": "s-1", "timestamp": 5, "x": 1, "y": 2, "z": 3}', "serialNumber", "s-1"),
    ('{"user": "a@x.com", "timestamp": 5, "x": 1, "y": 2, "z": 3, "appVersion": "2.1", "Extra": {"a": 1}}', "_extra", '{"appVersion":"2.1","Extra":{"a":1}}'),
    ('{"user": "a@x.com", "timestamp": 5, "x": 1, "y": 2, "z": 3}', "_extra", None),
    ('{"user": "a@x.com", "timestamp": 1655564444103.0000000, "x": 1, "y": 2, "z": 3}', "timestamp", 1655564444103),
    ('{"user": "a@x.com", "timestamp": 16555644441030e-1, "x": 1, "y": 2, "z": 3}', "timestamp", 1655564444103),
    ('{"user": "a@x.com", "timestamp": 5, "x": 1, "y": 2, "z": 3, "note": "NaN, [1,], 1.5"}', "_extra", '{"note":"NaN, [1,], 1.5"}'),
]


def writer_turns_up(fifo: Path, after_seconds: float = 20) -> None:
    """Should an ingest wait for a writer of the FIFO, one turns up and leaves after a while: the
    test then fails instead of hanging."""

    def open_and_close() -> None:
        threading.Event().wait(after_seconds)
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # succeeds only if a reader waits
        except OSError:
            pass

    threading.Thread(target=open_and_close, daemon=True).start()
