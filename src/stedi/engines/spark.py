"""The scale-out engine: the same landing contract and the same model SQL, run on Apache Spark.

A local session is started on first use, or the engine runs on a session it is given (a cluster's,
a Glue job's). Models are written once, in DuckDB's dialect, and transpiled with sqlglot.

Landing is one task per feed file: the executor reads the file and judges its lines with the
landing SQL of `stedi.engines.duckdb` (DuckDB embedded in the Python worker, one thread per task).
The contract is implemented once, so both engines land the same rows with the same rejection
reasons and the same `_extra` text; Spark distributes the files and writes the tables.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import fields, replace
from functools import cache, partial
from pathlib import Path

import pyarrow as pa
import sqlglot
from sqlglot import exp

from stedi.engines.base import Engine, Landed, LandedFile, LandingBatch, ModelBuild, ReadCallback, merge_landed
from stedi.engines.duckdb import land_batch
from stedi.errors import EngineUnavailable, SourceError
from stedi.identities import LOWER_AS_DUCKDB, SPACE_SEPARATORS
from stedi.models import RUN_SETTINGS
from stedi.sql import TableInput

try:
    from pyspark.errors import PySparkRuntimeError
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql import types as T
    from pyspark.sql.pandas.types import from_arrow_schema

    PYSPARK_INSTALLED = True
except ImportError:  # an optional extra: SparkEngine() says how to install it
    PYSPARK_INSTALLED = False

INSTALL_HINT = "the Spark engine needs pyspark: pip install 'stedi[spark]'"
JAVA_HINT = "the Spark engine needs Java 17 (or newer): install it and set JAVA_HOME, or put `java` on PATH"

LOCAL_SESSION_CONFIG = {
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # In local mode the driver's heap is also the executors', where the models' joins and aggregations run.
    "spark.driver.memory": os.environ.get("STEDI_SPARK_DRIVER_MEMORY", "4g"),
    # Spark's lower() follows the JVM's default locale beyond ASCII (Turkish turns I into ı); and
    # Spark's log4j noise stays out of stderr (log4j2.properties beside this module).
    "spark.driver.extraJavaOptions": f"-Duser.language=en -Duser.country=US -Dlog4j2.configurationFile={Path(__file__).with_name('log4j2.properties')}",
}
# Needed on every session, given or local: Spark's default INT96 timestamps cannot be read by pyiceberg.
WRITE_CONFIG = {"spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS"}


def java_problem() -> str | None:
    """Why no JVM can start here, checked the way Spark's launcher looks for one; None if one can."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        if not any((Path(java_home) / "bin" / name).is_file() for name in ("java", "java.exe")):
            return f"{JAVA_HINT} (JAVA_HOME={java_home} has no bin/java)"
        return None
    return None if shutil.which("java") else JAVA_HINT


def spark_location(path: str) -> str:
    """A path as Spark and Hadoop resolve it: a local path stays local even when the cluster's
    default filesystem is another one."""
    return path if "://" in path else "file://" + os.path.abspath(path)


def spark_type(kind: str) -> T.DataType:
    """The Spark type of a lake column type (the keys of `stedi.lake.ICEBERG_TYPES`)."""
    return {
        "string": T.StringType(),
        "long": T.LongType(),
        "double": T.DoubleType(),
        "timestamp": T.TimestampNTZType(),
        "timestamptz": T.TimestampType(),
    }[kind]


# Customers are matched by DuckDB's lower(trim(email)) (`stedi.identities.normalize`): Spark's trim()
# strips ASCII spaces only, and its lower() turns İ into two letters and a word-final Σ into ς, so
# both are rewritten to agree with DuckDB's.
@cache
def spark_sql(duckdb_sql: str) -> str:
    """A model's SELECT, from DuckDB's dialect to Spark's, with trim() and lower() as DuckDB's."""
    tree = sqlglot.parse_one(duckdb_sql, read="duckdb")
    for trim in list(tree.find_all(exp.Trim)):
        if trim.args.get("expression") is None and trim.args.get("position") is None:
            trim.set("expression", exp.Literal.string(SPACE_SEPARATORS))
            trim.set("position", "BOTH")
    for lower in list(tree.find_all(exp.Lower)):
        text = lower.this
        for letter, replacement in LOWER_AS_DUCKDB:
            text = exp.func("replace", text, exp.Literal.string(letter), exp.Literal.string(replacement))
        lower.replace(exp.Lower(this=text))
    return tree.sql(dialect="spark")


class SparkEngine(Engine):
    """The Spark engine, on a session it is given or on a local one it starts when first used.

    Raises EngineUnavailable when pyspark is not installed, or, without a given session, when no
    Java can start. A given session is set to write Parquet timestamps pyiceberg can read.
    """

    name = "spark"

    def __init__(self, session: SparkSession | None = None) -> None:
        if not PYSPARK_INSTALLED:
            raise EngineUnavailable(INSTALL_HINT)
        if session is None and (problem := java_problem()):
            raise EngineUnavailable(problem)
        if session is not None:
            for key, value in WRITE_CONFIG.items():
                session.conf.set(key, value)
        self._session = session

    @property
    def session(self) -> SparkSession:
        """The session given, or a local one started on first use."""
        if self._session is None:
            # Executors read feed files with stedi's own reader (mapInArrow): their Python must be this one.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            builder = SparkSession.builder.master("local[*]").appName("stedi")
            for key, value in {**LOCAL_SESSION_CONFIG, **WRITE_CONFIG}.items():
                builder = builder.config(key, value)
            try:
                self._session = builder.getOrCreate()
            except PySparkRuntimeError as error:  # the JVM did not start: most often no (or an old) Java
                raise EngineUnavailable(f"starting a local Spark session failed ({error}); {JAVA_HINT}") from None
            self._session.sparkContext.setLogLevel("ERROR")
        return self._session

    # ---- landing ------------------------------------------------------------------------------
    def land(self, batch: LandingBatch, accepted_path: str, rejected_path: str, on_read: ReadCallback | None = None) -> Landed:
        """Each task lands a share of the batch's pieces on an executor, as the DuckDB engine lands a
        batch, into a Parquet file pair of its own: only per-file counts pass through the driver
        (and no read progress: it is reported per batch)."""
        spark = self.session
        shares = min(len(batch.files), spark.sparkContext.defaultParallelism)
        pieces = list(range(len(batch.files)))
        tasks = [(pieces[task::shares], numbered(accepted_path, task), numbered(rejected_path, task)) for task in range(shares)]
        one_per_partition = spark.sparkContext.parallelize(tasks, shares)
        frame = spark.createDataFrame(one_per_partition, "pieces ARRAY<INT>, accepted STRING, rejected STRING")
        landed = frame.mapInArrow(partial(_land_on_executor, batch), from_arrow_schema(LANDED_FILE)).collect()
        if failures := [row.error for row in landed if row.error]:
            raise SourceError(failures[0])
        files: dict[str, LandedFile] = {}
        for row in landed:  # two tasks may land pieces of the same file
            merge_landed(files, {row.source: LandedFile(**{fact.name: row[fact.name] for fact in fields(LandedFile)})})
        return Landed(
            files,
            [accepted for _, accepted, _ in tasks],
            [rejected for _, _, rejected in tasks],
        )

    # ---- models -------------------------------------------------------------------------------
    def build(self, job: ModelBuild) -> int:
        """Run the model's SQL, transpiled to Spark's dialect, and write one Parquet file.

        The inputs, `run_settings`, the given tables and the stages are temporary views, dropped afterwards whatever
        happens; Spark plans the stages and `sql` as one query. `scratch` and `storage` are unused.
        """
        # Spark spills where its session's spark.local.dir says, and reaches S3 through its own
        # filesystems: a cluster's own business.
        spark = self.session
        given = {RUN_SETTINGS: job.settings, **job.given}
        views = [*job.inputs, *given, *job.stages]
        try:
            for name, table in job.inputs.items():
                self._table_frame(table).createOrReplaceTempView(name)
            for name, values in given.items():
                spark.createDataFrame(values).createOrReplaceTempView(name)
            for name, stage in job.stages.items():
                spark.sql(spark_sql(stage)).createOrReplaceTempView(name)
            return self._write_one_parquet(spark.sql(spark_sql(job.sql)), job.out_path)
        finally:
            for name in views:
                spark.catalog.dropTempView(name)

    def _table_frame(self, table: TableInput) -> DataFrame:
        """A table with exactly its columns, even when it has no file yet (as DuckDB's relation_sql)."""
        schema = T.StructType([T.StructField(name, spark_type(kind)) for name, kind in table.columns])
        if not table.files:
            return self.session.createDataFrame([], schema)
        # Read with the table's schema: columns match by name, and one missing from an older file is NULL.
        return self.session.read.schema(schema).parquet(*(spark_location(f) for f in table.files))

    # ---- output -------------------------------------------------------------------------------
    def _write_one_parquet(self, frame: DataFrame, out_path: str) -> int:
        """Write `frame` as the single Parquet file `out_path`; returns its row count.

        Spark writes a folder of part files: one part is written into a staging folder beside
        `out_path`, moved into place, and the folder removed.
        """
        spark = self.session
        target = spark_location(out_path)
        staging = target + ".spark-staging"
        frame.coalesce(1).write.mode("overwrite").option("compression", "zstd").parquet(staging)
        assert spark._jvm is not None  # set for as long as the session's JVM gateway is up
        hadoop = spark._jvm.org.apache.hadoop.fs  # Hadoop's filesystems reach every location Spark writes to
        filesystem = hadoop.Path(staging).getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
        if filesystem.getScheme() == "file":
            # The checksummed local filesystem moves a hidden .crc file along with the part; the raw
            # one moves just the Parquet file, so the table's data folder holds nothing else.
            filesystem = filesystem.getRawFileSystem()
        parts = [s.getPath() for s in filesystem.listStatus(hadoop.Path(staging)) if s.getPath().getName().startswith("part-")]
        if len(parts) != 1 or not filesystem.rename(parts[0], hadoop.Path(target)):
            raise RuntimeError(f"Spark did not leave exactly one Parquet file to move to {out_path}")
        filesystem.delete(hadoop.Path(staging), True)
        return spark.read.parquet(target).count()


# What a landing task returns per feed file, or the one error that stopped it (a file it could not read).
LANDED_FILE = pa.schema(
    [
        ("source", pa.string()),
        ("sha256", pa.string()),
        ("size", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("problem", pa.string()),
        ("non_blank", pa.int64()),
        ("accepted", pa.int64()),
        ("rejected", pa.int64()),
        ("error", pa.string()),
    ]
)


def numbered(path: str, task: int) -> str:
    """The data file a landing task writes, named after the one the batch was given."""
    return f"{path.removesuffix('.parquet')}-{task:05d}.parquet"


def _land_on_executor(batch: LandingBatch, tasks: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for task in tasks:
        for pieces, accepted, rejected in zip(*(task.column(name).to_pylist() for name in ("pieces", "accepted", "rejected"))):
            share = replace(batch, files=tuple(batch.files[piece] for piece in pieces), scratch=None)
            try:
                landed = land_batch(share, accepted, rejected, threads=1)
            except SourceError as error:  # raised again on the driver: a Python worker's error would be a traceback
                yield pa.RecordBatch.from_pylist([{"error": str(error)}], schema=LANDED_FILE)
                continue
            rows = [{"source": source, **vars(facts)} for source, facts in landed.items()]
            yield pa.RecordBatch.from_pylist(rows, schema=LANDED_FILE)
