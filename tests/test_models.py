"""Model definitions: a mistake in a model or its checks is one clear error before anything runs."""

from __future__ import annotations

import dataclasses

import pytest
from typer.testing import CliRunner

from stedi import run as run_module
from stedi.checks import validate_checks
from stedi.cli import app
from stedi.errors import ModelError
from stedi.lake import Lake
from stedi.models import CheckSpec, load_models, run_order, tables_read
from support.lakes import write_feed_file


def with_check(model_name: str, kind: str, params: dict) -> tuple:
    return tuple(dataclasses.replace(m, checks=(*m.checks, CheckSpec(kind, params, "error"))) if m.name == model_name else m for m in load_models())


def with_sql(model_name: str, sql: str) -> tuple:
    return tuple(dataclasses.replace(m, sql=sql, reads=tables_read(sql)) if m.name == model_name else m for m in load_models())


# (what is wrong, the models, what the error says)
MISTAKES = [
    ("a table nobody builds", with_sql("customers_curated", "SELECT * FROM nowhere"), "model customers_curated reads unknown tables: nowhere"),
    (
        "an unknown kind of key in rows_of",
        tuple(dataclasses.replace(m, rows_of={"household": "email"}) if m.name == "customer_trusted" else m for m in load_models()),
        "model customer_trusted: unknown kind of key in rows_of: household (known: customer, customer_key, serial)",
    ),
    ("a cycle", with_sql("customer_trusted", "SELECT * FROM customers_curated"), "models read each other in a cycle: customer_trusted, customers_curated"),
    (
        "an unknown check",
        with_check("customer_trusted", "sorted", {"column": "email"}),
        "unknown check 'sorted' on customer_trusted: known checks are not_null, unique,",
    ),
    (
        "a parameter the check does not take",
        with_check("customer_trusted", "not_null", {"column": "email", "strict": True}),
        "check not_null on customer_trusted: unexpected parameter 'strict'",
    ),
    (
        "a parameter the check needs",
        with_check("customer_trusted", "references", {"column": "email"}),
        "check references on customer_trusted: missing parameter 'table'",
    ),
    (
        "a check that reads a table built after it",
        with_check("accelerometer_trusted", "references", {"column": "user", "table": "customers_curated", "key": "email"}),
        "check references(user, customers_curated, email) on accelerometer_trusted reads customers_curated, which accelerometer_trusted is not built from",
    ),
]


@pytest.mark.parametrize("models, message", [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_model_mistakes(models, message):
    with pytest.raises(ModelError) as raised:
        run_order(models)
        validate_checks(models)
    assert message in str(raised.value)


def test_the_shipped_models_are_valid():
    models = load_models()
    order = [m.name for m in run_order(models)]
    validate_checks(models)
    assert order.index("customer_trusted") < order.index("accelerometer_trusted") < order.index("machine_learning_curated")


def test_a_model_mistake_stops_a_run_before_it_ingests(tmp_path, monkeypatch):
    write_feed_file(tmp_path / "src", "customer/c.json", [{"email": "a@x.com", "shareWithResearchAsOfDate": 1}])
    monkeypatch.setattr(run_module, "load_models", lambda: MISTAKES[-1][1])
    result = CliRunner().invoke(app, ["run", str(tmp_path / "src"), "--lake", str(tmp_path / "lake")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert " ".join(result.stderr.split()).startswith(
        "error: check references(user, customers_curated, email) on accelerometer_trusted reads customers_curated"
    )
    assert not Lake(str(tmp_path / "lake")).has_table("customer_landing")
