"""What every `stedi` command shares, the `stedi aws` ones included: how it ends on an error or a
Ctrl-C, and the options that mean the same everywhere.

Each command's module is imported when the command runs, so that `stedi --help` does not load
pyiceberg, DuckDB or Spark.
"""

from __future__ import annotations

import logging
import signal
import traceback
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from stedi import display
from stedi.config import LAKE_ENV
from stedi.errors import InternalError, StediError, UserError

if TYPE_CHECKING:
    # The context a group is invoked with: typer's vendored click Context (not typer.Context, its
    # subclass for command callbacks), which typer does not re-export.
    from typer._click.core import Context as ClickContext

INTERRUPTED = "interrupted: nothing half-published; the lake lock is released"
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, as shells report a process stopped by Ctrl-C

log = logging.getLogger("stedi")


class CtrlC:
    """Whether Ctrl-C was pressed during the command. Libraries turn the KeyboardInterrupt it
    raises into their own errors (DuckDB: "Query interrupted"), so that is how stedi tells an
    interrupted command from a failed one."""

    pressed = False

    @classmethod
    def on_sigint(cls, signum, frame) -> None:
        """The SIGINT handler: on the first press only, note it and raise KeyboardInterrupt."""
        if cls.pressed:  # pressed again while the command unwinds: once is enough
            return
        cls.pressed = True
        raise KeyboardInterrupt


LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


class Debug:
    """Set by `stedi --debug`: every DEBUG log on stderr, and the traceback of an internal error.
    `stedi -v` shows stedi's own DEBUG logs only."""

    on = False

    @classmethod
    def enable(cls) -> None:
        """Turn debug mode on: DEBUG logs on stderr and tracebacks for internal errors."""
        cls.on = True
        logging.basicConfig(level=logging.DEBUG, format=LOG_FORMAT)

    @classmethod
    def verbose(cls) -> None:
        """stedi's DEBUG logs on stderr; the libraries stay at WARNING."""
        logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
        log.setLevel(logging.DEBUG)


def exit_code_of(error: BaseException) -> int:
    """Print what ended the command as one line on stderr, and return its exit code.

    Anything that is not a `StediError` is a bug of stedi or of a library. It is reported like an
    `InternalError`."""
    if isinstance(error, UserError):
        display.errors.print(display.safe(f"error: {error}"), style="red")
    elif isinstance(error, StediError) and not isinstance(error, InternalError):
        display.errors.print(display.safe(str(error)), style="red")
    else:
        what = str(error) if isinstance(error, StediError) else f"{type(error).__name__}: {error}"
        if Debug.on:
            display.errors.print(display.safe("".join(traceback.format_exception(error)).rstrip()))
        hint = "" if Debug.on else " (run with --debug for the traceback)"
        display.errors.print(display.safe(f"internal error: {what}{hint}"), style="red")
    return error.exit_code if isinstance(error, StediError) else InternalError.exit_code


class Commands(TyperGroup):
    """stedi's commands, each ended the same way (SPEC §11).

    Ctrl-C: one line and exit code 130, whatever the command was doing. Nothing is half-published,
    because every commit is one atomic Iceberg commit and the next ingest or run completes an
    interrupted one. The lock is released by the `with` block that holds it as the interrupt unwinds
    (and by the kernel when the process ends). An error: one line and the exit code of its kind
    (`stedi.errors`)."""

    def invoke(self, ctx: ClickContext):
        """Run the command with stedi's Ctrl-C handler, ending any error with its exit code.

        typer's own exits and usage errors pass through unchanged; the previous SIGINT handler
        is put back whatever happens.
        """
        CtrlC.pressed = False
        previous = signal.signal(signal.SIGINT, CtrlC.on_sigint)
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise  # typer's own: an exit code chosen by the command, or a usage mistake
        except (KeyboardInterrupt, Exception) as error:
            if CtrlC.pressed or isinstance(error, KeyboardInterrupt):
                display.errors.print(INTERRUPTED, style="yellow")
                raise typer.Exit(INTERRUPTED_EXIT_CODE) from None
            raise typer.Exit(exit_code_of(error)) from None
        finally:
            signal.signal(signal.SIGINT, previous)


def command_group(help: str, completion: bool = False) -> typer.Typer:
    """A Typer app of stedi commands; `completion` adds Typer's --install-completion and --show-completion."""
    return typer.Typer(cls=Commands, help=help, no_args_is_help=True, pretty_exceptions_enable=False, add_completion=completion)


LakeOption = Annotated[
    Optional[str],
    typer.Option(
        "--lake",
        envvar=LAKE_ENV,
        help="Lake root: a folder or s3://bucket/prefix (default ./lakehouse, or `lake` in stedi.toml).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
WaitOption = Annotated[bool, typer.Option("--wait", help="Wait for another writer instead of failing.")]
