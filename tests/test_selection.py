"""`stedi run --select/--exclude`: dbt's graph selectors over the models' derived graph, as a table of
selectors in, models out (the graph is the one the run order comes from)."""

from __future__ import annotations

import pytest

from stedi.errors import ModelError
from stedi.models import load_models
from stedi.models.selection import select

ALL = {"customer_trusted", "serial_number_owners", "accelerometer_trusted", "customers_curated", "step_trainer_trusted", "machine_learning_curated"}

CASES = [
    # (select, exclude, models built)
    ([], [], ALL),
    (["customer_trusted"], [], {"customer_trusted"}),
    (["customers_curated"], [], {"customers_curated"}),
    (["+customers_curated"], [], {"customers_curated", "accelerometer_trusted", "customer_trusted", "serial_number_owners"}),
    (["step_trainer_trusted+"], [], {"step_trainer_trusted", "machine_learning_curated"}),
    (["customer_trusted+"], [], ALL),
    (["+machine_learning_curated"], [], ALL),
    (["+step_trainer_trusted+"], [], ALL),
    (["accelerometer_trusted+"], [], {"accelerometer_trusted", "customers_curated", "step_trainer_trusted", "machine_learning_curated"}),
    (["customer_trusted", "machine_learning_curated"], [], {"customer_trusted", "machine_learning_curated"}),
    ([], ["machine_learning_curated"], ALL - {"machine_learning_curated"}),
    ([], ["step_trainer_trusted+"], ALL - {"step_trainer_trusted", "machine_learning_curated"}),
    (["+customers_curated"], ["customer_trusted"], {"customers_curated", "accelerometer_trusted", "serial_number_owners"}),
    (["customer_trusted"], ["customer_trusted"], set()),
]


@pytest.mark.parametrize("selectors, excluded, expected", CASES)
def test_selectors(selectors, excluded, expected):
    assert select(load_models(), selectors, excluded) == expected


@pytest.mark.parametrize(
    "selectors, excluded, message",
    [
        (["customer_trustd"], [], "no model 'customer_trustd' to select: did you mean 'customer_trusted'?"),
        ([], ["+nothing_like_it"], "no model 'nothing_like_it' to select; the models are accelerometer_trusted"),
        (["customer_landing+"], [], "did you mean"),  # a landing table is ingested, not selected
    ],
)
def test_unknown_models_are_named(selectors, excluded, message):
    with pytest.raises(ModelError, match=message.replace("?", r"\?")):
        select(load_models(), selectors, excluded)
