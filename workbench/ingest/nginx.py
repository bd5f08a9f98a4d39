"""nginx access logs: `combined` (with the timing fields people append) and JSON `log_format … escape=json`.

Every line becomes a `requests` row with layer `nginx`. A TLS ClientHello sent to a plain-HTTP port is logged
by nginx as a request line of `\\x16\\x03\\x01…` bytes with status 400: it stays a request (method and path
empty, route `other`), it is not corruption.

Trailing fields after the user agent in `combined`, in the order nginx configurations commonly add them:
an optional quoted `"$http_x_forwarded_for"`, then `$request_time $upstream_response_time $upstream_status
$request_id $request_length` (any prefix of that list), or key=value pairs (`rt=… urt="…" us=…`, as in
nginx's own blog example). `$upstream_response_time` may be `-`, or list several upstreams (`0.000, 0.002`
for retries, `0.000 : 0.001` across an internal redirect): `upstream_duration_s` is their SUM (all time
spent waiting on upstreams); `upstream_status` keeps the list as logged.
"""

from __future__ import annotations

import re

from .access import COMBINED_PY, clf_time_sql, combined_sql, request_parts_sql
from .base import Context, Format, SqlFormat, sql_literal
from .derive import requests_select

_NUM_LIST = r"(?:[0-9.]+|-)(?:(?:, | : )(?:[0-9.]+|-))*"
_STATUS_LIST = r"(?:\d{3}|-)(?:(?:, | : )(?:\d{3}|-))*"
TRAILING_RE = (
    r'^\s*(?:"[^"]*"\s*)?(?:([0-9]+\.[0-9]+|-)(?:\s+(' + _NUM_LIST + r'))?(?:\s+(' + _STATUS_LIST + r'))?'
    r"(?:\s+([0-9a-f]{16,64}|-))?(?:\s+(\d+))?)?(.*)$"
)
TRAILING_FIELDS = ["rt", "urt", "us", "rid", "rlen", "extra"]
# key=value trailing fields: (our name, keys people use)
TRAILING_KV = {
    "rt": ("rt", "request_time"),
    "urt": ("urt", "upstream_response_time", "upstream_time"),
    "us": ("us", "upstream_status"),
    "rid": ("rid", "request_id", "req_id"),
    "rlen": ("request_length", "rl"),
}

# Fast paths, equivalent to the regular expressions above for the usual shapes (a regular expression with
# capture groups per row is what dominated the ingest time): split on the quotes (nginx writes a quote inside
# a field as \x22, so a raw quote only delimits fields) and check the shape with match-only expressions;
# anything else (quotes escaped as \", other trailing layouts) takes the full regular expression.
FAST_COMBINED_SQL = r"""
    CASE WHEN len(q) >= 7 AND q[5] = ' ' AND NOT contains(text, '\"')
              AND regexp_matches(q[1], '^\S+ \S+ \S+ \[[^\]]+\] $') AND regexp_matches(q[3], '^ \d{3} (\d+|-) $')
         THEN {'remote': split_part(q[1], ' ', 1), 'ident': split_part(q[1], ' ', 2), 'user': split_part(q[1], ' ', 3),
               'time': substr(q[1], strpos(q[1], '[') + 1, strpos(q[1], ']') - strpos(q[1], '[') - 1),
               'request': q[2], 'status': substr(q[3], 2, 3), 'bytes': trim(substr(q[3], 6)),
               'referer': q[4], 'ua': q[6], 'rest': array_to_string(q[7:], '"')}
         ELSE """ + combined_sql("text") + " END"
FAST_TIMED_RE = r"^ [0-9]+\.[0-9]+ ([0-9.]+|-) (\d{3}|-) [0-9a-f]{16,64} \d+$"
FAST_TIMES_RE = r"^ [0-9]+\.[0-9]+( ([0-9.]+|-))?$"

MACROS = [
    # $upstream_response_time: '-', '0.002', '0.000, 0.002' or '0.000 : 0.001' -> summed seconds (NULL if none)
    r"""
    CREATE OR REPLACE MACRO upstream_sum(x) AS (
        CASE WHEN x IS NULL OR NOT regexp_matches(x, '[0-9]') THEN NULL
             WHEN NOT contains(x, ',') AND NOT contains(x, ':') THEN TRY_CAST(trim(x) AS DOUBLE)
             ELSE list_sum(list_transform(regexp_extract_all(x, '[0-9]+(?:\.[0-9]+)?'),
                                          lambda v: CAST(v AS DOUBLE))) END)
    """,
    # nginx's default log escaping writes " and \ as \x22 and \x5C
    r"""
    CREATE OR REPLACE MACRO nginx_unescape(x) AS (
        CASE WHEN contains(x, '\x') THEN replace(replace(x, '\x22', '"'), '\x5C', '\') ELSE x END)
    """,
]


def _install(con) -> None:
    for m in MACROS:
        con.execute(m)


def _kv_sql(col: str, name: str) -> str:
    keys = "|".join(TRAILING_KV[name])
    return f"""regexp_extract({col}, '(?:^|\\s)(?:{keys})="?([^"\\s]*)', 1)"""


def _sql_str(rx: str) -> str:
    return rx.replace("'", "''")


class NginxCombined(SqlFormat):
    name = "nginx-combined"
    family = "proxy"
    tables = ("requests",)
    description = ("nginx access log, `combined`, optionally followed by $request_time $upstream_response_time "
                   "$upstream_status $request_id $request_length (or rt=… urt=… key=value pairs)")
    example = ('127.0.0.1 - - [28/Nov/2026:12:57:33 +0000] "GET /pair/library/app/manifests/v1 HTTP/1.1" 404 122 '
               '"-" "containerd/v1.7.2" 0.003 0.000, 0.002 502, 404 cfc6771bd5f4267477bd2ad18e284a5a 113')

    def sniff(self, lines: list[str]) -> float:
        if not lines:
            return 0.0
        return sum(1 for ln in lines if COMBINED_PY.match(ln)) / len(lines)

    reasons = {"bad": "not a combined access-log line", "badtime": "unreadable [time_local] in an access-log line"}

    def classify(self, ctx: Context) -> str:
        _install(ctx.con)
        m, u, _ = request_parts_sql("c.request")
        tr = ", ".join(f"'{n}'" for n in TRAILING_FIELDS)
        kv = ", ".join(f"'{n}': {_kv_sql('c.rest', n)}" for n in TRAILING_KV)
        return f"""
                WITH a AS (
                    SELECT line_no, text, wrap_ts, wrap_host, {FAST_COMBINED_SQL} AS c FROM
                        (SELECT *, string_split(text, '"') AS q FROM _in)
                ), b AS (
                    SELECT *, {clf_time_sql('c.time')} AS tsv,
                        CASE WHEN c.rest = '' THEN NULL
                             WHEN regexp_matches(c.rest, '{FAST_TIMED_RE}')
                                 THEN {{'rt': rs[2], 'urt': rs[3], 'us': rs[4], 'rid': rs[5], 'rlen': rs[6], 'extra': ''}}
                             WHEN regexp_matches(c.rest, '{FAST_TIMES_RE}')
                                 THEN {{'rt': rs[2], 'urt': coalesce(rs[3], ''), 'us': '', 'rid': '', 'rlen': '',
                                        'extra': ''}}
                             ELSE regexp_extract(c.rest, '{_sql_str(TRAILING_RE)}', [{tr}]) END AS t,
                        CASE WHEN contains(c.rest, '=') THEN {{{kv}}} END AS k
                    FROM (SELECT *, string_split(c.rest, ' ') AS rs FROM a)
                )
                SELECT * EXCLUDE (_text), CASE WHEN cls <> 'request' THEN _text END AS text FROM (
                    SELECT tsv AS ts, 'nginx' AS layer, coalesce({sql_literal(ctx.instance)}, wrap_host) AS instance,
                       coalesce(nullif(k.rid, ''), t.rid) AS request_id, {m} AS method, {u} AS uri,
                       c.status, TRY_CAST(coalesce(nullif(k.rt, ''), t.rt) AS DOUBLE) AS duration_s,
                       c.bytes AS bytes_out, coalesce(nullif(k.rlen, ''), t.rlen) AS bytes_in,
                       c.remote AS remote_addr, nullif_dash(nginx_unescape(c.ua)) AS user_agent,
                       NULL AS error_code, NULL AS error_message, NULL AS error_detail,
                       NULL::DOUBLE AS storage_duration_s,
                       upstream_sum(coalesce(nullif(k.urt, ''), t.urt)) AS upstream_duration_s,
                       nullif(coalesce(nullif(k.us, ''), t.us), '') AS upstream_status, line_no,
                       CASE WHEN tsv IS NOT NULL THEN 'request'
                            WHEN trim(text) = '' THEN 'blank'
                            WHEN c.time = '' THEN 'bad'
                            ELSE 'badtime' END AS cls, text AS _text
                    FROM b
                )
                """

    def relations(self, ctx: Context) -> list[tuple[str, str, str]]:
        return [("_req", "SELECT * EXCLUDE (cls, text) FROM _cls WHERE cls = 'request'", "view")]

    def outputs(self, ctx: Context) -> dict[str, str]:
        return {"requests": requests_select(ctx.con, "_req", ctx.source_file)}


# JSON log_format field names people use, by meaning; the first non-empty one wins.
JSON_KEYS: dict[str, tuple[str, ...]] = {
    "ts_iso": ("time_iso8601", "@timestamp", "timestamp", "time", "ts", "date"),
    "ts_local": ("time_local",),
    "msec": ("msec",),
    "remote": ("remote_addr", "remote_ip", "client", "client_ip", "clientip", "ip", "realip_remote_addr"),
    "method": ("request_method", "method", "verb"),
    "uri": ("request_uri", "uri", "path", "url"),
    "request": ("request",),
    "status": ("status", "status_code", "response_status"),
    "bytes_out": ("body_bytes_sent", "bytes_sent", "bytes", "response_bytes"),
    "bytes_in": ("request_length", "bytes_received"),
    "rt": ("request_time", "response_time", "rt"),
    "urt": ("upstream_response_time", "upstream_time", "urt"),
    "us": ("upstream_status",),
    "ua": ("http_user_agent", "user_agent", "agent", "useragent", "http_useragent"),
    "rid": ("request_id", "req_id", "requestid", "x_request_id", "http_x_request_id"),
}
_ALL_KEYS = sorted({k for ks in JSON_KEYS.values() for k in ks})


def _pick(name: str) -> str:
    return "coalesce(" + ", ".join(f"""nullif(nullif(j."{k}", ''), '-')""" for k in JSON_KEYS[name]) + ")"


class NginxJSON(SqlFormat):
    name = "nginx-json"
    family = "proxy"
    tables = ("requests",)
    description = ("nginx access log as JSON (`log_format … escape=json '{…}'`), with the common field names: "
                   "remote_addr/client, time_iso8601/@timestamp/time_local, request or request_uri/uri + method, "
                   "status, body_bytes_sent/bytes_sent, request_time, upstream_response_time, user_agent, request_id")
    example = ('{"time_iso8601":"2026-11-28T12:57:33+00:00","remote_addr":"127.0.0.1","request_id":"b5dc…",'
               '"request_method":"GET","request_uri":"/slow/x","status":"504","body_bytes_sent":"167",'
               '"request_time":"1.002","upstream_response_time":"1.002","upstream_status":"504",'
               '"http_user_agent":"curl/7.88.1","request":"GET /slow/x HTTP/1.1"}')
    _time = re.compile(r'"(time_iso8601|@timestamp|timestamp|time_local|time|msec)"\s*:')
    _req = re.compile(r'"(request|request_uri|uri|path|url)"\s*:')

    def looks_like(self, line: str) -> bool:
        s = line.lstrip()
        return (s.startswith("{") and '"status' in s and '"msg"' not in s and '"level"' not in s
                and bool(self._time.search(s)) and bool(self._req.search(s)))

    def sniff(self, lines: list[str]) -> float:
        if not lines:
            return 0.0
        return sum(1 for ln in lines if self.looks_like(ln)) / len(lines)

    reasons = {"bad": "not a JSON object", "nostatus": "JSON object without a status field",
               "badtime": "no readable time (time_iso8601, @timestamp, time_local or msec)"}

    def classify(self, ctx: Context) -> str:
        from .distribution import ts_sql

        _install(ctx.con)
        struct = ", ".join(f'"{k}": "VARCHAR"' for k in _ALL_KEYS)
        # Without escape=json nginx writes \xHH escapes, which are not JSON: read them as \u00HH.
        return f"""
                WITH a AS (
                    SELECT *, CASE WHEN json_valid(text) THEN text
                                   WHEN contains(text, '\\x') AND json_valid(replace(text, '\\x', '\\u00'))
                                   THEN replace(text, '\\x', '\\u00') END AS js
                    FROM _in
                ), b AS (
                    SELECT *, CASE WHEN starts_with(ltrim(js), '{{') AND json_type(js) = 'OBJECT'
                                   THEN json_transform(js, '{{{struct}}}') END AS j
                    FROM a
                ), c AS (
                    SELECT line_no, text, wrap_ts, wrap_host, j,
                        coalesce({ts_sql(_pick('ts_iso'), sql_literal(ctx.tz))}, {clf_time_sql(_pick('ts_local'))},
                                 make_timestamptz(CAST(TRY_CAST({_pick('msec')} AS DOUBLE) * 1e6 AS BIGINT))) AS tsv,
                        {_pick('request')} AS req_line
                    FROM b
                )
                SELECT * EXCLUDE (text), CASE WHEN cls <> 'request' THEN text END AS text FROM (
                    SELECT *, CASE WHEN trim(text) = '' THEN 'blank'
                                   WHEN j IS NULL THEN 'bad'
                                   WHEN {_pick('status')} IS NULL THEN 'nostatus'
                                   WHEN tsv IS NULL THEN 'badtime'
                                   ELSE 'request' END AS cls
                    FROM c
                )
                """

    def relations(self, ctx: Context) -> list[tuple[str, str, str]]:
        m, u, _ = request_parts_sql("req_line")
        return [("_req", f"""
                SELECT tsv AS ts, 'nginx' AS layer, coalesce({sql_literal(ctx.instance)}, wrap_host) AS instance,
                       {_pick('rid')} AS request_id,
                       coalesce({_pick('method')}, {m}) AS method, coalesce({_pick('uri')}, {u}) AS uri,
                       {_pick('status')} AS status, TRY_CAST({_pick('rt')} AS DOUBLE) AS duration_s,
                       {_pick('bytes_out')} AS bytes_out, {_pick('bytes_in')} AS bytes_in,
                       {_pick('remote')} AS remote_addr, {_pick('ua')} AS user_agent,
                       NULL AS error_code, NULL AS error_message, NULL AS error_detail,
                       NULL::DOUBLE AS storage_duration_s, upstream_sum({_pick('urt')}) AS upstream_duration_s,
                       {_pick('us')} AS upstream_status, line_no
                FROM _cls WHERE cls = 'request'
                """, "view")]

    def outputs(self, ctx: Context) -> dict[str, str]:
        return {"requests": requests_select(ctx.con, "_req", ctx.source_file)}


FORMATS: list[Format] = [NginxCombined(), NginxJSON()]
