"""The entry point of the Glue job that `stedi aws deploy` creates.

It does what `stedi run --engine spark --lake LAKE [SOURCE]` does, on the Spark session of the job
(Glue's own, not a local one), and prints the run's report as JSON to the job's log. A run that fails
its quality gates fails the job. Arguments (Glue passes the job's DefaultArguments and its own):
--lake s3://bucket/prefix (required), --source s3://..., --consent-scope, --region.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence

from stedi.engines.base import Engine


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The job's own arguments; the ones Glue adds (--JOB_ID and the like) are ignored."""
    parser = argparse.ArgumentParser(prog="stedi-glue-job", add_help=False)
    parser.add_argument("--lake", required=True)
    parser.add_argument("--source", default=None)
    parser.add_argument("--consent-scope", default=None)
    parser.add_argument("--region", default=None)
    arguments, _ = parser.parse_known_args(list(argv))  # Glue adds --JOB_ID, --job-bookmark-option, ...
    return arguments


def main(argv: Sequence[str], engine: Engine | None = None) -> dict:
    """Run stedi on the job's Spark session (or `engine`); print the report and return it.

    Raises GateFailure when a quality gate failed, so the Glue job fails too; LakeBusyError when
    another process is writing the lake.
    """
    arguments = parse_arguments(argv)
    if arguments.region:
        os.environ.setdefault("AWS_REGION", arguments.region)
    from stedi.lake import Lake
    from stedi.run import run

    if engine is None:
        from pyspark.sql import SparkSession

        from stedi.engines.spark import SparkEngine

        engine = SparkEngine(session=SparkSession.builder.getOrCreate())
    lake = Lake(arguments.lake)
    with lake.writing(wait=False):  # the job allows one run at a time; a local writer makes it fail clearly
        report = run(lake, engine, arguments.source or None, arguments.consent_scope or None)
    result = report.as_dict()
    print(json.dumps(result, default=str))
    report.raise_if_failed()
    return result
