"""stedi.toml as a user writes it (what it sets, the mistakes it refuses with one clear line), and `stedi --version`."""

from __future__ import annotations

import json

import pytest

from stedi.config import load_config
from stedi.errors import ConfigError

REFUSED = [
    pytest.param(
        'lak = "./elsewhere"\n',
        "unknown key 'lak': the known ones are lake, engine, consent_scope, catalog, catalog_uri, secret_file, aws",
        id="a-typo-of-lake",
    ),
    pytest.param('lake = "./l"\nengine_x = 1\nzz = 2\n', "unknown key 'engine_x', 'zz'", id="every-unknown-key-named"),
    pytest.param('[aws]\nregoin = "eu-west-1"\n', r"unknown \[aws\] key 'regoin': the known ones are region, endpoint", id="a-typo-in-aws"),
    pytest.param('aws = "eu-west-1"\n', r"\[aws\] must be a table", id="aws-not-a-table"),
    pytest.param('catalog = "hive"\n', "unknown catalog 'hive': choose one of sql, glue", id="an-unknown-catalog"),
    pytest.param("lake = \n", "cannot read", id="not-toml"),
]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    for name in ("STEDI_CONFIG", "STEDI_LAKE", "STEDI_CATALOG", "STEDI_ENGINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("text, message", REFUSED)
def test_stedi_toml_refuses(workdir, text, message):
    (workdir / "stedi.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config()


def test_stedi_toml_with_known_keys_only_is_read(workdir):
    (workdir / "stedi.toml").write_text('lake = "./mine"\ncatalog = "sql"\n[aws]\nregion = "eu-west-1"\n')
    config = load_config()
    assert (config.lake, config.catalog, config.region) == ("./mine", "sql", "eu-west-1")


def test_a_command_under_a_mistyped_stedi_toml_exits_2_with_one_line(workdir):
    from typer.testing import CliRunner

    from stedi.cli import app

    (workdir / "stedi.toml").write_text('lak = "./elsewhere"\n')
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 2
    assert "unknown key 'lak'" in result.output and "Traceback" not in result.output
    assert not (workdir / "elsewhere").exists() and not (workdir / "lakehouse").exists()


def test_stedi_version_prints_the_installed_version_and_exits_0():
    from importlib.metadata import version

    from typer.testing import CliRunner

    from stedi.cli import app

    result = CliRunner().invoke(app, ["--version"])
    assert (result.exit_code, result.output.strip()) == (0, f"stedi {version('stedi')}")


@pytest.mark.parametrize(
    "toml, flags, expected",
    [
        ("", [], ("duckdb", "since-consent")),
        ('consent_scope = "all"\n', [], ("duckdb", "all")),
        ('consent_scope = "all"\n', ["--consent-scope", "since-consent"], ("duckdb", "since-consent")),  # the flag wins
        ('engine = "oracle"\n', [], "unknown engine 'oracle'"),
        ('engine = "oracle"\n', ["--engine", "duckdb"], ("duckdb", "since-consent")),
        ('consent_scope = "some"\n', [], "unknown consent scope 'some'"),
    ],
)
def test_stedi_toml_sets_the_engine_and_consent_scope(workdir, toml, flags, expected):
    from typer.testing import CliRunner

    from stedi.cli import app
    from support.lakes import write_feed_file
    from support.records import customer

    (workdir / "stedi.toml").write_text(f'lake = "./lake"\n{toml}')
    write_feed_file(workdir / "feeds", "customer/c.json", [customer("a@x.com")])
    result = CliRunner().invoke(app, ["run", str(workdir / "feeds"), "--json", *flags])
    if isinstance(expected, str):
        assert result.exit_code == 2 and expected in result.stderr
        return
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["engine"], report["consent_scope"]) == expected
