"""Every error stedi raises on purpose, in one hierarchy, and the exit code each ends a command with.

- `UserError`: something the user can fix (a path, a setting, a model, an AWS permission). The CLI
  prints it as one line and exits with 2.
- `GateFailure`: the data failed a quality gate. The run published what passed; exit code 1.
- `InternalError`: stedi broke a promise of its own (rows were lost between a file and the table).
  The CLI prints one line and exits with 3. With `--debug` it also prints the traceback. An
  unexpected exception from a library is treated the same way.

This module imports nothing of stedi, so every layer can raise these errors.
"""

from __future__ import annotations


class StediError(Exception):
    """The base of every error stedi raises on purpose."""

    exit_code = 3


class UserError(StediError):
    """A mistake the user can fix: one clear line, exit code 2, never a traceback."""

    exit_code = 2


class GateFailure(StediError):
    """A table failed a blocking quality check. Its previous snapshot stays live."""

    exit_code = 1


class InternalError(StediError):
    """stedi broke one of its own invariants: a bug to report, not a mistake of the user."""

    exit_code = 3


# ---- user errors, by the layer that raises them ------------------------------------------------
class ConfigError(UserError):
    """stedi.toml or an environment variable holds something stedi cannot use."""


class SourceError(UserError):
    """A source folder or feed file cannot be read as the feed contract requires."""


class LakeError(UserError):
    """A problem with the lake: a wrong path, an unwritable folder, a missing table."""


class ExpiredSnapshotError(LakeError):
    """A time-travel or export asks for a snapshot that is no longer retained."""


class LakeBusyError(UserError):
    """Another process is writing to the lake (`--wait` waits for it)."""


class SecretError(UserError):
    """The lake's key is missing, unreadable or not the one the lake was made with."""


class ModelError(UserError):
    """A model or one of its checks is defined wrongly. Nothing runs until it is fixed."""


class EngineUnavailable(UserError):
    """The engine asked for cannot run here: not installed, no Java, or an unknown name."""


class QueryError(UserError):
    """A query is not a read-only SELECT over the lake's tables, or DuckDB refused it."""


class ExportError(UserError):
    """The training data cannot be exported as asked."""


class ErasureError(UserError):
    """An erasure request cannot be carried out as given."""


class AwsError(UserError):
    """An AWS problem a user can fix: no credentials, no such bucket, access denied, an unreachable endpoint."""


class S3Error(AwsError):
    """S3 refused a read or a write."""


class DeployError(AwsError):
    """The Glue job cannot be deployed as asked."""


# ---- internal errors ---------------------------------------------------------------------------
class ConservationError(InternalError):
    """Lines were lost or made up between a feed file and its landing and quarantine tables."""
