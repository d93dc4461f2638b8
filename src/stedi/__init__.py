"""stedi: the STEDI lakehouse — raw sensor feeds into privacy-safe training data.

`stedi.open(location)` opens a lake for reading from Python (`stedi.api`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stedi.api import Lakehouse

__version__ = "0.1.0"  # the package's version (pyproject.toml reads it from here)


def open(location: str | None = None) -> Lakehouse:  # noqa: A001  (stedi.open, as the spec names it)
    """The lake at `location` (a folder or s3://bucket/prefix; default as for the CLI: STEDI_LAKE,
    stedi.toml, ./lakehouse), opened for reading. Raises LakeError when there is no lake there."""
    from stedi.api import Lakehouse  # deferred, so that `import stedi` stays cheap for the CLI

    return Lakehouse(location)
