"""Command line: each command parses its arguments, calls one library function, and maps errors to exit codes."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import WorkbenchError

app = typer.Typer(
    help="Registry incident workbench: ingest registry, proxy, database and host evidence into a case; "
    "analyse it; export a post-mortem appendix.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()


def _parse_at(at: Optional[str]) -> Optional[dt.datetime]:
    if at is None:
        return None
    try:
        v = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        raise WorkbenchError(f"--at {at!r} is not an ISO time; write it like 2026-11-28T06:00:00Z") from None
    return v if v.tzinfo else v.replace(tzinfo=dt.timezone.utc)


@app.command()
def ingest(
    case: Path = typer.Argument(..., help="Case folder (created if missing)"),
    paths: List[str] = typer.Argument(..., help="Files, directories or globs; plain, .gz or .zst"),
    format: Optional[str] = typer.Option(None, "--format", help="Force a format (see `workbench formats`)"),
    on_bad_line: str = typer.Option("quarantine", "--on-bad-line", help="quarantine (to rejects) or raise"),
    tz: str = typer.Option("UTC", "--tz", help="Zone for timestamps written without one"),
    at: Optional[str] = typer.Option(None, "--at", help="Time for files that carry none (scrapes, GC output)"),
    instance: Optional[str] = typer.Option(None, "--instance", help="Instance name for these files"),
    pg_prefix: Optional[str] = typer.Option(None, "--pg-prefix", help="PostgreSQL log_line_prefix of stderr logs"),
    wait: float = typer.Option(300.0, "--wait", help="Seconds to wait for another ingest of this case"),
    as_json: bool = typer.Option(False, "--json", help="Print the ledger as one JSON object"),
) -> None:
    """Load evidence files into a case: every line becomes a row, a reject with its reason, or a counted skip."""
    from .ingest.pipeline import ingest as run

    opts = {"pg_prefix": pg_prefix} if pg_prefix else {}
    progress = None if as_json else (lambda p: err.print(f"[dim]ingesting {p}[/dim]"))
    summary = run(case, paths, format=format, on_bad_line=on_bad_line, tz=tz, at=_parse_at(at),
                  instance=instance, options=opts, wait_s=wait, progress=progress)
    d = summary.to_dict()
    if as_json:
        print(json.dumps(d, default=str, sort_keys=True))
    else:
        print_summary(d)
    if d["totals"]["errors"]:
        for f in d["files"]:
            if f["error"]:
                err.print(f"error: {f['error']}")
        raise typer.Exit(1)


def print_summary(d: dict) -> None:
    t = Table(title=f"ingest into {d['case']}")
    for col in ("file", "format", "lines", "rows", "rejects", "skipped", "status"):
        t.add_column(col, justify="right" if col in ("lines", "rows", "rejects", "skipped") else "left")
    for f in d["files"]:
        fmt = "/".join([*f["wrappers"], f["format"] or "?"])
        t.add_row(f["source_file"], fmt, str(f["lines"]), str(f["rows_total"]), str(f["rejects"]),
                  str(f["skipped_total"]), f["status"] + (f" ({f['damage']})" if f["damage"] else ""))
    tot = d["totals"]
    t.add_row("total", "", str(tot["lines"]), str(tot["rows"]), str(tot["rejects"]), str(tot["skipped"]),
              "balanced" if tot["balanced"] else "NOT BALANCED")
    out.print(t)
    for f in d["files"]:
        for n in f["notes"]:
            out.print(f"[dim]{f['source_file']}: {n}[/dim]")


@app.command()
def query(
    case: str = typer.Argument(..., help="Case folder, or s3://bucket/prefix of a synced case"),
    sql: str = typer.Argument(..., help="SQL over the case's tables (requests, log_events, …)"),
    format: str = typer.Option("table", "--format", help="table, csv or json"),
) -> None:
    """Run read-only SQL against a case and print the result."""
    from .query import run_query

    text = run_query(case, sql, format)
    sys.stdout.write(text)


@app.command()
def formats() -> None:
    """List every input format and wrapper the workbench understands, with an example line."""
    from rich.markup import escape

    from .ingest.catalog import FORMATS
    from .ingest.wrappers import WRAPPERS

    for f in FORMATS:
        if f.name == "empty":
            continue
        out.print(f"[bold]{f.name}[/bold] ({f.family} → {', '.join(f.tables)}): {escape(f.description)}",
                  highlight=False)
        out.print(f"    {f.example}", highlight=False, soft_wrap=True, markup=False)
    out.print("\n[bold]wrappers[/bold] (removed first, stackable; plain, .gz and .zst files):")
    for w in WRAPPERS:
        out.print(f"[bold]{w.name}[/bold]: {w.description}", highlight=False)
        out.print(f"    {w.example}", highlight=False, soft_wrap=True)


@app.command()
def compact(
    case: Path = typer.Argument(..., help="Case folder"),
    target_mb: int = typer.Option(512, "--target-mb", help="Aim for files of about this size"),
) -> None:
    """Merge a case's small Parquet files into large ones sorted by ts (for Spark, Trino, Athena)."""
    from .compact import compact as run

    s = run(case, target_mb=target_mb)
    out.print(f"{s.files_before} files -> {s.files_after} files ({s.rows} rows rewritten)")


@app.command()
def sync(
    case: Path = typer.Argument(..., help="Local case folder"),
    url: str = typer.Argument(..., help="s3://bucket/prefix (endpoint and keys from the AWS_* settings)"),
) -> None:
    """Upload a case's committed Parquet and manifest to S3-compatible storage, for Spark/Trino or sharing."""
    from .remote import sync as run

    s = run(case, url)
    out.print(f"{s.url}: {s.uploaded} files uploaded, {s.already_there} already there")


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("cases/demo"), "--out", help="Where to put the demo (raw/, case/, report/)"),
    seed: int = typer.Option(7, "--seed", help="Generator seed"),
) -> None:
    """Make a realistic incident, ingest it, run every notebook, and print the path of the appendix."""
    from .demo import run_demo

    path = run_demo(out_dir, seed=seed, progress=lambda m: err.print(f"[dim]{m}[/dim]", highlight=False))
    print(path)


PARAM_HELP = "Notebook parameter NAME=VALUE (repeatable); checked against the notebooks' parameters cells"
IP_KEY_HELP = ("Key for consistent IP pseudonymisation in the exported appendix (HMAC); "
               "default: the WORKBENCH_IP_KEY environment variable; none leaves IPs as they are")


@app.command()
def report(
    case: Path = typer.Argument(..., help="Case folder"),
    start: Optional[str] = typer.Option(None, "--start", help="Window start, ISO 8601 (default: first evidence)"),
    end: Optional[str] = typer.Option(None, "--end", help="Window end, ISO 8601 (default: last evidence)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Appendix folder (default: CASE/report)"),
    param: List[str] = typer.Option([], "-p", "--parameter", help=PARAM_HELP),
    notebooks: Optional[Path] = typer.Option(None, "--notebooks", help="Folder of NN-name.ipynb notebooks"),
    ip_key: Optional[str] = typer.Option(None, "--ip-key", help=IP_KEY_HELP),
) -> None:
    """Run the notebooks over a case with papermill and export the post-mortem appendix; prints its index.html."""
    from .export.report import parse_assignments, run_report

    path = run_report(case, start=start, end=end, out=out_dir, params=parse_assignments(param),
                      notebooks_dir=notebooks, ip_key=ip_key,
                      progress=lambda m: err.print(f"[dim]{m}[/dim]", highlight=False))
    print(path)


@app.command()
def weekly(
    case: Path = typer.Argument(..., help="Case folder (weeks accumulate in it)"),
    week: str = typer.Option(..., "--week", help="ISO week to review, YYYY-Www (e.g. 2026-W48)"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Reports folder (default: CASE/reports)"),
    inputs: List[str] = typer.Option([], "--inputs", help="Evidence to append first (files, folders, globs)"),
    param: List[str] = typer.Option([], "-p", "--parameter", help=PARAM_HELP),
    notebooks: Optional[Path] = typer.Option(None, "--notebooks", help="Folder of NN-name.ipynb notebooks"),
    ip_key: Optional[str] = typer.Option(None, "--ip-key", help=IP_KEY_HELP),
) -> None:
    """The Monday review: append the week's evidence, write reports/<week>/ and keep earlier weeks' reports."""
    from .export.report import parse_assignments
    from .export.weekly import run_weekly

    path = run_weekly(case, week, out=out_dir, inputs=inputs, params=parse_assignments(param),
                      notebooks_dir=notebooks, ip_key=ip_key,
                      progress=lambda m: err.print(f"[dim]{m}[/dim]", highlight=False))
    print(path)


def main() -> None:
    try:
        app()
    except WorkbenchError as exc:
        one_line = " ".join(str(exc).split())
        print(f"error: {one_line}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
