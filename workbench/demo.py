"""`workbench demo`: generate an incident, ingest it, and print what it found."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from .case import Case
from .errors import WorkbenchError
from .ingest.pipeline import ingest
from .synth import generate, preset


def run_demo(out: str | Path, seed: int = 7, progress: Callable[[str], None] | None = None) -> Path:
    say = progress or (lambda m: None)
    out = Path(out).resolve()
    raw = out / "raw"
    if out.exists():
        shutil.rmtree(out)
    say(f"generating an incident into {raw}")
    truth = generate(raw, preset("demo", seed=seed, scrape_layout="concat"))  # one file: a faster ingest
    say("ingesting")
    inputs = [raw / name for name in ("registry.json.log", truth["gc"]["file"], "dmesg.txt")]
    inputs += sorted((raw / "metrics").glob("scrapes-*.prom"))
    summary = ingest(out / "case", inputs, progress=say)
    d = summary.to_dict()
    totals = d["totals"]
    for f in d["files"]:
        if f["error"]:
            raise WorkbenchError(f"demo ingest failed: {f['error']}")
    say(f"ingested {totals['lines']} lines: {totals['rows']} rows, {totals['rejects']} rejects, "
        f"{totals['skipped']} skipped")
    con = Case(out / "case").connect()
    top = con.sql(
        "SELECT remote_ip, user_agent, count(*) AS n FROM requests WHERE layer = 'registry' "
        "GROUP BY ALL ORDER BY n DESC, remote_ip LIMIT 1"
    ).fetchall()
    say(f"top talker: {top[0][0]} ({top[0][1]}), {top[0][2]} requests")
    return out / "case"
