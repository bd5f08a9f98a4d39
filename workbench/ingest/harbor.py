"""Harbor logs: the registry, core and other components, as Harbor's log container (rsyslog) writes them.

Under docker compose every component logs through syslog to the log container, which writes
`Nov 28 06:29:38 172.18.0.1 registry[1203]: <line>` (the syslog wrapper removes that prefix and keeps host,
program and time). On Kubernetes the same lines come without the prefix, inside CRI. Inner lines are:
- registry: distribution logrus text lines and its combined access lines -> layer `harbor-registry`
  (`harbor-registry-access`; the proxy's access lines -> `harbor-proxy`)
- core: `2026-11-28T06:29:38Z [ERROR] [/lib/http/error.go:57][requestID="…"]: {"errors":[{"code":…}]}`
  -> log_events (layer `harbor-core`, error code from the JSON error body)
- core (beego, Harbor 1.x/2.0): `2020/07/31 17:22:55.899 [D] [transaction.go:62]  |  10.244.4.1| 200 |
  116.825808ms|   match| HEAD  /v2/…   r:/v2/*` -> requests (layer `harbor-core`); other beego lines -> log_events
- anything else carrying the syslog time (Go panic traces, `#011`-escaped stack frames) -> log_events, kind
  `panic` for trace lines; without any time it is a reject.
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc

from .. import schema
from .access import COMBINED_PY
from .base import Context, ParseResult, empty_rejects, rejects_from
from .derive import finish_requests
from .distribution import EVENT_KIND_SQL, RegistryText, ts_sql

CORE_RE = (r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) \[([A-Z]+)\] \[([^\]]*)\]"
           r"(?:\[requestID=\"?([^\]\"]*)\"?\])?:? ?(.*)$")
BEEGO_RE = r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(?:\.\d+)?) \[([A-Z])\] (.*)$"
BEEGO_ACCESS_RE = (r"^\[[^\]]*\]\s+\|\s*(\S+)\|\s*(\d{3}) \|\s*(\S+)\|\s*(\S+)\|\s*([A-Z]+)\s+(\S+)\s+r:(\S*)")
SYSLOG_PROGRAMS = ("registry", "registryctl", "core", "jobservice", "portal", "proxy", "chartmuseum",
                   "trivy-adapter", "notary-server", "notary-signer", "exporter", "redis", "postgresql")
HARBOR_SYSLOG = re.compile(
    r"^(<\d{1,3}>)?[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ (" + "|".join(SYSLOG_PROGRAMS) + r")\[\d+\]: "
)
_CORE_PY = re.compile(CORE_RE)
_BEEGO_PY = re.compile(BEEGO_RE)


def _q(rx: str) -> str:
    return rx.replace("'", "''")


class _HarborRegistryText(RegistryText):
    layer = "harbor-registry"
    access_layer = "harbor-registry-access"


class Harbor(_HarborRegistryText):
    name = "harbor"
    description = ("Harbor logs (registry, core, …) as its log container writes them (syslog prefix with the "
                   "program name: registry, core, …), or the same lines from Kubernetes")
    example = ('Jan  9 03:39:48 172.18.0.1 registry[660]: time="2018-01-09T03:39:48.839666677Z" level=error '
               'msg="response completed with error" err.code="blob unknown" … http.response.status=404')

    def sniff(self, lines: list[str]) -> float:
        if not lines:
            return 0.0
        core = sum(1 for ln in lines if _CORE_PY.match(ln) or _BEEGO_PY.match(ln))
        if not core:
            return 0.0
        registry_line = super().looks_like  # zero-argument super() does not work inside a generator
        reg = sum(1 for ln in lines if registry_line(ln) or COMBINED_PY.match(ln))
        return (core + reg) / len(lines)

    def sniff_raw(self, lines: list[str]) -> float:
        """Lines as they are in the file, before wrappers are removed: Harbor's rsyslog prefix."""
        if not lines:
            return 0.0
        return sum(1 for ln in lines if HARBOR_SYSLOG.match(ln)) / len(lines)

    def parse(self, ctx: Context, block: pa.Table, final: bool) -> ParseResult:
        con = ctx.con
        con.register("_hb", block)
        try:
            con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE _hcls AS
                SELECT *, CASE
                    WHEN trim(text) = '' OR regexp_matches(text, '^(time|level)=') OR regexp_matches(text,
                         '^\\S+ \\S+ \\S+ \\[[^\\]]+\\] "') THEN 'registry'
                    WHEN regexp_matches(text, '{_q(CORE_RE)}') THEN 'core'
                    WHEN regexp_matches(text, '{_q(BEEGO_RE)}') THEN 'beego'
                    ELSE 'other' END AS part
                FROM _hb
                """
            )
            reg_block = con.sql("SELECT line_no, text, wrap_ts, wrap_host, wrap_program FROM _hcls "
                                "WHERE part = 'registry' ORDER BY line_no").to_arrow_table().cast(block.schema)
        finally:
            con.unregister("_hb")
        reg = super().parse(ctx, reg_block, final)
        # the proxy's access lines are the proxy's, not the registry's
        reqs = reg.tables["requests"]
        progs = dict(zip(block.column("line_no").to_pylist(), block.column("wrap_program").to_pylist()))
        if reqs.num_rows and "proxy" in progs.values():
            layer = [("harbor-proxy" if progs.get(n) == "proxy" and lay == self.access_layer else lay)
                     for n, lay in zip(reqs.column("line_no").to_pylist(), reqs.column("layer").to_pylist())]
            reqs = reqs.set_column(reqs.schema.get_field_index("layer"), "layer", pa.array(layer, pa.string()))
        core_req, core_ev, core_rej = self._core(ctx)
        requests = pa.concat_tables([reqs, core_req]).sort_by("line_no")
        events = pa.concat_tables([reg.tables["log_events"], core_ev]).sort_by("line_no")
        rej_parts = [r for r in (reg.rejects, core_rej) if r is not None and r.num_rows]
        rejects = pa.concat_tables(rej_parts).sort_by("line_no") if rej_parts else empty_rejects()
        return ParseResult(
            tables={"requests": requests, "log_events": events},
            rejects=rejects,
            skipped=reg.skipped,
            used_lines=reg.used_lines + core_req.num_rows + core_ev.num_rows,
        )

    def _core(self, ctx: Context) -> tuple[pa.Table, pa.Table, pa.Table]:
        con = ctx.con
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _core AS
            SELECT line_no, text, wrap_ts, wrap_host, part,
                   regexp_extract(text, '{_q(CORE_RE)}', ['ts', 'level', 'src', 'rid', 'msg']) AS c,
                   regexp_extract(text, '{_q(BEEGO_RE)}', ['ts', 'level', 'rest']) AS b
            FROM _hcls WHERE part IN ('core', 'beego', 'other')
            """
        )
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _core2 AS
            SELECT *, regexp_extract(b.rest, '{_q(BEEGO_ACCESS_RE)}',
                                     ['remote', 'status', 'dur', 'match', 'method', 'path', 'route']) AS a,
                   coalesce(CASE part WHEN 'core' THEN {ts_sql('c.ts')}
                                      WHEN 'beego' THEN timezone($tz, TRY_CAST(replace(b.ts, '/', '-') AS TIMESTAMP))
                                      END, wrap_ts) AS tsv
            FROM _core
            """,
            {"tz": ctx.tz},
        )
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE _hreq AS
            SELECT tsv AS ts, 'harbor-core' AS layer, coalesce($inst, wrap_host) AS instance, NULL AS request_id,
                   a.method AS method, a.path AS uri, a.status AS status, go_dur(a.dur) AS duration_s,
                   NULL AS bytes_out, NULL AS bytes_in, a.remote AS remote_addr, NULL AS user_agent,
                   NULL AS error_code, NULL AS error_message, NULL AS error_detail,
                   NULL::DOUBLE AS storage_duration_s, NULL::DOUBLE AS upstream_duration_s,
                   NULL AS upstream_status, line_no
            FROM _core2 WHERE part = 'beego' AND a.status <> '' AND tsv IS NOT NULL
            """,
            {"inst": ctx.instance},
        )
        requests = finish_requests(con, "_hreq", ctx.source_file)
        beego_level = ("CASE b.level WHEN 'D' THEN 'debug' WHEN 'I' THEN 'info' WHEN 'N' THEN 'notice' "
                       "WHEN 'W' THEN 'warning' WHEN 'E' THEN 'error' WHEN 'C' THEN 'critical' "
                       "WHEN 'A' THEN 'alert' ELSE 'emergency' END")
        events = con.sql(
            f"""
            WITH e AS (
                SELECT *,
                    CASE part WHEN 'core' THEN lower(c.level) WHEN 'beego' THEN {beego_level} END AS level,
                    CASE part WHEN 'core' THEN c.msg WHEN 'beego' THEN b.rest ELSE text END AS msg,
                    CASE WHEN part = 'core' AND json_valid(c.msg)
                         THEN json_extract_string(c.msg, '$.errors[0].code') END AS err_code,
                    CASE WHEN part = 'core' AND json_valid(c.msg)
                         THEN json_extract_string(c.msg, '$.errors[0].message') END AS error,
                    NULL AS err_detail, NULL AS err_message
                FROM _core2 WHERE tsv IS NOT NULL AND NOT (part = 'beego' AND a.status <> '')
            )
            SELECT tsv AS ts, CASE part WHEN 'other' THEN 'harbor' ELSE 'harbor-core' END AS layer,
                   coalesce($inst, wrap_host) AS instance, level, msg AS message,
                   CASE WHEN (part = 'beego' AND level = 'critical')
                          OR (part = 'other' AND regexp_matches(text, '^(panic: |goroutine \\d+ \\[|#011|\\t|\\S+\\(.*\\)$)'))
                        THEN 'panic' ELSE {EVENT_KIND_SQL} END AS kind,
                   norm_code(err_code) AS error_code, error AS error_detail, nullif(c.rid, '') AS request_id,
                   NULL AS repository,
                   CASE part WHEN 'core' THEN json_object('source', c.src) END::VARCHAR AS fields,
                   $src AS source_file, line_no
            FROM e ORDER BY line_no
            """,
            params={"inst": ctx.instance, "src": ctx.source_file},
        ).to_arrow_table()
        rejects = rejects_from(
            con,
            """SELECT line_no, CASE part WHEN 'other' THEN 'not a Harbor registry or core line, and no syslog time'
                                  ELSE 'no readable time in the line' END AS reason, text
               FROM _core2 WHERE tsv IS NULL ORDER BY line_no""",
        )
        return requests, schema.conform("log_events", events), rejects


FORMATS = [Harbor()]
