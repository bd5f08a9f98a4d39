"""Wrappers around log lines, removed before the format is parsed; they stack (docker json-file inside CRI …).

Each wrapper turns a block (line_no, text, wrap_*) into the inner lines, keeping the first physical line's
number, the wrapper's time, host and program. Partial lines (CRI `P`, docker json-file entries without a
trailing newline) are joined to the line that completes them and counted as skipped `partial_joined`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from .base import REJECT_COLUMNS, Context

BLOCK_SCHEMA = pa.schema(
    [
        ("line_no", pa.int64()),
        ("text", pa.string()),
        ("wrap_ts", pa.timestamp("us", tz="UTC")),
        ("wrap_host", pa.string()),
        ("wrap_program", pa.string()),
    ]
)


def as_block(table: pa.Table) -> pa.Table:
    """Give a (line_no, text) table the wrapper columns (null) so every stage sees one shape."""
    n = table.num_rows
    cols = {name: table.column(name) if name in table.column_names else pa.nulls(n, BLOCK_SCHEMA.field(name).type)
            for name in BLOCK_SCHEMA.names}
    return pa.table(cols, schema=BLOCK_SCHEMA)


@dataclass
class WrapResult:
    lines: pa.Table
    rejects: pa.Table
    skipped: dict[str, int]
    held_back: int  # input rows kept for the next block


@dataclass
class Wrapper:
    name: ClassVar[str]
    description: ClassVar[str]
    example: ClassVar[str]
    pattern: ClassVar[re.Pattern]

    def sniff(self, lines: list[str]) -> float:
        if not lines:
            return 0.0
        return sum(1 for ln in lines if self.pattern.match(ln)) / len(lines)

    def unwrap(self, ctx: Context, block: pa.Table, final: bool) -> WrapResult:
        raise NotImplementedError

    def _run(self, con: duckdb.DuckDBPyConnection, block: pa.Table, extract_sql: str, final: bool,
             params: list | None = None) -> WrapResult:
        """Shared engine: `extract_sql` selects from `_blk` the columns ok, line_no, piece, complete, wrap_ts,
        wrap_host, wrap_program, text (the original line, for rejects)."""
        con.register("_blk", block)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE _wrap AS {extract_sql}", params or [])
            # blank lines between wrapped lines are counted skips, not rejects
            rejects = con.sql(
                f"SELECT line_no, 'not a {self.name} line' AS reason, text FROM _wrap "
                "WHERE NOT ok AND trim(coalesce(text, '')) <> '' ORDER BY line_no"
            ).to_arrow_table().cast(REJECT_COLUMNS)
            blank_nos = con.sql(
                "SELECT line_no FROM _wrap WHERE NOT ok AND trim(coalesce(text, '')) = ''"
            ).to_arrow_table().column(0)
            # group partial pieces with the complete piece that ends them
            con.execute(
                """
                CREATE OR REPLACE TEMP TABLE _grp AS
                SELECT *, coalesce(sum(CASE WHEN complete THEN 1 ELSE 0 END) OVER (
                    ORDER BY line_no ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS g
                FROM _wrap WHERE ok
                """
            )
            last_g = con.execute("SELECT max(g) FROM _grp").fetchall()[0][0]
            tail_open = con.execute(
                "SELECT count(*) FROM _grp WHERE g = (SELECT max(g) FROM _grp) AND NOT "
                "(SELECT bool_or(complete) FROM _grp x WHERE x.g = (SELECT max(g) FROM _grp))"
            ).fetchall()[0][0]
            held_from = None
            if tail_open and not final:
                held_from = con.execute("SELECT min(line_no) FROM _grp WHERE g = ?", [last_g]).fetchall()[0][0]
            where = "" if held_from is None else f"WHERE g < {int(last_g)}"
            out = con.sql(
                f"""
                SELECT min(line_no) AS line_no, string_agg(piece, '' ORDER BY line_no) AS text,
                       arg_max(wrap_ts, line_no) AS wrap_ts, arg_max(wrap_host, line_no) AS wrap_host,
                       arg_max(wrap_program, line_no) AS wrap_program, count(*) AS pieces
                FROM _grp {where} GROUP BY g ORDER BY 1
                """
            ).to_arrow_table()
        finally:
            con.unregister("_blk")
        joined = int(pc.sum(out.column("pieces")).as_py() or 0) - out.num_rows
        held = 0
        if held_from is not None:
            mask = pc.greater_equal(block.column("line_no"), held_from)
            held = int(pc.sum(mask).as_py())
            # rejects among held rows are re-read with the next block: drop them here
            rejects = rejects.filter(pc.less(rejects.column("line_no"), held_from))
            blank_nos = pc.filter(blank_nos, pc.less(blank_nos, held_from))
        lines = as_block(out.drop_columns(["pieces"]))
        skipped = {"partial_joined": joined, "blank": len(blank_nos)}
        return WrapResult(lines, rejects, {k: v for k, v in skipped.items() if v}, held)


class CRI(Wrapper):
    name = "cri"
    description = "Kubernetes CRI container log (containerd, CRI-O): <RFC3339Nano> <stream> <F|P> <line>"
    example = "2026-11-28T06:29:38.123456789Z stderr F time=\"2026-11-28T06:29:38Z\" level=info msg=\"...\""
    pattern = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:?\d\d) (stdout|stderr) [FP] ")

    def unwrap(self, ctx, block, final):
        sql = r"""
            SELECT line_no, text, m IS NOT NULL AND m.ts <> '' AS ok, m.body AS piece, m.tag = 'F' AS complete,
                   TRY_CAST(m.ts AS TIMESTAMPTZ) AS wrap_ts, wrap_host, wrap_program
            FROM (SELECT *, CASE WHEN regexp_matches(text, '^\S+ (?:stdout|stderr) [FP] ')
                   THEN regexp_extract(text, '^(\S+) (?:stdout|stderr) ([FP]) ?(.*)$', ['ts', 'tag', 'body']) END AS m
                  FROM _blk)
        """
        return self._run(ctx.con, block, sql, final)


class DockerJSON(Wrapper):
    name = "docker-json"
    description = "docker json-file driver: {\"log\": …, \"stream\": …, \"time\": …} (long lines split, joined back)"
    example = '{"log":"time=\\"2026-11-28T06:29:38Z\\" level=info msg=\\"listening on [::]:5000\\"\\n","stream":"stderr","time":"2026-11-28T06:29:38.1234Z"}'
    pattern = re.compile(r'^\{"log":')

    def unwrap(self, ctx, block, final):
        sql = r"""
            SELECT line_no, text, ok, CASE WHEN suffix(l, chr(10)) THEN left(l, -1) ELSE l END AS piece,
                   suffix(l, chr(10)) AS complete, TRY_CAST(tm AS TIMESTAMPTZ) AS wrap_ts,
                   wrap_host, coalesce(st, wrap_program) AS wrap_program
            FROM (SELECT *, coalesce(CASE WHEN json_valid(text) THEN json_extract_string(text, '$.log') IS NOT NULL END, false) AS ok,
                         CASE WHEN json_valid(text) THEN json_extract_string(text, '$.log') END AS l,
                         CASE WHEN json_valid(text) THEN json_extract_string(text, '$.time') END AS tm,
                         wrap_program AS st
                  FROM _blk)
        """
        return self._run(ctx.con, block, sql, final)


class JournaldJSON(Wrapper):
    name = "journald-json"
    description = "journalctl -o json: one JSON object per entry, the line in MESSAGE"
    example = '{"__REALTIME_TIMESTAMP":"1795761378123456","_HOSTNAME":"node1","SYSLOG_IDENTIFIER":"kernel","MESSAGE":"Out of memory: Killed process 4242 (registry)"}'
    pattern = re.compile(r'^\{.*"(__REALTIME_TIMESTAMP|MESSAGE)"\s*:')

    def unwrap(self, ctx, block, final):
        sql = r"""
            SELECT line_no, text, ok, msg AS piece, true AS complete,
                   make_timestamptz(TRY_CAST(rt AS BIGINT)) AS wrap_ts, host AS wrap_host, prog AS wrap_program
            FROM (SELECT line_no, text,
                    coalesce(CASE WHEN json_valid(text) THEN json_type(text, '$.MESSAGE') = 'VARCHAR' END, false) AS ok,
                    CASE WHEN json_valid(text) THEN json_extract_string(text, '$.MESSAGE') END AS msg,
                    CASE WHEN json_valid(text) THEN json_extract_string(text, '$.__REALTIME_TIMESTAMP') END AS rt,
                    CASE WHEN json_valid(text) THEN json_extract_string(text, '$._HOSTNAME') END AS host,
                    CASE WHEN json_valid(text) THEN coalesce(json_extract_string(text, '$.SYSLOG_IDENTIFIER'),
                         json_extract_string(text, '$._COMM')) END AS prog
                  FROM _blk)
        """
        return self._run(ctx.con, block, sql, final)


class Syslog(Wrapper):
    name = "syslog"
    description = ("syslog prefix: RFC 3164 (`Nov 28 06:29:38 host prog: ` with an optional pid, year from the file time, zone "
                   "from --tz), RFC 5424, or an ISO timestamp (rsyslog)")
    example = "Nov 28 06:29:38 172.18.0.1 registry[1203]: time=\"2026-11-28T06:29:38Z\" level=info msg=\"...\""
    pattern = re.compile(
        r"^(<\d{1,3}>)?(1 \S+ \S+ \S+ \S+ \S+ |[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ [^\s:\[]+(\[\d+\])?: |"
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\S* \S+ [^\s:\[]+(\[\d+\])?: )"
    )

    def unwrap(self, ctx, block, final):
        year = (ctx.at or ctx.file_mtime).year if (ctx.at or ctx.file_mtime) else 1970
        if not (ctx.at or ctx.file_mtime):
            ctx.note("syslog timestamps have no year; used 1970 (pass --at to set it)")
        else:
            ctx.note(f"syslog (RFC 3164) timestamps have no year or zone: used year {year} and zone {ctx.tz}")
        sql = r"""
            WITH b AS (SELECT *, regexp_replace(text, '^<\d{1,3}>', '') AS t FROM _blk),
            m AS (SELECT *,
                CASE WHEN regexp_matches(t, '^1 \S+ \S+ \S+ \S+ \S+ ')
                     THEN regexp_extract(t, '^1 (\S+) (\S+) (\S+) (\S+) (\S+) (?:-|\[.*?\]) ?(.*)$',
                                         ['ts', 'host', 'prog', 'pid', 'msgid', 'body']) END AS r5,
                CASE WHEN regexp_matches(t, '^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d ')
                     THEN regexp_extract(t, '^([A-Z][a-z]{2} +\d+ \d\d:\d\d:\d\d) (\S+) ([^\s:\[]+)(?:\[\d+\])?: ?(.*)$',
                                         ['ts', 'host', 'prog', 'body']) END AS r3,
                CASE WHEN regexp_matches(t, '^\d{4}-\d\d-\d\dT')
                     THEN regexp_extract(t, '^(\S+) (\S+) ([^\s:\[]+)(?:\[\d+\])?: ?(.*)$', ['ts', 'host', 'prog', 'body'])
                     END AS ri
              FROM b)
            SELECT line_no, text,
                coalesce(r5.ts, '') <> '' OR coalesce(r3.ts, '') <> '' OR coalesce(ri.ts, '') <> '' AS ok,
                coalesce(nullif(r5.body, ''), r3.body, ri.body, '') AS piece, true AS complete,
                coalesce(TRY_CAST(nullif(r5.ts, '') AS TIMESTAMPTZ), TRY_CAST(nullif(ri.ts, '') AS TIMESTAMPTZ),
                         timezone(?, TRY_STRPTIME(? || ' ' || regexp_replace(r3.ts, ' +', ' '), '%Y %b %d %H:%M:%S'))
                ) AS wrap_ts,
                coalesce(nullif(r5.host, ''), nullif(r3.host, ''), ri.host) AS wrap_host,
                coalesce(nullif(r5.prog, ''), nullif(r3.prog, ''), ri.prog) AS wrap_program
            FROM m
        """
        return self._run(ctx.con, block, sql, final, [ctx.tz, str(year)])


WRAPPERS: list[type[Wrapper]] = [CRI, DockerJSON, JournaldJSON, Syslog]
