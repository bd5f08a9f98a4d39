"""One JSON object per line, some of them request completions: the shared engine of the GitLab and zot formats.

A subclass names, as SQL expressions over the parsed object `j`, where each canonical field lives and which
lines are request completions. Request lines become `requests`; every other object becomes a `log_events` row;
blank lines are skipped; anything else (not a JSON object, no readable time) is a reject with its reason.
"""

from __future__ import annotations

from typing import ClassVar

import pyarrow as pa

from .. import schema
from .base import Context, Format, ParseResult, empty_rejects, rejects_from
from .derive import finish_requests
from .distribution import EVENT_KIND_SQL, ts_sql

REQUEST_COLUMNS = ("request_id", "method", "uri", "status", "duration_s", "bytes_out", "bytes_in", "remote_addr",
                   "user_agent", "error_code", "error_message", "error_detail", "storage_duration_s")
EVENT_COLUMNS = ("level", "msg", "error", "err_code", "err_detail", "err_message", "request_id", "repository")


def s(path: str) -> str:
    """SQL: the string at a JSON path of `j` (numbers come back as their text)."""
    return f"json_extract_string(j, '{path}')"


class JsonRequestLog(Format):
    family = "registry"
    tables = ("requests", "log_events")
    layer: ClassVar[str]
    time: ClassVar[str]  # SQL for the time string
    is_request: ClassVar[str]  # SQL predicate over j
    columns: ClassVar[dict[str, str]]  # canonical request/event column -> SQL over j (missing ones are NULL)
    drop_from_fields: ClassVar[tuple[str, ...]]  # keys left out of log_events.fields
    markers: ClassVar[tuple[str, ...]]  # substrings a line of this format carries (for sniffing)

    def sniff(self, lines: list[str]) -> float:
        if not lines:
            return 0.0
        hits = sum(1 for ln in lines if ln.lstrip().startswith("{") and all(m in ln for m in self.markers))
        return hits / len(lines)

    def _col(self, name: str) -> str:
        return self.columns.get(name, "NULL")

    def parse(self, ctx: Context, block: pa.Table, final: bool) -> ParseResult:
        con = ctx.con
        con.register("_in", block)
        try:
            cols = ", ".join(f"{self._col(c)} AS {c}" for c in dict.fromkeys(REQUEST_COLUMNS + EVENT_COLUMNS))
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE _jl AS
                SELECT line_no, text, wrap_ts, wrap_host, j, {cols},
                       coalesce({ts_sql(self.time)}, wrap_ts) AS tsv,
                       CASE WHEN trim(text) = '' THEN 'blank'
                            WHEN j IS NULL THEN 'bad'
                            WHEN coalesce({ts_sql(self.time)}, wrap_ts) IS NULL THEN 'badtime'
                            WHEN coalesce({self.is_request}, false) THEN 'request'
                            ELSE 'event' END AS cls
                FROM (SELECT *, CASE WHEN starts_with(ltrim(text), '{{') AND json_valid(text)
                                          AND json_type(text) = 'OBJECT' THEN CAST(text AS JSON) END AS j
                      FROM _in)
                """,
                {"tz": ctx.tz},
            )
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE _req AS
                SELECT tsv AS ts, $layer AS layer, coalesce($inst, wrap_host) AS instance, request_id, method, uri,
                       status, CAST(duration_s AS DOUBLE) AS duration_s, bytes_out, bytes_in, remote_addr,
                       user_agent, error_code, error_message, error_detail,
                       CAST(storage_duration_s AS DOUBLE) AS storage_duration_s,
                       NULL::DOUBLE AS upstream_duration_s, NULL AS upstream_status, line_no
                FROM _jl WHERE cls = 'request'
                """,
                {"layer": self.layer, "inst": ctx.instance},
            )
            requests = finish_requests(con, "_req", ctx.source_file)
            drop = ", ".join(f'"{k}": null' for k in self.drop_from_fields)
            events = con.sql(
                f"""
                SELECT tsv AS ts, $layer AS layer, coalesce($inst, wrap_host) AS instance, lower(level) AS level,
                       msg AS message, {EVENT_KIND_SQL} AS kind, norm_code(err_code) AS error_code,
                       coalesce(error, err_detail, err_message) AS error_detail, request_id, repository,
                       CAST(json_merge_patch(j, '{{{drop}}}') AS VARCHAR) AS fields,
                       $src AS source_file, line_no
                FROM _jl WHERE cls = 'event' ORDER BY line_no
                """,
                params={"layer": self.layer, "inst": ctx.instance, "src": ctx.source_file},
            ).to_arrow_table()
            rejects = rejects_from(
                con,
                """SELECT line_no, CASE cls WHEN 'badtime' THEN 'no readable time in the line'
                                   ELSE 'not a JSON object' END AS reason, text
                   FROM _jl WHERE cls IN ('bad', 'badtime') ORDER BY line_no""",
            )
            blank = con.execute("SELECT count(*) FROM _jl WHERE cls = 'blank'").fetchall()[0][0]
        finally:
            con.unregister("_in")
        return ParseResult(
            tables={"requests": requests, "log_events": schema.conform("log_events", events)},
            rejects=rejects if rejects.num_rows else empty_rejects(),
            skipped={"blank": blank} if blank else {},
            used_lines=requests.num_rows + events.num_rows,
        )
