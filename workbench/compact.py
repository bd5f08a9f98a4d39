"""Compaction: merge a case's many small Parquet files into large ones (sorted by ts), for Spark and Athena.

Each ingest writes one file per input file and date; weeks of reviews make thousands of small files. `compact`
rewrites each partition into files of about `target_mb` (default 512 MB), rows sorted by `ts` (then source
file and line), and swaps them into the manifest in one catalog transaction; the old files are removed after.
A killed compaction leaves either the old or the new files in the manifest, and the next writer removes the
rest. Run it when no notebook has the case open: an open reader's views still name the old files.
"""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from . import schema
from .case import Case, Staged, _connect_file, new_connection


@dataclass
class CompactSummary:
    files_before: int = 0
    files_after: int = 0
    rows: int = 0
    partitions: dict[str, int] = field(default_factory=dict)  # "table/date=…" -> files written


def compact(case: str | os.PathLike | Case, target_mb: int = 512, wait_s: float = 300.0) -> CompactSummary:
    case = case if isinstance(case, Case) else Case(case)
    target = target_mb * 1024 * 1024
    summary = CompactSummary()
    with case.writer(wait_s=wait_s) as w:
        con = _connect_file(case.db_path, read_only=True)
        try:
            rows = con.execute("SELECT table_name, relpath, rows FROM manifest_files ORDER BY relpath").fetchall()
        finally:
            con.close()
        groups: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
        for table, rel, n in rows:
            groups[(table, str(Path(rel).parent))].append((rel, n))
        summary.files_before = len(rows)
        replaced: list[str] = []
        new: list[Staged] = []
        duck = new_connection()
        for (table, part_dir), files in sorted(groups.items()):
            if len(files) < 2:
                summary.files_after += len(files)
                continue
            bins: list[list[tuple[str, int]]] = [[]]
            size = 0
            for rel, n in files:
                fsize = (case.path / rel).stat().st_size
                if bins[-1] and size + fsize > target:
                    bins.append([])
                    size = 0
                bins[-1].append((rel, n))
                size += fsize
            for b in bins:
                if len(b) < 2:
                    summary.files_after += len(b)
                    continue
                rel_new = f"{part_dir}/compacted-{uuid.uuid4().hex[:16]}.parquet"
                dst = case.path / rel_new
                tmp = w.staging / "compact" / rel_new
                tmp.parent.mkdir(parents=True, exist_ok=True)
                paths = [str(case.path / r) for r, _ in b]
                order = "ts, source_file, line_no" if table in schema.PARTITIONED else "source_file, line_no"
                duck.execute(
                    f"COPY (SELECT {schema.select_list(table)} FROM read_parquet($paths, hive_partitioning=false) "
                    f"ORDER BY {order}) TO '{_sql_str(tmp)}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1048576)",
                    {"paths": paths},
                )
                n_rows = sum(n for _, n in b)
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, dst)
                new.append(Staged(table, rel_new, n_rows))
                replaced.extend(r for r, _ in b)
                summary.rows += n_rows
                summary.files_after += 1
                summary.partitions[f"{part_dir.removeprefix('parquet/')}"] = summary.partitions.get(part_dir, 0) + 1
        duck.close()
        if new:
            w.replace_files(replaced, new)
            for rel in replaced:
                (case.path / rel).unlink(missing_ok=True)
    return summary


def _sql_str(p: Path) -> str:
    return str(p).replace("'", "''")
