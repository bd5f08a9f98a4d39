"""A plain PostgreSQL stderr log read whole by DuckDB: the same rows as the block parse, with no Python per line
and DuckDB's memory within its limit whatever the file's size (its temp tables spill to the case's staging).

The lines come from `wholefile` (`run.lines`), or, numbered (`run.line_no`), from the compiled parser (native.py):
the lines of the records it left to this parse. Each step is a temp table that the next reads:

1. `_pl`, every line once, on every core, numbered by the order in which it was written: its kind, the prefix's
   fields (without the prefix text itself) and the body (`StderrSql.lines`).
2. `_pc`, the record and part of every DETAIL / STATEMENT / … and tab-continuation line: a running max of the
   head line numbers in file order. DuckDB streams a window with no ORDER BY in the order it reads (one thread,
   over two narrow columns); most lines are heads, which are their own record.
3. `_parts` and `_cls`: the parts of the records of several lines, each with its continuations joined on, then
   every record (its head line, with the parts of a longer one joined in) and its classification.
4. the rejects (their raw text read again from the file, only when there are any) and the ledger; then the
   outputs, copied to Parquet sorted by time (the joins of step 3 keep the lines' order only nearly): log events,
   and lock waits with deadlocks expanded (deadlocks are few, so their rows go through Python as in the block
   parse) and fingerprints looked up by normalised statement (pglast once per distinct one).
"""

from __future__ import annotations

from .base import Context
from .postgres import (
    BAD_LINE,
    NORM_SQL,
    ORPHAN_LINE,
    StderrSql,
    classify_sql,
    expand_deadlock_rows,
    fingerprint_lookup,
    lock_waits_sql,
    log_events_sql,
    no_time_reason,
)
from .wholefile import WholeRun


def parse_stderr_whole(ctx: Context, run: WholeRun, sql: StderrSql) -> dict:
    con = ctx.con
    numbered = run.line_no is None
    src = f"(SELECT {'' if numbered else run.line_no + ' AS line_no, '}coalesce(text, '') AS text FROM {run.lines})"
    fields = ", ".join(f"'{n}': m.{n}" for n in sql.names if n != "head")
    n = run.scratch("_pl", f"""SELECT {'' if numbered else 'line_no, '}k, {{{fields}}} AS m, body,
                                      NULL::TIMESTAMPTZ AS wrap_ts, NULL::VARCHAR AS wrap_host
                               FROM ({sql.lines(src)})""", numbered=numbered, table=True)
    if n != run.n_lines:
        raise AssertionError(f"{ctx.source_file}: {n} lines parsed of {run.n_lines}")
    # lines that carry their numbers (the compiled parser's leftovers, few) are put in order by them
    order = "" if numbered else "ORDER BY line_no "
    run.scratch("_pc", f"""SELECT * FROM (SELECT line_no, k, {StderrSql.RECORD_OF} FROM _pl
                                          WINDOW w AS ({order}ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW))
                           WHERE k IN ('sec', 'cont')""", table=True)
    con.execute("CREATE OR REPLACE TEMP TABLE _multi AS SELECT DISTINCT rec_line FROM _pc WHERE rec_line IS NOT NULL")
    run.scratch("_ml", """SELECT line_no, k, m, wrap_ts, wrap_host, body, line_no AS rec_line, line_no AS part FROM _pl
                          WHERE k = 'head' AND line_no IN (SELECT rec_line FROM _multi)
                          UNION ALL
                          SELECT p.line_no, p.k, p.m, p.wrap_ts, p.wrap_host, p.body, c.rec_line, c.part
                          FROM _pl p JOIN _pc c USING (line_no) WHERE c.rec_line IS NOT NULL""", table=True)
    run.scratch("_parts", sql.parts("_ml"), table=True)
    run.drop("_ml", "_multi")
    records = sql.records("SELECT * FROM _pl WHERE k = 'head'", "SELECT * FROM _parts")
    run.scratch("_cls", classify_sql(ctx, f"({records})", zones=f"(SELECT {sql.ts_text} AS ts_text FROM _pl WHERE k = 'head')"),
                table=True)
    run.drop("_parts")

    # the ledger, before the outputs so that --on-bad-line raise stops early: the lines of a record without a
    # readable time, continuations with no record, and lines that are no log line are rejects
    con.execute("CREATE OR REPLACE TEMP TABLE _notime AS SELECT rec_line, ts_text FROM _cls WHERE ts IS NULL")
    con.execute(
        rf"""
        CREATE OR REPLACE TEMP TABLE _rej AS
        SELECT line_no,
               CASE WHEN k = 'bad' THEN '{BAD_LINE}' WHEN rec_line IS NULL THEN '{ORPHAN_LINE}'
                    ELSE {no_time_reason('n.ts_text')} END AS reason
        FROM (SELECT p.line_no, p.k, CASE WHEN p.k = 'head' THEN p.line_no ELSE c.rec_line END AS rec_line
              FROM _pl p LEFT JOIN _pc c USING (line_no) WHERE p.k <> 'blank') l
             LEFT JOIN _notime n USING (rec_line)
        WHERE k = 'bad' OR rec_line IS NULL OR n.rec_line IS NOT NULL
        """)
    used, blank, n_bad = con.sql(
        """SELECT (SELECT count(*) FROM _pl WHERE k = 'head' AND line_no NOT IN (SELECT rec_line FROM _notime))
                  + (SELECT count(*) FROM _pc WHERE rec_line IS NOT NULL AND rec_line NOT IN (SELECT rec_line FROM _notime)),
                  (SELECT count(*) FROM _pl WHERE k = 'blank'), (SELECT count(*) FROM _rej)""").fetchall()[0]
    run.drop("_pl", "_pc", "_notime")
    # a reject's raw text from the file itself (numbered on one thread: only when there are rejects)
    n_rej = run.rejects("""SELECT line_no, reason, text FROM _rej
                           JOIN (SELECT line_no, text FROM _in WHERE line_no IN (SELECT line_no FROM _rej)) USING (line_no)"""
                        ) if n_bad else 0
    run.drop("_rej")

    # records come out of the join in records() nearly, not quite, in line order: the outputs are sorted
    rows = {"log_events": run.table("log_events", log_events_sql(ctx), sort=True), "db_lock_waits": _lock_waits(ctx, run)}
    run.drop("_dl", "_cls")
    return {"rows": rows, "used_lines": used, "rejects": n_rej, "blank": blank}


def _lock_waits(ctx: Context, run: WholeRun) -> int:
    """db_lock_waits: the rows of `lock_waits_sql`, a deadlock's row replaced by its expansion (a row per process,
    from `_expand_deadlocks`), and the fingerprint of each statement joined in."""
    con = ctx.con
    waits = f"SELECT *, {NORM_SQL} AS _norm FROM ({lock_waits_sql(ctx)})"
    dl = expand_deadlock_rows(con.sql(f"SELECT * FROM ({lock_waits_sql(ctx)}) WHERE event = 'deadlock'").to_arrow_table())
    con.register("_dl_in", dl)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _dl AS SELECT *, {NORM_SQL} AS _norm FROM _dl_in")
    finally:
        con.unregister("_dl_in")
    lookup = fingerprint_lookup(con, f"(SELECT _norm, statement FROM ({waits}) WHERE event IS DISTINCT FROM 'deadlock' "
                                     "UNION ALL SELECT _norm, statement FROM _dl)")
    con.register("_fp_lookup", lookup)
    try:
        cols = ", ".join(f'CASE WHEN d.line_no IS NULL THEN w."{c}" ELSE d."{c}" END AS "{c}"'
                         for c in dl.column_names if c != "fingerprint")
        return run.table("db_lock_waits", f"""
            SELECT {cols}, l.fp AS fingerprint
            FROM ({waits}) w LEFT JOIN _dl d ON d.line_no = w.line_no
                 LEFT JOIN _fp_lookup l ON l.norm = CASE WHEN d.line_no IS NULL THEN w._norm ELSE d._norm END""",
                         sort=True)
    finally:
        con.unregister("_fp_lookup")
