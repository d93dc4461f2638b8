"""S3 and Glue for the AWS tests: moto's server on 127.0.0.1 (a free port), never AWS.

The fixtures in conftest.py start one server per test module (`moto_endpoint`) and reset its state
before each test (`aws`), with dummy credentials and the endpoint in the environment, no ~/.aws
files and no instance metadata, and a temporary working directory, so no stedi.toml of the
developer's applies. This module holds what they and the tests use: the environment variables
cleared, the `Aws` clients and the command line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from stedi.cli import app

REGION = "us-east-1"
CLEARED = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL_GLUE",
    "STEDI_LAKE",
    "STEDI_CATALOG",
    "STEDI_CATALOG_URI",
    "STEDI_S3_ANONYMOUS",
    "STEDI_S3_ENDPOINT",
    "STEDI_GLUE_ENDPOINT",
    "STEDI_CONFIG",
)


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
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": ["s3:GetObject", "s3:ListBucket"],
                        "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
                    }
                ],
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
                    relative = new + relative[len(old) :]
            key = f"{prefix.strip('/')}/{relative}" if prefix.strip("/") else relative
            self.s3.upload_file(str(path), bucket, key)
            keys.append(key)
        return keys

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


runner = CliRunner()


def stedi(*args: str):
    return runner.invoke(app, list(args))


def ok_json(*args: str):
    """Run a command with --json, require success, and return its parsed output."""
    result = stedi(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)
