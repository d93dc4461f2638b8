"""The lake's secret: the key of the pseudonyms (`customer_key`) and of the tombstones.

Whoever holds it can re-identify `machine_learning_curated` (hash every known email and compare), so
it is never in a table and `stedi query` cannot read it (SPEC §11). Where it lives is a choice:

1. `STEDI_SECRET`: the key itself, for a job whose platform injects it (AWS Secrets Manager or SSM
   Parameter Store into a Glue job's environment);
2. `STEDI_SECRET_FILE` (or `secret_file` in stedi.toml): a file outside the lake, so that people who
   may read the lake folder cannot read the key;
3. otherwise `<lake>/_stedi/secret`, made on first use, readable by its owner only.

A lake remembers a check value of its key (`_stedi/secret-check`, an HMAC of a constant: it tells
nothing of the key), so a command given another key fails with one clear line instead of making
pseudonyms and tombstones that match nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from stedi.config import load_config
from stedi.errors import SecretError
from stedi.storage import Storage

SECRET_ENV = "STEDI_SECRET"
SECRET_FILE_ENV = "STEDI_SECRET_FILE"
EMBEDDED = ("_stedi", "secret")
CHECK = ("_stedi", "secret-check")


def new_secret() -> bytes:
    """A fresh random lake secret (the key of the pseudonyms), as hex text."""
    return secrets.token_hex(32).encode()


def _from_file(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(new_secret())
    try:
        secret = path.read_bytes().strip()
    except OSError as error:
        raise SecretError(f"cannot read the lake secret {path}: {error.strerror}") from None
    if not secret:
        raise SecretError(f"the lake secret {path} is empty")
    return secret


def _embedded(storage: Storage) -> bytes:
    path = storage.join(*EMBEDDED)
    if not storage.exists(path):
        storage.write_bytes(path, new_secret(), private=True)
    storage.make_private(path)  # one made by an older stedi, or copied with looser modes
    return storage.read_bytes(path).strip()


def check_value(secret: bytes) -> str:
    """A value that tells whether a secret is the lake's own without revealing it."""
    return hmac.new(secret, b"stedi lake secret check", hashlib.sha256).hexdigest()


def load_secret(storage: Storage) -> bytes:
    """The secret of the lake at `storage`, from where it is configured to live."""
    named_file = load_config().secret_file
    if os.environ.get(SECRET_ENV, "").strip():
        secret, origin = os.environ[SECRET_ENV].strip().encode(), SECRET_ENV
    elif named_file:
        secret, origin = _from_file(Path(named_file).expanduser()), named_file
    else:
        secret, origin = _embedded(storage), "the lake's own secret"
    check, embedded = storage.join(*CHECK), storage.join(*EMBEDDED)
    if storage.exists(check):
        expected = storage.read_bytes(check).decode().strip()
    elif origin != "the lake's own secret" and storage.exists(embedded):  # a lake that kept its secret inside until now
        expected = check_value(storage.read_bytes(embedded).strip())
    else:
        expected = check_value(secret)
        storage.write_bytes(check, expected.encode(), private=True)
    if expected != check_value(secret):
        raise SecretError(
            f"the secret from {origin} is not the one this lake was made with: its pseudonyms and "
            f"tombstones would match nothing (give {SECRET_ENV} or {SECRET_FILE_ENV} of this lake)"
        )
    return secret


def customer_key(secret: bytes, email: str) -> str:
    """machine_learning_curated.customer_key of a normalized email, as its model computes it."""
    return hashlib.sha256(f"{secret.decode()}|{email}".encode()).hexdigest()
