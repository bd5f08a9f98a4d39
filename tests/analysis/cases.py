"""Small cases for the analysis tests: generated incidents ingested through the real pipeline, and
hand-made tables written straight into a case in the canonical schema."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa

from workbench import schema
from workbench.case import Case
from workbench.ingest.pipeline import _stage_table, ingest
from workbench.synth import Scenario, generate


def generated_case(root: Path, scenario: Scenario) -> tuple[Path, Path]:
    """Generate an incident under root/raw and ingest every evidence file it wrote; (case, ground_truth.json)."""
    raw = root / "raw"
    generate(raw, scenario)
    files = sorted(p for p in raw.rglob("*") if p.is_file() and p.name != "ground_truth.json")
    ingest(root / "case", files)
    return root / "case", raw / "ground_truth.json"


def rows_table(table: str, rows: list[dict]) -> pa.Table:
    """Rows (dicts with some columns) as a canonical table: other columns null, provenance filled."""
    sch = schema.TABLES[table]
    cols = {}
    for f in sch:
        if f.name == "source_file":
            cols[f.name] = pa.array([r.get("source_file", "hand-made") for r in rows], f.type)
        elif f.name == "line_no":
            cols[f.name] = pa.array([r.get("line_no", i + 1) for i, r in enumerate(rows)], f.type)
        else:
            cols[f.name] = pa.array([r.get(f.name) for r in rows], f.type)
    return pa.table(cols, schema=sch)


def make_case(path: Path, tables: dict[str, list[dict] | pa.Table]) -> Path:
    """A case holding the given tables, committed as one input file per table."""
    case = Case(path)
    with case.writer() as w:
        for table, data in tables.items():
            data = data if isinstance(data, pa.Table) else rows_table(table, data)
            fid = w.new_file_id()
            staged: list = []
            if data.num_rows:
                _stage_table(w, fid, table, data, staged, 0)
            sha = hashlib.sha256(f"{path}/{table}/{fid}".encode()).hexdigest()
            w.commit(fid, staged, {"source_file": f"hand-made/{table}", "size": 0, "sha256": sha, "format": "test",
                                   "lines": data.num_rows, "rows": data.num_rows, "rejects": 0, "skipped": 0,
                                   "summary": {}})
    return path


def host_case(path: Path, tables: dict[str, list[dict]], captures: list[Path]) -> Path:
    """A hand-made case (make_case) with host captures ingested into it through the real pipeline."""
    make_case(path, tables)
    if captures:
        d = ingest(path, captures).to_dict()
        assert d["totals"]["balanced"] and all(f["rejects"] == 0 for f in d["files"]), d
    return path
