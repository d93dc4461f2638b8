"""A lake of two runs whose training data is known row for row: run 1 has 40 customers (80 rows),
run 2 adds 10 (100 rows) and a customer who never consented."""

from __future__ import annotations

ML_TABLE = "machine_learning_curated"
CONSENT = 1_000


def feed_customers(harness, first: int, last: int, name: str) -> None:
    """Consenting customers c<first>..c<last-1>, two readings each, each matched by a step reading:
    2 training rows per customer."""
    customers, readings, steps = [], [], []
    for i in range(first, last):
        customers.append({"email": f"c{i:02d}@x.com", "serialNumber": f"S{i}", "shareWithResearchAsOfDate": CONSENT, "lastUpdateDate": 1})
        for t in (2000 + i, 3000 + i):
            readings.append({"user": f"c{i:02d}@x.com", "timestamp": t, "x": i / 10, "y": 1.0, "z": -1.0})
            steps.append({"sensorReadingTime": t, "serialNumber": f"S{i}", "distanceFromObject": i})
    harness.feed(f"customer/{name}.json", customers)
    harness.feed(f"accelerometer/{name}.json", readings)
    harness.feed(f"step_trainer/{name}.json", steps)


def build_two_runs(harness):
    """Run 1: 40 customers (80 rows); run 2 adds 10 more (100 rows) and a customer who never consented."""
    feed_customers(harness, 0, 40, "first")
    first = harness.run()
    feed_customers(harness, 40, 50, "second")
    harness.feed("customer/never.json", [{"email": "never@x.com", "serialNumber": "S-NEVER", "lastUpdateDate": 1}])
    second = harness.run()
    assert first.ok and second.ok and harness.count(ML_TABLE) == 100
    harness.first, harness.second = first, second
    return harness
