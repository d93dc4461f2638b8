"""S3 and Glue for the AWS tests: moto's server on 127.0.0.1 (a free port), never AWS.

One server per test module (`moto_endpoint`), its state reset before each test (`aws`), dummy
credentials and the endpoint in the environment, no ~/.aws files and no instance metadata, and the
working directory a temporary one, so no stedi.toml of the developer's applies.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from stedi.cli import app
from stedi.generate import generate_feeds

REGION = "us-east-1"
CLEARED = (
    "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_GLUE",
    "STEDI_LAKE", "STEDI_CATALOG", "STEDI_CATALOG_URI", "STEDI_S3_ANONYMOUS", "STEDI_S3_ENDPOINT",
    "STEDI_GLUE_ENDPOINT", "STEDI_CONFIG",
)


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


@dataclass
class Aws:
    endpoint: str
    s3: Any
    glue: Any

    def bucket(self, name: str, public: bool = False) -> str:
        if public:
            self.s3.create_bucket(Bucket=name, ACL="public-read")
            policy = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:ListBucket"],
                               "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"]}],
            }
            self.s3.put_bucket_policy(Bucket=name, Policy=json.dumps(policy))
        else:
            self.s3.create_bucket(Bucket=name)
        return name

    def upload(self, folder: Path, bucket: str, prefix: str, rename: dict[str, str] | None = None) -> list[str]:
        """Upload a folder's files; `rename` maps a relative folder (customer/landing) to another."""
        keys = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            relative = path.relative_to(folder).as_posix()
            for old, new in (rename or {}).items():
                if relative.startswith(old + "/"):
                    relative = new + relative[len(old):]
            key = f"{prefix.strip('/')}/{relative}" if prefix.strip("/") else relative
            self.s3.upload_file(str(path), bucket, key)
            keys.append(key)
        return keys

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


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


runner = CliRunner()


def stedi(*args: str):
    return runner.invoke(app, list(args))


def ok_json(*args: str):
    """Run a command with --json, require success, and return its parsed output."""
    result = stedi(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)
