"""`workbench demo`: generate an incident, ingest it, run every notebook and export the appendix."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from .errors import WorkbenchError
from .export.report import run_report
from .ingest.pipeline import ingest
from .synth import generate, preset

#: Files the generator writes that are not evidence.
NOT_EVIDENCE = ("ground_truth.json",)


def run_demo(out: str | Path, seed: int = 7, progress: Callable[[str], None] | None = None) -> Path:
    """Build the demo case under `out` (`raw/`, `case/`, `report/`); returns the appendix's index.html."""
    say = progress or (lambda m: None)
    out = Path(out).resolve()
    raw = out / "raw"
    if out.exists():
        shutil.rmtree(out)
    t0 = time.monotonic()
    say(f"generating an incident into {raw}")
    generate(raw, preset("demo", seed=seed, scrape_layout="concat"))  # scrapes in one file: a faster ingest
    files = sorted(p for p in raw.rglob("*") if p.is_file() and p.name not in NOT_EVIDENCE)
    say(f"ingesting {len(files)} file(s) into {out / 'case'}")
    summary = ingest(out / "case", files, progress=lambda p: say(f"  ingesting {Path(p).name}"))
    d = summary.to_dict()
    for f in d["files"]:
        if f["error"]:
            say(f"  not ingested: {f['error']}")
    totals = d["totals"]
    if not totals["ingested"]:
        raise WorkbenchError("demo: no generated file could be ingested; see the messages above")
    say(f"ingested {totals['ingested']} file(s), {totals['lines']:,} lines: {totals['rows']:,} rows, "
        f"{totals['rejects']:,} rejects, {totals['skipped']:,} skipped ({time.monotonic() - t0:.1f} s)")
    index = run_report(out / "case", out=out / "report", params={"incident_id": "demo"},
                       progress=lambda m: say(f"{m} ({time.monotonic() - t0:.1f} s)"))
    say(f"done in {time.monotonic() - t0:.1f} s")
    return index
