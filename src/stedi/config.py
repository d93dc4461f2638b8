"""Where the lake is and how to reach AWS: environment variables first, then `stedi.toml`.

The file is `./stedi.toml` (the working directory), or the one `STEDI_CONFIG` names:

    lake = "s3://my-bucket/stedi"     # like STEDI_LAKE
    engine = "spark"                   # duckdb | spark, like STEDI_ENGINE; --engine wins
    consent_scope = "all"              # since-consent | all; --consent-scope wins
    catalog = "glue"                   # glue | sql, like STEDI_CATALOG
    # catalog_uri = "postgresql+psycopg://..."   # a SQL catalog elsewhere, like STEDI_CATALOG_URI
    # secret_file = "~/.config/stedi/lake.key"   # the lake secret outside the lake, like STEDI_SECRET_FILE

    [aws]
    region = "eu-west-1"               # like AWS_REGION
    endpoint = "http://127.0.0.1:5000" # S3 and Glue, like AWS_ENDPOINT_URL
    # s3_endpoint / glue_endpoint: one service only, like STEDI_S3_ENDPOINT / STEDI_GLUE_ENDPOINT
    anonymous = false                  # unsigned S3 reads of sources, like STEDI_S3_ANONYMOUS

An environment variable always wins over the file. Credentials are never read from here: they come
from the usual AWS chain (environment, ~/.aws, SSO, instance or task role).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from stedi.errors import ConfigError

CONFIG_ENV = "STEDI_CONFIG"
LAKE_ENV = "STEDI_LAKE"
DEFAULT_LAKE = "./lakehouse"
# The choices a user makes on the command line, here so that `stedi --help` can name them cheaply.
CONSENT_SCOPES = ("since-consent", "all")  # which readings of a consenting customer count (SPEC §4)
DEFAULT_SCOPE = "since-consent"
DEFAULT_ENGINE = "duckdb"
EXPORT_FORMATS = ("parquet", "csv")
CONFIG_FILE = "stedi.toml"
CATALOG_KINDS = ("sql", "glue")
DEFAULT_REGION = "us-east-1"

# The keys stedi.toml may hold: any other is a typo, refused rather than silently ignored.
KNOWN_KEYS = ("lake", "engine", "consent_scope", "catalog", "catalog_uri", "secret_file", "aws")
KNOWN_AWS_KEYS = ("region", "endpoint", "s3_endpoint", "glue_endpoint", "anonymous")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Config:
    """The settings in force, each from its environment variable or else from stedi.toml.

    A field left None means "not set": the code that reads it picks the default.
    """

    lake: str | None = None
    engine: str | None = None  # None: DEFAULT_ENGINE
    consent_scope: str | None = None  # None: the lake's own setting (stedi.run.consent_scope_of)
    catalog: str | None = None  # None: glue for an s3:// lake, sql otherwise
    catalog_uri: str | None = None  # a SQLAlchemy URL for the SQL catalog; default <lake>/catalog.db
    secret_file: str | None = None  # the lake secret's file when it is kept outside the lake (stedi.secret)
    region: str | None = None
    s3_endpoint: str | None = None
    glue_endpoint: str | None = None
    anonymous: bool | None = None  # None: unsigned only when the AWS chain finds no credentials
    source: str = ""  # where the file part came from, for messages

    def catalog_for(self, lake_location: str) -> str:
        """The lake's catalog kind: the one set, else glue for an s3:// lake and sql otherwise."""
        if self.catalog is not None:
            return self.catalog
        return "glue" if is_s3(lake_location) else "sql"


def lake_location(location: str | None) -> str:
    """The lake a command works on: the one it was given, else STEDI_LAKE, stedi.toml, ./lakehouse."""
    return location or os.environ.get(LAKE_ENV) or load_config().lake or DEFAULT_LAKE


def engine_name(requested: str | None) -> str:
    """The engine a command runs on: the one asked for, else STEDI_ENGINE, stedi.toml, duckdb."""
    return requested or load_config().engine or DEFAULT_ENGINE


def consent_scope_requested(requested: str | None) -> str | None:
    """The consent scope asked for on the command line, else in stedi.toml; None keeps the lake's."""
    return requested or load_config().consent_scope


def is_s3(location: str) -> bool:
    """Whether a location is on S3 (an s3:// URI)."""
    return location.startswith("s3://")


def _flag(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false (1/0), not {value!r}")


def _read_file() -> tuple[dict, str]:
    named = os.environ.get(CONFIG_ENV)
    path = Path(named) if named else Path.cwd() / CONFIG_FILE
    if not path.is_file():
        if named:
            raise ConfigError(f"{CONFIG_ENV}={named}: no such file")
        return {}, ""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")), str(path)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None


def _refuse_unknown_keys(table: dict, known: tuple[str, ...], source: str, section: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        names = ", ".join(repr(key) for key in unknown)
        raise ConfigError(f"{source}: unknown {section}key {names}: the known ones are {', '.join(known)}")


def load_config() -> Config:
    """The configuration in force now (read afresh: it is small, and tests change the environment)."""
    data, source = _read_file()
    aws = data.get("aws", {})
    if not isinstance(aws, dict):
        raise ConfigError(f"{source}: [aws] must be a table")
    _refuse_unknown_keys(data, KNOWN_KEYS, source, "")
    _refuse_unknown_keys(aws, KNOWN_AWS_KEYS, source, "[aws] ")
    env = os.environ.get

    def first(*values: object) -> str | None:
        return next((str(v) for v in values if v not in (None, "")), None)

    catalog = first(env("STEDI_CATALOG"), data.get("catalog"))
    if catalog is not None:
        catalog = catalog.lower()
        if catalog not in CATALOG_KINDS:
            raise ConfigError(f"unknown catalog '{catalog}': choose one of {', '.join(CATALOG_KINDS)}")
    anonymous_env = env("STEDI_S3_ANONYMOUS")
    if anonymous_env is not None and anonymous_env.strip() != "":
        anonymous: bool | None = _flag(anonymous_env, "STEDI_S3_ANONYMOUS")
    elif "anonymous" in aws:
        anonymous = _flag(aws["anonymous"], f"{source} [aws] anonymous")
    else:
        anonymous = None
    common_endpoint = env("AWS_ENDPOINT_URL")
    return Config(
        lake=first(env("STEDI_LAKE"), data.get("lake")),
        engine=first(env("STEDI_ENGINE"), data.get("engine")),
        consent_scope=first(data.get("consent_scope")),
        catalog=catalog,
        catalog_uri=first(env("STEDI_CATALOG_URI"), data.get("catalog_uri")),
        secret_file=first(env("STEDI_SECRET_FILE"), data.get("secret_file")),
        region=first(env("AWS_REGION"), env("AWS_DEFAULT_REGION"), aws.get("region")),
        s3_endpoint=first(env("STEDI_S3_ENDPOINT"), env("AWS_ENDPOINT_URL_S3"), common_endpoint, aws.get("s3_endpoint"), aws.get("endpoint")),
        glue_endpoint=first(env("STEDI_GLUE_ENDPOINT"), env("AWS_ENDPOINT_URL_GLUE"), common_endpoint, aws.get("glue_endpoint"), aws.get("endpoint")),
        anonymous=anonymous,
        source=source,
    )
