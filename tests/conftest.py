"""The pytest fixtures every test module may name; the helpers they use are in `support`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from stedi.generate import generate_feeds
from support.aws import CLEARED, REGION, Aws
from support.lakes import LakeHarness


@pytest.fixture
def harness(tmp_path: Path) -> LakeHarness:
    return LakeHarness(tmp_path)


# ---- S3 and Glue: moto's server on 127.0.0.1, never AWS (see support.aws) ---------------------
@pytest.fixture(scope="module")
def moto_endpoint() -> Any:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as error:
        pytest.skip(f"moto's server cannot start: {error} (pip install -e '.[test,aws]')")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    try:
        server.start()
    except Exception as error:  # noqa: BLE001 - any failure to start is a reason to skip, said clearly
        pytest.skip(f"moto's server cannot start on 127.0.0.1: {error}")
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Aws:
    import boto3
    import requests

    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return Aws(moto_endpoint, boto3.client("s3", region_name=REGION), boto3.client("glue", region_name=REGION))


@pytest.fixture(scope="module")
def feeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small generated feeds with the defects of real exports (customer/landing/, ...)."""
    out = tmp_path_factory.mktemp("feeds") / "feeds"
    generate_feeds(out, 15, seed=11, defects=True)
    return out
