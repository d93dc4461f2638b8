"""The scale-out engine: the same landing contract and the same model SQL, run on Apache Spark.

A local session is started on first use, or the engine runs on a session it is given (a cluster's,
a Glue job's). Models are written once, in DuckDB's dialect, and transpiled with sqlglot. Landing
reproduces what DuckDB's JSON reader accepts with Spark SQL functions only — no Python per row — so
both engines land the same rows, with the same rejection reasons and the same `_extra` text.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator, Mapping
from functools import cache, partial
from pathlib import Path

import pyarrow as pa
import sqlglot
from sqlglot import exp

from stedi.contract import Feed, Field, Kind
from stedi.engines.base import Engine, EngineUnavailable, LandedFile, LandingBatch, TableInput
from stedi.lines import numbered_lines
from stedi.models import RUN_SETTINGS
from stedi.storage import open_storage

try:
    from pyspark import StorageLevel
    from pyspark.errors import PySparkRuntimeError
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
except ImportError:  # an optional extra: SparkEngine() says how to install it
    SparkSession = None

INSTALL_HINT = "the Spark engine needs pyspark: pip install 'stedi[spark]'"
JAVA_HINT = "the Spark engine needs Java 17 (or newer): install it and set JAVA_HOME, or put `java` on PATH"

LOCAL_SESSION_CONFIG = {
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # In local mode the driver's heap is the executors' too: it caches a batch of lines while landing it.
    "spark.driver.memory": os.environ.get("STEDI_SPARK_DRIVER_MEMORY", "4g"),
    # Spark's lower() follows the JVM's default locale beyond ASCII (Turkish turns I into ı).
    "spark.driver.extraJavaOptions": "-Duser.language=en -Duser.country=US",
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


# DuckDB's trim() strips Unicode space separators (Zs) and its lower() maps one letter to one letter;
# Spark's trim() strips ASCII spaces only, and its lower() turns İ into two letters and a word-final
# Σ into ς. Customers are matched by lower(trim(email)): both engines must agree on it.
EDGE_SPACES = r"\A\p{Zs}++|(?<!\p{Zs})\p{Zs}++\z"
TRAILING_SPACES = r"(?<!\p{Zs})\p{Zs}++\z"
LOWER_AS_DUCKDB = (("İ", "i"), ("Σ", "σ"))  # replaced before Spark's lower()


@cache
def spark_sql(duckdb_sql: str) -> str:
    """A model's SELECT, from DuckDB's dialect to Spark's, with trim() and lower() as DuckDB's."""
    tree = sqlglot.parse_one(duckdb_sql, read="duckdb")
    for trim in list(tree.find_all(exp.Trim)):
        if trim.args.get("expression") is None and trim.args.get("position") is None:
            trim.replace(
                exp.RegexpReplace(this=trim.this, expression=exp.Literal.string(EDGE_SPACES), replacement=exp.Literal.string(""))
            )
    for lower in list(tree.find_all(exp.Lower)):
        text = lower.this
        for letter, replacement in LOWER_AS_DUCKDB:
            text = exp.func("replace", text, exp.Literal.string(letter), exp.Literal.string(replacement))
        lower.replace(exp.Lower(this=text))
    return tree.sql(dialect="spark")


class SparkEngine(Engine):
    name = "spark"

    def __init__(self, session: SparkSession | None = None) -> None:
        if SparkSession is None:
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
    def land(self, batch: LandingBatch, accepted_path: str, rejected_path: str) -> dict[str, LandedFile]:
        spark = self.session
        files = spark.createDataFrame(list(enumerate(batch.files)), "_file INT, _source_file STRING")
        # Executors read the files themselves, one task per file, so no batch passes through the driver.
        lines = (
            files.repartition(len(batch.files))
            .mapInArrow(partial(_read_on_executor, batch.source), SPARK_LINES_SCHEMA)
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        lines_view = f"stedi_lines_{uuid.uuid4().hex}"
        lines.createOrReplaceTempView(lines_view)
        try:
            sources = (
                lines.where("_source_line IS NULL")
                .select("_file", F.col("sha256").alias("_source_sha256"), "problem")
                .join(files, "_file")
                .collect()
            )
            lineage = [
                F.col("_source_file"),
                F.col("_source_line"),
                F.col("_source_sha256"),
                F.lit(batch.ingested_at).cast("timestamp").alias("_ingested_at"),
                F.lit(batch.run_id).alias("_ingest_run"),
            ]
            by_file = F.broadcast(
                spark.createDataFrame([(r._file, r._source_file, r._source_sha256) for r in sources],
                                      "_file INT, _source_file STRING, _source_sha256 STRING")
            )
            landed = spark.sql(landing_sql(batch.feed, lines_view)).join(by_file, "_file").persist()
            try:
                fields = [F.col(value_column(f)).alias(f.name) for f in batch.feed.fields]
                accepted = landed.where(F.col("reason").isNull()).select(*fields, "_extra", *lineage)
                rejected = landed.where(F.col("reason").isNotNull()).select(
                    F.expr(without_trailing_spaces("raw")).alias("raw"), "reason", *lineage
                )
                self._write_one_parquet(accepted, accepted_path)
                self._write_one_parquet(rejected, rejected_path)
                non_blank = per_file(landed.where(F.col("_source_line").isNotNull()))
            finally:
                landed.unpersist()
        finally:
            lines.unpersist()
            spark.catalog.dropTempView(lines_view)
        # Counted again from the files just written, so conservation is checked on what will be published.
        accepted_counts = per_file(spark.read.parquet(spark_location(accepted_path)))
        rejected_counts = per_file(spark.read.parquet(spark_location(rejected_path)).where(F.col("_source_line").isNotNull()))
        return {
            row._source_file: LandedFile(
                row._source_sha256,
                row.problem,
                non_blank.get(row._source_file, 0),
                accepted_counts.get(row._source_file, 0),
                rejected_counts.get(row._source_file, 0),
            )
            for row in sources
        }

    # ---- models -------------------------------------------------------------------------------
    def build(self, sql: str, inputs: Mapping[str, TableInput], settings: pa.Table, out_path: str) -> int:
        spark = self.session
        views = [*inputs, RUN_SETTINGS]
        try:
            for name, table in inputs.items():
                self._table_frame(table).createOrReplaceTempView(name)
            spark.createDataFrame(settings).createOrReplaceTempView(RUN_SETTINGS)
            return self._write_one_parquet(spark.sql(spark_sql(sql)), out_path)
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


def per_file(frame: DataFrame) -> dict[str, int]:
    return {row[0]: row[1] for row in frame.groupBy("_source_file").count().collect()}


# The lines that `stedi.lines.numbered_lines` makes, as Spark types (Spark's strings are not large).
SPARK_LINES_SCHEMA = "_file INT, _source_line BIGINT, line STRING, blank BOOLEAN, problem STRING, sha256 STRING"


def _read_on_executor(source: str, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    storage = open_storage(source)
    for batch in batches:
        for index, path in zip(batch.column("_file").to_pylist(), batch.column("_source_file").to_pylist()):
            table = numbered_lines(index, storage.read_bytes(path), gzipped=path.lower().endswith(".gz"))
            yield from table.cast(table.schema.set(2, pa.field("line", pa.string()))).to_batches()


# ---- landing: DuckDB's JSON reading, rebuilt from Spark SQL functions ----------------------------
# DuckDB reads JSON with yyjson, which also accepts trailing commas and NaN/Infinity literals, while
# Spark's JSON functions ignore text after the first value and keep lone surrogates. So lines are
# read with regular expressions over JSON's tokens, and every value is typed and rendered from its
# token, the way DuckDB types and renders it. A flat object (the feeds' records) is recognized and
# split into members by a regular expression; any other line is cut into tokens and its structure
# checked on the sequence of their kinds. The expressions are SQL text generated from the contract,
# as `stedi.engines.duckdb.landing_sql` is.

_WS = r"[ \t\n\r]*+"
_STRING_TOKEN = (
    r'"[^"\\\x00-\x1f]*+(?:\\(?:["\\/bfnrt]|u(?:'
    r"[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"  # a surrogate pair, never half of one
    r"|(?![dD][89a-fA-F])[0-9a-fA-F]{4}"
    r'))[^"\\\x00-\x1f]*+)*+"'
)
_NUMBER_TOKEN = r"-?(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?(?:[eE][+-]?[0-9]++)?"
_NON_FINITE_TOKEN = r"-?(?i:nan|infinity|inf)"
_SCALAR_TOKEN = f"(?:{_STRING_TOKEN}|{_NUMBER_TOKEN}|{_NON_FINITE_TOKEN}|true|false|null)"
# Any other character but whitespace is a token of its own, which no JSON text holds.
TOKEN = "|".join((_SCALAR_TOKEN, r"[{}\[\]:,]", r"[^ \t\n\r]"))

# An object whose values are all scalars: group 1 is a member's key, group 2 its value.
MEMBER = f"({_STRING_TOKEN}){_WS}:{_WS}({_SCALAR_TOKEN})"
FLAT_OBJECT = rf"\A{_WS}\{{{_WS}(?:{MEMBER}{_WS}(?:,{_WS}{MEMBER}{_WS})*+(?:,{_WS})?)?\}}{_WS}\z"

# Token kinds, one character each: punctuation stands for itself, s = string, v = other value, x = stray.
# An array or object holding no other container is replaced by a value until the text is one value.
_INNERMOST_CONTAINER = r"\[(?:[sv](?:,[sv])*+,?)?\]|\{(?:s:[sv](?:,s:[sv])*+,?)?\}"

_INTEGER = r"\A-?(?:0|[1-9][0-9]*)\z"
_NUMBER = r"\A-?(?:[0-9]|(?i:nan|inf))"  # a JSON number or a NaN/Infinity literal
_ENDS_IN_DIGIT = r"[0-9]\z"  # not a NaN/Infinity literal
_NAN = r"(?i)nan\z"
_TRAILING_ZEROS = r"0+\z"
_BACKSLASH = "chr(92)"
_INFINITY = "CAST('Infinity' AS DOUBLE)"


def literal(text: str) -> str:
    """A Spark SQL string literal, raw so that backslashes reach regular expressions untouched
    whatever the session's escapedStringLiterals setting."""
    if "'" in text:
        raise ValueError(f"a raw SQL literal cannot hold a quote: {text!r}")
    return f"r'{text}'"


def let(value: str, name: str, body: str) -> str:
    """`body` with `value` bound to `name`: computed once, however often `body` refers to it."""
    return f"get(transform(array({value}), {name} -> {body}), 0)"


def without_trailing_spaces(text: str) -> str:
    """DuckDB's rtrim(): it removes trailing space separators (Unicode Zs), not tabs or line ends."""
    return f"regexp_replace({text}, {literal(TRAILING_SPACES)}, '')"


def duckdb_lower(text: str) -> str:
    """DuckDB's lower() (see LOWER_AS_DUCKDB)."""
    for letter, replacement in LOWER_AS_DUCKDB:
        text = f"replace({text}, {literal(letter)}, {literal(replacement)})"
    return f"lower({text})"


def count_chars(text: str, chars: str) -> str:
    return f"(length({text}) - length(translate({text}, {literal(chars)}, '')))"


# ---- the structure of a line that is not a flat object ------------------------------------------------
def token_kind(token: str) -> str:
    # Strays are single characters; the only single-character values are digits.
    return (
        f"CASE WHEN length({token}) > 1 THEN CASE WHEN startswith({token}, '\"') THEN 's' ELSE 'v' END "
        f"WHEN {token} IN ('{{', '}}', '[', ']', ':', ',') THEN {token} "
        f"WHEN {token} BETWEEN '0' AND '9' THEN 'v' ELSE 'x' END"
    )


def is_valid_json(kinds: str) -> str:
    """Whether the token kinds form exactly one JSON value (trailing commas allowed, as in DuckDB)."""
    rounds = f"array_repeat(0, {count_chars(kinds, '[{')})"  # nesting never goes deeper than the openers
    reduce = f"(reduced, _round) -> regexp_replace(reduced, {literal(_INNERMOST_CONTAINER)}, 'v')"
    return f"aggregate({rounds}, {kinds}, {reduce}) IN ('s', 'v')"


def top_level_positions(tokens: str, kinds: str) -> str:
    """Indexes of the tokens directly inside the outermost container."""
    before = f"substr({kinds}, 1, i)"
    return f"filter(sequence(0, size({tokens}) - 1), i -> {count_chars(before, '[{')} - {count_chars(before, ']}')} = 1)"


# ---- one value, from its first token ---------------------------------------------------------------
def is_string(token: str) -> str:
    return f"startswith({token}, '\"')"


def is_number(token: str) -> str:
    return f"{token} RLIKE {literal(_NUMBER)}"


def is_integer(token: str) -> str:
    """What DuckDB reads as an integer (BIGINT or UBIGINT): a JSON integer that fits 64 bits."""
    # Up to 18 digits always fit; only longer ones are parsed as decimals to compare.
    wide = f"try_cast({token} AS DECIMAL(20,0))"
    fits = f"length({token}) <= 18 OR {wide} BETWEEN -9223372036854775808BD AND 18446744073709551615BD"
    return f"coalesce({token} RLIKE {literal(_INTEGER)} AND ({fits}), false)"


def json_type_name(token: str) -> str:
    return (
        f"CASE WHEN {is_string(token)} THEN 'a string' WHEN {token} = '[' THEN 'an array' "
        f"WHEN {token} IN ('true', 'false') THEN 'a boolean' WHEN {is_integer(token)} THEN 'an integer' "
        f"WHEN {is_number(token)} THEN 'a number' "
        # As DuckDB names them: an object, and a JSON null too (its type falls through to that name).
        f"ELSE 'an object' END"
    )


def string_value(token: str) -> str:
    """The text of a string token, escapes decoded."""
    decoded = f"get(from_json(concat('[', {token}, ']'), 'array<string>'), 0)"
    return f"CASE WHEN contains({token}, {_BACKSLASH}) THEN {decoded} ELSE substr({token}, 2, length({token}) - 2) END"


def double_value(token: str) -> str:
    """The double of a number token (see is_number)."""
    return (
        f"CASE WHEN {token} RLIKE {literal(_ENDS_IN_DIGIT)} THEN try_cast({token} AS DOUBLE) "
        f"WHEN {token} RLIKE {literal(_NAN)} THEN CAST('NaN' AS DOUBLE) "
        f"WHEN startswith({token}, '-') THEN -{_INFINITY} ELSE {_INFINITY} END"
    )


def whole_number_value(token: str) -> str:
    """An integer, or a number with an integral value such as 1.6e12, that fits a BIGINT."""
    number = double_value(token)  # written out, not bound with let(): a lambda would slow every row down
    fits = f"{number} % 1 = 0 AND {number} >= -9.223372036854775808E18D AND {number} < 9.223372036854775808E18D"
    return (
        f"CASE WHEN {is_integer(token)} THEN try_cast({token} AS BIGINT) "
        f"WHEN {is_number(token)} AND {fits} THEN CAST({number} AS BIGINT) END"
    )


# ---- values written back as JSON text, as DuckDB writes them -------------------------------------------
def render_string(token: str) -> str:
    # Without escapes a token is already written as DuckDB writes it; with them, it is decoded and
    # encoded again (Spark's JSON writer escapes exactly the characters DuckDB's does).
    encoded = let(f"to_json(array({string_value(token)}))", "encoded", "substr(encoded, 2, length(encoded) - 2)")
    return f"CASE WHEN contains({token}, {_BACKSLASH}) THEN {encoded} ELSE {token} END"


def render_number(token: str) -> str:
    # Non-finite literals, integers beyond 64 bits and numbers beyond a double are kept as written.
    as_written = f"NOT {token} RLIKE {literal(_ENDS_IN_DIGIT)} OR {token} RLIKE {literal(_INTEGER)}"
    finite = f"CASE WHEN abs(number) = {_INFINITY} THEN {token} ELSE {render_double('number')} END"
    double = let(f"try_cast({token} AS DOUBLE)", "number", finite)
    return (
        f"CASE WHEN {is_integer(token)} THEN CAST(try_cast({token} AS DECIMAL(20,0)) AS STRING) "
        f"WHEN {as_written} THEN {token} ELSE {double} END"
    )


def render_double(number: str) -> str:
    """A finite double as DuckDB writes it: the shortest digits that read back as the same double,
    in fixed notation from 1e-6 to below 1e21 (with ".0" when integral), else as in 1.5e-7."""
    candidates = f"transform(sequence(0, 16), precision -> format_string(concat('%.', precision, 'e'), abs({number})))"
    shortest = f"get(filter({candidates}, text -> try_cast(text AS DOUBLE) = abs({number})), 0)"
    mantissa_digits = "regexp_replace(substring_index(shortest, 'e', 1), '[.]', '')"
    parts = (  # 1.2500e+03 -> digits 125, exponent 3
        f"named_struct('digits', regexp_replace({mantissa_digits}, {literal(_TRAILING_ZEROS)}, ''), "
        "'exponent', try_cast(substring_index(shortest, 'e', -1) AS INT))"
    )
    digits, exponent, count = "parts.digits", "parts.exponent", "length(parts.digits)"
    fixed = (
        f"CASE WHEN {exponent} >= {count} - 1 THEN concat({digits}, repeat('0', {exponent} - {count} + 1), '.0') "
        f"WHEN {exponent} >= 0 THEN concat(substr({digits}, 1, {exponent} + 1), '.', substr({digits}, {exponent} + 2)) "
        f"ELSE concat('0.', repeat('0', -{exponent} - 1), {digits}) END"
    )
    scientific = (
        f"concat(substr({digits}, 1, 1), CASE WHEN {count} > 1 THEN concat('.', substr({digits}, 2)) ELSE '' END, "
        f"'e', CAST({exponent} AS STRING))"
    )
    layout = f"CASE WHEN {exponent} BETWEEN -6 AND 20 THEN {fixed} ELSE {scientific} END"
    return (
        f"CASE WHEN {number} = 0 THEN CASE WHEN startswith(CAST({number} AS STRING), '-') THEN '-0.0' ELSE '0.0' END "
        f"ELSE concat(CASE WHEN {number} < 0 THEN '-' ELSE '' END, {let(shortest, 'shortest', let(parts, 'parts', layout))}) END"
    )


def render_value(tokens: str) -> str:
    """A value's tokens as compact JSON text, without trailing commas."""
    kept = f"filter({tokens}, (token, at) -> NOT (token = ',' AND coalesce(get({tokens}, at + 1) IN (']', '}}'), false)))"
    rendered = (
        f"CASE WHEN {is_string('token')} THEN {render_string('token')} "
        f"WHEN {is_number('token')} THEN {render_number('token')} ELSE token END"
    )
    return f"array_join(transform({kept}, token -> {rendered}), '')"


# ---- the contract ----------------------------------------------------------------------------------
EXPECTED = {Kind.STRING: "a string", Kind.STRING_OR_NUMBER: "a string or a number", Kind.DOUBLE: "a number"}
SQL_TYPES = {"string": "STRING", "long": "BIGINT", "double": "DOUBLE"}


def token_column(field: Field) -> str:
    return f"_token_{field.key}"


def value_column(field: Field) -> str:
    return f"_value_{field.key}"


def is_present(field: Field) -> str:
    """JSON null counts as absent."""
    return f"coalesce({token_column(field)} <> 'null', false)"


def field_value(field: Field) -> str:
    """The field's typed value, from the first token of its JSON value; NULL when it does not fit."""
    token = token_column(field)
    if field.kind is Kind.STRING:
        value = f"CASE WHEN {is_string(token)} THEN {string_value(token)} END"
    elif field.kind is Kind.STRING_OR_NUMBER:
        value = f"CASE WHEN {is_string(token)} THEN {string_value(token)} WHEN {is_number(token)} THEN {render_number(token)} END"
    elif field.kind is Kind.DOUBLE:
        value = f"CASE WHEN {is_number(token)} THEN {double_value(token)} END"
    else:
        value = whole_number_value(token)
    return f"CAST({value} AS {SQL_TYPES[field.kind.column_type]})"


def field_problem(field: Field) -> str:
    expected = EXPECTED.get(field.kind, "a whole number")
    wrong = (
        f"WHEN {is_present(field)} AND {value_column(field)} IS NULL THEN "
        f"concat({literal(f'field {field.name}: expected {expected}, got ')}, {json_type_name(token_column(field))})"
    )
    missing = f"WHEN NOT {is_present(field)} THEN {literal(f'missing required field: {field.name}')} " if field.required else ""
    return f"CASE {missing}{wrong} END"


def landing_sql(feed: Feed, lines: str) -> str:
    """Parse, type-check and route every non-blank line of the view `lines`: DuckDB's `landing_sql`,
    in Spark SQL. Each step is a CTE, so Spark computes it once however often later steps use it.

    JSON null counts as absent. Field names match case-insensitively; a record whose names collide
    once lower-cased is ambiguous and quarantined.
    """
    problems = [field_problem(f) for f in feed.fields]
    if feed.required_one_of:
        by_key = {f.key: f for f in feed.fields}
        absent = " AND ".join(f"NOT {is_present(by_key[name.lower()])}" for name in feed.required_one_of)
        problems.append(f"CASE WHEN {absent} THEN {literal('missing required field: ' + ' or '.join(feed.required_one_of))} END")
    contract_keys = ", ".join(literal(f.key) for f in feed.fields)
    extra_value = render_value("CASE WHEN _flat THEN array(get(_firsts, member)) ELSE get(_values, member) END")
    extra_members = f"filter(sequence(0, size(_names) - 1), member -> NOT get(_names, member) IN ({contract_keys}))"
    return f"""
WITH kept AS (
    SELECT _file, _source_line, problem, line AS raw
    FROM {lines}
    WHERE problem IS NOT NULL OR (_source_line IS NOT NULL AND NOT blank)
), flat AS (
    SELECT *, raw RLIKE {literal(FLAT_OBJECT)} AS _flat FROM kept
), tokens AS (
    SELECT *, CASE WHEN NOT _flat THEN regexp_extract_all(raw, {literal(TOKEN)}, 0) END AS _tokens FROM flat
), kinds AS (
    SELECT *, array_join(transform(_tokens, t -> {token_kind('t')}), '') AS _kinds FROM tokens
), checked AS (
    SELECT *, _flat OR {is_valid_json('_kinds')} AS _valid, CASE WHEN _flat THEN '{{' ELSE get(_tokens, 0) END AS _first
    FROM kinds
), nested AS (
    SELECT *, CASE WHEN NOT _flat AND _valid AND _first = '{{' THEN {top_level_positions('_tokens', '_kinds')} END AS _positions
    FROM checked
), delimited AS (  -- where the members of a nested object's top level start (their keys) and end (, or }})
    SELECT *,
           filter(_positions, i -> substr(_kinds, i + 1, 2) = 's:') AS _key_positions,
           filter(_positions, i -> substr(_kinds, i + 1, 1) IN (',', '}}')) AS _end_positions
    FROM nested
), members AS (  -- parallel arrays: key tokens, and value tokens (a flat object's values are one token each)
    SELECT *,
           CASE WHEN _flat THEN regexp_extract_all(raw, {literal(MEMBER)}, 1)
                ELSE transform(_key_positions, i -> get(_tokens, i)) END AS _keys,
           CASE WHEN NOT _flat THEN transform(_key_positions,
                    k -> slice(_tokens, k + 3, get(filter(_end_positions, e -> e > k), 0) - k - 2)) END AS _values
    FROM delimited
), firsts AS (
    SELECT *,
           CASE WHEN _flat THEN regexp_extract_all(raw, {literal(MEMBER)}, 2)
                ELSE transform(_values, v -> get(v, 0)) END AS _firsts,
           transform(_keys, k -> {duckdb_lower(string_value('k'))}) AS _names
    FROM members
), found AS (
    SELECT *, {", ".join(f"get(_firsts, array_position(_names, {literal(f.key)}) - 1) AS {token_column(f)}" for f in feed.fields)}
    FROM firsts
), typed AS (
    SELECT *, {", ".join(f"{field_value(f)} AS {value_column(f)}" for f in feed.fields)}
    FROM found
)
SELECT _file, _source_line, raw, {", ".join(value_column(f) for f in feed.fields)},
    CASE WHEN problem IS NOT NULL THEN problem
         WHEN NOT _valid THEN 'not valid JSON'
         WHEN _first <> '{{' THEN concat('not a JSON object: the line holds ', {json_type_name('_first')})
         WHEN size(array_distinct(_names)) < size(_names) THEN 'field names collide when compared case-insensitively'
         ELSE nullif(concat_ws('; ', {', '.join(problems)}), '')
    END AS reason,
    CASE WHEN size(array_except(_names, array({contract_keys}))) > 0
         THEN concat('{{', array_join(transform({extra_members},
                  member -> concat({render_string('get(_keys, member)')}, ':', {extra_value})), ','), '}}')
    END AS _extra
FROM typed
"""
