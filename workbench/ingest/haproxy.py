"""HAProxy HTTP log (`option httplog`), as HAProxy sends it to syslog or writes it with `log stdout format raw`.

    <134>Nov 28 13:01:49 haproxy[15668]: 127.0.0.1:36138 [28/Nov/2026:13:01:48.118] fe_registry be_slow/slow1
        0/0/0/-1/1001 504 198 - - sH-- 1/1/0/0/0 0/0 {127.0.0.1:8089|curl/7.88.1} {} "GET /slow/a HTTP/1.1"

Fields: client:port, [request date], frontend, backend/server, timers, status, bytes read, request and
response cookies, termination state, connection counts, queues, optional captured request and response
headers `{…|…}`, and the quoted request line (`"<BADREQ>"` for a request HAProxy could not parse, such as
a TLS ClientHello sent to a plain-HTTP port: kept as a request with its 400).

Timers are TR/Tw/Tc/Tr/Ta (HAProxy 1.9+; Tq/Tw/Tc/Tr/Tt before) or Th/Ti/TR/Tw/Tc/Tr/Ta: in every form the
next-to-last is Tr (server response time, `upstream_duration_s`) and the last is the total
(`duration_s`); `-1` means that phase never completed (aborted), so it is NULL. `ts` is the request date
plus the total, i.e. completion. The date has no zone: it is read in --tz.

The syslog prefix is optional and read here when it has no host name (HAProxy's own UDP/unix output); a
prefix written by rsyslog (with a host) is removed by the syslog wrapper first. HAProxy's other messages
(`Proxy fe stopped …`, `Server … is DOWN`) become `log_events`.
"""

from __future__ import annotations

import re

import pyarrow as pa

from .. import schema
from .access import request_parts_sql
from .base import Context, Format, ParseResult, classified_result
from .derive import finish_requests

PREFIX_RE = r"^(?:<(\d{1,3})>)?(?:([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?:(\S+) )?)?([^\s\[:]+)\[(\d+)\]: ?(.*)$"
PREFIX_FIELDS = ["pri", "sts", "host", "prog", "pid", "body"]
HTTPLOG_RE = (
    r"^(\S+):(\d+) \[(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d(?:\.\d+)?)\] (\S+) (\S+)/(\S+) "
    r"([-+\d]+(?:/[-+\d]+){4,6}) (-?\d+) (\+?-?\d+) (\S+) (\S+) (\S{4}) (\S+) (\d+/\d+)"
    r'(?: \{([^}]*)\})?(?: \{([^}]*)\})? "(.*?)"?$'
)
HTTPLOG_FIELDS = ["client", "port", "date", "frontend", "backend", "server", "timers", "status", "bytes",
                  "req_cookie", "res_cookie", "term", "conns", "queues", "req_hdrs", "res_hdrs", "request"]
_PREFIX_PY = re.compile(PREFIX_RE)
_HTTPLOG_PY = re.compile(HTTPLOG_RE)
SEVERITY = "['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug']"


def _q(rx: str) -> str:
    return rx.replace("'", "''")


def _names(fields: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in fields)


class HAProxyHTTP(Format):
    name = "haproxy-http"
    family = "proxy"
    tables = ("requests", "log_events")
    description = ("HAProxy HTTP log (`option httplog`: TR/Tw/Tc/Tr/Ta timers, termination state, captured "
                   "headers), raw or behind a syslog prefix")
    example = ('<134>Nov 28 13:01:49 haproxy[15668]: 127.0.0.1:36138 [28/Nov/2026:13:01:48.118] fe_registry '
               'be_slow/slow1 0/0/0/-1/1001 504 198 - - sH-- 1/1/0/0/0 0/0 {127.0.0.1:8089|curl/7.88.1} {} '
               '"GET /slow/a HTTP/1.1"')

    def sniff(self, lines: list[str]) -> float:
        if not lines:
            return 0.0
        http = other = 0
        for ln in lines:
            m = _PREFIX_PY.match(ln)
            body = m.group(6) if m else ln
            if _HTTPLOG_PY.match(body):
                http += 1
            elif m and m.group(4) == "haproxy":
                other += 1
        return (http + other) / len(lines) if http else 0.0

    def parse(self, ctx: Context, block: pa.Table, final: bool) -> ParseResult:
        con = ctx.con
        basis = ctx.at or ctx.file_mtime
        year = basis.year if basis else 1970
        con.register("_in", block)
        m, u, _ = request_parts_sql("h.request")
        try:
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE _hp AS
                WITH a AS (
                    SELECT line_no, text, wrap_ts, wrap_host, wrap_program,
                           CASE WHEN regexp_matches(text, '^(<\\d{{1,3}}>)?([A-Z][a-z]{{2}} [ \\d]\\d |[^\\s\\[:]+\\[)')
                                THEN regexp_extract(text, '{_q(PREFIX_RE)}', [{_names(PREFIX_FIELDS)}]) END AS p
                    FROM _in
                ), b AS (
                    SELECT *, regexp_extract(CASE WHEN p.prog <> '' THEN p.body ELSE text END,
                                             '{_q(HTTPLOG_RE)}', [{_names(HTTPLOG_FIELDS)}]) AS h
                    FROM a
                ), c AS (
                    SELECT *, string_split(replace(h.timers, '+', ''), '/') AS tl,
                        timezone($tz, coalesce(TRY_STRPTIME(h.date, '%d/%b/%Y:%H:%M:%S.%g'),
                                               TRY_STRPTIME(h.date, '%d/%b/%Y:%H:%M:%S'))) AS t0,
                        coalesce(timezone($tz, TRY_STRPTIME($year || ' ' || regexp_replace(p.sts, ' +', ' '),
                                                            '%Y %b %d %H:%M:%S')), wrap_ts) AS sys_ts
                    FROM b
                )
                SELECT *, TRY_CAST(tl[-1] AS BIGINT) AS total_ms, TRY_CAST(tl[-2] AS BIGINT) AS tr_ms,
                       CASE WHEN trim(text) = '' THEN 'blank'
                            WHEN h.client <> '' AND t0 IS NULL THEN 'badtime'
                            WHEN h.client <> '' THEN 'request'
                            WHEN regexp_matches(CASE WHEN p.prog <> '' THEN p.body ELSE text END,
                                                '^\\S+:\\d+ \\[\\d\\d/') THEN 'cut'
                            WHEN coalesce(p.prog, '') <> '' OR wrap_program IS NOT NULL
                                 THEN CASE WHEN sys_ts IS NULL THEN 'badtime' ELSE 'event' END
                            ELSE 'bad' END AS cls
                FROM c
                """,
                {"tz": ctx.tz, "year": str(year)},
            )
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE _req AS
                SELECT t0 + to_milliseconds(CASE WHEN total_ms > 0 THEN total_ms ELSE 0 END) AS ts,
                       'haproxy' AS layer, coalesce($inst, nullif_dash(wrap_host), nullif(p.host, '')) AS instance,
                       NULL AS request_id, {m} AS method, regexp_replace({u}, '^https?://[^/]+', '') AS uri,
                       CASE WHEN h.status = '-1' THEN '0' ELSE h.status END AS status,
                       CASE WHEN total_ms >= 0 THEN total_ms / 1000.0 END AS duration_s,
                       replace(h.bytes, '+', '') AS bytes_out, NULL AS bytes_in, h.client AS remote_addr,
                       list_filter(string_split(h.req_hdrs, '|'),
                                   lambda x: regexp_matches(x, '^[A-Za-z][A-Za-z0-9._-]*/[0-9vV]'))[1] AS user_agent,
                       NULL AS error_code, NULL AS error_message,
                       CASE WHEN NOT starts_with(h.term, '--')
                            THEN 'termination state ' || h.term || ' at ' || h.backend || '/' || h.server END
                           AS error_detail,
                       NULL::DOUBLE AS storage_duration_s,
                       CASE WHEN tr_ms >= 0 THEN tr_ms / 1000.0 END AS upstream_duration_s,
                       NULL AS upstream_status, line_no
                FROM _hp WHERE cls = 'request'
                """,
                {"inst": ctx.instance},
            )
            requests = finish_requests(con, "_req", ctx.source_file)
            events = con.sql(
                f"""
                SELECT sys_ts AS ts, 'haproxy' AS layer, coalesce($inst, nullif_dash(wrap_host), nullif(p.host, '')) AS instance,
                       CASE WHEN coalesce(p.pri, '') <> '' THEN {SEVERITY}[(CAST(p.pri AS INTEGER) % 8) + 1] END
                           AS level,
                       CASE WHEN coalesce(p.prog, '') <> '' THEN p.body ELSE text END AS message,
                       CASE WHEN regexp_matches(CASE WHEN coalesce(p.prog, '') <> '' THEN p.body ELSE text END,
                                '(?i)\\b(started|stopped|stopping|reload|loading|pausing|resuming)\\b')
                            THEN 'startup' ELSE 'other' END AS kind,
                       NULL AS error_code, NULL AS error_detail, NULL AS request_id, NULL AS repository,
                       CASE WHEN coalesce(p.pid, '') <> '' THEN to_json({{'pid': p.pid}})::VARCHAR END AS fields,
                       $src AS source_file, line_no
                FROM _hp WHERE cls = 'event' ORDER BY line_no
                """,
                params={"inst": ctx.instance, "src": ctx.source_file},
            ).to_arrow_table()
            has_prefix = con.execute("SELECT count(*) FROM _hp WHERE cls = 'event' AND p.sts <> ''").fetchall()[0][0]
            result = classified_result(
                con, "_hp",
                {"badtime": "unreadable date in an HAProxy line",
                 "cut": "HAProxy HTTP log line cut short or with fields out of shape",
                 "bad": "not an HAProxy HTTP log line (option httplog); tcplog and custom log-format lines are not read"},
                {"requests": requests, "log_events": schema.conform("log_events", events)})
        finally:
            con.unregister("_in")
        if requests.num_rows:
            ctx.note(f"HAProxy request dates have no zone: read as {ctx.tz} (--tz)")
        if has_prefix:
            ctx.note(f"syslog timestamps of HAProxy messages have no year: used {year}")
        return result


FORMATS: list[Format] = [HAProxyHTTP()]
