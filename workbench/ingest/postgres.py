"""PostgreSQL server logs: stderr with any `log_line_prefix`, csvlog and jsonlog, into `db_lock_waits` and
`log_events`.

Each format is first assembled into records (one per message, with its DETAIL, HINT, CONTEXT and STATEMENT and
the tab-indented continuation lines of multi-line text) by window functions over the whole block; the last
record of a block is held back until the next block shows it is finished. All three formats then share one
classification: lock waits (`still waiting for` / `acquired … after N ms`, with the holders and wait queue from
the DETAIL), deadlocks (a row for every process of the report; the one that logged the ERROR is the victim),
lock and statement timeouts, slow statements (`duration:`), connection failures and other errors go to
`db_lock_waits`; every other record goes to `log_events`. Statements are fingerprinted with pglast so the same
statement with other constants groups together.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import duckdb
import pyarrow as pa

from .. import schema
from .base import Context, Format, ParseResult, empty_rejects, rejects_from, sql_literal
from .pg_time import ts_sql

SEVERITIES = ("DEBUG5", "DEBUG4", "DEBUG3", "DEBUG2", "DEBUG1", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR",
              "LOG", "FATAL", "PANIC")
SECONDARY = ("DETAIL", "HINT", "QUERY", "CONTEXT", "LOCATION", "STATEMENT")
_SEV_RE = "(" + "|".join(SEVERITIES + SECONDARY) + "):  "

#: the prefixes tried when none is given, most specific first (Debian's default, pgBadger's recommended ones,
#: the stock `%m [%p] `, RDS, and the bare forms)
COMMON_PREFIXES = (
    "%m [%p] %q%u@%d ",
    "%t [%p] %q%u@%d ",
    "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
    "%m [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
    "%t [%p]: user=%u,db=%d,app=%a,client=%h ",
    "%m [%p]: user=%u,db=%d,app=%a,client=%h ",
    "%t:%r:%u@%d:[%p]:",
    "%m %u %d [%p] ",
    "%m [%p] ",
    "%t [%p] ",
    "%m [%p]: ",
    "%t [%p]: ",
    "[%l-1] user=%u,db=%d,app=%a,client=%h ",
    "%m ",
    "%t ",
    "",
)

_TS = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
_ZONE = r"(?: [A-Za-z]{1,6}| ?[+-]\d\d(?::?\d\d)?)?"
# escape -> (regex, group name or None)
_ESCAPES: dict[str, tuple[str, str | None]] = {
    "m": (rf"({_TS}\.\d+{_ZONE})", "ts"),
    "t": (rf"({_TS}{_ZONE})", "ts"),
    "n": (r"(\d+\.\d+)", "epoch"),
    "s": (rf"{_TS}{_ZONE}", None),
    "p": (r"(\d+)", "pid"),
    "P": (r"\d*", None),
    "u": (r"(.*?)", "user"),
    "d": (r"(.*?)", "db"),
    "a": (r"(.*?)", "app"),
    "h": (r"(.*?)", "host"),
    "r": (r"(.*?)", "host"),
    "b": (r".*?", None),
    "l": (r"\d+", None),
    "c": (r"[0-9a-f]+\.[0-9a-f]+", None),
    "v": (r"\S*?", None),
    "x": (r"\d*", None),
    "e": (r"([0-9A-Z]{5})", "sqlstate"),
    "i": (r".*?", None),
    "Q": (r"-?\d*", None),
}


def prefix_regex(prefix: str) -> tuple[str, list[str]]:
    """A log_line_prefix as an RE2 regex (anchored, ending before the severity) and its group names in order."""
    out, names, i, optional = [], [], 0, False
    while i < len(prefix):
        ch = prefix[i]
        if ch == "%" and i + 1 < len(prefix):
            e = prefix[i + 1]
            i += 2
            if e == "%":
                out.append("%")
            elif e == "q":
                out.append("(?:")
                optional = True
            elif e in _ESCAPES:
                rx, name = _ESCAPES[e]
                out.append(rx)
                if name:
                    names.append(name if name not in names else f"{name}{len(names)}")
            else:
                out.append(re.escape("%" + e))
            continue
        out.append(re.escape(ch))
        i += 1
    if optional:
        out.append(")?")
    return "^" + "".join(out), names


def _py_regex(prefix: str) -> re.Pattern:
    rx, _ = prefix_regex(prefix)
    return re.compile(rx + _SEV_RE)


def detect_prefix(lines: list[str]) -> tuple[str, int]:
    """The common prefix that fits most of these lines (ties: the more specific), and how many it fits. The
    compiled module counts the lines a prefix fits ten times as fast as Python's regex (which took 0.13 s of
    each file's ingest); Python's regex counts the lines it might read differently (not ASCII: digits and
    spaces beyond it; over 600 characters), and all of them without it."""
    try:
        from ._native import pg_prefix_count
    except ImportError:
        pg_prefix_count = None
    fast, rest = [], []
    for ln in lines:
        (fast if pg_prefix_count and ln.isascii() and len(ln) <= 600 else rest).append(ln)
    data = "\n".join(fast).encode()
    best, best_n = "", -1
    for p in COMMON_PREFIXES:
        n, others = pg_prefix_count(data, p) if fast else 0, rest
        if n < 0:  # a prefix the compiled module does not read
            n, others = 0, lines
        if others:
            rx = _py_regex(p)
            n += sum(1 for ln in others if rx.match(ln))
        if n > best_n:
            best, best_n = p, n
    return best, best_n


# ---------------------------------------------------------------------------------------------------------------
# Shared classification of assembled records (table _rec) into db_lock_waits and log_events
# ---------------------------------------------------------------------------------------------------------------

_WAIT_RE = (r"^process (\d+) (still waiting for|acquired|avoided deadlock for|detected deadlock while waiting for) "
            r"(\S+) on (.+?) (?:by rearranging queue order )?after ([0-9.]+) ms$")
_CONN_RE = (r"too many clients|remaining connection slots are reserved|password authentication failed|"
            r"no pg_hba.conf entry|authentication failed for user|role \".*\" does not exist|"
            r"database \".*\" does not exist|the database system is (starting up|shutting down|in recovery mode)|"
            r"connection slots")
_INT_LIST = "list_transform(list_filter(string_split(regexp_replace({}, '\\s', '', 'g'), ','), lambda x: x <> ''), lambda x: CAST(x AS BIGINT))"


#: a classified record's event (NULL: a log event), from its severity, message, lock-wait parts `wm` and
#: duration `dur_ms`; shared with the compiled parser's rows (native.py)
EVENT_SQL = rf"""CASE
                WHEN wm.verb IN ('still waiting for', 'detected deadlock while waiting for', 'avoided deadlock for')
                    THEN 'waiting'
                WHEN wm.verb = 'acquired' THEN 'acquired'
                WHEN message = 'deadlock detected' THEN 'deadlock'
                WHEN message = 'canceling statement due to lock timeout' THEN 'lock_timeout'
                WHEN message = 'canceling statement due to statement timeout' THEN 'statement_timeout'
                WHEN dur_ms IS NOT NULL THEN 'slow_statement'
                WHEN severity IN ('FATAL', 'ERROR', 'PANIC') AND regexp_matches(message, '{_CONN_RE}')
                    THEN 'connection_error'
                WHEN severity IN ('ERROR', 'FATAL', 'PANIC') THEN 'error'
            END"""


def classify_sql(ctx: Context, records: str, zones: str = "_rec") -> str:
    """Records (`records`, a relation or subquery with _rec's columns) -> one row per record with its UTC time,
    event and the parts of a lock-wait or duration message. `zones` holds every record's `ts_text`.

    Each extraction runs only on the records it can apply to (CASE guards), so the common `duration:` and
    connection lines cost a prefix test each.
    """
    ts = ts_sql(ctx.con, zones, "ts_text", ctx.tz)
    return rf"""
        WITH r AS (
            SELECT * REPLACE (CASE WHEN contains(message, ' at character ')
                                   THEN regexp_replace(message, ' at character \d+$', '') ELSE message END AS message),
                   coalesce({ts}, wrap_ts) AS ts
            FROM {records}),
        w AS (
            SELECT *,
                CASE WHEN starts_with(message, 'process ')
                     THEN regexp_extract(message, '{_WAIT_RE}', ['wpid', 'verb', 'mode', 'obj', 'ms']) END AS wm,
                CASE WHEN starts_with(message, 'duration: ')
                     THEN TRY_CAST(split_part(substr(message, 11), ' ', 1) AS DOUBLE) END AS dur_ms,
                CASE WHEN starts_with(message, 'duration: ') AND contains(message, ' ms  ')
                     THEN substr(message, strpos(message, ' ms  ') + 5) END AS dur_rest
            FROM r)
        SELECT * EXCLUDE (dur_rest),
            CASE WHEN dur_rest IS NOT NULL THEN substr(dur_rest, strpos(dur_rest, ': ') + 2) END AS dur_stmt,
            {EVENT_SQL} AS event
        FROM w
        """


def lock_waits_sql(ctx: Context, extra: str = "") -> str:
    """_cls -> db_lock_waits rows (a deadlock as one row, see `_expand_deadlocks`; no fingerprint yet), with the
    `extra` columns of _cls after them (", _norm").

    The compiled parser works out the same row for the records whose event it knows (_pg.c, wait_row): a change
    here must be made there too, and tests/ingest/test_native_pg.py compares the two."""
    holders = _INT_LIST.format(r"regexp_extract(detail, 'Process(?:es)? holding the lock: ([0-9, ]*)\.', 1)")
    waiters = _INT_LIST.format(r"regexp_extract(detail, 'Wait queue: ([0-9, ]*)\.', 1)")
    rel_name = r"""nullif(regexp_extract(context, 'in relation "([^"]+)"', 1), '')"""
    return rf"""
        SELECT ts, event,
               coalesce(TRY_CAST(nullif(wm.wpid, '') AS BIGINT), pid) AS pid,
               nullif(wm.mode, '') AS lock_mode,
               CASE WHEN wm.obj = '' THEN NULL
                    WHEN starts_with(wm.obj, 'transaction ') THEN 'transactionid'
                    WHEN starts_with(wm.obj, 'virtual transaction ') THEN 'virtualxid'
                    WHEN starts_with(wm.obj, 'extension of relation ') THEN 'extend'
                    WHEN starts_with(wm.obj, 'advisory lock ') THEN 'advisory'
                    ELSE regexp_extract(wm.obj, '^([a-z]+)', 1) END AS lock_type,
               nullif(wm.obj, '') AS lock_object,
               coalesce({rel_name}, nullif(regexp_extract(wm.obj, 'relation (\d+)', 1), '')) AS relation,
               coalesce(TRY_CAST(nullif(wm.ms, '') AS DOUBLE), dur_ms) AS wait_ms,
               CASE WHEN event IN ('waiting', 'acquired') AND contains(detail, 'holding the lock')
                    THEN {holders} END AS holders,
               CASE WHEN event IN ('waiting', 'acquired') AND contains(detail, 'Wait queue:')
                    THEN {waiters} END AS waiters,
               coalesce(nullif(dur_stmt, ''), statement) AS statement,
               NULL::VARCHAR AS fingerprint,
               nullif(user_name, '') AS user_name, nullif(database, '') AS database,
               nullif(application, '') AS application,
               coalesce(nullif(nullif(sqlstate, ''), '00000'), CASE
                    WHEN event = 'deadlock' THEN '40P01' WHEN event = 'lock_timeout' THEN '55P03'
                    WHEN event = 'statement_timeout' THEN '57014'
                    WHEN event <> 'connection_error' THEN NULL  -- (a statement may quote the words below)
                    WHEN contains(message, 'too many clients') OR contains(message, 'remaining connection slots') THEN '53300'
                    WHEN contains(message, 'password authentication failed') THEN '28P01'
                    WHEN starts_with(message, 'the database system is ') THEN '57P03'
                    WHEN regexp_matches(message, '^database ".*" does not exist') THEN '3D000'
                    WHEN starts_with(message, 'no pg_hba.conf entry') OR regexp_matches(message, '^role ".*" does not exist')
                        THEN '28000' END) AS sqlstate,
               message,
               nullif(concat_ws(chr(10), detail, CASE WHEN context <> '' THEN 'CONTEXT: ' || context END,
                                CASE WHEN hint <> '' THEN 'HINT: ' || hint END), '') AS detail,
               {sql_literal(ctx.source_file)} AS source_file, rec_line AS line_no{extra}
        FROM _cls WHERE event IS NOT NULL AND ts IS NOT NULL
        """


_DL_WAIT = re.compile(r"^Process (\d+) waits for (\S+) on (.+?); blocked by process (\d+)\.$")
_DL_STMT = re.compile(r"^Process (\d+): (.*)$")


def _expand_deadlocks(tbl: pa.Table) -> pa.Table:
    """A deadlock record names every process of the cycle: one row each; the reporting process is the victim
    (event `deadlock`), the others are `deadlock_peer`. Deadlocks are rare, so this runs in Python."""
    import pyarrow.compute as pc

    is_dl = pc.fill_null(pc.equal(tbl.column("event"), "deadlock"), False)
    if not pc.any(is_dl).as_py():
        return tbl
    return pa.concat_tables([tbl.filter(pc.invert(is_dl)), expand_deadlock_rows(tbl.filter(is_dl))])


def expand_deadlock_rows(tbl: pa.Table) -> pa.Table:
    """`_expand_deadlocks` for rows that are all deadlocks, a thousand at a time as Python objects (each a
    dict), so memory stays flat however many there are."""
    return pa.concat_tables([tbl, *(_expand_rows(tbl.slice(i, 1024)) for i in range(0, tbl.num_rows, 1024))]
                            ).slice(tbl.num_rows)


def _expand_rows(tbl: pa.Table) -> pa.Table:
    out = []
    for r in tbl.to_pylist():
        if r["event"] != "deadlock" or not r["detail"]:
            out.append(r)
            continue
        waits: dict[int, tuple[str, str, int]] = {}
        stmts: dict[int, list[str]] = {}
        current = None
        for ln in r["detail"].split("\n"):
            if ln.startswith("CONTEXT: ") or ln.startswith("HINT: "):
                current = None
                continue
            m = _DL_WAIT.match(ln)
            if m:
                waits[int(m[1])] = (m[2], m[3], int(m[4]))
                current = None
                continue
            m = _DL_STMT.match(ln)
            if m and int(m[1]) in waits:
                current = int(m[1])
                stmts[current] = [m[2]]
            elif current is not None:
                stmts[current].append(ln)
        victim = r["pid"]
        order = [victim] + [p for p in waits if p != victim]
        for p in order:
            mode, obj, blocker = waits.get(p, (None, None, None))
            row = dict(r)
            row.update(
                event="deadlock" if p == victim else "deadlock_peer", pid=p, lock_mode=mode, lock_object=obj,
                lock_type=_lock_type(obj), holders=[blocker] if blocker is not None else None,
                statement="\n".join(stmts[p]) if p in stmts else (r["statement"] if p == victim else None),
            )
            if p != victim:
                row["sqlstate"] = None
            out.append(row)
    return pa.Table.from_pylist(out, schema=tbl.schema)


def _lock_type(obj: str | None) -> str | None:
    if not obj:
        return None
    for start, name in (("transaction ", "transactionid"), ("virtual transaction ", "virtualxid"),
                        ("extension of relation ", "extend"), ("advisory lock ", "advisory")):
        if obj.startswith(start):
            return name
    return obj.split(" ", 1)[0]


#: statement text with constants replaced by `?`, in one pass: the key under which pglast's fingerprint is looked up
#: (two texts of the same statement may get different keys, and then the same fingerprint)
NORM_SQL = r"""regexp_replace(statement, '''(?:[^'']|'''')*''|\b\d+(?:\.\d+)?\b', '?', 'g')"""


def fingerprint(ctx: Context, tbl: pa.Table) -> pa.Table:
    """Fill `fingerprint`: pglast's fingerprint of the statement, or `text:<md5>` of its normalised text when
    pglast cannot parse it. pglast runs once per distinct normalised statement (few), not per row."""
    con = ctx.con
    con.register("_fp_in", tbl)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _fp AS SELECT *, {NORM_SQL} AS _norm FROM _fp_in")
        con.register("_fp_lookup", fingerprint_lookup(con, "_fp"))
        cols = ", ".join(f'"{n}"' if n != "fingerprint" else "l.fp AS fingerprint" for n in tbl.column_names)
        out = con.sql(f"SELECT {cols} FROM _fp t LEFT JOIN _fp_lookup l ON l.norm = t._norm").to_arrow_table()
    finally:
        con.unregister("_fp_in")
        con.unregister("_fp_lookup")
    return out


def fingerprint_lookup(con: duckdb.DuckDBPyConnection, relation: str) -> pa.Table:
    """(norm, fp) for every distinct `_norm` of `relation` (which has `_norm` and `statement`): pglast runs on
    one statement of each, the same one whichever way the rows came (the least)."""
    distinct = con.sql(f"SELECT _norm, min(statement) FROM {relation} WHERE _norm IS NOT NULL GROUP BY ALL").fetchall()
    return pa.table({"norm": pa.array([d[0] for d in distinct], pa.string()),
                     "fp": pa.array([_fingerprint_one(d[1], d[0]) for d in distinct], pa.string())})


def _fingerprint_one(stmt: str, norm: str) -> str:
    import pglast

    try:
        return pglast.fingerprint(stmt)
    except Exception:  # pglast raises ParseError and, for odd input, other errors: fall back, counted in the value
        return "text:" + hashlib.md5(norm.encode()).hexdigest()[:16]


def log_events_sql(ctx: Context) -> str:
    """_cls -> log_events rows: every record that is not lock, timeout, slow-statement or error evidence."""
    return rf"""
        SELECT ts, 'postgres' AS layer, coalesce({sql_literal(ctx.instance)}, wrap_host) AS instance, lower(severity) AS level,
               message,
               CASE WHEN severity = 'PANIC' THEN 'panic'
                    WHEN severity IN ('WARNING') THEN 'db_error'
                    WHEN regexp_matches(message, '^(starting PostgreSQL|listening on|database system is|received .* shutdown|shutting down|database system was)')
                        THEN 'startup'
                    WHEN regexp_matches(message, '^(automatic vacuum|automatic analyze)') THEN 'gc'
                    WHEN regexp_matches(message, '^connection (received|authorized|authenticated)') THEN 'auth'
                    ELSE 'other' END AS kind,
               nullif(nullif(sqlstate, ''), '00000') AS error_code,
               nullif(concat_ws(chr(10), nullif(detail, ''), nullif(context, ''), nullif(hint, '')), '') AS error_detail,
               NULL AS request_id, NULL AS repository,
               to_json({{'pid': pid, 'user': nullif(user_name, ''), 'database': nullif(database, ''),
                        'application': nullif(application, ''), 'statement': statement}})::VARCHAR AS fields,
               {sql_literal(ctx.source_file)} AS source_file, rec_line AS line_no
        FROM _cls WHERE event IS NULL AND ts IS NOT NULL
        """


#: why a stderr line is rejected: it is no log line, or a DETAIL / continuation before any message
BAD_LINE = "not a PostgreSQL log line for this log_line_prefix (pass --pg-prefix)"
ORPHAN_LINE = "continuation line with no record before it"


def no_time_reason(ts_text: str) -> str:
    """SQL: why the lines of a record whose time cannot be read are rejected, from its time text."""
    return (f"CASE WHEN {ts_text} IS NULL OR {ts_text} = '' "
            "THEN 'record without a time (no time in the prefix and no wrapper time)' "
            f"ELSE 'unreadable time or unknown time zone ' || split_part({ts_text}, ' ', 3) "
            "|| ' (pass --tz with the server''s log_timezone)' END")


def _batches(block: pa.Table) -> pa.Table:
    """The block in record batches of 64k lines, so that DuckDB scans it on every core."""
    return pa.Table.from_batches(block.to_batches(max_chunksize=1 << 16), schema=block.schema)


def _finish(ctx: Context, lines_sql: str) -> ParseResult:
    """From _rec (records) and `lines_sql` (line_no, rec_line, kind; a view over the block's lines) to the result.
    Kinds: rec (part of a record), blank, bad:<reason>. The lines of a record whose time cannot be read are
    rejects; the raw text comes from the block `_in`, for rejects only."""
    con = ctx.con
    con.execute(f"CREATE OR REPLACE TEMP TABLE _cls AS {classify_sql(ctx, '_rec')}")
    waits = fingerprint(ctx, _expand_deadlocks(con.sql(f"{lock_waits_sql(ctx)} ORDER BY rec_line").to_arrow_table()))
    events = con.sql(f"{log_events_sql(ctx)} ORDER BY rec_line").to_arrow_table()
    con.execute(f"CREATE OR REPLACE TEMP VIEW _lk AS {lines_sql}")
    con.execute("CREATE OR REPLACE TEMP TABLE _notime AS SELECT rec_line, ts_text FROM _cls WHERE ts IS NULL")
    con.execute("""CREATE OR REPLACE TEMP TABLE _lkc AS SELECT l.line_no, l.kind, n.rec_line IS NOT NULL AS notime,
                   n.ts_text FROM _lk l LEFT JOIN _notime n ON n.rec_line = l.rec_line AND l.kind = 'rec'""")
    rejects = rejects_from(
        con,
        f"""
        SELECT l.line_no, CASE WHEN starts_with(l.kind, 'bad:') THEN substr(l.kind, 5) ELSE {no_time_reason('l.ts_text')} END
                   AS reason, i.text
        FROM (SELECT * FROM _lkc WHERE starts_with(kind, 'bad:') OR notime) l JOIN _in i USING (line_no)
        ORDER BY l.line_no
        """,
    )
    counts = dict(con.sql("SELECT CASE WHEN notime THEN 'notime' ELSE kind END, count(*) FROM _lkc GROUP BY ALL"
                          ).fetchall())
    # nothing of this block stays in memory while the next one is parsed
    con.execute("DROP VIEW IF EXISTS _lk")
    for t in ("_lkc", "_notime", "_cls", "_fp", "_rec", "_ln", "_multi", "_ml", "_r0", "_r1"):
        con.execute(f"DROP TABLE IF EXISTS {t}")
    blank = counts.get("blank", 0)
    return ParseResult(
        tables={"db_lock_waits": schema.conform("db_lock_waits", waits),
                "log_events": schema.conform("log_events", events)},
        rejects=rejects if rejects.num_rows else empty_rejects(),
        skipped={"blank": blank} if blank else {},
        used_lines=counts.get("rec", 0),
    )


# ---------------------------------------------------------------------------------------------------------------
# stderr
# ---------------------------------------------------------------------------------------------------------------


class PostgresStderr(Format):
    name = "postgres-stderr"
    family = "postgres"
    tables = ("db_lock_waits", "log_events")
    description = ("PostgreSQL server log, stderr destination, any log_line_prefix (common ones detected; "
                   "--pg-prefix to give it), multi-line records, times in log_timezone")
    example = ("2026-11-28 14:14:40.798 CET [17329] registry@registry LOG:  process 17329 still waiting for "
               "ShareLock on transaction 726 after 100.105 ms")

    def sniff(self, lines: list[str]) -> float:
        if not lines:
            return 0.0
        prefix, n = detect_prefix(lines)
        if n <= 0 or (prefix == "" and n < len(lines) / 2):
            return 0.0
        cont = sum(1 for ln in lines if ln.startswith("\t"))
        return min(1.0, (n + cont) / len(lines)) * (0.9 if prefix == "" else 1.0)

    whole_file = True

    def log_line_prefix(self, ctx: Context, head: Callable[[], list[str]]) -> str:
        """The log_line_prefix: given, or detected once from the first 2000 lines (`head` gives them)."""
        if "pg_prefix" in ctx.options:
            return ctx.options["pg_prefix"]
        if "_pg_prefix_detected" not in ctx.options:
            prefix, _ = detect_prefix([t for t in head() if t and t.strip()])
            ctx.options["_pg_prefix_detected"] = prefix
            ctx.note(f"log_line_prefix detected as {prefix!r} (pass --pg-prefix to set it)")
        return ctx.options["_pg_prefix_detected"]

    def parse_whole(self, ctx: Context, run) -> dict:
        from .pg_whole import parse_stderr_whole

        head = lambda: [t for (t,) in ctx.con.sql("SELECT text FROM _in LIMIT 2000").fetchall()]  # noqa: E731
        return parse_stderr_whole(ctx, run, StderrSql(self.log_line_prefix(ctx, head)))

    def parse(self, ctx: Context, block: pa.Table, final: bool) -> ParseResult:
        con = ctx.con
        sql = StderrSql(self.log_line_prefix(ctx, lambda: block.column("text").slice(0, 2000).to_pylist()))
        con.register("_in", _batches(block))
        try:
            con.execute(
                f"""CREATE OR REPLACE TEMP TABLE _ln AS
                    SELECT line_no, k, m, wrap_ts, wrap_host, body, {StderrSql.RECORD_OF} FROM ({sql.lines('_in')})
                    WINDOW w AS (ORDER BY line_no ROWS UNBOUNDED PRECEDING)"""
            )
            held = 0
            if not final:
                last = con.sql("SELECT max(rec_line) FROM _ln").fetchall()[0][0]
                if last is not None:
                    held = con.sql("SELECT count(*) FROM _ln WHERE line_no >= $r", params={"r": last}).fetchall()[0][0]
                    con.execute("DELETE FROM _ln WHERE line_no >= $r", {"r": last})
            # records of one line (most of them) are their head line; only the others are assembled
            con.execute("""CREATE OR REPLACE TEMP TABLE _multi AS
                           SELECT DISTINCT rec_line FROM _ln WHERE k IN ('sec', 'cont') AND rec_line IS NOT NULL""")
            con.execute("""CREATE OR REPLACE TEMP TABLE _ml AS SELECT * FROM _ln
                           WHERE rec_line IN (SELECT rec_line FROM _multi) AND k IN ('head', 'sec', 'cont')""")
            con.execute("CREATE OR REPLACE TEMP TABLE _rec AS "
                        + sql.records("SELECT * FROM _ln WHERE k = 'head'", sql.parts("_ml")))
            res = _finish(ctx, f"""
                SELECT line_no, rec_line,
                       CASE WHEN k IN ('head', 'sec', 'cont') AND rec_line IS NOT NULL THEN 'rec'
                            WHEN k = 'blank' THEN 'blank'
                            WHEN k = 'bad' THEN 'bad:{BAD_LINE}'
                            ELSE 'bad:{ORPHAN_LINE}' END AS kind
                FROM _ln""")
        finally:
            con.unregister("_in")
        res.held_back = held
        return res


class StderrSql:
    """The SQL that reads stderr lines written with one log_line_prefix, shared by the block parse and the
    whole-file parse (`pg_whole`), so that both give the same rows."""

    #: per line, the record it belongs to (the last head line so far) and the part of that record (the last head
    #: or secondary line so far), over a window `w` in line order
    RECORD_OF = ("max(CASE WHEN k = 'head' THEN line_no END) OVER w AS rec_line, "
                 "max(CASE WHEN k IN ('head', 'sec') THEN line_no END) OVER w AS part")

    def __init__(self, prefix: str):
        rx, names = prefix_regex(prefix)
        # group 1 is the whole prefix and severity: the message is the rest of the line, cut by length, so the
        # regex only ever sees the start of a line
        self.names = ["head", *names, "sev"]
        self.full = ("^(" + rx[1:] + _SEV_RE + ")").replace("'", "''")
        if "ts" in names:
            self.ts_text = "m.ts"
        elif "epoch" in names:
            self.ts_text = "strftime(to_timestamp(TRY_CAST(m.epoch AS DOUBLE)), '%Y-%m-%d %H:%M:%S.%f') || ' UTC'"
        else:
            self.ts_text = "NULL::VARCHAR"

    def get(self, name: str) -> str:
        return f"nullif(m.{name}, '')" if name in self.names else "NULL"

    def lines(self, src: str) -> str:
        """The columns of `src` (text, …) and, per line, its kind `k` (head: a message; sec: DETAIL, HINT, CONTEXT,
        STATEMENT, …; cont: a tab-indented continuation; blank; bad), the prefix's fields `m`, and the `body`
        after the prefix and severity (or after the tab). It keeps the order of `src`: no `IN` list (DuckDB plans
        one of more than a few values as a join, which does not keep the order)."""
        return f"""
            SELECT *, CASE WHEN k IN ('head', 'sec') THEN substr(text, length(m.head) + 1)
                           WHEN k = 'cont' THEN substr(text, 2) END AS body
            FROM (SELECT *, CASE m.sev {' '.join(f"WHEN '{s}' THEN 'sec'" for s in SECONDARY)}
                                 ELSE CASE WHEN m.sev <> '' THEN 'head'
                                           WHEN starts_with(text, chr(9)) THEN 'cont'
                                           WHEN trim(text) = '' THEN 'blank'
                                           ELSE 'bad' END END AS k
                  FROM (SELECT *, regexp_extract(left(text, 600), '{self.full}', {self.names!r}) AS m FROM {src}))"""

    @staticmethod
    def parts(lines: str) -> str:
        """The parts (the message, its DETAIL, …) of records of several lines, from their lines (`lines`: line_no,
        k, m, wrap_ts, wrap_host, body, rec_line, part): each head or sec line with the bodies of the tab-indented
        lines after it joined on, in line order."""
        return f"""
            SELECT p.rec_line, p.line_no AS part, p.m, p.wrap_ts, p.wrap_host,
                   CASE WHEN c.body IS NULL THEN p.body ELSE p.body || chr(10) || c.body END AS body
            FROM (SELECT * FROM {lines} WHERE k IN ('head', 'sec')) p
                 LEFT JOIN (SELECT part, string_agg(body, chr(10) ORDER BY line_no) AS body FROM {lines}
                            WHERE k = 'cont' GROUP BY part) c ON c.part = p.line_no"""

    def records(self, heads: str, parts: str) -> str:
        """Records with _rec's columns, in the order of `heads` (the head lines): a record takes its time, pid, …
        from its head line, and its message, DETAIL, HINT, CONTEXT and STATEMENT from its `parts` when it has
        several lines."""
        get = self.get
        return f"""
            SELECT line_no AS rec_line, {self.ts_text} AS ts_text, wrap_ts, wrap_host,
                   TRY_CAST({get('pid')} AS BIGINT) AS pid, {get('user')} AS user_name, {get('db')} AS database,
                   {get('app')} AS application, {get('sqlstate')} AS sqlstate, m.sev AS severity,
                   coalesce(x.message, h.body) AS message, x.detail, x.hint, x.context, x.statement
            FROM ({heads}) h LEFT JOIN (
                SELECT rec_line AS x_line, first(body) FILTER (WHERE m.sev NOT IN {SECONDARY!r}) AS message,
                       first(body) FILTER (WHERE m.sev = 'DETAIL') AS detail,
                       first(body) FILTER (WHERE m.sev = 'HINT') AS hint,
                       first(body) FILTER (WHERE m.sev = 'CONTEXT') AS context,
                       first(body) FILTER (WHERE m.sev = 'STATEMENT') AS statement
                FROM ({parts}) GROUP BY rec_line) x ON x.x_line = h.line_no"""


# ---------------------------------------------------------------------------------------------------------------
# csvlog
# ---------------------------------------------------------------------------------------------------------------

#: csvlog columns of PostgreSQL 15 (14 and 15 have 26; 13 has 24 without leader_pid and query_id; 12 has 23)
CSV_COLUMNS = ("log_time", "user_name", "database_name", "process_id", "connection_from", "session_id",
               "session_line_num", "command_tag", "session_start_time", "virtual_transaction_id", "transaction_id",
               "error_severity", "sql_state_code", "message", "detail", "hint", "internal_query",
               "internal_query_pos", "context", "query", "query_pos", "location", "application_name",
               "backend_type", "leader_pid", "query_id")
_CSV_HEAD = re.compile(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ [^,]*,("[^"]*")?,("[^"]*")?,\d*,')


class PostgresCSV(Format):
    name = "postgres-csvlog"
    family = "postgres"
    tables = ("db_lock_waits", "log_events")
    description = "PostgreSQL server log, csvlog destination (PostgreSQL 12 to 15 column lists)"
    example = ('2026-11-28 14:14:40.798 CET,"registry","registry",17329,"127.0.0.1:35246",6b0ad3c0.43b1,1,'
               '"UPDATE waiting",2026-11-28 14:14:40 CET,7/3,727,LOG,00000,"process 17329 still waiting for '
               'ShareLock on transaction 726 after 100.105 ms","Process holding the lock: 17323. Wait queue: 17329.",'
               ',,,"while updating tuple (0,1) in relation ""manifests""","UPDATE manifests …",,,'
               '"registry-manifest-touch","client backend",,0')

    def sniff(self, lines: list[str]) -> float:
        heads = sum(1 for ln in lines if _CSV_HEAD.match(ln))
        return 0.0 if not heads else min(1.0, 2 * heads / len(lines))

    def parse(self, ctx: Context, block: pa.Table, final: bool) -> ParseResult:
        con = ctx.con
        f = lambda i: f"CASE WHEN len(fl) > {i} THEN csv_unq(fl[{i + 1}]) END"  # noqa: E731
        con.execute(r"""CREATE OR REPLACE MACRO csv_unq(v) AS CASE WHEN v = '' THEN NULL WHEN starts_with(v, '"')
                        THEN replace(substr(v, 2, length(v) - 2), '""', '"') ELSE v END""")
        con.register("_in", _batches(block))
        try:
            con.execute(
                """
                CREATE OR REPLACE TEMP TABLE _ln AS
                SELECT *, sum(CASE WHEN start THEN 1 ELSE 0 END) OVER (ORDER BY line_no ROWS UNBOUNDED PRECEDING) AS rec
                FROM (SELECT line_no, text, wrap_ts, wrap_host,
                             coalesce(sum(q) OVER (ORDER BY line_no ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) % 2 = 0
                                 AS start, q
                      FROM (SELECT *, length(text) - length(replace(text, '"', '')) AS q FROM _in))
                """
            )
            con.execute(
                r"""
                CREATE OR REPLACE TEMP TABLE _r0 AS
                SELECT rec, min(line_no) AS rec_line, count(*) AS n, sum(q) % 2 = 0 AS closed,
                       string_agg(text, chr(10) ORDER BY line_no) AS rtext,
                       first(wrap_ts) AS wrap_ts, first(wrap_host) AS wrap_host
                FROM _ln GROUP BY rec
                """
            )
            held = 0
            if not final:
                held = con.sql("SELECT coalesce(sum(n), 0) FROM _r0 WHERE NOT closed AND rec = (SELECT max(rec) FROM _r0)"
                               ).fetchall()[0][0]
                con.execute("DELETE FROM _r0 WHERE NOT closed AND rec = (SELECT max(rec) FROM _r0)")
            con.execute(
                r"""
                CREATE OR REPLACE TEMP TABLE _r1 AS
                SELECT *, CASE WHEN closed AND trim(rtext) <> ''
                               THEN regexp_extract_all(',' || rtext, ',("(?:[^"]|"")*"|[^,"]*)', 1) END AS fl
                FROM _r0
                """
            )
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE _rec AS
                SELECT rec_line, {f(0)} AS ts_text, wrap_ts, wrap_host, TRY_CAST({f(3)} AS BIGINT) AS pid,
                       {f(1)} AS user_name, {f(2)} AS database, {f(22)} AS application, {f(12)} AS sqlstate,
                       {f(11)} AS severity, {f(13)} AS message, {f(14)} AS detail, {f(15)} AS hint,
                       {f(18)} AS context, {f(19)} AS statement
                FROM _r1 WHERE len(fl) IN (23, 24, 26) AND {f(11)} IN {SEVERITIES!r}
                """
            )
            res = _finish(ctx, """
                SELECT l.line_no, r.rec_line,
                       CASE WHEN r.rtext IS NOT NULL AND trim(r.rtext) = '' THEN 'blank'
                            WHEN NOT r.closed THEN 'bad:unterminated quoted field at the end of the file'
                            WHEN x.rec_line IS NOT NULL THEN 'rec'
                            WHEN len(r.fl) NOT IN (23, 24, 26) THEN 'bad:' || len(r.fl) || ' CSV fields; a csvlog record has 23, 24 or 26'
                            ELSE 'bad:no log severity in the 12th field' END AS kind
                FROM _ln l JOIN _r1 r USING (rec) LEFT JOIN _rec x ON x.rec_line = r.rec_line""")
        finally:
            con.unregister("_in")
        res.held_back = held
        return res


# ---------------------------------------------------------------------------------------------------------------
# jsonlog
# ---------------------------------------------------------------------------------------------------------------

JSON_KEYS = ("timestamp", "user", "dbname", "pid", "remote_host", "session_id", "error_severity", "state_code",
             "message", "detail", "hint", "context", "statement", "application_name", "backend_type")


class PostgresJSON(Format):
    name = "postgres-jsonlog"
    family = "postgres"
    tables = ("db_lock_waits", "log_events")
    description = "PostgreSQL 15+ server log, jsonlog destination (one JSON object per line)"
    example = ('{"timestamp":"2026-11-28 14:14:40.798 CET","user":"registry","dbname":"registry","pid":17329,'
               '"error_severity":"LOG","message":"process 17329 still waiting for ShareLock on transaction 726 '
               'after 100.105 ms","detail":"Process holding the lock: 17323. Wait queue: 17329.",…}')

    def sniff(self, lines: list[str]) -> float:
        ok = sum(1 for ln in lines if ln.lstrip().startswith("{") and '"error_severity"' in ln and '"timestamp"' in ln)
        return ok / len(lines) if lines else 0.0

    def parse(self, ctx: Context, block: pa.Table, final: bool) -> ParseResult:
        con = ctx.con
        struct = "{" + ", ".join(f'"{k}": "VARCHAR"' for k in JSON_KEYS) + "}"
        con.register("_in", _batches(block))
        try:
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE _ln AS
                SELECT line_no, text, wrap_ts, wrap_host,
                       CASE WHEN starts_with(ltrim(text), '{{') AND json_valid(text) AND json_type(text) = 'OBJECT'
                            THEN json_transform(text, '{struct}') END AS j
                FROM _in
                """
            )
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE _rec AS
                SELECT line_no AS rec_line, j.timestamp AS ts_text, wrap_ts, wrap_host, TRY_CAST(j.pid AS BIGINT) AS pid,
                       j.user AS user_name, j.dbname AS database, j.application_name AS application,
                       j.state_code AS sqlstate, j.error_severity AS severity, j.message, j.detail, j.hint,
                       j.context, j.statement
                FROM _ln WHERE j.error_severity IN {SEVERITIES!r}
                """
            )
            res = _finish(ctx, """
                SELECT l.line_no, l.line_no AS rec_line,
                       CASE WHEN x.rec_line IS NOT NULL THEN 'rec'
                            WHEN trim(l.text) = '' THEN 'blank'
                            WHEN l.j IS NULL THEN 'bad:not a JSON object'
                            ELSE 'bad:JSON without a PostgreSQL error_severity' END AS kind
                FROM _ln l LEFT JOIN _rec x ON x.rec_line = l.line_no""")
        finally:
            con.unregister("_in")
        return res


FORMATS: list[Format] = [PostgresJSON(), PostgresCSV(), PostgresStderr()]
