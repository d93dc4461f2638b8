"""`stedi aws …`: Athena DDL and the Glue job deployment."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from stedi import display
from stedi.commands import JsonOption, command_group
from stedi.display import console, emit_json, table

app = command_group("stedi on AWS: Athena DDL generated from the models, and the Glue job deployment.")


@app.command("athena-ddl")
def athena_ddl_command(
    source: Annotated[
        str,
        typer.Option(
            "--source",
            metavar="S3_URI",
            help="The raw feeds (s3://bucket/prefix holding customer(s)/, accelerometer/, step_trainer/).",
        ),
    ],
    out: Annotated[Optional[Path], typer.Option("--out", help="Write one .sql file per object into this folder.")] = None,
    database: Annotated[str, typer.Option(help="Athena (Glue) database of the tables and views.")] = "stedi_athena",
    consent_scope: Annotated[str, typer.Option("--consent-scope", help="Inlined into the views: since-consent or all.")] = "since-consent",
    detect: Annotated[
        bool,
        typer.Option(
            "--detect/--no-detect",
            help="List the source to find each feed's folder (customers/ or customer/, landing/).",
        ),
    ] = True,
    as_json: JsonOption = False,
) -> None:
    """Athena DDL: landing tables over the raw JSON, and the trusted/curated models as views (sqlglot, Trino)."""
    from stedi.aws.athena import athena_ddl, feed_locations
    from stedi.config import CONSENT_SCOPES
    from stedi.errors import ConfigError

    if not source.startswith("s3://"):
        raise ConfigError(f"--source must be an s3:// location (Athena reads S3), not {source}")
    if consent_scope not in CONSENT_SCOPES:
        raise ConfigError(f"unknown consent scope '{consent_scope}': choose one of {', '.join(CONSENT_SCOPES)}")
    if not database.replace("_", "").isalnum() or database.lower() != database:
        raise ConfigError(f"--database must be lower-case letters, digits and _ (Athena's rule), not {database!r}")
    locations, notes = feed_locations(source, detect)
    files = athena_ddl(locations, database, consent_scope)
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
            for file in files:
                (out / file.name).write_text(file.sql, encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"cannot write to {out}: {error.strerror}") from None
    if as_json:
        emit_json({"database": database, "locations": locations, "notes": notes, "files": [{"name": f.name, "kind": f.kind, "sql": f.sql} for f in files]})
        return
    if out is None:  # the statements themselves, unwrapped, ready to pipe
        for file in files:
            sys.stdout.write(f"-- ==== {file.name}\n{file.sql.rstrip()}{';' if file.kind != 'skipped' else ''}\n\n")
    for note in notes:
        display.errors.print(display.safe(f"note: {note}"), style="yellow")
    if out is not None:
        console.print(table(f"Athena DDL in {out}/ (run in this order)", ["file", "kind"], [(f.name, f.kind) for f in files]))
        console.print("Run each file as one Athena query. machine_learning_curated has no view: see its file.")


@app.command("deploy")
def deploy_command(
    bucket: Annotated[str, typer.Option("--bucket", help="Bucket for the wheel and the job script (and the default lake).")],
    role: Annotated[str, typer.Option("--role", metavar="ARN", help="IAM role the Glue job runs as.")],
    region: Annotated[Optional[str], typer.Option("--region", help="AWS region (default: AWS_REGION, stedi.toml).")] = None,
    lake: Annotated[
        Optional[str],
        typer.Option(
            "--lake",
            help="The job's lake (default: STEDI_LAKE if on S3, else s3://BUCKET/stedi/lakehouse).",
        ),
    ] = None,
    source: Annotated[Optional[str], typer.Option("--source", help="s3:// feeds the job ingests on every run.")] = None,
    job_name: Annotated[str, typer.Option("--job-name", help="Name of the Glue job.")] = "stedi-run",
    prefix: Annotated[str, typer.Option("--prefix", help="Key prefix of the wheel and the script in the bucket.")] = "stedi/glue",
    wheel: Annotated[Optional[Path], typer.Option("--wheel", help="Upload this wheel instead of building one.")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Number of Glue workers.")] = 2,
    worker_type: Annotated[str, typer.Option("--worker-type", help="Glue worker type.")] = "G.1X",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Deploy stedi as a Glue Spark job (wheel + script on S3, Glue database and job); idempotent."""
    from stedi.aws.deploy import deploy

    report = deploy(bucket, role, region, lake, source, job_name, prefix, wheel, workers, worker_type, dry_run)
    if as_json:
        emit_json(report.as_dict())
        return
    title = f"{'Plan (dry run)' if dry_run else 'Deployed'} · Glue job {report.job_name} · region {report.region}"
    verb = (lambda a: {"create": "would create", "update": "would update"}.get(a, a)) if dry_run else (lambda a: a)
    console.print(table(title, ["resource", "name", "action", "detail"], [(s.resource, s.name, verb(s.action), s.detail) for s in report.steps]))
    if not report.changed:
        console.print("Nothing to change: the deployment is up to date.")
    elif dry_run:
        console.print("Dry run: nothing was changed.")
    else:
        console.print(display.safe(f"Start it with: aws glue start-job-run --job-name {report.job_name} --region {report.region}"))
