"""S3 as a source: ingest from s3://, anonymous reads of a public bucket, the S3 lock, configuration.

Against moto's server on 127.0.0.1 (tests/aws_support.py), never AWS.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from stedi.cli import app
from stedi.config import load_config
from stedi.engines import open_engine
from stedi.errors import ConfigError, LakeBusyError
from stedi.ingest import ingest, landing_tables
from stedi.lake import Lake
from stedi.lines import cut
from stedi.query import query_lake
from stedi.storage import FileChanged, open_storage
from support.aws import Aws
from support.lakes import LakeHarness
from support.pieces import feed_hostile_files, landed

runner = CliRunner()
# The public STEDI starter bucket's layout: customers/ (plural), no landing/ level.
PUBLIC_LAYOUT = {"customer/landing": "customers", "accelerometer/landing": "accelerometer", "step_trainer/landing": "step_trainer"}


def stedi(*args: str):
    return runner.invoke(app, list(args))


def landing_counts(lake: Lake) -> dict[str, int]:
    return {name: query_lake(lake, f"SELECT count(*) FROM {name}")[1][0][0] for name in landing_tables()}


def test_ingest_from_an_s3_source_lands_what_the_same_local_files_land(aws: Aws, feeds, tmp_path):
    aws.bucket("stedi-source")
    aws.upload(feeds, "stedi-source", "starter", PUBLIC_LAYOUT)
    engine = open_engine("duckdb")

    from_s3 = Lake(str(tmp_path / "lake-s3"))
    with from_s3.writing():
        report = ingest(from_s3, "s3://stedi-source/starter", engine)
    local = Lake(str(tmp_path / "lake-local"))
    with local.writing():
        expected = ingest(local, str(feeds), engine)

    for feed, counts in report.feeds.items():
        want = expected.feeds[feed]
        assert (counts.files_new, counts.lines, counts.accepted, counts.rejected) == (want.files_new, want.lines, want.accepted, want.rejected), feed
    assert report.new_files > 0 and report.feeds["customer"].accepted > 0
    assert landing_counts(from_s3) == landing_counts(local)
    sources = query_lake(from_s3, "SELECT DISTINCT _source_file FROM customer_landing ORDER BY 1")[1]
    assert sources and all(row[0].startswith("s3://stedi-source/starter/customers/") for row in sources)

    # Incremental and idempotent on S3 too: nothing new, nothing added; a new object adds its lines.
    with from_s3.writing():
        again = ingest(from_s3, "s3://stedi-source/starter", engine)
    assert again.new_files == 0
    assert sum(f.files_skipped for f in again.feeds.values()) == report.new_files
    aws.s3.put_object(
        Bucket="stedi-source", Key="starter/step_trainer/late.json", Body=b'{"sensorReadingTime": 1, "serialNumber": "x", "distanceFromObject": 2}\nnot json\n'
    )
    result = stedi("ingest", "s3://stedi-source/starter", "--lake", str(tmp_path / "lake-s3"), "--json")
    assert result.exit_code == 0, result.output
    late = json.loads(result.stdout)["feeds"]["step_trainer"]
    assert (late["files_new"], late["accepted"], late["rejected"]) == (1, 1, 1)


def test_public_bucket_is_read_with_unsigned_requests(aws: Aws, feeds, tmp_path, monkeypatch):
    aws.bucket("stedi-public", public=True)
    aws.upload(feeds, "stedi-public", "", PUBLIC_LAYOUT)
    # No credentials anywhere (environment, files, instance metadata): a signed request cannot even be
    # made, so every request that succeeds below was unsigned.
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("STEDI_S3_ANONYMOUS", "1")
    storage = open_storage("s3://stedi-public")
    assert storage.anonymous
    assert storage.list_dir("s3://stedi-public") == ["accelerometer", "customers", "step_trainer"]

    result = stedi("ingest", "s3://stedi-public/", "--lake", str(tmp_path / "lake"), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert all(report["feeds"][feed]["accepted"] > 0 for feed in ("customer", "accelerometer", "step_trainer"))

    # Without the setting, a chain with no credentials falls back to unsigned requests as well.
    monkeypatch.delenv("STEDI_S3_ANONYMOUS")
    assert open_storage("s3://stedi-public").anonymous
    # With credentials, requests are signed unless anonymity is asked for.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert not open_storage("s3://stedi-public").anonymous
    monkeypatch.setenv("STEDI_S3_ANONYMOUS", "true")
    assert open_storage("s3://stedi-public").anonymous
    # A lake is never anonymous: it is written.
    assert not open_storage("s3://stedi-public/lake", for_lake=True).anonymous


def test_s3_user_errors_are_one_clear_line(aws: Aws, tmp_path):
    aws.bucket("stedi-empty")
    for source, message in [
        ("s3://no-such-bucket/starter", "source not found: s3://no-such-bucket/starter"),
        ("s3://stedi-empty/starter", "source not found"),
        ("gs://elsewhere/starter", "unsupported location scheme 'gs://'"),
    ]:
        result = stedi("ingest", source, "--lake", str(tmp_path / "lake"))
        assert result.exit_code == 2 and message in " ".join(result.stderr.split()), result.output
    result = stedi("status", "--lake", "s3://stedi-empty/lake", "--json")
    assert result.exit_code == 2 and "no lake at s3://stedi-empty/lake" in " ".join(result.stderr.split())


def test_the_lock_on_s3_is_one_conditional_object(aws: Aws):
    aws.bucket("stedi-lake")
    first = open_storage("s3://stedi-lake/lake", for_lake=True)
    second = open_storage("s3://stedi-lake/lake", for_lake=True)
    lock = "s3://stedi-lake/lake/_stedi/lock"
    with first.exclusive_lock(lock, wait=False):
        assert aws.keys("stedi-lake") == ["lake/_stedi/lock"]
        with pytest.raises(LakeBusyError, match=r"another stedi process is writing this lake \(held by .* pid \d+"):
            with second.exclusive_lock(lock, wait=False):
                pass
    assert aws.keys("stedi-lake") == []
    with second.exclusive_lock(lock, wait=False):
        pass
    assert aws.keys("stedi-lake") == []


def test_configuration_from_stedi_toml_and_the_environment(aws: Aws, tmp_path, monkeypatch):
    (tmp_path / "work" / "stedi.toml").write_text(
        'lake = "s3://toml-bucket/lake"\ncatalog = "glue"\n[aws]\nregion = "eu-west-1"\nendpoint = "http://127.0.0.1:1"\nanonymous = true\n'
    )
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name)
    config = load_config()
    assert (config.lake, config.catalog, config.region, config.s3_endpoint, config.glue_endpoint, config.anonymous) == (
        "s3://toml-bucket/lake",
        "glue",
        "eu-west-1",
        "http://127.0.0.1:1",
        "http://127.0.0.1:1",
        True,
    )
    assert Lake().location == "s3://toml-bucket/lake"

    monkeypatch.setenv("STEDI_LAKE", "s3://env-bucket/lake")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    monkeypatch.setenv("STEDI_S3_ENDPOINT", "http://127.0.0.1:2")
    monkeypatch.setenv("STEDI_S3_ANONYMOUS", "0")
    config = load_config()
    assert (config.lake, config.region, config.s3_endpoint, config.glue_endpoint, config.anonymous) == (
        "s3://env-bucket/lake",
        "us-west-2",
        "http://127.0.0.1:2",
        "http://127.0.0.1:1",
        False,
    )

    monkeypatch.setenv("STEDI_CATALOG", "hive")
    with pytest.raises(ConfigError, match="unknown catalog 'hive'"):
        load_config()
    monkeypatch.setenv("STEDI_CATALOG", "glue")
    result = stedi("status", "--lake", str(tmp_path / "local-lake"))
    assert result.exit_code == 2 and "the Glue catalog needs a lake on S3" in " ".join(result.stderr.split())


def test_the_data_files_read_cache_serves_what_was_last_written_and_keeps_to_its_bound(aws: Aws, monkeypatch):
    import duckdb

    from stedi.storage import s3 as s3_storage

    aws.bucket("stedi-lake")

    class Counting:  # pyarrow's filesystem, counting whole-file reads (each one a GET)
        def __init__(self, inner):
            self.inner, self.read = inner, []

        def open_input_stream(self, path, **kwargs):
            self.read.append(path.rsplit("/", 1)[-1])
            return self.inner.open_input_stream(path, **kwargs)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    def data_files():
        files = open_storage("s3://stedi-lake/lake", for_lake=True).fsspec_filesystem
        files.fs = Counting(files.fs)
        return files

    def kept(files) -> list[str]:
        assert files._cached_bytes == sum(len(data) for data in files._contents.values()) <= s3_storage.CACHED_BYTES
        return [path.rsplit("/", 1)[-1] for path in files._contents]

    # Through DuckDB, as a run reads and writes: a file read (and so cached), rewritten, deleted and
    # written again reads back as its newest content, never as a stale copy.
    files = data_files()
    conn = duckdb.connect()
    conn.register_filesystem(files)
    path = "s3://stedi-lake/lake/warehouse/t/data/part.parquet"
    for n in (1, 2):
        conn.execute(f"COPY (SELECT {n} AS n, repeat('x', {n} * 100) AS pad) TO '{path}' (FORMAT parquet)")
        assert conn.execute(f"SELECT n, length(pad) FROM read_parquet('{path}')").fetchall() == [(n, n * 100)]
        assert conn.execute(f"SELECT n FROM read_parquet('{path}')").fetchall() == [(n,)]
    files.rm_file(path)
    conn.execute(f"COPY (SELECT 3 AS n) TO '{path}' (FORMAT parquet)")
    assert conn.execute(f"SELECT n FROM read_parquet('{path}')").fetchall() == [(3,)]
    files.rm("stedi-lake/lake/warehouse", recursive=True)
    assert kept(files) == []
    conn.execute(f"COPY (SELECT 4 AS n) TO '{path}' (FORMAT parquet)")
    assert conn.execute(f"SELECT n FROM read_parquet('{path}')").fetchall() == [(4,)]

    # Through fsspec: a rewrite is read back; the cache holds at most CACHED_BYTES, least recently
    # used out first, and a file larger than the bound is read but not kept.
    monkeypatch.setattr(s3_storage, "CACHED_BYTES", 3000)
    files = data_files()
    bodies = {name: name.encode() * 1000 for name in "abcd"} | {"big": b"B" * 3001}
    for name, body in bodies.items():
        with files.open(f"stedi-lake/lake/{name}", "wb") as out:
            out.write(body)

    def read(name: str) -> bytes:
        with files.open(f"stedi-lake/lake/{name}", "rb") as f:
            return f.read()

    for name in ["a", "b", "c", "a"]:
        assert read(name) == bodies[name]
    assert files.fs.read == ["a", "b", "c"] and kept(files) == ["b", "c", "a"]
    assert read("d") == bodies["d"]
    assert kept(files) == ["c", "a", "d"]  # b, least recently used, made room
    assert read("big") == bodies["big"] and kept(files) == ["c", "a", "d"]
    files.fs.read.clear()
    assert [read(name) for name in ("a", "c", "d", "b")] == [bodies[n] for n in "acdb"]
    assert files.fs.read == ["b"] and kept(files) == ["c", "d", "b"]  # a was the least recently used
    with files.open("stedi-lake/lake/a", "wb") as out:
        out.write(b"new a")
    assert read("a") == b"new a" and "a" in files.fs.read


def test_a_large_object_lands_in_ranged_reads_of_one_version(aws: Aws, tmp_path, monkeypatch):
    """Pieces of a large object are ranged GETs; they land what the same file lands locally, and a
    piece of an object that was replaced since it was cut is refused."""
    monkeypatch.setattr("stedi.lines.PIECE_BYTES", 200)
    aws.bucket("stedi-source")
    local = LakeHarness(tmp_path / "local")
    feed_hostile_files(local)
    for path in local.source.rglob("*.json*"):
        aws.s3.put_object(Bucket="stedi-source", Key=f"feeds/{path.relative_to(local.source)}", Body=path.read_bytes())
    local.ingest()
    on_s3 = LakeHarness(tmp_path / "s3")
    on_s3.source = "s3://stedi-source/feeds"
    on_s3.ingest()
    assert landed(on_s3, "s3://stedi-source/feeds") == landed(local)

    storage = open_storage("s3://stedi-source/feeds")
    info = next(i for i in storage.walk_files("s3://stedi-source/feeds") if i.path.endswith("hostile.json"))
    pieces = cut(storage, info)
    assert len(pieces) > 1
    aws.s3.put_object(Bucket="stedi-source", Key="feeds/accelerometer/hostile.json", Body=b"replaced\n" * 100)
    with pytest.raises(FileChanged):
        storage.read_range(info.path, pieces[1].start, pieces[1].end, info)
