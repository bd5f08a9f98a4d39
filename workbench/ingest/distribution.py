"""CNCF distribution (docker registry) logs: logrus JSON and logrus text, with access-log lines interleaved.

"response completed" / "response completed with error" lines become `requests` (layer `registry`); the
registry's own combined access-log lines in the same stream become `requests` with layer `registry-access`
(they also show requests the app log leaves out, such as 405s from a read-only registry); every other
line becomes `log_events`. Blank lines are skipped; anything else is a reject with its reason.
"""

from __future__ import annotations

import re

from .access import COMBINED_PY, clf_time_sql, combined_sql, request_parts_sql
from .base import Context, Format, SqlFormat, sql_literal
from .derive import requests_select

# Fields of a registry log line, by their logrus names.
REQUEST_KEYS = {
    "time": "time",
    "level": "level",
    "msg": "msg",
    "method": "http.request.method",
    "uri": "http.request.uri",
    "host": "http.request.host",
    "request_id": "http.request.id",
    "remote_addr": "http.request.remoteaddr",
    "user_agent": "http.request.useragent",
    "status": "http.response.status",
    "duration": "http.response.duration",
    "written": "http.response.written",
    "content_length": "http.request.contentlength",
    "err_code": "err.code",
    "err_message": "err.message",
    "err_detail": "err.detail",
    "vars_name": "vars.name",
    "instance_id": "instance.id",
    "error": "error",
}

COMPLETED = "('response completed', 'response completed with error')"

EVENT_KIND_SQL = """
    CASE
        WHEN lower(coalesce(level, '')) IN ('panic', 'fatal') OR starts_with(lower(coalesce(msg, '')), 'panic')
             OR contains(coalesce(msg, '') || coalesce(error, ''), 'runtime error') THEN 'panic'
        WHEN regexp_matches(coalesce(msg, '') || ' ' || coalesce(error, '') || ' ' || coalesce(err_detail, ''),
             '(?i)SlowDown|s3aws|storagedriver|storage driver|RequestTimeout|InternalError.*s3|blob upload|no space left|gcs:|azure:|filesystem:')
             THEN 'storage_error'
        WHEN regexp_matches(coalesce(msg, ''), '(?i)\\bnot configured\\b') THEN 'startup'
        WHEN regexp_matches(coalesce(msg, '') || ' ' || coalesce(error, ''),
             '(?i)acquire connection|database|pgx|pq:|too many clients|remaining connection slots|sql:|redis')
             THEN 'db_error'
        WHEN regexp_matches(coalesce(msg, ''), '(?i)garbage|mark(ing)?|sweep|eligible for deletion|deleting (blob|manifest)')
             THEN 'gc'
        WHEN regexp_matches(coalesce(msg, '') || ' ' || coalesce(error, ''), '(?i)authoriz|authenticat|token')
             THEN 'auth'
        WHEN regexp_matches(coalesce(msg, ''), '(?i)listening on|starting|configuration|not configured|version=')
             THEN 'startup'
        WHEN msg = 'response completed with error' THEN 'request_error'
        ELSE 'other'
    END
"""


def ts_sql(expr: str, tz_param: str = "$tz") -> str:
    """SQL: a log timestamp string to TIMESTAMPTZ; strings without a zone are read in --tz.

    A CASE, so the common `…Z` form costs one suffix test and the zone regex runs only on the rest.
    """
    return (
        f"CASE WHEN suffix({expr}, 'Z') OR suffix({expr}, 'z') THEN TRY_CAST({expr} AS TIMESTAMPTZ) "
        f"WHEN regexp_matches({expr}, '[+-]\\d\\d:?\\d\\d$') THEN TRY_CAST({expr} AS TIMESTAMPTZ) "
        f"ELSE timezone({tz_param}, TRY_CAST({expr} AS TIMESTAMP)) END"
    )


class _RegistryLog(SqlFormat):
    family = "registry"
    tables = ("requests", "log_events")
    layer = "registry"  # layer of app-log requests and events
    access_layer = "registry-access"  # layer of the combined access-log lines in the same stream

    #: SQL over `_in` (line_no, text, wrap_*) giving `_kv`: line_no, text, ok (parsed), and one column per
    #: REQUEST_KEYS name plus `fields` (the rest as JSON text)
    extract_sql: str

    def looks_like(self, line: str) -> bool:
        raise NotImplementedError

    def sniff(self, lines: list[str]) -> float:
        if not lines:
            return 0.0
        own = sum(1 for ln in lines if self.looks_like(ln))
        access = sum(1 for ln in lines if COMBINED_PY.match(ln))
        return (own + access) / len(lines) if own else 0.0

    @property
    def reasons(self) -> dict[str, str]:
        return {"bad": self.reject_reason, "badtime": "no readable time in the line"}

    def classify(self, ctx: Context) -> str:
        # a request or event without a readable time is a reject; text is kept only where it is used
        tsv = ts_sql("k.time", sql_literal(ctx.tz))
        return f"""
            SELECT * EXCLUDE (text, a), a AS acc,
                   CASE WHEN cls IN ('event', 'bad', 'badtime') OR msg = 'response completed with error' THEN text END
                       AS text
            FROM (
                SELECT k.*, {tsv} AS tsv,
                       CASE WHEN k.ok AND tsv IS NULL AND k.wrap_ts IS NULL THEN 'badtime'
                            WHEN k.ok AND k.msg IN {COMPLETED} THEN 'request'
                            WHEN k.ok THEN 'event'
                            WHEN trim(k.text) = '' THEN 'blank'
                            WHEN a.time <> '' AND k.wrap_ts IS NULL AND {clf_time_sql('a.time')} IS NULL
                                 THEN 'badtime'
                            WHEN a.time <> '' THEN 'access'
                            ELSE 'bad' END AS cls
                FROM (SELECT *, CASE WHEN NOT ok THEN {combined_sql('text')} END AS a FROM ({self.extract_sql})) k
            )"""

    def relations(self, ctx: Context) -> list[tuple[str, str, str]]:
        m, u, _ = request_parts_sql("acc.request")
        inst = f"coalesce({sql_literal(ctx.instance)}, instance_id, wrap_host)"
        return [
            # The registry logs "response completed with error" once per error of a request (a manifest PUT
            # can fail with DIGEST_INVALID and MANIFEST_BLOB_UNKNOWN at once): the first line is the request,
            # the others are kept as log_events of kind request_error. Only error lines repeat, so only they
            # are ranked (few, whatever the file's size).
            ("_dups", """SELECT line_no FROM (
                             SELECT line_no, row_number() OVER (PARTITION BY request_id ORDER BY line_no) AS k
                             FROM _cls WHERE cls = 'request' AND msg = 'response completed with error'
                                         AND request_id IS NOT NULL)
                         WHERE k > 1""", "table"),
            ("_lines", _lines_sql("line_no IN (SELECT line_no FROM _dups)"), "view"),
            # app-log requests and access-log lines in one scan
            ("_req", f"""
                SELECT CASE WHEN acc IS NULL THEN coalesce(tsv, wrap_ts)
                            ELSE coalesce({clf_time_sql('acc.time')}, wrap_ts) END AS ts,
                       CASE WHEN acc IS NULL THEN {sql_literal(self.layer)} ELSE {sql_literal(self.access_layer)} END
                           AS layer,
                       CASE WHEN acc IS NULL THEN {inst} ELSE coalesce({sql_literal(ctx.instance)}, wrap_host) END
                           AS instance,
                       request_id,
                       CASE WHEN acc IS NULL THEN method ELSE {m} END AS method,
                       CASE WHEN acc IS NULL THEN uri ELSE {u} END AS uri,
                       coalesce(status, acc.status) AS status, go_dur(duration) AS duration_s,
                       coalesce(written, acc.bytes) AS bytes_out, content_length AS bytes_in,
                       coalesce(remote_addr, acc.remote) AS remote_addr, coalesce(user_agent, acc.ua) AS user_agent,
                       err_code AS error_code, err_message AS error_message, err_detail AS error_detail,
                       NULL::DOUBLE AS storage_duration_s, NULL::DOUBLE AS upstream_duration_s,
                       NULL AS upstream_status, line_no
                FROM _lines WHERE cls IN ('request', 'access')""", "view"),
        ]

    def build(self, ctx: Context) -> None:
        super().build(ctx)
        # The join above does not keep the lines' order, which a file read whole relies on to skip a sort; the
        # repeated lines are few, so they are tested against a list written out as text instead (DuckDB turns
        # an IN list, or list_contains over a constant list, into a join as well).
        dups = [r[0] for r in ctx.con.sql("SELECT line_no FROM _dups ORDER BY line_no LIMIT 1001").fetchall()]
        if len(dups) <= 1000:
            listed = sql_literal("," + ",".join(map(str, dups)) + ",")
            repeated = f"contains({listed}, ',' || line_no || ',')"
            ctx.con.execute(f"CREATE OR REPLACE TEMP VIEW _lines AS {_lines_sql(repeated)}")

    def outputs(self, ctx: Context) -> dict[str, str]:
        return {
            "requests": requests_select(ctx.con, "_req", ctx.source_file),
            "log_events": self.events_select(ctx, "_lines", "cls = 'event'"),
        }

    def events_select(self, ctx: Context, relation: str, where: str) -> str:
        """Canonical log_events from the rows of `relation` (columns as `extract_sql` gives them, with tsv)
        that meet `where`; the compiled parser's events take this too (native.py)."""
        inst = f"coalesce({sql_literal(ctx.instance)}, instance_id, wrap_host)"
        return f"""
                SELECT coalesce(tsv, wrap_ts) AS ts, {sql_literal(self.layer)} AS layer, {inst} AS instance,
                       lower(level) AS level, msg AS message, {EVENT_KIND_SQL} AS kind,
                       norm_code(err_code) AS error_code, coalesce(error, err_detail, err_message) AS error_detail,
                       request_id, vars_name AS repository,
                       coalesce(fields, CASE WHEN starts_with(ltrim(text), '{{') THEN {JSON_FIELDS_SQL} END) AS fields,
                       {sql_literal(ctx.source_file)} AS source_file, line_no
                FROM {relation} WHERE {where}"""


def _lines_sql(repeated: str) -> str:
    """`_cls` with a request's repeated error lines (`repeated`, a condition on line_no) turned into events."""
    return f"""SELECT * REPLACE (CASE WHEN cls = 'request' AND msg = 'response completed with error' AND {repeated}
                                     THEN 'event' ELSE cls END AS cls)
               FROM _cls"""


_KV_RE = r"""([A-Za-z0-9_.\-]+)=("(?:[^"\\]|\\.)*"|\S*)"""
_TEXT_LINE = "(starts_with(text, 'time=') OR starts_with(text, 'level='))"


def _extract_sql(json: bool) -> str:
    """SQL over `_in`: one row per line with `ok` (parsed), one column per REQUEST_KEYS name, and `fields`.

    Logrus text lines (`time=… level=… msg=…`) are read as key=value pairs; with `json`, every other line
    starting with `{` is parsed once as JSON (TRY: a broken object is NULL, then a reject), and `fields` (the
    other keys, as JSON text) is left for events to compute. One scan of the lines, whatever their mix.
    """
    struct = ", ".join(f'"{v}": "VARCHAR"' for v in REQUEST_KEYS.values())
    known = ", ".join(f"'{k}'" for k in ("time", "level", "msg"))
    if json:
        cols = ", ".join(f"""coalesce(j."{v}", m['{v}']) AS {k}""" for k, v in REQUEST_KEYS.items())
        j = (f"CASE WHEN (starts_with(text, '{{') OR starts_with(ltrim(text), '{{')) AND NOT {_TEXT_LINE} "
             f"THEN TRY(json_transform(text, '{{{struct}}}')) END")
        ok = "j IS NOT NULL OR (m IS NOT NULL AND m['time'] IS NOT NULL)"
    else:
        cols = ", ".join(f"m['{v}'] AS {k}" for k, v in REQUEST_KEYS.items())
        j = "NULL"
        ok = "m IS NOT NULL AND m['time'] IS NOT NULL"
    return f"""
        SELECT line_no, text, wrap_ts, wrap_host, wrap_program, {ok} AS ok, {cols},
               CASE WHEN m IS NOT NULL THEN CAST(to_json(map_from_entries(list_filter(map_entries(m),
                   lambda e: e.key NOT IN ({known})))) AS VARCHAR) END AS fields
        FROM (SELECT *, {j} AS j,
                     CASE WHEN {_TEXT_LINE} THEN TRY(map_from_entries(list_transform(
                        regexp_extract_all(text, '{_KV_RE.replace(chr(39), chr(39) * 2)}'),
                        lambda p: {{'key': split_part(p, '=', 1),
                                    'value': logrus_unquote(substr(p, strpos(p, '=') + 1))}})))
                     END AS m
              FROM _in)
    """


# The other fields of a JSON line, for log_events (computed on event lines only).
JSON_FIELDS_SQL = "CAST(json_merge_patch(text, '{\"time\": null, \"level\": null, \"msg\": null}') AS VARCHAR)"


class RegistryJSON(_RegistryLog):
    name = "registry-json"
    description = "CNCF distribution / docker registry app log, logrus JSON (log.formatter: json)"
    example = (
        '{"err.code":"manifest unknown","err.detail":"unknown tag=missing","err.message":"manifest unknown",'
        '"go.version":"go1.19.8","http.request.host":"127.0.0.1:5000","http.request.id":"5b2a9d4e-…",'
        '"http.request.method":"GET","http.request.remoteaddr":"127.0.0.1:41234",'
        '"http.request.uri":"/v2/library/app/manifests/missing","http.request.useragent":"skopeo/1.9.3",'
        '"http.response.contenttype":"application/json; charset=utf-8","http.response.duration":"2.016377ms",'
        '"http.response.status":404,"http.response.written":96,"level":"warning",'
        '"msg":"response completed with error","time":"2026-11-28T06:29:38.412004795Z",'
        '"vars.name":"library/app","vars.reference":"missing"}'
    )
    reject_reason = "not a JSON object and not an access-log line"
    # The JSON-formatted registry still writes a logrus text line now and then (the debug server's
    # "listening" line races the formatter set-up at start): read those as text rather than reject them.
    extract_sql = _extract_sql(json=True)

    def looks_like(self, line: str) -> bool:
        s = line.lstrip()
        return s.startswith("{") and '"msg"' in s and '"time"' in s


class RegistryText(_RegistryLog):
    name = "registry-text"
    description = "CNCF distribution / docker registry app log, logrus text (key=value, the default)"
    example = (
        'time="2026-11-28T06:29:38.412004795Z" level=info msg="response completed" go.version=go1.19.8 '
        'http.request.host="127.0.0.1:5000" http.request.id=0d7c… http.request.method=GET '
        'http.request.remoteaddr="127.0.0.1:41234" http.request.uri="/v2/library/app/manifests/v1" '
        'http.request.useragent="skopeo/1.9.3" http.response.contenttype="application/vnd.oci.image.manifest.v1+json" '
        'http.response.duration=3.21ms http.response.status=200 http.response.written=1024'
    )
    reject_reason = "not a logrus key=value line and not an access-log line"
    extract_sql = _extract_sql(json=False)
    _re = re.compile(r'^time="?\d{4}-\d\d-\d\d')

    def looks_like(self, line: str) -> bool:
        return bool(self._re.match(line)) and " level=" in line and " msg=" in line


FORMATS: list[Format] = [RegistryJSON(), RegistryText()]
