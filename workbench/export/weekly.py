"""`workbench weekly`: the Monday review. Appends the week's evidence to the case and writes that week's report
under `reports/<YYYY-Www>/`, next to the earlier weeks' reports, which are kept; `reports/index.html` lists them.

It runs the weekly-review notebook (`NN-weekly*.ipynb`) over the ISO week (Monday 00:00 to the next Monday
00:00 in the `tz` parameter's zone, UTC by default); while there is none, it runs the full report over the week.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from ..case import Case
from ..errors import ParameterError, WorkbenchError
from .report import discover, run_report

WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def week_bounds(week: str, tz: str = "UTC") -> tuple[dt.datetime, dt.datetime]:
    """ISO week `YYYY-Www` as [Monday 00:00, next Monday 00:00) in `tz`, returned in UTC."""
    m = WEEK.match(week)
    if not m:
        raise ParameterError(f"--week {week!r}: write the ISO week as YYYY-Www, e.g. 2026-W48")
    try:
        monday = dt.date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
    except ValueError:
        raise ParameterError(f"--week {week!r}: {m.group(1)} has no week {m.group(2)}") from None
    start = dt.datetime.combine(monday, dt.time(), ZoneInfo(tz))
    end = dt.datetime.combine(monday + dt.timedelta(days=7), dt.time(), ZoneInfo(tz))
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def weekly_notebooks(notebooks_dir: str | Path | None = None) -> list[Path]:
    nbs = discover(notebooks_dir)
    return [nb for nb in nbs if re.match(r"^\d\d-weekly", nb.name)] or nbs


def write_index(root: Path) -> Path:
    """reports/index.html: one link per week's report, newest first."""
    weeks = sorted((p.name for p in root.iterdir() if WEEK.match(p.name) and (p / "index.html").exists()), reverse=True)
    items = "".join(f'<li><a href="{html.escape(w)}/index.html">{html.escape(w)}</a></li>' for w in weeks)
    path = root / "index.html"
    path.write_text('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Weekly reviews</title></head>'
                    f"<body><h1>Weekly reviews</h1><ul>{items}</ul></body></html>\n", encoding="utf-8")
    return path


def run_weekly(
    case_path: str | Path,
    week: str,
    out: str | Path | None = None,
    inputs: list[str | Path] | None = None,
    params: dict[str, Any] | None = None,
    notebooks_dir: str | Path | None = None,
    ip_key: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Ingest `inputs` (if any) into the case, then write the week's report; returns its index.html."""
    say = progress or (lambda m: None)
    start, end = week_bounds(week, str((params or {}).get("tz", "UTC")))
    case = Case(case_path)
    if inputs:
        from ..ingest.pipeline import ingest

        say(f"appending {len(inputs)} input path(s) to {case.path}")
        summary = ingest(case, list(inputs), progress=lambda p: say(f"  ingesting {p}")).to_dict()
        bad = [f["error"] for f in summary["files"] if f["error"]]
        if bad:
            raise WorkbenchError(f"weekly {week}: ingest failed: {bad[0]}" + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
        t = summary["totals"]
        say(f"  {t['ingested']} new file(s), {t['already_ingested']} already in the case, {t['rows']:,} rows")
    root = Path(out).resolve() if out else case.path / "reports"
    root.mkdir(parents=True, exist_ok=True)
    nbs = weekly_notebooks(notebooks_dir)
    index = run_report(case.path, start=start, end=end, out=root / week, params=params, notebooks=nbs,
                       defaults={"week": week}, ip_key=ip_key, progress=say)
    write_index(root)
    return index
