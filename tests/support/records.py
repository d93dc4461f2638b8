"""Feed records built by hand: a customer, a phone reading, a Step Trainer reading, each with the
fields a test does not care about filled in."""

from __future__ import annotations

CONSENT = 1_000


def customer(email, serial="S-", consent=CONSENT, updated=10, **extra):
    record = {
        "customerName": email.split("@")[0],
        "email": email,
        "phone": "8015551212",
        "birthDay": "1990-01-01",
        "serialNumber": serial,
        "registrationDate": 1,
        "lastUpdateDate": updated,
        **extra,
    }
    if consent is not None:
        record["shareWithResearchAsOfDate"] = consent
    return record


def reading(user, t, x=0.5):
    return {"user": user, "timestamp": t, "x": x, "y": 1.0, "z": -1.0}


def step(serial, t, distance=42):
    return {"sensorReadingTime": t, "serialNumber": serial, "distanceFromObject": distance}
