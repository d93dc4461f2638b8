"""The `stedi` command line: a thin layer over the modules that do the work.

Each command imports what it needs when it runs (see `stedi.commands`).
"""

from __future__ import annotations

import os
import shutil
import signal
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

import stedi
from stedi import display
from stedi.aws.cli import app as aws_app
from stedi.commands import Debug, JsonOption, LakeOption, WaitOption, command_group
from stedi.config import CONSENT_SCOPES, EXPORT_FORMATS, consent_scope_requested, engine_name
from stedi.display import console, emit_json, table
from stedi.engines import ENGINE_NAMES
from stedi.errors import ErasureError, UserError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from stedi.erasure import ErasureReport
    from stedi.ingest import IngestReport
    from stedi.run import RunReport, TableRun

app = command_group("The STEDI lakehouse: raw Step Trainer and phone feeds into privacy-safe training data.", completion=True)


def _print_version(asked: bool) -> None:
    if asked:
        console.print(f"stedi {stedi.__version__}")
        raise typer.Exit()


@app.callback()
def options(
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="stedi's DEBUG logs on stderr: what each step decided and why.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Also the libraries' DEBUG logs, and the traceback of an internal error.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print stedi's version and exit.", callback=_print_version, is_eager=True)] = False,
) -> None:
    """Options every command shares: `-v` and `--debug` turn on DEBUG logs (quiet by default)."""
    if debug:
        Debug.enable()
    elif verbose:
        Debug.verbose()


EngineOption = Annotated[Optional[str], typer.Option("--engine", help=f"Engine: {' or '.join(ENGINE_NAMES)} (default duckdb, or `engine` in stedi.toml).")]
ScopeOption = Annotated[
    Optional[str],
    typer.Option("--consent-scope", help=f"{' or '.join(CONSENT_SCOPES)}; a lake setting that stays until changed."),
]


def _progress(quiet: bool) -> Progress:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description:<14}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        # Not into a log or a pipe: there a bar is noise, and stderr is kept for what went wrong.
        console=display.errors,
        disable=quiet or not display.errors.is_terminal,
        transient=True,
    )


def _progress_callback(progress: Progress):
    tasks: dict[str, TaskID] = {}

    def on_progress(feed: str, done: int, total: int) -> None:
        if feed not in tasks:
            tasks[feed] = progress.add_task(feed, total=total or 1)
        progress.update(tasks[feed], completed=done if total else 1)

    return on_progress


def print_ingest(report: IngestReport) -> None:
    """Print what an ingest did per feed: new and skipped files, lines, accepted, rejected (and erased)."""
    erased = any(f.erased for f in report.feeds.values())  # lines of forgotten customers, dropped
    rows = [(f.feed, f.files_new, f.files_skipped, f.lines, f.accepted, f.rejected, *([f.erased] if erased else [])) for f in report.feeds.values()]
    columns = ["feed", "new files", "skipped", "lines", "accepted", "rejected", *(["erased"] if erased else [])]
    console.print(table(f"Ingest {report.run_id}", columns, rows))
    if report.seconds:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()  # the ones this process may use
        console.print(f"ingested in {report.seconds:.1f} s at {100 * report.cpu_seconds / report.seconds:.0f} % CPU ({cores} cores)", style="dim")
    for feed in report.feeds.values():
        for problem in feed.problems:
            console.print(display.safe(f"quarantined file problem: {problem}"), style="yellow")
    if report.ignored_files:
        console.print(f"ignored {len(report.ignored_files)} file(s) that are not feed files (*.json, *.jsonl, .gz)")
    for path, reason in report.skipped.items():
        console.print(display.safe(f"skipped {path}: {reason}"), style="yellow")
    for warning in report.warnings:
        display.errors.print(display.safe(f"warning: {warning}"), style="yellow")


def print_table_line(t: TableRun) -> None:
    """One line per model as the run builds it: name, rows, time, checks, and how it was built."""
    mark = {"built": "[green]✓[/]", "failed": "[red]✗[/]", "skipped": "[yellow]–[/]"}.get(t.status, "[dim]·[/]")
    if t.status in ("built", "failed", "unchanged"):
        checks = f"checks {sum(c.passed for c in t.checks)}/{len(t.checks)}" if t.checks else ""
        facts = f"{t.rows_out:>9} rows {t.duration_s:6.2f}s  {checks:<11} " + (_failed_checks(t) or t.note or t.status)
    else:
        facts = t.note
    console.print(f"{mark} {t.name:<25}", display.safe(facts))


def print_run(report: RunReport, lines_printed: bool = True) -> None:
    """Print a run's summary: its ingest, each table built (unless its line was printed as it
    was built), the zone funnel and the outcome."""
    if report.ingest:
        print_ingest(report.ingest)
    if not lines_printed:
        for t in report.tables:
            print_table_line(t)
    print_funnel(report.funnel)
    built = sum(t.status == "built" for t in report.tables)
    failed = [t.name for t in report.tables if t.status == "failed"]
    checks = [c for t in report.tables for c in t.checks]
    took = datetime.fromisoformat(report.finished_at) - datetime.fromisoformat(report.started_at)
    counts = f"{built} table(s) built, {sum(c.passed for c in checks)}/{len(checks)} checks passed, {took.total_seconds():.1f}s"
    if not report.changed:
        console.print("Nothing new: every table is up to date (no-op).")
    elif report.ok:
        console.print(f"[green]Run {report.run_id} published[/] ({counts}). Engine {report.engine}, consent scope {report.consent_scope}.")
    else:
        console.print(f"[red]Run {report.run_id} failed quality gates in {', '.join(failed)}[/] ({counts}).")


def _failed_checks(t: TableRun) -> str:
    return "; ".join(f"{c.severity}: {c.name} — {c.violations} rows" for c in t.checks if not c.passed)


def print_funnel(funnel: dict) -> None:
    """Print the zone funnel: where each feed's rows went, step by step."""
    if not funnel:
        return
    rows = [(feed, step.replace("_", " "), count) for feed, steps in funnel.items() for step, count in steps.items()]
    console.print(table("Zone funnel", ["feed", "step", "rows"], rows))


@app.command()
def generate(
    out: Annotated[Path, typer.Argument(help="Folder to write customer/, accelerometer/, step_trainer/ into.")],
    customers: Annotated[int, typer.Option(help="Number of customers.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed writes the same bytes.")] = 0,
    defects: Annotated[bool, typer.Option("--defects", help="Add what real feeds also carry (broken lines, ...).")] = False,
    shape: Annotated[
        str,
        typer.Option(
            "--shape",
            help="files: many files of 1000 customers each; export: one large file per feed, spaced customer records.",
        ),
    ] = "files",
    as_json: JsonOption = False,
) -> None:
    """Generate realistic feeds shaped like real STEDI exports."""
    from stedi.generate import generate_feeds

    if customers < 1:
        raise UserError("--customers must be at least 1")
    result = generate_feeds(out, customers, seed=seed, defects=defects, shape=shape)
    if as_json:
        emit_json({"root": str(result.root), "files": result.files, "records": result.records, "bytes": result.bytes})
        return
    console.print(
        table(
            f"Generated {result.bytes / 1e6:.1f} MB in {out}",
            ["feed", "files", "records"],
            [(feed, result.files[feed], result.records[feed]) for feed in result.files],
        )
    )


@app.command("ingest")
def ingest_command(
    source: Annotated[str, typer.Argument(help="Folder or s3://bucket/prefix holding customer/, accelerometer/, step_trainer/.")],
    lake: LakeOption = None,
    engine: EngineOption = None,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Ingest new feed files into the landing zone (idempotent, incremental)."""
    from stedi.engines import open_engine
    from stedi.ingest import ingest
    from stedi.lake import Lake
    from stedi.run import recover_interrupted_runs

    the_lake = Lake(lake)
    the_engine = open_engine(engine_name(engine))
    with the_lake.writing(wait), _progress(as_json) as progress:
        recover_interrupted_runs(the_lake)
        report = ingest(the_lake, source, the_engine, _progress_callback(progress))
    if as_json:
        emit_json(report.as_dict())
    else:
        print_ingest(report)


SelectOption = Annotated[
    Optional[list[str]],
    typer.Option(
        "--select",
        "-s",
        metavar="MODEL",
        help="Build only these models: MODEL, +MODEL (and what it is built from), MODEL+ (and what is built from it). Repeatable.",
    ),
]
ExcludeOption = Annotated[Optional[list[str]], typer.Option("--exclude", metavar="MODEL", help="Leave these models out (same syntax). Repeatable.")]


def _selectors(values: list[str] | None) -> list[str]:
    return [selector for value in values or [] for selector in value.split()]  # dbt's `--select "a+ b"` too


@app.command("run")
def run_command(
    source: Annotated[Optional[str], typer.Argument(help="Ingest this source (a folder or s3://bucket/prefix) first.")] = None,
    lake: LakeOption = None,
    engine: EngineOption = None,
    consent_scope: ScopeOption = None,
    select: SelectOption = None,
    exclude: ExcludeOption = None,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Ingest SOURCE (if given), then build the trusted and curated zones behind quality gates."""
    from stedi.engines import open_engine
    from stedi.lake import Lake
    from stedi.run import run

    the_lake = Lake(lake)
    the_engine = open_engine(engine_name(engine))
    if source is None:
        the_lake.require()
    with the_lake.writing(wait), _progress(as_json) as progress:
        report = run(
            the_lake,
            the_engine,
            source,
            consent_scope_requested(consent_scope),
            _progress_callback(progress),
            on_table=None if as_json else print_table_line,
            selected=_selectors(select),
            excluded=_selectors(exclude),
        )
    if as_json:
        emit_json(report.as_dict())
    else:
        print_run(report)
    report.raise_if_failed()


@app.command("status")
def status_command(lake: LakeOption = None, as_json: JsonOption = False) -> None:
    """Tables, rows, snapshots, the last ingest and the last run's checks."""
    the_lake = stedi.open(lake)
    result = the_lake.status()
    if as_json:
        emit_json(result)
        return
    console.print(
        table(
            f"Lake {the_lake.location}",
            ["table", "rows", "snapshots", "last commit (UTC)", "by run"],
            [(t["table"], t["rows"], t["snapshots"], t["last_commit"], t["run_id"]) for t in result["tables"]],
        )
    )
    if result["pending_erasure"]:
        console.print(
            f"[red]The erasure {result['pending_erasure']} is unfinished:[/] the next `stedi forget`, `stedi ingest` "
            "or `stedi run` finishes it before anything else."
        )
    if result["last_ingest"]:
        i = result["last_ingest"]
        console.print(display.safe(f"Last ingest {i['run_id']}: {i['files']} files, {i['accepted']} accepted, {i['rejected']} rejected"))
    last = result["last_run"]
    if last:
        interrupted = " · interrupted, completed by the next command" if last.get("interrupted") else ""
        console.print(
            table(
                f"Last run {last['run_id']} · engine {last['engine']} · consent scope {last['consent_scope']}{interrupted}",
                ["table", "status", "check", "severity", "violations", "judged"],
                [(t["name"], t["status"], c["name"], c["severity"], c["violations"], c.get("judged", "all rows")) for t in last["tables"] for c in t["checks"]],
            )
        )


@app.command("runs")
def runs_command(lake: LakeOption = None, as_json: JsonOption = False) -> None:
    """The run history: each run that changed something, its tables, checks and duration."""
    history = stedi.open(lake).runs()
    if as_json:
        emit_json(history)
        return
    console.print(
        table(
            "Runs, oldest first (a run id is its start time in UTC)",
            ["run", "time", "engine", "scope", "files", "built", "checks", "result"],
            [
                (
                    r["run_id"],
                    f"{r['duration_s']:.1f}s" if r["duration_s"] is not None else "",
                    r["engine"],
                    r["consent_scope"],
                    r["files_ingested"],
                    len(r["tables_built"]),
                    f"{r['checks_passed']} ok" + (f", {r['checks_failed']} failed" if r["checks_failed"] else ""),
                    ("failed: " + ", ".join(r["tables_failed"]) if not r["ok"] else "published") + (" · interrupted" if r["interrupted"] else ""),
                )
                for r in history
            ],
        )
    )


@app.command("history")
def history_command(table_name: Annotated[str, typer.Argument(metavar="TABLE")], lake: LakeOption = None, as_json: JsonOption = False) -> None:
    """The snapshots of a table, with the run that made each one."""
    snapshots = stedi.open(lake).history(table_name)
    if as_json:
        emit_json(snapshots)
        return
    console.print(
        table(
            f"History of {table_name}",
            ["snapshot", "committed (UTC)", "operation", "run", "rows"],
            [(s["snapshot_id"], s["committed_at"], s["operation"], s["run_id"], s["rows"]) for s in snapshots],
        )
    )


QUERY_FORMATS = ("table", "vertical", "json", "csv")
SHOWN_ROWS = 50  # the rows a terminal view shows unless --limit says otherwise


@app.command("query")
def query_command(
    sql: Annotated[str, typer.Argument(help="A read-only SELECT over the lake's tables, by name or as stedi.<table>.")],
    lake: LakeOption = None,
    limit: Annotated[
        Optional[int],
        typer.Option(min=0, help=f"At most this many rows (default: {SHOWN_ROWS} for table and vertical, all for json and csv)."),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option("--format", help="table, vertical (one column a line, as wide rows need), json or csv; table turns vertical when too wide."),
    ] = "table",
    as_of: Annotated[
        Optional[str],
        typer.Option(
            "--as-of",
            metavar="TIMESTAMP",
            help="Time travel: every table as it was then (ISO 8601, UTC unless an offset is given, or epoch ms).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
) -> None:
    """Read-only SQL over the lake (DuckDB): the local stand-in for Athena. The result streams."""
    from stedi.lake import Lake
    from stedi.query import stream_query
    from stedi.timetravel import parse_time, snapshots_as_of

    fmt = "json" if as_json else fmt
    if fmt not in QUERY_FORMATS:
        raise UserError(f"unknown format '{fmt}': choose {', '.join(QUERY_FORMATS)}")
    the_lake = Lake(lake)
    the_lake.require()
    snapshots = snapshots_as_of(the_lake, parse_time(as_of)) if as_of else None
    with stream_query(the_lake, sql, snapshots) as result:
        if fmt in ("json", "csv"):
            write = display.write_json_rows if fmt == "json" else display.write_csv_rows
            write(result.columns, result.rows(limit))
            return
        shown = SHOWN_ROWS if limit is None else limit
        rows = list(result.rows(shown + 1))  # one more than shown, to know whether more follow
    more = len(rows) > shown
    title = f"{min(len(rows), shown)} row(s){' shown' if more else ''}"
    display.print_rows(title, result.columns, rows[:shown], vertical=fmt == "vertical")
    if more:
        console.print(f"the first {shown} rows; more follow: use --limit N for more, or --format json|csv for all of them")


def print_erasure(report: ErasureReport) -> None:
    """Print what an erasure removed (or, for a dry run, would remove), table by table."""
    verb = "would remove" if report.dry_run else "rows removed"
    console.print(
        table(
            f"{'Dry run of erasure' if report.dry_run else 'Erasure'} {report.erasure_id}",
            ["table", verb, "data files rewritten"],
            [(t.name, t.rows, len(t.files)) for t in report.tables],
        )
    )
    found = len(report.requested) - len(report.unknown)
    rows = sum(report.rows_removed.values())
    tables = sum(1 for n in report.rows_removed.values() if n)
    if report.unknown:
        console.print(display.safe(f"not found in the lake ({len(report.unknown)}): {', '.join(report.unknown)}"), style="yellow")
    if report.shared_serial_numbers:
        console.print(
            f"{report.shared_serial_numbers} of their serial numbers are shared with other customers: "
            "the Step Trainer readings of those numbers cannot be told apart and go too."
        )
    if report.dry_run:
        console.print(
            f"Dry run, nothing changed: forgetting {found} of {len(report.requested)} customer(s) would remove "
            f"{rows} rows from {tables} table(s), rewrite {report.files_rewritten} data file(s) and expire "
            f"{report.snapshots_expired} snapshot(s)."
        )
        return
    console.print(
        f"[green]Forgot {found} of {len(report.requested)} customer(s):[/] {rows} rows removed from {tables} table(s); "
        f"{report.files_deleted} file(s) deleted; {report.snapshots_expired} older snapshot(s) expired. "
        f"Tombstoned so no ingest brings them back. Audit record: _stedi/erasures/{report.erasure_id}.json"
    )
    if report.unreproducible_runs:
        console.print(
            f"The training data of {len(report.unreproducible_runs)} earlier run(s) held these customers and can no "
            f"longer be exported: {', '.join(report.unreproducible_runs)}",
            style="yellow",
        )


@app.command("forget")
def forget_command(
    emails: Annotated[Optional[list[str]], typer.Argument(metavar="EMAIL...", help="Emails of the customers to forget.")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", help="A file of emails, one a line (# comments).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be removed; change nothing.")] = False,
    lake: LakeOption = None,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """The right to erasure: remove customers from every table of every zone, for good."""
    from stedi.erasure import forget, read_email_file
    from stedi.lake import Lake

    wanted = list(emails or []) + (read_email_file(str(file)) if file else [])
    if not wanted:
        raise ErasureError("give at least one EMAIL or --file with emails")
    the_lake = Lake(lake)
    the_lake.require()
    with the_lake.writing(wait):
        report = forget(the_lake, wanted, dry_run=dry_run)
    if as_json:
        emit_json(report.as_dict())
    else:
        print_erasure(report)


@app.command("export")
def export_command(
    out: Annotated[str, typer.Argument(metavar="OUT", help="A new folder for the files and manifest.json.")],
    fmt: Annotated[str, typer.Option("--format", help=f"File format: {' or '.join(EXPORT_FORMATS)}.")] = "parquet",
    run_id: Annotated[Optional[str], typer.Option("--run", metavar="RUN_ID", help="The training data of that run.")] = None,
    as_of: Annotated[Optional[str], typer.Option("--as-of", metavar="TIMESTAMP", help="The training data as it was then.")] = None,
    split: Annotated[
        Optional[float],
        typer.Option(
            "--split-by-customer",
            metavar="FRACTION",
            help="Split train/test by customer, e.g. 0.8 for 80% of customers in train.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the customer split.")] = 0,
    lake: LakeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Export machine_learning_curated with a manifest that makes the training data reproducible."""
    from stedi.export import export
    from stedi.lake import Lake

    the_lake = Lake(lake)
    the_lake.require()
    manifest = export(the_lake, out, fmt, run_id, as_of, split, seed)
    if as_json:
        emit_json(manifest)
        return
    console.print(
        table(
            f"Exported {manifest['table']} to {out}",
            ["file", "rows", "customers", "content sha256"],
            [(f["file"], f["rows"], f["customers"], f["content_sha256"][:16]) for f in manifest["files"]],
        )
    )
    console.print(
        display.safe(
            f"run {manifest['run_id']} · snapshot {manifest['snapshot_id']} · consent scope {manifest['consent_scope']} · "
            f"{manifest['rows']} rows · content sha256 {manifest['content_sha256']} · manifest {out}/manifest.json"
        )
    )


@app.command("report")
def report_command(
    out: Annotated[str, typer.Argument(metavar="OUT.html", help="The page to write (replaced if it exists).")],
    lake: LakeOption = None,
    as_json: JsonOption = False,
) -> None:
    """One self-contained HTML page of the lake: funnel, tables, lineage, checks, quarantine, drift, runs, consent."""
    from stedi.report import write_report

    report = write_report(lake, out)
    if as_json:
        emit_json(vars(report))
        return
    failed = f", {report.failed_checks} failed check(s)" if report.failed_checks else ""
    console.print(display.safe(f"Wrote {report.path} ({report.bytes / 1e6:.1f} MB, opens offline): {report.tables} tables, {report.charts} charts{failed}."))


DEMO_QUERY = (
    "SELECT customer_key, count(*) AS readings, min(timestamp) AS first_ms, round(avg(distanceFromObject), 1) AS avg_distance "
    "FROM machine_learning_curated GROUP BY customer_key ORDER BY readings DESC LIMIT 5"
)


@app.command()
def demo(
    lake: LakeOption = None,
    data: Annotated[Path, typer.Option(help="Where to write the generated feeds (replaced).")] = Path("demo-data"),
    customers: Annotated[int, typer.Option(help="Number of customers to generate.")] = 2000,
    engine: EngineOption = None,
    as_json: JsonOption = False,
) -> None:
    """Generate realistic feeds with defects, run the whole lakehouse and print the zones."""
    from stedi.engines import open_engine
    from stedi.generate import generate_feeds
    from stedi.ingest import DEMO_SOURCE, source_identity
    from stedi.lake import Lake
    from stedi.query import query_lake
    from stedi.run import run

    the_lake = Lake(lake)
    if the_lake.exists() and the_lake.has_table("customer_landing") and the_lake.settings().get(DEMO_SOURCE) != source_identity(str(data)):
        raise UserError(f"the lake at {the_lake.location} holds feeds that are not the demo's: give --lake NEW_FOLDER for the demo's own lake")
    if data.exists():
        shutil.rmtree(data)
    generated = generate_feeds(data, customers, seed=7, defects=True)
    if not as_json:
        console.print(f"Generated {generated.bytes / 1e6:.1f} MB of feeds for {customers} customers in {data}/")
    with the_lake.writing(), _progress(as_json) as progress:
        the_lake.update_settings(**{DEMO_SOURCE: source_identity(str(data))})
        report = run(
            the_lake,
            open_engine(engine_name(engine)),
            str(data),
            consent_scope_requested(None),
            _progress_callback(progress),
            None if as_json else print_table_line,
        )
    columns, rows = query_lake(the_lake, DEMO_QUERY)
    if as_json:
        emit_json({"data": str(data), "generated": {"files": generated.files, "records": generated.records, "bytes": generated.bytes}, "run": report.as_dict()})
    else:
        print_run(report)
        console.print(f'\n$ stedi query "{DEMO_QUERY}"')
        console.print(table("machine_learning_curated, per pseudonymous customer", columns, rows))
    report.raise_if_failed()


app.add_typer(aws_app, name="aws")


def main() -> None:
    """The `stedi` console script: run the CLI, then exit without reacting to a late Ctrl-C."""
    try:
        app()
    finally:
        # The command is over and has said so: a Ctrl-C while the process exits changes nothing.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
