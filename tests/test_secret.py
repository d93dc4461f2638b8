"""Where the lake secret lives (stedi.secret): inside the lake by default, or outside it, and a
lake refuses a key it was not made with."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from stedi.errors import SecretError
from stedi.lake import Lake
from stedi.secret import customer_key
from support.lakes import LakeHarness

CUSTOMER = {"email": "a@x.com", "serialNumber": "S1", "shareWithResearchAsOfDate": 1}
READING = {"user": "a@x.com", "timestamp": 5, "x": 1, "y": 2, "z": 3}
STEP = {"sensorReadingTime": 5, "serialNumber": "S1", "distanceFromObject": 9}


def small_lake(root: Path) -> LakeHarness:
    harness = LakeHarness(root)
    harness.feed("customer/c.json", [CUSTOMER])
    harness.feed("accelerometer/a.json", [READING])
    harness.feed("step_trainer/s.json", [STEP])
    return harness


def test_the_default_secret_is_inside_the_lake_and_owner_only(tmp_path):
    harness = small_lake(tmp_path)
    assert harness.run().ok
    path = Path(harness.lake.location) / "_stedi" / "secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)  # as an older lake may have it
    assert Lake(harness.lake.location).secret == path.read_bytes().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("where", ["environment", "file"])
def test_a_secret_kept_outside_the_lake(tmp_path, monkeypatch, where):
    key_file = tmp_path / "keys" / "lake.key"
    if where == "environment":
        monkeypatch.setenv("STEDI_SECRET", "0123456789abcdef" * 4)
    else:
        monkeypatch.setenv("STEDI_SECRET_FILE", str(key_file))
    harness = small_lake(tmp_path)
    assert harness.run().ok
    lake_root = Path(harness.lake.location)
    assert not (lake_root / "_stedi" / "secret").exists()
    secret = harness.lake.secret
    assert secret == (b"0123456789abcdef" * 4 if where == "environment" else key_file.read_bytes().strip())
    [(key,)] = harness.rows("SELECT DISTINCT customer_key FROM machine_learning_curated")
    assert key == customer_key(secret, "a@x.com")
    assert all(secret not in p.read_bytes() for p in lake_root.rglob("*") if p.is_file())


def test_a_lake_refuses_a_secret_it_was_not_made_with(tmp_path, monkeypatch):
    harness = small_lake(tmp_path)
    assert harness.run().ok
    monkeypatch.setenv("STEDI_SECRET", "another key")
    with pytest.raises(SecretError, match="not the one this lake was made with"):
        _ = Lake(harness.lake.location).secret
