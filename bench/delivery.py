"""A realistic daily delivery for a lake built from a feed folder: consent revocations, new
consents and new customers with their phone and Step Trainer readings (SPEC §10).

    python bench/delivery.py SOURCE OUT [--revocations 200] [--grants 200] [--new 200]

Writes OUT/{customer,accelerometer,step_trainer}/landing/delivery-*.json, to be linked beside
SOURCE's files. Revoked customers are chosen among those whose latest record in SOURCE consents,
granted ones among those whose latest record does not; the same SOURCE and seed choose the same.
Each new customer consents, and sends 85 phone readings and 30 Step Trainer readings at the same
milliseconds as 30 of them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import duckdb

PHONE_READINGS, STEP_READINGS = 85, 30
READING_GAP_MS = 200
DAY_MS = 86_400_000


def latest_customers(conn: duckdb.DuckDBPyConnection, source: Path) -> duckdb.DuckDBPyRelation:
    """Each customer's latest record in the feed folder: email, serial number, whether it consents."""
    files = [str(p) for p in sorted((source / "customer").rglob("*.json*"))]
    return conn.sql(
        f"""
        SELECT email, serialNumber, shareWithResearchAsOfDate IS NOT NULL AS consents, lastUpdateDate
        FROM read_json({files!r}, format = 'newline_delimited', ignore_errors = true,
                       columns = {{email: 'VARCHAR', serialNumber: 'VARCHAR', lastUpdateDate: 'BIGINT',
                                   shareWithResearchAsOfDate: 'BIGINT'}})
        WHERE email IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY lower(trim(email)) ORDER BY lastUpdateDate DESC NULLS LAST) = 1
        """
    )


def write_delivery(source: Path, out: Path, revocations: int, grants: int, new: int, seed: int = 0) -> dict[str, int]:
    """Write the delivery; returns the lines written per feed."""
    conn = duckdb.connect()
    latest = latest_customers(conn, source)
    (last_update,) = latest.aggregate("max(lastUpdateDate)").fetchone() or (0,)
    updated = int(last_update or 0) + DAY_MS

    def pick(consents: bool, count: int) -> list[tuple[str, str]]:
        chosen = latest.filter(f"consents = {consents}").order(f"hash(email || '{seed}')").limit(count)
        return [(email, serial) for email, serial in chosen.select("email, serialNumber").fetchall()]

    customers = [record(email, serial, updated, consent=None) for email, serial in pick(True, revocations)]
    customers += [record(email, serial, updated, consent=updated) for email, serial in pick(False, grants)]
    phone, steps = [], []
    for i in range(new):
        email, serial = f"delivery.{seed}.{i}@new.test", f"DLV-{seed}-{i:05d}"
        customers.append(record(email, serial, updated, consent=updated))
        times = [updated + DAY_MS + k * READING_GAP_MS for k in range(PHONE_READINGS)]
        phone += [{"user": email, "timestamp": t, "x": 0.1 * (k % 7), "y": 0.2, "z": 9.8} for k, t in enumerate(times)]
        steps += [{"sensorReadingTime": t, "serialNumber": serial, "distanceFromObject": 200 + k} for k, t in enumerate(times[:STEP_READINGS])]
    written = {}
    for feed, lines in (("customer", customers), ("accelerometer", phone), ("step_trainer", steps)):
        folder = out / feed / "landing"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"delivery-{seed}.json").write_text("".join(json.dumps(line) + "\n" for line in lines))
        written[feed] = len(lines)
    return written


def held_customer(source: Path, revocations: int, seed: int = 0) -> str:
    """A customer who consents in SOURCE and whom the delivery of that many revocations (same
    seed) leaves alone: the next one in the order revocations are picked in (on feeds with fewer
    consenting customers than that, the last one picked)."""
    conn = duckdb.connect()
    consenting = latest_customers(conn, source).filter("consents").order(f"hash(email || '{seed}')")
    emails = [email for (email,) in consenting.select("email").limit(revocations + 1).fetchall()]
    conn.close()
    if not emails:
        raise SystemExit(f"{source} has no consenting customer to forget")
    return emails[-1]


def record(email: str, serial: str, updated: int, consent: int | None) -> dict:
    """A customer record as the app writes it, with research consent from `consent` or none."""
    line = {
        "customerName": email.split("@")[0],
        "email": email,
        "phone": "8015551212",
        "birthDay": "1990-01-01",
        "serialNumber": serial,
        "registrationDate": updated - DAY_MS,
        "lastUpdateDate": updated,
    }
    if consent is not None:
        line["shareWithResearchAsOfDate"] = consent
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--revocations", type=int, default=200)
    parser.add_argument("--grants", type=int, default=200)
    parser.add_argument("--new", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(write_delivery(args.source, args.out, args.revocations, args.grants, args.new, args.seed)))


if __name__ == "__main__":
    main()
