"""dbt's graph selectors over the model graph: which models a `stedi run --select/--exclude` builds.

`MODEL` is that model alone, `+MODEL` it and every model it is built from, `MODEL+` it and every
model built from it, `+MODEL+` both. Several selectors add up; `--exclude` takes models away
with the same syntax. The graph is the one the run order comes from (each model's `reads`).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from stedi.errors import ModelError
from stedi.models import Model, downstream_of, upstream_of


def _matches(selector: str, models: tuple[Model, ...]) -> set[str]:
    name = selector.strip().removeprefix("+").removesuffix("+")
    names = [m.name for m in models]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f": did you mean '{close[0]}'?" if close else f"; the models are {', '.join(sorted(names))}"
        raise ModelError(f"no model '{name}' to select{hint}")
    chosen = {name}
    if selector.strip().startswith("+"):
        chosen |= upstream_of(name, models) & set(names)  # landing tables are ingested, not built
    if selector.strip().endswith("+"):
        chosen |= downstream_of(name, models)
    return chosen


def select(models: tuple[Model, ...], selectors: Sequence[str] = (), exclude: Sequence[str] = ()) -> set[str]:
    """The names of the models to build: those the selectors pick (all, when there are none), less
    those the exclusions pick. Raises ModelError for a name that is not a model."""
    chosen = set().union(*(_matches(s, models) for s in selectors)) if selectors else {m.name for m in models}
    return chosen - set().union(*(_matches(s, models) for s in exclude))
