"""Whole-file ingest: DuckDB reads a plain file itself, on every core, and writes Parquet straight from the parse.

Used for an uncompressed, unwrapped file whose format is an `SqlFormat` (the big request logs). DuckDB's CSV
reader, told that a line is one column with no quoting, gives the file's lines in order; `row_number() OVER ()`
numbers them (DuckDB preserves insertion order, and the count is checked below). The format's `classify` runs
once over them into a scratch Parquet file, and each output table is written from it by `COPY`, sorted by
(ts, line_no), so memory stays within DuckDB's limit (it spills to disk) whatever the file's size, and no
Python touches a line.

The reader must see exactly the lines the block reader would. A file with a CR or NUL byte (DuckDB would end
lines at a lone CR, and drop a NUL at a line's end) is left to the block reader, as is one that DuckDB
refuses (invalid UTF-8, a line longer than `MAX_LINE`); and DuckDB's line count must equal the file's
newline count. Nothing is lost either way; only the speed differs, and the file's notes say why.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import schema
from ..case import CaseWriter, Staged, fsync_file
from ..errors import BadLine
from .base import Context, SqlFormat, drop_relation, sql_literal
from .source import MAX_RAW, FileScan

PARQUET = "FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1"
MAX_LINE = 2 << 20  # longest line DuckDB's reader takes here (its buffers are 16 times this); longer: block reader


def lines_sql(path: Path) -> str:
    """The file's lines as (text), in order; a blank line is NULL."""
    return (f"read_csv({sql_literal(str(path))}, columns={{'text': 'VARCHAR'}}, delim=chr(0), quote='', escape='', "
            f"header=false, auto_detect=false, strict_mode=true, max_line_size={MAX_LINE}, compression='none')")


def _in_order(path: Path) -> bool:
    """True when a Parquet file's rows are in (ts, line_no) order; reads those two columns a row group at a time."""
    f = pq.ParquetFile(path)
    last = None
    for i in range(f.num_row_groups):
        g = f.read_row_group(i, columns=["ts", "line_no"])
        ts = g.column("ts").combine_chunks().cast(pa.int64()).to_numpy(zero_copy_only=False)
        ln = g.column("line_no").combine_chunks().to_numpy(zero_copy_only=False)
        if last is not None and (ts[0], ln[0]) < last:
            return False
        d = np.diff(ts)
        if (d < 0).any() or ((d == 0) & (np.diff(ln) < 0)).any():
            return False
        last = (ts[-1], ln[-1])
    return True


def _why(message: str) -> str:
    lines = message.splitlines()
    where = next((ln.strip() for ln in lines if "Line:" in ln), "")
    for needle, what in (("unicode", "invalid UTF-8"), ("Number of Columns", "a NUL byte"),
                         ("line size", f"a line over {MAX_LINE >> 20} MiB")):
        if needle.lower() in message.lower():
            return f"{what}; {where}" if where else what
    return lines[0] if lines else message


def ingest_whole_file(ctx: Context, fmt: SqlFormat, path: Path, scan: FileScan, writer: CaseWriter,
                      file_id: str, on_bad_line: str) -> dict | None:
    """Parse and stage a whole file. Returns {"staged", "rows", "rejects", "blank", "lines"}, or None (with a
    note saying why) when DuckDB's reader cannot take this file as it is: the caller then reads it in blocks."""
    con = ctx.con
    if scan.has_cr or scan.has_nul:
        ctx.note(f"read in blocks: the file has {'CR line ends' if scan.has_cr else 'NUL bytes'}, which DuckDB's "
                 "line reader would not keep as they are")
        return None
    src = lines_sql(path)
    try:
        n = con.sql(f"SELECT count(*) FROM {src}").fetchall()[0][0]
    except duckdb.Error as exc:
        ctx.note(f"read in blocks: DuckDB's reader refused the file ({_why(str(exc))})")
        return None
    if n != scan.lines:  # not seen: a safety net, since every line must keep its number
        ctx.note(f"read in blocks: DuckDB's reader counted {n} lines where the file has {scan.lines}")
        return None
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW _in AS
            SELECT row_number() OVER () AS line_no, coalesce(text, '') AS text, NULL::TIMESTAMPTZ AS wrap_ts,
                   NULL::VARCHAR AS wrap_host, NULL::VARCHAR AS wrap_program
            FROM {src}"""
    )
    staged: list[Staged] = []
    work = writer.staging / file_id / "whole"
    (work / "spill").mkdir(parents=True, exist_ok=True)
    con.execute(f"SET temp_directory = {sql_literal(str(work / 'spill'))}")
    try:
        # each line parsed once, into a scratch Parquet file; everything after reads that
        cls_path = work / "classified.parquet"
        con.execute(f"COPY ({fmt.classify(ctx)}) TO {sql_literal(str(cls_path))} (FORMAT parquet, COMPRESSION snappy)")
        drop_relation(con, "_cls")
        con.execute(f"CREATE TEMP VIEW _cls AS SELECT * FROM read_parquet({sql_literal(str(cls_path))})")
        fmt.build(ctx)
        reasons = " ".join(f"WHEN {sql_literal(k)} THEN {sql_literal(v)}" for k, v in fmt.reasons.items())
        rej_sql = (f"SELECT line_no, CASE cls {reasons} END AS reason, text FROM _cls "
                   f"WHERE cls IN ({', '.join(sql_literal(k) for k in fmt.reasons)})")
        if on_bad_line == "raise":
            first = con.sql(f"{rej_sql} ORDER BY line_no LIMIT 1").fetchall()
            if first:
                raise BadLine(ctx.source_file, first[0][0], f"{first[0][1]} (parsed as {fmt.name})")
        counts = {"rows": {}, "rejects": 0}
        part = 0
        for table, sql in fmt.outputs(ctx).items():
            n_rows, part = _copy_by_day(con, writer, file_id, table, sql, work, staged, part)
            counts["rows"][table] = n_rows
        raw = (f"CASE WHEN length(text) > {MAX_RAW} THEN left(text, {MAX_RAW}) || '… [line was ' || length(text) "
               f"|| ' characters]' ELSE text END")
        rej_path, rel = writer.stage_path(file_id, "rejects", None, part)
        rej_path.parent.mkdir(parents=True, exist_ok=True)
        n_rej = con.execute(
            f"""COPY (SELECT {sql_literal(ctx.source_file)} AS source_file, line_no, {sql_literal(fmt.name)} AS format,
                             reason, {raw} AS raw FROM ({rej_sql}) ORDER BY line_no)
                TO {sql_literal(str(rej_path))} ({PARQUET})"""
        ).fetchall()[0][0]
        if n_rej:
            fsync_file(rej_path)
            staged.append(Staged("rejects", rel, n_rej))
        else:
            rej_path.unlink()
        counts["rejects"] = n_rej
        counts["blank"] = con.sql("SELECT count(*) FROM _cls WHERE cls = 'blank'").fetchall()[0][0]
    except BaseException:
        for s in staged:
            (writer.staging / file_id / s.relpath).unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    counts["staged"] = staged
    counts["lines"] = n
    return counts


def _copy_by_day(con: duckdb.DuckDBPyConnection, writer: CaseWriter, file_id: str, table: str, sql: str,
                 work: Path, staged: list[Staged], part: int) -> tuple[int, int]:
    """Write one output table sorted by (ts, line_no), one file per UTC day.

    It is written in line order first: a log is written as time goes, so it is usually in order already, and
    a sort under the memory limit costs more than the parse (it spills). Only a file found out of order is
    sorted, from that Parquet file. Then each day, a contiguous run, gets its own file. DuckDB's own
    row-group size (it writes row groups in parallel; one of a million rows took three times as long) and
    zstd level 1 (faster than the default 3 here, and no larger)."""
    work.mkdir(parents=True, exist_ok=True)
    whole = work / f"{table}.parquet"
    n = con.execute(
        f"COPY (SELECT {schema.select_list(table)} FROM ({sql})) TO {sql_literal(str(whole))} ({PARQUET})"
    ).fetchall()[0][0]
    if not n:
        return 0, part
    if not _in_order(whole):
        ordered = work / f"{table}-sorted.parquet"
        con.execute(f"COPY (SELECT * FROM read_parquet({sql_literal(str(whole))}) ORDER BY ts, line_no) "
                    f"TO {sql_literal(str(ordered))} ({PARQUET})")
        ordered.replace(whole)
    days = [r[0] for r in con.sql(
        f"SELECT DISTINCT CAST(ts AS DATE) AS d FROM read_parquet({sql_literal(str(whole))}) ORDER BY d").fetchall()]
    for day in days:
        path, rel = writer.stage_path(file_id, table, day.isoformat(), part)
        path.parent.mkdir(parents=True, exist_ok=True)
        if len(days) == 1:
            whole.replace(path)
        else:  # rows come out in the file's order (DuckDB preserves insertion order), which is sorted
            lo = dt.datetime.combine(day, dt.time(), dt.UTC)
            con.execute(
                f"COPY (SELECT * FROM read_parquet({sql_literal(str(whole))}) WHERE ts >= $lo AND ts < $hi) "
                f"TO {sql_literal(str(path))} ({PARQUET})", {"lo": lo, "hi": lo + dt.timedelta(days=1)})
        fsync_file(path)
        staged.append(Staged(table, rel, pq.read_metadata(path).num_rows))
        part += 1
    return n, part
