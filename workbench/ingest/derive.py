"""Fields derived at ingest, as DuckDB SQL macros: Go durations, /v2/ routes, client families, addresses.

Everything here runs inside DuckDB over whole blocks (no Python per line). `install(con)` defines the macros;
`finish_requests` turns a format's raw request relation into canonical `requests` rows.
"""

from __future__ import annotations

import itertools

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from .. import schema
from .base import sql_literal

_LOOKUPS = itertools.count()

# Client families, first match wins: (family, regex whose group 1 is the version).
CLIENTS: list[tuple[str, str]] = [
    ("kube-probe", r"^kube-probe/([^\s]+)"),
    ("kubelet", r"^kubelet/v?([^\s]+)"),
    ("cri-o", r"^cri-o/([^\s]+)"),
    ("containerd", r"^containerd/v?([^\s]+)"),
    ("buildkit", r"^buildkit/v?([^\s]+)"),
    ("kaniko", r"^kaniko/v?([^\s]+)"),
    ("crane", r"(?:^|\s)crane/v?([^\s]+)"),
    ("skopeo", r"^skopeo/v?([^\s]+)"),
    ("podman", r"^(?:libpod|podman)/v?([^\s]+)"),
    ("buildah", r"^(?i:buildah)/v?([^\s]+)"),
    ("containers-image", r"^containers/v?([^\s]+) \(github\.com/containers/image\)"),
    ("docker", r"^docker/v?([^\s]+)"),
    ("docker-registry", r"^distribution/v?([^\s]+)"),
    ("harbor", r"^harbor-[a-z-]+/?([^\s]*)"),
    ("gitlab", r"^GitLab/v?([^\s]+)"),
    ("go-containerregistry", r"go-containerregistry/v?([^\s]+)"),
    ("oras", r"^oras/v?([^\s]+)"),
    ("helm", r"^Helm/v?([^\s]+)"),
    ("prometheus", r"^Prometheus/v?([^\s]+)"),
    ("curl", r"^curl/([^\s]+)"),
    ("wget", r"^Wget/([^\s]+)"),
    ("python-requests", r"^python-requests/([^\s]+)"),
    ("python-httpx", r"^python-httpx/([^\s]+)"),
    ("aiohttp", r"aiohttp/([^\s]+)"),
    ("go-http-client", r"^Go-http-client/([^\s]+)"),
    ("java", r"^Java/([^\s]+)"),
    ("browser", r"^Mozilla/([^\s]+)"),
]

# GitLab deletes tags with /v2/<name>/tags/reference/<tag>
ROUTE_RE = r"^/v2/(.+?)/(manifests|blobs/uploads|blobs|tags/reference|tags|referrers)(?:/([^/]*))?/?$"

MACROS = [
    # Go time.Duration strings: 850µs 850us 12.345678ms 1.2s 1m51.900179248s 2h3m 0s; by suffix and cast,
    # with a list fold only for compound forms.
    r"""
    CREATE OR REPLACE MACRO go_dur(d) AS (
        CASE
            WHEN d IS NULL OR d = '' THEN NULL
            WHEN suffix(d, 'ms') AND NOT contains(d, 'h') AND NOT contains(left(d, -2), 'm')
                THEN TRY_CAST(left(d, -2) AS DOUBLE) / 1e3
            WHEN suffix(d, 'µs') OR suffix(d, 'μs') OR suffix(d, 'us') THEN TRY_CAST(left(d, -2) AS DOUBLE) / 1e6
            WHEN suffix(d, 'ns') THEN TRY_CAST(left(d, -2) AS DOUBLE) / 1e9
            WHEN suffix(d, 's') AND NOT contains(d, 'm') AND NOT contains(d, 'h') THEN TRY_CAST(left(d, -1) AS DOUBLE)
            WHEN regexp_full_match(d, '-?([0-9.]+(h|m|s|ms|us|µs|μs|ns))+')
                THEN (CASE WHEN starts_with(d, '-') THEN -1 ELSE 1 END) * list_sum(list_transform(
                    regexp_extract_all(d, '[0-9.]+(?:h|ms|m|s|us|µs|μs|ns)'),
                    lambda x: TRY_CAST(regexp_extract(x, '^[0-9.]+') AS DOUBLE) * CASE regexp_extract(x, '[a-zµμ]+$')
                        WHEN 'h' THEN 3600 WHEN 'm' THEN 60 WHEN 's' THEN 1 WHEN 'ms' THEN 1e-3
                        WHEN 'ns' THEN 1e-9 ELSE 1e-6 END))
            ELSE TRY_CAST(d AS DOUBLE)
        END)
    """,
    # Address without port: 10.0.0.1:5000 -> 10.0.0.1, [::1]:5000 -> ::1, "1.2.3.4, 10.0.0.1" -> 1.2.3.4
    r"""
    CREATE OR REPLACE MACRO strip_port(a) AS (
        CASE
            WHEN a IS NULL OR a = '' OR a = '-' THEN NULL
            WHEN contains(a, ',') THEN strip_port_one(trim(split_part(a, ',', 1)))
            ELSE strip_port_one(trim(a))
        END)
    """,
    r"""
    CREATE OR REPLACE MACRO strip_port_one(a) AS (
        CASE
            WHEN starts_with(a, '[') THEN regexp_extract(a, '^\[([^\]]*)\]', 1)
            WHEN length(a) - length(replace(a, ':', '')) = 1 THEN split_part(a, ':', 1)
            ELSE a
        END)
    """,
    # Registry error codes: 'blob unknown' and 'BLOB_UNKNOWN' are the same code.
    r"""
    CREATE OR REPLACE MACRO norm_code(c) AS (
        CASE WHEN c IS NULL OR trim(c) = '' THEN NULL ELSE upper(regexp_replace(trim(c), '[\s-]+', '_', 'g')) END)
    """,
    # A logrus text value: bare, or a Go-quoted string with \" \\ \n \t escapes.
    r"""
    CREATE OR REPLACE MACRO logrus_unquote(v) AS (
        CASE WHEN starts_with(v, '"') AND suffix(v, '"') AND length(v) >= 2
             THEN replace(replace(replace(replace(replace(substr(v, 2, length(v) - 2), '\\', chr(1)), '\"', '"'),
                  '\n', chr(10)), '\t', chr(9)), chr(1), '\')
             ELSE v END)
    """,
    r"""
    CREATE OR REPLACE MACRO nullif_dash(x) AS (CASE WHEN x IS NULL OR x = '' OR x = '-' THEN NULL ELSE x END)
    """,
]


def install(con: duckdb.DuckDBPyConnection) -> None:
    """Define the ingest macros on a connection (idempotent)."""
    for m in MACROS:
        con.execute(m)


def client_lookup(user_agents: pa.Array) -> pa.Table:
    """(user_agent, client, client_version) for distinct User-Agents, classified in Python (few distinct)."""
    import re

    compiled = [(fam, re.compile(rx)) for fam, rx in CLIENTS]
    uas, fams, vers = [], [], []
    for ua in user_agents.to_pylist():
        fam = ver = None
        if ua:
            for f, rx in compiled:
                m = rx.search(ua)
                if m:
                    fam, ver = f, (m.group(1) or None)
                    break
            if fam is None:
                fam = "other"
        uas.append(ua)
        fams.append(fam)
        vers.append(ver)
    return pa.table({"user_agent": pa.array(uas, pa.string()), "client": fams, "client_version": vers})


def requests_select(con: duckdb.DuckDBPyConnection, raw: str, source_file: str) -> str:
    """A SELECT giving canonical requests from a relation `raw` with columns:

    ts (TIMESTAMPTZ), layer, instance, request_id, method, uri, status, duration_s, bytes_out, bytes_in,
    remote_addr, user_agent, error_code, error_message, error_detail, storage_duration_s,
    upstream_duration_s, upstream_status, line_no.

    The client family and version of each distinct User-Agent are found in Python (there are few) and looked
    up per row by two vectorized functions, `ua_client_N` and `ua_version_N`, registered on the connection: a
    projection keeps the rows in their order, where a join would not.
    """
    uas = con.sql(f"SELECT DISTINCT user_agent FROM {raw}").to_arrow_table().column(0)
    lookup = client_lookup(uas.combine_chunks() if uas.num_chunks else pa.array([], pa.string()))
    keys = lookup.column("user_agent").combine_chunks()
    # Functions live in the database, which the cursors of an ingest share: each lookup gets names of its own.
    tag = next(_LOOKUPS)
    for name, col in ((f"ua_client_{tag}", "client"), (f"ua_version_{tag}", "client_version")):
        values = lookup.column(col).combine_chunks()
        con.create_function(name, _taker(keys, values), ["VARCHAR"], "VARCHAR", type="arrow",
                            null_handling="special", side_effects=False)
    return f"""
            WITH r AS (
                SELECT *, nullif_dash(split_part(uri, '?', 1)) AS p FROM {raw}
            ), m AS (
                SELECT *, regexp_extract(p, '{ROUTE_RE}', ['repo', 'kind', 'ref']) AS g FROM r
            )
            SELECT
                ts, layer, instance, nullif_dash(request_id) AS request_id, nullif_dash(method) AS method,
                p AS path,
                CASE WHEN g.repo <> '' THEN g.repo END AS repository,
                CASE
                    WHEN g.kind = 'manifests' THEN 'manifest'
                    WHEN g.kind = 'blobs/uploads' THEN 'blob_upload'
                    WHEN g.kind = 'blobs' THEN 'blob'
                    WHEN g.kind IN ('tags', 'tags/reference') THEN 'tags'
                    WHEN g.kind = 'referrers' THEN 'referrers'
                    WHEN p IN ('/v2', '/v2/') THEN 'base'
                    WHEN starts_with(p, '/v2/_catalog') THEN 'catalog'
                    ELSE 'other'
                END AS route,
                CASE WHEN g.kind IN ('manifests', 'blobs', 'referrers', 'tags/reference') AND g.ref <> '' THEN g.ref END AS reference,
                TRY_CAST(status AS INTEGER) AS status, CAST(duration_s AS DOUBLE) AS duration_s,
                TRY_CAST(bytes_out AS BIGINT) AS bytes_out, TRY_CAST(bytes_in AS BIGINT) AS bytes_in,
                strip_port(remote_addr) AS remote_ip, nullif_dash(m.user_agent) AS user_agent,
                ua_client_{tag}(nullif_dash(m.user_agent)) AS client,
                ua_version_{tag}(nullif_dash(m.user_agent)) AS client_version,
                norm_code(error_code) AS error_code, nullif_dash(error_message) AS error_message,
                nullif_dash(error_detail) AS error_detail,
                CAST(storage_duration_s AS DOUBLE) AS storage_duration_s,
                CAST(upstream_duration_s AS DOUBLE) AS upstream_duration_s,
                nullif_dash(upstream_status) AS upstream_status,
                {sql_literal(source_file)} AS source_file, line_no
            FROM m
            """


def _taker(keys: pa.Array, values: pa.Array):
    def take(ua: pa.Array) -> pa.Array:
        return values.take(pc.index_in(ua, value_set=keys))

    return take


def finish_requests(con: duckdb.DuckDBPyConnection, raw: str, source_file: str) -> pa.Table:
    """Canonical requests (see `requests_select`) as Arrow, in (ts, line_no) order."""
    tbl = con.sql(f"{requests_select(con, raw, source_file)} ORDER BY ts, line_no").to_arrow_table()
    return schema.conform("requests", tbl)
