"""Amazon S3 (or an S3-compatible endpoint): a source or a lake under `s3://bucket/prefix`.

boto3 lists, reads and writes the small files (feeds, stedi's records, the lock); pyarrow's S3
filesystem carries the Parquet data files, for pyiceberg and — wrapped as an fsspec filesystem and
registered on every DuckDB connection — for DuckDB, which cannot load its httpfs extension here.

Credentials come from the usual AWS chain. A source is read with unsigned requests when
STEDI_S3_ANONYMOUS (or `anonymous` in stedi.toml) says so, or when the chain finds no credentials at
all, so a public bucket needs no set-up; a lake is always signed.

The write lock is an object created with a conditional put (`If-None-Match: *`): S3 creates it for
one writer only. It is best-effort: a process killed while holding it leaves the object behind (the
error names its holder and age; delete `<lake>/_stedi/lock` once that process is gone), and an
S3-compatible store that ignores conditional writes does not exclude anyone.
"""

from __future__ import annotations

import io
import json
import os
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from stedi.aws import INSTALL_HINT
from stedi.config import DEFAULT_REGION, Config, load_config
from stedi.errors import LakeBusyError, S3Error
from stedi.storage.base import FileChanged, FileInfo, SkipCallback, Storage

LOCK_POLL_SECONDS = 2.0
WHOLE_FILE_BYTES = 16 * 1024 * 1024
CACHED_BYTES = 256 * 1024 * 1024
NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
NO_BUCKET = {"NoSuchBucket"}
LOCK_TAKEN = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
NO_CREDENTIALS_HINT = (
    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a role; for a public bucket, STEDI_S3_ANONYMOUS=1"
)


def split_s3(location: str) -> tuple[str, str]:
    """`s3://bucket/some/key` as ('bucket', 'some/key')."""
    if not location.startswith("s3://"):
        raise S3Error(f"not an s3:// location: {location!r}")
    bucket, _, key = location[len("s3://") :].partition("/")
    if not bucket:
        raise S3Error(f"no bucket in {location!r}: write s3://bucket/prefix")
    return bucket, key.lstrip("/")


def _folder(key: str) -> str:
    key = key.strip("/")
    return f"{key}/" if key else ""


def _mtime_ns(modified: datetime) -> int:
    return int(modified.timestamp()) * 1_000_000_000 + modified.microsecond * 1000


def _code(error: Any) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class S3Storage(Storage):
    """Objects under `s3://bucket/prefix`, reached through boto3 and pyarrow's S3 filesystem.

    With `anonymous` None, the configuration decides; without a setting there, requests are unsigned
    only when the AWS chain finds no credentials. Raises S3Error when boto3 is not installed.
    """

    def __init__(self, root: str, anonymous: bool | None = None, config: Config | None = None) -> None:
        try:
            import boto3
        except ImportError:
            raise S3Error(INSTALL_HINT) from None
        self.config = config or load_config()
        self.bucket, key = split_s3(root)
        self.root = f"s3://{self.bucket}" + (f"/{key.strip('/')}" if key.strip("/") else "")
        self.endpoint = self.config.s3_endpoint
        self._session = boto3.session.Session()
        if anonymous is None:
            anonymous = self.config.anonymous
        if anonymous is None:  # no credentials anywhere: only a public bucket can answer
            anonymous = self._session.get_credentials() is None
        self.anonymous = anonymous

    # ---- clients ------------------------------------------------------------------------------
    def _boto_config(self, **extra: Any) -> Any:
        from botocore import UNSIGNED
        from botocore.config import Config as BotoConfig

        options: dict[str, Any] = {"retries": {"max_attempts": 4, "mode": "standard"}, **extra}
        if self.anonymous:
            options["signature_version"] = UNSIGNED
        if self.endpoint:
            options["s3"] = {"addressing_style": "path"}
        return BotoConfig(**options)

    @cached_property
    def region(self) -> str:
        """The configured region; else the bucket's own (asked once); else us-east-1."""
        configured = self.config.region or self._session.region_name
        if configured or self.endpoint:
            return configured or DEFAULT_REGION
        from botocore.exceptions import BotoCoreError, ClientError

        probe = self._session.client("s3", region_name=DEFAULT_REGION, config=self._boto_config(connect_timeout=10))
        try:
            headers = probe.head_bucket(Bucket=self.bucket)["ResponseMetadata"]["HTTPHeaders"]
        except ClientError as error:
            headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        except BotoCoreError:
            headers = {}
        return headers.get("x-amz-bucket-region") or DEFAULT_REGION

    @cached_property
    def client(self) -> Any:
        """The boto3 S3 client for this region, endpoint and signing, made once."""
        return self._session.client("s3", region_name=self.region, endpoint_url=self.endpoint, config=self._boto_config())

    @cached_property
    def arrow_filesystem(self) -> Any:
        """pyarrow's S3 filesystem for the same endpoint, region and signing (credentials: the AWS chain)."""
        from pyarrow import fs

        options: dict[str, Any] = {"region": self.region, "anonymous": self.anonymous}
        if self.endpoint:
            options["endpoint_override"] = self.endpoint
            options["scheme"] = "http" if self.endpoint.startswith("http://") else "https"
        return fs.S3FileSystem(**options)

    @cached_property
    def fsspec_filesystem(self) -> Any:
        """The same filesystem as fsspec sees it (protocol `s3`), for DuckDB's register_filesystem."""
        return _data_files_filesystem(self.arrow_filesystem)

    def arrow_file(self, location: str) -> tuple[str, Any]:
        """The object as pyarrow opens it: its `bucket/key` path and the S3 filesystem."""
        return location.removeprefix("s3://"), self.arrow_filesystem

    def iceberg_properties(self) -> dict[str, str]:
        """pyiceberg FileIO properties that reach the same S3."""
        properties = {"s3.region": self.region}
        if self.endpoint:
            properties["s3.endpoint"] = self.endpoint
        if self.anonymous:
            properties["s3.anonymous"] = "true"
        return properties

    @contextmanager
    def _calling(self, doing: str, location: str) -> Iterator[None]:
        """botocore's exceptions as one clear S3Error."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            yield
        except ClientError as error:
            code = _code(error)
            message = error.response.get("Error", {}).get("Message") or ""
            hint = ""
            if code in ("AccessDenied", "403", "Forbidden") and self.anonymous:
                hint = " (the request was unsigned: the bucket is not public, or set AWS credentials)"
            detail = f"{code}: {message}" if message and message != code else code
            raise S3Error(f"cannot {doing} {location}: {detail}{hint}") from None
        except NoCredentialsError:
            raise S3Error(f"cannot {doing} {location}: {NO_CREDENTIALS_HINT}") from None
        except BotoCoreError as error:
            raise S3Error(f"cannot {doing} {location}: {error}") from None

    # ---- Storage --------------------------------------------------------------------------------
    def uri(self, location: str) -> str:
        """The location itself: pyiceberg and DuckDB read s3:// URIs."""
        return location

    def exists(self, location: str) -> bool:
        """Whether an object has the location as its key, or any object is under it as a prefix.

        A missing bucket counts as nothing there; any other failure raises S3Error.
        """
        from botocore.exceptions import ClientError

        bucket, key = split_s3(location)
        if key and not key.endswith("/"):
            with self._calling("look up", location):
                try:
                    self.client.head_object(Bucket=bucket, Key=key)
                    return True
                except ClientError as error:
                    if _code(error) not in NOT_FOUND | NO_BUCKET:
                        raise
        return self.is_dir(location)

    def is_dir(self, location: str) -> bool:
        """Whether any object is under the location as a prefix.

        The bucket's root counts as a folder whenever the bucket exists; a missing bucket has none.
        """
        from botocore.exceptions import ClientError

        bucket, key = split_s3(location)
        with self._calling("list", location):
            try:
                found = self.client.list_objects_v2(Bucket=bucket, Prefix=_folder(key), MaxKeys=1)
            except ClientError as error:
                if _code(error) in NO_BUCKET:
                    return False
                raise
        return not key.strip("/") or found.get("KeyCount", 0) > 0

    def list_dir(self, location: str) -> list[str]:
        """Names of the objects and sub-prefixes directly under the prefix, sorted."""
        bucket, key = split_s3(location)
        prefix = _folder(key)
        names: set[str] = set()
        with self._calling("list", location):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
                names.update(p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", []))
                names.update(o["Key"][len(prefix) :] for o in page.get("Contents", []) if o["Key"] != prefix)
        return sorted(n for n in names if n)

    def walk_files(self, location: str, on_skipped: SkipCallback | None = None) -> Iterator[FileInfo]:
        """Every object under the prefix, in key order, without folder placeholders."""
        # Every object is a file with a UTF-8 key: S3 has nothing to skip.
        bucket, key = split_s3(location)
        with self._calling("list", location):
            pages = list(self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=_folder(key)))
        for page in pages:  # S3 lists keys in lexicographic order: a stable order
            for obj in page.get("Contents", []):
                if obj["Key"].endswith("/"):
                    continue  # a "folder" placeholder some tools create
                yield FileInfo(path=f"s3://{bucket}/{obj['Key']}", size=int(obj["Size"]), mtime_ns=_mtime_ns(obj["LastModified"]))

    def read_bytes(self, location: str) -> bytes:
        """The object's content."""
        return self.read_file(location)[0]

    def read_file(self, location: str) -> tuple[bytes, FileInfo]:
        """The object's content and date, read in one GET, so never a mix of two versions.

        Raises FileNotFoundError for a missing key and S3Error for any other failure.
        """
        from botocore.exceptions import ClientError

        bucket, key = split_s3(location)
        with self._calling("read", location):
            try:
                found = self.client.get_object(Bucket=bucket, Key=key)
                data = found["Body"].read()
            except ClientError as error:
                if _code(error) in NOT_FOUND:
                    raise FileNotFoundError(location) from None
                raise
        # One GET reads one version of an object, whole: its date is the date of these bytes.
        return data, FileInfo(location, len(data), _mtime_ns(found["LastModified"]))

    def read_range(self, location: str, start: int, end: int, expected: FileInfo) -> bytes:
        """Bytes [start, end) in one ranged GET, of the version with the size and date expected."""
        from botocore.exceptions import ClientError

        bucket, key = split_s3(location)
        with self._calling("read", location):
            try:
                found = self.client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}")
                data = found["Body"].read()
            except ClientError as error:
                if _code(error) in NOT_FOUND:
                    raise FileNotFoundError(location) from None
                raise
        unanswered = f"cannot read {location}: the endpoint did not answer with the byte range asked for"
        if "ContentRange" not in found:
            raise S3Error(unanswered)
        # A GET's date has whole seconds (a listing's may have milliseconds): an object rewritten
        # within the same second at the same size passes.
        total = found["ContentRange"].rpartition("/")[2]  # "*" when the endpoint does not say
        resized = total.isdigit() and int(total) != expected.size
        if resized or _mtime_ns(found["LastModified"]) // 1_000_000_000 != expected.mtime_ns // 1_000_000_000:
            raise FileChanged(location)
        if len(data) != end - start:
            raise S3Error(unanswered)
        return data

    def write_bytes(self, location: str, data: bytes, private: bool = False) -> None:
        """Write the object in one PUT, which S3 makes atomic; `private` changes nothing here."""
        # One PUT: readers see the old object or the new one, never a part. Objects are private
        # unless the bucket's policy says otherwise; `private` files (the lake's secret) need a
        # bucket that grants no public or broad read on the lake prefix.
        bucket, key = split_s3(location)
        with self._calling("write", location):
            self.client.put_object(Bucket=bucket, Key=key, Body=data)

    def delete(self, location: str) -> None:
        """Delete the object; S3 answers the same whether or not it existed."""
        bucket, key = split_s3(location)
        with self._calling("delete", location):
            self.client.delete_object(Bucket=bucket, Key=key)

    def make_dirs(self, location: str) -> None:
        """S3 has no folders: a prefix exists once an object is written under it."""

    # ---- the write lock ---------------------------------------------------------------------------
    def _lock_holder(self, bucket: str, key: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            held = json.loads(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())
            since = datetime.fromisoformat(held["acquired_at"])
            age = int((datetime.now(UTC) - since).total_seconds())
            return f"held by {held.get('host')} pid {held.get('pid')} for {age} s"
        except (BotoCoreError, ClientError, ValueError, KeyError, TypeError):
            return "holder unknown"

    @contextmanager
    def exclusive_lock(self, location: str, wait: bool) -> Iterator[None]:
        """Hold the lock object, created with a conditional put so one writer alone gets it.

        Without `wait`, raises LakeBusyError naming the holder and its age; with it, tries again
        every LOCK_POLL_SECONDS. On exit the object is deleted only if it still holds this writer's
        token. Best-effort: a killed process leaves the object behind (see the module docstring).
        """
        from botocore.exceptions import ClientError

        bucket, key = split_s3(location)
        token = uuid.uuid4().hex
        body = json.dumps(
            {
                "token": token,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "acquired_at": datetime.now(UTC).isoformat(),
            }
        ).encode()
        while True:
            with self._calling("lock", location):
                try:
                    self.client.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")
                    break
                except ClientError as error:
                    if _code(error) not in LOCK_TAKEN:
                        raise
            if not wait:
                raise LakeBusyError(
                    f"another stedi process is writing this lake ({self._lock_holder(bucket, key)}); try again when "
                    f"it has finished, or delete {location} if that process is gone"
                )
            time.sleep(LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            self._release(bucket, key, token)

    def _release(self, bucket: str, key: str, token: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            held = json.loads(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())
            if held.get("token") == token:  # never remove a lock someone else took after ours was removed
                self.client.delete_object(Bucket=bucket, Key=key)
        except (BotoCoreError, ClientError, ValueError):
            pass


def _data_files_filesystem(arrow_filesystem: Any) -> Any:
    """pyarrow's S3 filesystem as an fsspec one, remembering what it learnt about each file.

    DuckDB asks for a file's size, time and existence several times per read, and reads a Parquet
    file in several small ranges; S3 answers each with a request. A lake's data files are written
    once, under fresh names, and never changed, so the first answer stays true: a file's metadata is
    kept, and a small file (up to WHOLE_FILE_BYTES) is fetched whole, in one request, and kept in a
    bounded cache (CACHED_BYTES, least recently used first out; a file larger than the bound is not
    kept). It pays because one `stedi run` reads each data file many times over (every statement
    that scans a table reads its files again), and each of those reads would otherwise be another
    request to S3 for bytes already fetched (measured in bench/README.md, "The S3 read cache").
    A file this filesystem writes or deletes is forgotten; a file that does not exist is not remembered.
    """
    import threading

    from fsspec.implementations.arrow import ArrowFSWrapper
    from pyarrow.fs import FileType

    class DataFiles(ArrowFSWrapper):
        cachable = False  # one per lake storage, not shared through fsspec's instance cache

        def __init__(self, fs: Any) -> None:
            super().__init__(fs)
            self._known: dict[str, Any] = {}
            self._contents: OrderedDict[str, bytes] = OrderedDict()
            self._cached_bytes = 0
            self._guard = threading.Lock()  # DuckDB calls from several threads

        def _file_info(self, path: str) -> Any:
            path = self._strip_protocol(path)
            info = self._known.get(path)
            if info is None:
                [info] = self.fs.get_file_info([path])
                if info.type == FileType.File:
                    self._known[path] = info
            return info

        def _forget(self, path: str | None = None) -> None:
            with self._guard:
                if path is None:
                    self._known.clear()
                    self._contents.clear()
                    self._cached_bytes = 0
                    return
                self._known.pop(path, None)
                data = self._contents.pop(path, None)
                self._cached_bytes -= len(data) if data is not None else 0

        def _whole(self, path: str) -> bytes:
            with self._guard:
                data = self._contents.get(path)
                if data is not None:
                    self._contents.move_to_end(path)
                    return data
            with self.fs.open_input_stream(path, compression=None) as stream:
                data = stream.read()
            with self._guard:
                if path not in self._contents and len(data) <= CACHED_BYTES:
                    self._contents[path] = data
                    self._cached_bytes += len(data)
                while self._cached_bytes > CACHED_BYTES and self._contents:
                    _, dropped = self._contents.popitem(last=False)
                    self._cached_bytes -= len(dropped)
            return data

        def info(self, path: str, **kwargs: Any) -> dict:
            return self._make_entry(self._file_info(path))

        def modified(self, path: str) -> Any:
            return self._file_info(path).mtime

        def _open(self, path: str, mode: str = "rb", block_size: Any = None, seekable: bool = True, **kwargs: Any) -> Any:
            stripped = self._strip_protocol(path)
            if mode != "rb":
                self._forget(stripped)
            elif (info := self._file_info(path)).type == FileType.File and info.size <= WHOLE_FILE_BYTES:
                return io.BytesIO(self._whole(stripped))
            return super()._open(path, mode, block_size, seekable, **kwargs)

        def rm_file(self, path: str) -> None:
            self._forget(self._strip_protocol(path))
            super().rm_file(path)

        def rm(self, path: str, recursive: bool = False, maxdepth: Any = None) -> None:
            self._forget()
            super().rm(path, recursive, maxdepth)

        def mv(self, path1: str, path2: str, **kwargs: Any) -> None:
            self._forget()
            super().mv(path1, path2, **kwargs)

    return DataFiles(arrow_filesystem)
