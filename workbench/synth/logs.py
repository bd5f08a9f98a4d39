"""Request lines as the real programs write them, built for a whole chunk at once in polars.

- registry app log (distribution 2.8, logrus): "response completed" / "response completed with error" with the
  request's context fields, JSON (keys sorted, as encoding/json writes a map) or text (time, level, msg, then
  the rest sorted; values bare or Go-quoted);
- the registry's own access log (gorilla's combined format on stdout; the stamp is the request's start);
- nginx in front: combined with `$request_time $upstream_response_time` appended.

The remote address the registry logs comes from X-Forwarded-For (the client's IP, no port); its access log
shows the proxy's address.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .model import ERR_BLOB_UNKNOWN, ERR_MANIFEST_UNKNOWN, ERR_SLOWDOWN, ROUTES, TAGS, UAS, Catalogue
from .render import (
    clf_time,
    go_duration,
    go_quote,
    hex_strings,
    json_str,
    logrus_value,
    nginx_escape,
    pick,
    rfc3339nano,
    seconds_3,
    text_quoted,
)

GO_VERSION = "go1.19.8"
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
JSON_TYPE = "application/json; charset=utf-8"
# per route: content type of a successful answer ('' = none)
ROUTE_CTYPE = [MANIFEST_TYPE, MANIFEST_TYPE, MANIFEST_TYPE, "application/octet-stream", "application/octet-stream",
               "", "", "", "", JSON_TYPE, JSON_TYPE]
SLOWDOWN_IDS = 32


def slowdown_detail(rng: np.random.Generator) -> list[str]:
    out = []
    for _ in range(SLOWDOWN_IDS):
        rid = rng.bytes(8).hex().upper()
        hid = rng.bytes(42).hex()[:76]
        out.append(f"s3aws: SlowDown: Please reduce your request rate.\n\tstatus code: 503, request id: {rid}, "
                   f"host id: {hid}")
    return out


def chunk_frame(sim: dict[str, np.ndarray], ip_idx: np.ndarray, ua_idx: np.ndarray, repo_idx: np.ndarray,
                cat: Catalogue, rng: np.random.Generator, abuse_ip: str) -> pl.DataFrame:
    """The per-row columns every line builder reads."""
    n = len(sim["arrival"])
    route = sim["route"]
    kind = np.array([r[2] for r in ROUTES])[route]
    ips = cat.ips + [abuse_ip]
    return pl.DataFrame({
        "route": route.astype(np.int32),
        "kind": kind,
        "method": np.array([r[1] for r in ROUTES])[route],
        "ip": pl.Series(ips).gather(ip_idx),
        "ua": ua_idx.astype(np.int32),
        "repo": pl.Series(cat.repos).gather(repo_idx),
        "ref": sim["ref"],
        "rid": hex_strings(rng, n),
        "uuid": hex_strings(rng, n),
        "state": rng.integers(0, len(cat.states), n),
        "sd": rng.integers(0, SLOWDOWN_IDS, n),
        "status": sim["status"].astype(np.int32),
        "err": sim["err"].astype(np.int32),
        "written": sim["written"],
        "bytes_in": sim["bytes_in"],
        "arrival": sim["arrival"],
        "t_reg": sim["arrival"] + sim["reg_ns"],
        "reg_ns": sim["reg_ns"],
        "t_ngx": sim["arrival"] + sim["ngx_ns"],
        "ngx_ms": sim["ngx_ns"] // 1_000_000,
        "up_ms": sim["up_ns"] // 1_000_000,
        "ngx_status": sim["ngx_status"].astype(np.int32),
        "ngx_bytes": sim["ngx_bytes"],
        "has_reg": sim["has_reg"],
    })


def with_uri(df: pl.DataFrame, cat: Catalogue) -> pl.DataFrame:
    c = pl.col
    digest_m = pl.concat_str([pl.lit("sha256:"), pick(cat.manifest_digests, c("ref"))])
    digest_b = pl.concat_str([pl.lit("sha256:"), pick(cat.blob_digests, c("ref"))])
    tag = pick(TAGS, c("ref") % len(TAGS))
    v2 = pl.concat_str([pl.lit("/v2/"), c("repo")])
    state = pick(cat.states, c("state"))
    reference = pl.when(c("kind") == "digest").then(
        pl.when(c("route") == 1).then(digest_m).otherwise(digest_b)).otherwise(tag)
    uri = (
        pl.when(c("kind") == "tag").then(pl.concat_str([v2, pl.lit("/manifests/"), tag]))
        .when((c("kind") == "digest") & (c("route") == 1)).then(pl.concat_str([v2, pl.lit("/manifests/"), digest_m]))
        .when(c("kind") == "digest").then(pl.concat_str([v2, pl.lit("/blobs/"), digest_b]))
        .when(c("kind") == "upload").then(pl.concat_str([v2, pl.lit("/blobs/uploads/")]))
        .when(c("kind") == "chunk").then(pl.concat_str([v2, pl.lit("/blobs/uploads/"), c("uuid"), pl.lit("?_state="),
                                                        state]))
        .when(c("kind") == "commit").then(pl.concat_str([v2, pl.lit("/blobs/uploads/"), c("uuid"), pl.lit("?_state="),
                                                         state, pl.lit("&digest=sha256%3A"),
                                                         pick(cat.blob_digests, c("ref"))]))
        .when(c("kind") == "tags").then(pl.concat_str([v2, pl.lit("/tags/list")]))
        .otherwise(pl.lit("/v2/"))
    )
    return df.with_columns(uri=uri, reference=reference)


def _fields(cat: Catalogue, slowdown: list[str], as_json: bool) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """(error segment, go.version to http.response.written, vars.*) of a completion line."""
    c = pl.col
    q = (lambda e: pl.concat_str([pl.lit('"'), e, pl.lit('"')])) if as_json else text_quoted

    def kv(key: str, value: pl.Expr, first: bool = False) -> pl.Expr:
        if as_json:
            return pl.concat_str([pl.lit(("" if first else ",") + f'"{key}":'), value])
        return pl.concat_str([pl.lit(f" {key}="), value])

    def const(s: str) -> pl.Expr:
        return pl.lit(json_str(s) if as_json else logrus_value(s))

    enc = json_str if as_json else logrus_value
    ua = pick([enc(u) for u, _ in UAS] + ["<abuse>"], c("ua"))
    sd = pick([enc(s) for s in slowdown], c("sd"))
    not_tag = c("route") == 1
    detail404 = pl.when(c("err") == ERR_MANIFEST_UNKNOWN).then(
        pl.when(not_tag).then(pl.concat_str([pl.lit("unknown manifest name="), c("repo"), pl.lit(" revision="),
                                             c("reference")]))
        .otherwise(pl.concat_str([pl.lit("unknown tag="), c("reference")]))).otherwise(c("reference"))
    detail404 = pl.concat_str([pl.lit('"'), detail404, pl.lit('"')]) if as_json else \
        pl.when(c("err") == ERR_BLOB_UNKNOWN).then(text_quoted(detail404)).otherwise(
            pl.concat_str([pl.lit('"'), detail404, pl.lit('"')]))
    code = pick(["", enc("manifest unknown"), enc("blob unknown"), enc("unknown")], c("err"))
    message = pick(["", enc("manifest unknown"), enc("blob unknown to registry"), enc("unknown error")], c("err"))
    detail = pl.when(c("err") == ERR_SLOWDOWN).then(sd).otherwise(detail404)
    errs = pl.when(c("err") > 0).then(pl.concat_str([
        kv("err.code", code, first=True), kv("err.detail", detail), kv("err.message", message),
        pl.lit("," if as_json else "")])).otherwise(pl.lit(""))
    ctype = pl.when(c("err") > 0).then(const(JSON_TYPE)).otherwise(
        pick([enc(t) if t else "" for t in ROUTE_CTYPE], c("route")))
    clen = pl.when(c("bytes_in") > 0).then(kv("http.request.contentlength", q(c("bytes_in").cast(pl.String)))
                                           ).otherwise(pl.lit(""))
    is_blob = c("kind").is_in(["digest", "commit"]) & (c("route") != 1)
    vars_ = pl.concat_str([
        pl.when(is_blob & (c("kind") == "digest")).then(kv("vars.digest", q(c("reference")))).otherwise(pl.lit("")),
        pl.when(c("kind") != "base").then(kv("vars.name", q(c("repo")))).otherwise(pl.lit("")),
        pl.when(c("kind").is_in(["tag"]) | (c("route") == 1)).then(kv("vars.reference", q(c("reference"))))
        .otherwise(pl.lit("")),
        pl.when(c("kind").is_in(["chunk", "commit"])).then(kv("vars.uuid", q(c("uuid")))).otherwise(pl.lit("")),
    ])
    rest = pl.concat_str([
        kv("go.version", const(GO_VERSION), first=True), clen,
        kv("http.request.host", const(cat.host)), kv("http.request.id", q(c("rid"))),
        kv("http.request.method", q(c("method"))), kv("http.request.remoteaddr", q(c("ip"))),
        kv("http.request.uri", q(c("uri"))), kv("http.request.useragent", ua),
        pl.when(ctype != "").then(kv("http.response.contenttype", ctype)).otherwise(pl.lit("")),
        kv("http.response.duration", q(go_duration(c("reg_ns")))),
        kv("http.response.status", c("status").cast(pl.String)),
        kv("http.response.written", c("written").cast(pl.String)),
    ])
    return errs, rest, vars_


def registry_lines(df: pl.DataFrame, cat: Catalogue, slowdown: list[str], fmt: str, abuse_ua: str) -> pl.Series:
    """Completion lines for the rows the registry logged (has_reg), in df's order."""
    as_json = fmt == "json"
    errs, rest, vars_ = _fields(cat, slowdown, as_json)
    c = pl.col
    ua_abuse = json_str(abuse_ua) if as_json else logrus_value(abuse_ua)
    failed = c("err") > 0
    level = pl.when(failed).then(pl.lit("error")).otherwise(pl.lit("info"))
    if as_json:
        msg = pl.when(failed).then(pl.lit('"response completed with error"')).otherwise(pl.lit('"response completed"'))
        line = pl.concat_str([pl.lit("{"), errs, rest, pl.lit(',"level":"'), level, pl.lit('","msg":'), msg,
                              pl.lit(',"time":"'), rfc3339nano(c("t_reg")), pl.lit('"'), vars_, pl.lit("}")])
    else:
        msg = pl.when(failed).then(pl.lit('"response completed with error"')).otherwise(pl.lit('"response completed"'))
        line = pl.concat_str([pl.lit('time="'), rfc3339nano(c("t_reg")), pl.lit('" level='), level, pl.lit(" msg="),
                              msg, errs, rest, vars_])
    return df.select(line.str.replace("<abuse>", ua_abuse, literal=True).alias("l"))["l"]


def access_lines(df: pl.DataFrame, cat: Catalogue, abuse_ua: str) -> pl.Series:
    """The registry's gorilla combined access line: proxy address, the request's start time, "" referer."""
    c = pl.col
    ua = pick([go_quote(u) for u, _ in UAS] + [go_quote(abuse_ua)], c("ua"))
    return df.select(pl.concat_str([
        pl.lit(f"{cat.proxy_ip} - - ["), clf_time(c("arrival")), pl.lit('] "'), c("method"), pl.lit(" "), c("uri"),
        pl.lit(' HTTP/1.1" '), c("status").cast(pl.String), pl.lit(" "), c("written").cast(pl.String),
        pl.lit(' "" '), ua]).alias("l"))["l"]


def nginx_lines(df: pl.DataFrame, abuse_ua: str) -> pl.Series:
    """nginx combined + `$request_time $upstream_response_time`, logged when nginx finished."""
    c = pl.col
    ua = pick([nginx_escape(u) for u, _ in UAS] + [nginx_escape(abuse_ua)], c("ua"))
    return df.select(pl.concat_str([
        c("ip"), pl.lit(" - - ["), clf_time(c("t_ngx")), pl.lit('] "'), c("method"), pl.lit(" "), c("uri"),
        pl.lit(' HTTP/1.1" '), c("ngx_status").cast(pl.String), pl.lit(" "), c("ngx_bytes").cast(pl.String),
        pl.lit(' "-" "'), ua, pl.lit('" '), seconds_3(c("ngx_ms")), pl.lit(" "), seconds_3(c("up_ms"))]).alias("l"))["l"]
