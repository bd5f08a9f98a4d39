"""Whole-file ingest: DuckDB reads a plain file itself, on every core, and writes Parquet straight from the parse.

Used for an uncompressed, unwrapped file whose format can parse it so (`Format.whole_file`: the request logs,
PostgreSQL stderr). DuckDB's CSV reader, told that a line is one column with no quoting, gives the file's lines
in order (the count is checked below). The format's `classify` runs once over them, on every core, into a
scratch Parquet file, whose row numbers are the line numbers: DuckDB writes rows in the order it read them
when nothing in the query reorders them, which the query's plan is checked for (else `row_number() OVER ()`
numbers them, on one thread). Each output table is written from it by `COPY`, sorted by (ts, line_no), so
memory stays within DuckDB's limit (it spills to disk) whatever the file's size, and no Python touches a line.

The reader must see exactly the lines the block reader would. A file with a CR or NUL byte (DuckDB would end
lines at a lone CR, and drop a NUL at a line's end) is left to the block reader, as is one that DuckDB
refuses (invalid UTF-8, a line longer than `MAX_LINE`); and DuckDB's line count must equal the file's
newline count. Nothing is lost either way; only the speed differs, and the file's notes say why.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .. import schema
from ..case import CaseWriter, Staged, fsync_file
from ..errors import BadLine
from .base import Context, Format, SqlFormat, drop_relation, sql_literal
from .source import MAX_RAW, FileScan

#: the operators of a plan that keep the order in which a file's lines are read
ORDER_KEEPING = {"Projection", "Filter", "Read"}
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


def in_view(con: duckdb.DuckDBPyConnection, lines: str, numbered: bool, line_no: str | None = None) -> None:
    """`_in` (line_no, text, wrap_ts, wrap_host, wrap_program) over a file's lines; `numbered`: line_no by
    `row_number()` (on one thread), else NULL, for a query numbered as it is written (`WholeRun.scratch`);
    `line_no`: lines that carry their numbers, in this column of `lines`."""
    number = line_no or ("row_number() OVER ()" if numbered else "NULL::BIGINT")
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW _in AS
            SELECT {number} AS line_no, coalesce(text, '') AS text,
                   NULL::TIMESTAMPTZ AS wrap_ts, NULL::VARCHAR AS wrap_host, NULL::VARCHAR AS wrap_program
            FROM {lines}"""
    )


def ingest_whole_file(ctx: Context, fmt: Format, path: Path, scan: FileScan, writer: CaseWriter,
                      file_id: str, on_bad_line: str) -> dict | None:
    """Parse and stage a whole file. Returns {"staged", "rows", "used_lines", "rejects", "blank", "lines"}, or None
    (with a note saying why) when DuckDB's reader cannot take this file as it is: the caller then reads it in
    blocks. The lines are the view `_in` (line_no, text, wrap_ts, wrap_host, wrap_program); the format's
    `parse_whole` does the rest through a `WholeRun`."""
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
    in_view(con, src, numbered=True)
    work = writer.staging / file_id / "whole"
    (work / "spill").mkdir(parents=True, exist_ok=True)
    con.execute(f"SET temp_directory = {sql_literal(str(work / 'spill'))}")
    run = WholeRun(ctx, writer, file_id, work, on_bad_line, fmt.name, src, n)
    try:
        counts = fmt.parse_whole(ctx, run)
    except BaseException:
        for s in run.staged:
            (writer.staging / file_id / s.relpath).unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    counts["staged"] = run.staged
    counts["lines"] = n
    return counts


@dataclass
class WholeRun:
    """Where a format's whole-file parse writes: scratch Parquet files, the output tables (sorted, by day) and
    the rejects. Everything goes from DuckDB to a file; no row passes through Python."""

    ctx: Context
    writer: CaseWriter
    file_id: str
    work: Path
    on_bad_line: str
    format_name: str
    #: the file's lines as a relation (text; a blank line is NULL), in order but without numbers: `_in` numbers
    #: them with `row_number() OVER ()`, which DuckDB computes on one thread, and a query over it with them
    lines: str = ""
    n_lines: int = 0
    staged: list[Staged] = field(default_factory=list)
    part: int = 0
    #: the column of `lines` that holds each line's number, when they carry them (not every line of the file)
    line_no: str | None = None

    def scratch(self, name: str, sql: str, numbered: bool = False, table: bool = False) -> int:
        """Write a SELECT once, to a scratch Parquet file or (`table`) a temp table, and make `name` a view over
        it; returns its rows. A temp table is faster to write and read under the memory limit (it spills to the
        temp directory); a Parquet file keeps DuckDB's memory free for what comes after.

        `numbered`: the view numbers the rows 1, 2, … in the order they were written, as `line_no`. DuckDB keeps
        the order of a scan when it writes, on every core, as long as nothing in the query reorders rows (a join;
        an `IN` list of more than a few values is one): a SELECT over `lines`, the file's lines, is numbered so
        without `row_number()`, which runs on one thread."""
        con = self.ctx.con
        if numbered and (lost := self.reorders(sql)):  # not seen: a safety net, every line must keep its number
            raise AssertionError(f"{self.ctx.source_file}: a numbered scratch relation would lose the lines' "
                                 f"order ({', '.join(lost)} in its plan)")
        drop_relation(con, name)
        if table:
            drop_relation(con, f"{name}_t")
            n = con.execute(f"CREATE TEMP TABLE {name}_t AS {sql}").fetchall()[0][0]
            store, number = f"{name}_t", "rowid + 1 AS line_no, *"
        else:
            path = sql_literal(str(self.work / f"{name}.parquet"))
            n = con.execute(f"COPY ({sql}) TO {path} (FORMAT parquet, COMPRESSION snappy)").fetchall()[0][0]
            store = f"read_parquet({path}{', file_row_number = true' if numbered else ''})"
            number = "file_row_number + 1 AS line_no, * EXCLUDE (file_row_number)"
        con.execute(f"CREATE TEMP VIEW {name} AS SELECT {number if numbered else '*'} FROM {store}")
        return n

    def reorders(self, sql: str) -> list[str]:
        """The operators in a SELECT's plan that may not keep the order of the rows it reads (none: it keeps it)."""
        plan = self.ctx.con.sql(f"EXPLAIN {sql}").fetchall()[0][1]
        ops = {ln.split("─ ", 1)[1].split(" ", 1)[0] for ln in plan.splitlines() if ln.lstrip().startswith("╭─ ")}
        return sorted(ops - ORDER_KEEPING)

    def drop(self, *names: str) -> None:
        """Drop scratch relations that are no longer needed (a temp table's memory and spill go with it)."""
        for name in names:
            drop_relation(self.ctx.con, name)
            drop_relation(self.ctx.con, f"{name}_t")

    def table(self, table: str, sql: str, sort: bool = False) -> int:
        """Stage a canonical table from a SELECT with its columns; returns its rows. `sort`: the SELECT is not
        in line order, sort it as it is written."""
        n, self.part = _copy_by_day(self.ctx.con, self.writer, self.file_id, table, sql, self.work, self.staged,
                                    self.part, sort)
        return n

    def rejects(self, sql: str) -> int:
        """Stage the rejects from a SELECT of (line_no, reason, text); with --on-bad-line raise, raise for the
        first one instead. Returns how many."""
        con = self.ctx.con
        if self.on_bad_line == "raise":
            first = con.sql(f"SELECT * FROM ({sql}) ORDER BY line_no LIMIT 1").fetchall()
            if first:
                raise BadLine(self.ctx.source_file, first[0][0], f"{first[0][1]} (parsed as {self.format_name})")
        raw = (f"CASE WHEN length(text) > {MAX_RAW} THEN left(text, {MAX_RAW}) || '… [line was ' || length(text) "
               f"|| ' characters]' ELSE text END")
        rej_path, rel = self.writer.stage_path(self.file_id, "rejects", None, self.part)
        rej_path.parent.mkdir(parents=True, exist_ok=True)
        n_rej = con.execute(
            f"""COPY (SELECT {sql_literal(self.ctx.source_file)} AS source_file, line_no,
                             {sql_literal(self.format_name)} AS format, reason, {raw} AS raw
                      FROM ({sql}) ORDER BY line_no)
                TO {sql_literal(str(rej_path))} ({PARQUET})"""
        ).fetchall()[0][0]
        if n_rej:
            fsync_file(rej_path)
            self.staged.append(Staged("rejects", rel, n_rej))
            self.part += 1
        else:
            rej_path.unlink()
        return n_rej


def parse_sql_format(fmt: SqlFormat, ctx: Context, run: WholeRun) -> dict:
    """The whole-file parse of an `SqlFormat`: each line classified once, into a scratch Parquet file, and
    every output table and the rejects read from it."""
    con = ctx.con
    # Lines numbered as they are written, on every core: `_in` is read with no numbers, and the classified
    # lines are numbered by their place in the scratch file. A format whose classify could reorder lines is
    # numbered by `row_number()` instead, on one thread.
    in_view(con, run.lines, numbered=False)
    cls = f"SELECT * EXCLUDE (line_no) FROM ({fmt.classify(ctx)})"
    if run.reorders(cls):
        in_view(con, run.lines, numbered=True)
        run.scratch("_cls", fmt.classify(ctx))
    else:
        run.scratch("_cls", cls, numbered=True)
    return finish_sql_format(fmt, ctx, run)


def finish_sql_format(fmt: SqlFormat, ctx: Context, run: WholeRun) -> dict:
    """The rest of an `SqlFormat`'s whole-file parse, once its lines are classified into `_cls`: the rejects,
    every output table, the blank lines."""
    con = ctx.con
    fmt.build(ctx)
    reasons = " ".join(f"WHEN {sql_literal(k)} THEN {sql_literal(v)}" for k, v in fmt.reasons.items())
    n_rej = run.rejects(f"SELECT line_no, CASE cls {reasons} END AS reason, text FROM _cls "
                        f"WHERE cls IN ({', '.join(sql_literal(k) for k in fmt.reasons)})")
    rows = {table: run.table(table, sql) for table, sql in fmt.outputs(ctx).items()}
    blank = con.sql("SELECT count(*) FROM _cls WHERE cls = 'blank'").fetchall()[0][0]
    return {"rows": rows, "used_lines": sum(rows.values()), "rejects": n_rej, "blank": blank}


def _copy_by_day(con: duckdb.DuckDBPyConnection, writer: CaseWriter, file_id: str, table: str, sql: str,
                 work: Path, staged: list[Staged], part: int, sort: bool = False) -> tuple[int, int]:
    """Write one output table sorted by (ts, line_no), one file per UTC day.

    It is written in line order first: a log is written as time goes, so it is usually in order already, and
    a sort under the memory limit costs more than the parse (it spills). Only a file found out of order is
    sorted, from that Parquet file; `sort` sorts in the first write, for a SELECT that is not in line order
    (a join does not keep it). Then each day, a contiguous run, gets its own file. DuckDB's own
    row-group size (it writes row groups in parallel; one of a million rows took three times as long) and
    zstd level 1 (faster than the default 3 here, and no larger)."""
    work.mkdir(parents=True, exist_ok=True)
    whole = work / f"{table}.parquet"
    n = con.execute(
        f"COPY (SELECT {schema.select_list(table)} FROM ({sql}){' ORDER BY ts, line_no' if sort else ''}) "
        f"TO {sql_literal(str(whole))} ({PARQUET})"
    ).fetchall()[0][0]
    if not n:
        return 0, part
    if not sort and not _in_order(whole):
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
