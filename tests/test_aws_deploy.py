"""`stedi aws deploy` (Glue job, database, S3 artifacts; idempotent) and `stedi aws athena-ddl`.

Against moto's server on 127.0.0.1 (tests/aws_support.py), never AWS.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import sqlglot
from botocore.validate import validate_parameters
from sqlglot import exp

from stedi.aws.deploy import JOB_SCRIPT, Clients, build_wheel
from support.aws import Aws, ok_json, stedi

ROLE = "arn:aws:iam::123456789012:role/stedi-glue"


def state(aws: Aws, bucket: str) -> dict:
    """Everything a deployment can touch, with what changes when it is rewritten."""
    objects = {o["Key"]: (o["ETag"], o["LastModified"].isoformat()) for o in aws.s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    jobs = aws.glue.get_jobs()["Jobs"]
    databases = aws.glue.get_databases()["DatabaseList"]
    return {"objects": objects, "jobs": json.loads(json.dumps(jobs, default=str)), "databases": json.loads(json.dumps(databases, default=str))}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


def test_the_wheel_is_the_package(wheel: Path):
    assert wheel.name == "stedi-0.1.0-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    assert "stedi/aws/glue_job.py" in names and "stedi/models/curated/machine_learning_curated.sql" in names
    assert not any("__pycache__" in n or n.startswith("tests/") for n in names)


def test_deploy_creates_the_job_once_and_then_changes_nothing(aws: Aws, wheel: Path, monkeypatch):
    aws.bucket("stedi-artifacts")
    deploy = ["aws", "deploy", "--bucket", "stedi-artifacts", "--role", ROLE, "--region", "us-east-1"]

    plan = ok_json(*deploy, "--dry-run", "--wheel", str(wheel))
    assert plan["dry_run"] and [s["action"] for s in plan["steps"]] == ["create"] * 4
    assert state(aws, "stedi-artifacts") == {"objects": {}, "jobs": [], "databases": []}  # a plan changes nothing

    first = ok_json(*deploy)  # builds the wheel itself
    assert [(s["resource"], s["action"]) for s in first["steps"]] == [
        ("s3 object", "create"),
        ("s3 object", "create"),
        ("glue database", "create"),
        ("glue job", "create"),
    ]
    lake = "s3://stedi-artifacts/stedi/lakehouse"
    assert first["lake"] == lake and first["wheel_uri"] == plan["wheel_uri"]  # the same package, the same key

    after = state(aws, "stedi-artifacts")
    wheel_key = first["wheel_uri"].removeprefix("s3://stedi-artifacts/")
    assert sorted(after["objects"]) == sorted(["stedi/glue/stedi_glue_job.py", wheel_key])
    assert wheel_key.startswith("stedi/glue/wheels/") and wheel_key.endswith("/stedi-0.1.0-py3-none-any.whl")
    script = aws.s3.get_object(Bucket="stedi-artifacts", Key="stedi/glue/stedi_glue_job.py")["Body"].read().decode()
    assert script == JOB_SCRIPT and "from stedi.aws.glue_job import main" in script
    (database,) = after["databases"]
    assert (database["Name"], database["LocationUri"]) == ("stedi", f"{lake}/warehouse/stedi.db")
    (job,) = after["jobs"]
    assert job["Name"] == "stedi-run" and job["Role"] == ROLE and job["GlueVersion"] == "5.0"
    assert job["Command"]["Name"] == "glueetl" and job["Command"]["PythonVersion"] == "3"
    assert job["Command"]["ScriptLocation"] == "s3://stedi-artifacts/stedi/glue/stedi_glue_job.py"
    assert job["DefaultArguments"] == {
        "--additional-python-modules": first["wheel_uri"],
        "--job-language": "python",
        "--lake": lake,
        "--region": "us-east-1",
    }
    assert (job["WorkerType"], job["NumberOfWorkers"], job["ExecutionProperty"]["MaxConcurrentRuns"]) == ("G.1X", 2, 1)

    again = ok_json(*deploy)  # builds the wheel once more: same contents, same key
    assert [s["action"] for s in again["steps"]] == ["unchanged"] * 4 and not again["changed"]
    assert state(aws, "stedi-artifacts") == after

    result = stedi(*deploy, "--wheel", str(wheel))
    assert result.exit_code == 0 and "Nothing to change" in result.stdout

    # A changed setting updates the job, and only the job. moto 5 has no Glue UpdateJob, so the call
    # is recorded here and checked against botocore's model of the real API instead of being sent.
    update_calls = []
    make_clients = Clients.__init__

    def recording_clients(self, *args, **kwargs):
        make_clients(self, *args, **kwargs)
        model = self.glue.meta.service_model.operation_model("UpdateJob")

        def update_job(**params):
            validate_parameters(params, model.input_shape)
            update_calls.append(params)

        self.glue.update_job = update_job

    monkeypatch.setattr(Clients, "__init__", recording_clients)
    changed = ok_json(*deploy, "--wheel", str(wheel), "--source", "s3://stedi-public/")
    assert [s["action"] for s in changed["steps"]] == ["unchanged", "unchanged", "unchanged", "update"]
    assert changed["steps"][3]["detail"] == "DefaultArguments"
    (call,) = update_calls
    assert call["JobName"] == "stedi-run" and call["JobUpdate"]["DefaultArguments"]["--source"] == "s3://stedi-public/"
    assert call["JobUpdate"]["GlueVersion"] == "5.0" and call["JobUpdate"]["Role"] == ROLE
    assert state(aws, "stedi-artifacts") == after


def test_deploy_user_errors(aws: Aws, wheel: Path):
    aws.bucket("stedi-artifacts")
    aws.glue.create_database(DatabaseInput={"Name": "stedi", "LocationUri": "s3://elsewhere/lake/warehouse/stedi.db"})
    for args, message in [
        (["--role", "stedi-glue"], "--role takes an IAM role ARN"),
        (["--role", ROLE, "--lake", "./lakehouse"], "must be on S3"),
        (["--role", ROLE], "the Glue database 'stedi' belongs to the lake at s3://elsewhere/lake/warehouse/stedi.db"),
    ]:
        result = stedi("aws", "deploy", "--bucket", "stedi-artifacts", "--wheel", str(wheel), *args)
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.stderr.split())
    assert aws.glue.get_jobs()["Jobs"] == []


def test_athena_ddl_is_generated_from_the_contract_and_the_models(aws: Aws, feeds, tmp_path):
    aws.bucket("stedi-public")
    # The public starter bucket's layout: customers/ (plural); here accelerometer keeps a landing/ level.
    aws.upload(feeds, "stedi-public", "starter", {"customer/landing": "customers", "step_trainer/landing": "step_trainer"})
    out = tmp_path / "athena"
    result = stedi("aws", "athena-ddl", "--source", "s3://stedi-public/starter", "--out", str(out))
    assert result.exit_code == 0, result.output

    files = {p.name: p.read_text() for p in out.iterdir()}
    assert set(files) == {
        "stedi_athena.sql",
        "customer_landing.sql",
        "accelerometer_landing.sql",
        "step_trainer_landing.sql",
        "customer_trusted.sql",
        "serial_number_owners.sql",
        "accelerometer_trusted.sql",
        "customers_curated.sql",
        "step_trainer_trusted.sql",
        "machine_learning_curated.sql",
    }
    # Landing tables: Hive DDL (Athena's dialect for tables), JSON SerDe, case-insensitive, detected folders.
    for name, location in [
        ("customer_landing", "s3://stedi-public/starter/customers/"),
        ("accelerometer_landing", "s3://stedi-public/starter/accelerometer/landing/"),
        ("step_trainer_landing", "s3://stedi-public/starter/step_trainer/"),
    ]:
        text = files[f"{name}.sql"]
        (statement,) = sqlglot.parse(text, read="athena")
        assert isinstance(statement, exp.Create) and statement.args["kind"] == "TABLE"
        assert "org.openx.data.jsonserde.JsonSerDe" in text and "'case.insensitive' = 'TRUE'" in text
        assert f"LOCATION '{location}'" in text
    assert "`shareWithResearchAsOfDate` BIGINT" in files["customer_landing.sql"]
    # Views: generated from the model files, parsed by sqlglot's Trino dialect as real statements.
    for name in ("customer_trusted", "serial_number_owners", "accelerometer_trusted", "customers_curated", "step_trainer_trusted"):
        (statement,) = sqlglot.parse(files[f"{name}.sql"], read="trino")
        assert isinstance(statement, exp.Create) and statement.args["kind"] == "VIEW"
        assert not list(statement.find_all(exp.Command))
        assert statement.this.sql("trino") == f'"stedi_athena"."{name}"'
        assert "run_settings" not in {t.name for t in statement.find_all(exp.Table)}
    assert "'since-consent' AS consent_scope" in files["accelerometer_trusted.sql"]
    assert '"$path" AS _source_file' in files["customer_trusted.sql"]
    # machine_learning_curated: no view, because the key secret must never be inlined.
    ml = files["machine_learning_curated.sql"]
    assert sqlglot.parse(ml, read="trino") == [None]
    assert all(line.startswith("--") for line in ml.splitlines() if line.strip())
    assert "secret" in ml and "stedi.machine_learning_curated" in ml

    data = ok_json("aws", "athena-ddl", "--source", "s3://stedi-public/starter", "--consent-scope", "all", "--database", "zones")
    views = {f["name"]: f["sql"] for f in data["files"] if f["kind"] == "view"}
    assert "'all' AS consent_scope" in views["step_trainer_trusted.sql"]
    assert '"zones"."step_trainer_trusted"' in views["step_trainer_trusted.sql"]
