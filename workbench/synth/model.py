"""The traffic model: catalogues drawn once from the seed, and each chunk of requests as numpy arrays.

A request's registry time is built from its parts: app overhead, the storage actions its route performs
(each with its own latency, SlowDown retries under throttling, slower under a flood), transfer time, and a
wait for a metadata lock while GC holds one. nginx adds its own overhead, gives up after
proxy_read_timeout (504), and answers 502 when the registry is down.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from .scenario import Scenario

NS = 1_000_000_000
PROXY_READ_TIMEOUT_NS = 60 * NS

UAS = [  # (User-Agent as the client sends it, share)
    ("docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.1.0-18-amd64 os/linux arch/amd64 "
     "UpstreamClient(Docker-Client/24.0.7 \\(linux\\))", 0.30),
    ("containerd/v1.7.13", 0.34),
    ("cri-o/1.28.1 go/go1.20.10 os/linux arch/amd64", 0.08),
    ("skopeo/1.9.3", 0.07),
    ("buildkit/v0.12.5", 0.08),
    ("kaniko/v1.20.0", 0.05),
    ("go-containerregistry/v0.19.0", 0.05),
    ("Go-http-client/1.1", 0.03),
]
TEAMS = ["platform", "payments", "search", "ml", "web", "data", "infra", "mobile", "identity", "billing"]
SERVICES = ["api", "worker", "frontend", "ingest", "scheduler", "gateway"]
TAGS = ["latest", "v1.4.2", "main", "stable", "2026.11.20", "sha-3f9c2e1", "v2.0.0-rc1", "release"]

HANDLERS = ["base", "blob", "blob_upload", "blob_upload_chunk", "manifest", "tags"]
# (handler, method, uri kind, share, ok status, storage actions)
ROUTES = [
    ("manifest", "GET", "tag", 0.20, 200, ("GetContent", "GetContent", "GetContent", "Stat")),
    ("manifest", "GET", "digest", 0.08, 200, ("GetContent", "GetContent", "Stat")),
    ("manifest", "HEAD", "tag", 0.20, 200, ("GetContent", "GetContent", "Stat")),
    ("blob", "GET", "digest", 0.28, 200, ("GetContent", "Stat", "Reader")),
    ("blob", "HEAD", "digest", 0.12, 200, ("GetContent", "Stat")),
    ("blob_upload", "POST", "upload", 0.02, 202, ("PutContent", "PutContent")),
    ("blob_upload_chunk", "PATCH", "chunk", 0.015, 202, ("Writer", "Stat")),
    ("blob_upload_chunk", "PUT", "commit", 0.015, 201, ("Writer", "Move", "PutContent", "Stat")),
    ("manifest", "PUT", "tag", 0.01, 201, ("Stat", "PutContent", "PutContent", "PutContent")),
    ("tags", "GET", "tags", 0.015, 200, ("List", "GetContent")),
    ("base", "GET", "base", 0.035, 200, ()),
]
R_MANIFEST_GET_TAG, R_MANIFEST_HEAD = 0, 2
ACTIONS = ["Delete", "GetContent", "List", "Move", "PutContent", "Reader", "Stat", "URLFor", "Walk", "Writer"]
ACTION_MS = {"GetContent": 14.0, "Stat": 9.0, "Reader": 22.0, "Writer": 45.0, "Move": 60.0, "PutContent": 28.0,
             "List": 35.0, "Delete": 20.0, "URLFor": 1.0, "Walk": 80.0}
CODES = [200, 201, 202, 404, 500]
ERR_NONE, ERR_MANIFEST_UNKNOWN, ERR_BLOB_UNKNOWN, ERR_SLOWDOWN = 0, 1, 2, 3
NGINX_PAGE_BYTES = {502: 157, 504: 167}  # nginx's own error pages (server_tokens on)

HM = sorted({(r[0], r[1].lower()) for r in ROUTES})  # (handler, method) label pairs for /metrics
ROUTE_HM = np.array([HM.index((r[0], r[1].lower())) for r in ROUTES])
ROUTE_HANDLER = np.array([HANDLERS.index(r[0]) for r in ROUTES])
ROUTE_OK = np.array([r[4] for r in ROUTES])
_ops = [[ACTIONS.index(a) for a in r[5]] for r in ROUTES]
ROUTE_NOPS = np.array([len(o) for o in _ops])
ROUTE_OP0 = np.concatenate([[0], np.cumsum(ROUTE_NOPS)[:-1]])
OPS_FLAT = np.array([a for o in _ops for a in o], dtype=np.int64)
ACTION_BASE_S = np.array([ACTION_MS[a] / 1000 for a in ACTIONS])


def _hexes(rng: np.random.Generator, n: int, width: int = 64) -> list[str]:
    raw = rng.bytes(n * width // 2).hex()
    return [raw[i * width:(i + 1) * width] for i in range(n)]


@dataclass
class Catalogue:
    ips: list[str]
    ip_p: np.ndarray
    repos: list[str]
    repo_p: np.ndarray
    manifest_digests: list[str]
    manifest_bytes: np.ndarray
    blob_digests: list[str]
    blob_bytes: np.ndarray
    states: list[str]
    proxy_ip: str = "10.20.0.5"
    host: str = "registry.internal.example"

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Catalogue:
        n_ip = 600
        ips = [f"10.{a}.{b}.{c}" for a, b, c in zip(rng.integers(32, 48, n_ip), rng.integers(0, 256, n_ip),
                                                    rng.integers(2, 255, n_ip), strict=True)]
        ips = list(dict.fromkeys(ips))
        ip_w = rng.lognormal(0, 0.5, len(ips))
        repos = [f"{t}/{s}" for t in TEAMS for s in SERVICES]
        repo_w = rng.pareto(1.5, len(repos)) + 0.2
        states = [rng.bytes(60).hex()[:86] for _ in range(64)]
        return cls(ips=ips, ip_p=ip_w / ip_w.sum(), repos=repos, repo_p=repo_w / repo_w.sum(),
                   manifest_digests=_hexes(rng, 500), manifest_bytes=rng.integers(900, 9_000, 500),
                   blob_digests=_hexes(rng, 4000),
                   blob_bytes=np.minimum(rng.lognormal(np.log(2.5e6), 1.6, 4000), 2e9).astype(np.int64),
                   states=states)


def minute_weights(sc: Scenario, rng: np.random.Generator) -> np.ndarray:
    """Relative traffic per minute: a diurnal curve (UTC, peak mid-afternoon), weekends lighter, some noise."""
    n = int(np.ceil(sc.minutes))
    t = np.datetime64(sc.start.replace(tzinfo=None), "m") + np.arange(n).astype("timedelta64[m]")
    hour = (t.astype("datetime64[m]").astype(np.int64) % 1440) / 60.0
    dow = (t.astype("datetime64[D]").astype(np.int64) + 3) % 7  # 0 = Monday
    diurnal = 0.35 + 0.65 * np.exp(-((hour - 14.0) / 5.0) ** 2)
    weekend = np.where(dow >= 5, 0.45, 1.0)
    noise = rng.gamma(60.0, 1 / 60.0, n)
    w = diurnal * weekend * noise
    last = sc.minutes - (n - 1)
    w[-1] *= last
    return w


@dataclass
class Windows:
    """The scenario's injections as nanosecond intervals from the epoch."""

    t0: int
    t1: int
    holds: np.ndarray  # (k, 2) GC lock holds
    throttle: tuple[int, int] | None
    abuse: tuple[int, int] | None
    outage: tuple[int, int] | None
    down: np.ndarray  # (k, 2) intervals with no registry process (stopped outage, OOM restart gap)

    @classmethod
    def of(cls, sc: Scenario, rng: np.random.Generator) -> Windows:
        def ns(minutes: float) -> int:
            return int((sc.start + dt.timedelta(minutes=minutes)).timestamp() * 1e9)

        def span(inj):
            return (ns(inj.at_min), ns(inj.at_min + inj.minutes)) if inj is not None else None

        holds = []
        if sc.gc is not None:
            g0, g1 = span(sc.gc)
            t = g0 + int(rng.uniform(5, 20) * NS)
            while t < g1:
                h = int(rng.uniform(*sc.gc.hold_s) * NS)
                end = min(t + h, g1)
                holds.append((t, end))
                t = end + int(rng.uniform(*sc.gc.gap_s) * NS)
        down = []
        if sc.outage is not None and sc.outage.kind == "stopped":
            down.append(span(sc.outage))
        if sc.oom is not None:
            k = ns(sc.oom.at_min)
            down.append((k, k + int(sc.oom.down_s * NS)))
        return cls(t0=ns(0), t1=ns(sc.minutes), holds=np.array(holds, dtype=np.int64).reshape(-1, 2),
                   throttle=span(sc.throttle), abuse=span(sc.abuse), outage=span(sc.outage),
                   down=np.array(sorted(down), dtype=np.int64).reshape(-1, 2))


def within(t: np.ndarray, iv: tuple[int, int] | None) -> np.ndarray:
    return (t >= iv[0]) & (t < iv[1]) if iv is not None else np.zeros(len(t), bool)


def within_any(t: np.ndarray, ivs: np.ndarray) -> np.ndarray:
    if not len(ivs):
        return np.zeros(len(t), bool)
    i = np.searchsorted(ivs[:, 0], t, side="right") - 1
    ok = i >= 0
    return ok & (t < ivs[np.maximum(i, 0), 1])


def hold_end(t: np.ndarray, holds: np.ndarray) -> np.ndarray:
    """For each time, the end of the lock hold it falls in, or 0."""
    if not len(holds):
        return np.zeros(len(t), np.int64)
    i = np.searchsorted(holds[:, 0], t, side="right") - 1
    inside = (i >= 0) & (t < holds[np.maximum(i, 0), 1])
    return np.where(inside, holds[np.maximum(i, 0), 1], 0)


def simulate(sc: Scenario, cat: Catalogue, win: Windows, rng: np.random.Generator, arrival: np.ndarray,
             abusive: np.ndarray, route: np.ndarray, missing: np.ndarray) -> dict[str, np.ndarray]:
    """Everything about a chunk of requests (sorted by arrival) except their text."""
    n = len(arrival)
    ok = ROUTE_OK[route]
    status = ok.copy()
    err = np.zeros(n, np.int8)
    is_mtag = (route == R_MANIFEST_GET_TAG) | (route == R_MANIFEST_HEAD)
    blob_head = route == 4
    miss = missing | (is_mtag & (rng.random(n) < 0.012)) | (blob_head & (rng.random(n) < 0.06)) \
        | ((route == 3) & (rng.random(n) < 0.002))
    status = np.where(miss, 404, status)
    err = np.where(miss & np.isin(route, [0, 1, 2, 8]), ERR_MANIFEST_UNKNOWN, err)
    err = np.where(miss & np.isin(route, [3, 4]), ERR_BLOB_UNKNOWN, err)
    # storage actions
    nops = np.where(miss, np.minimum(ROUTE_NOPS[route], 1), ROUTE_NOPS[route])
    op_req = np.repeat(np.arange(n), nops)
    first = np.concatenate([[0], np.cumsum(nops)[:-1]])
    op_k = np.arange(len(op_req)) - first[op_req]
    op_action = OPS_FLAT[ROUTE_OP0[route][op_req] + op_k]
    op_t = arrival[op_req]
    op_s = ACTION_BASE_S[op_action] * rng.lognormal(0, 0.45, len(op_req))
    flood = within(op_t, win.abuse)
    op_s = np.where(flood, op_s * rng.uniform(2.2, 3.4, len(op_req)), op_s)
    retries = np.zeros(len(op_req), np.int64)
    if win.throttle is not None and sc.throttle is not None:
        th = within(op_t, win.throttle)
        retries = np.where(th, rng.poisson(sc.throttle.retries_per_action, len(op_req)), 0)
        wait = retries * rng.lognormal(np.log(sc.throttle.backoff_s), 1.3, len(op_req))
        op_s = op_s + wait
    failed_op = retries > (sc.throttle.max_retries if sc.throttle else 1 << 30)
    storage_s = np.bincount(op_req, op_s, minlength=n)
    failed = np.bincount(op_req, failed_op, minlength=n) > 0
    status = np.where(failed, 500, status)
    err = np.where(failed, ERR_SLOWDOWN, err)
    # bytes
    ref = np.where(np.isin(route, [3, 4, 7]), rng.integers(0, len(cat.blob_digests), n),
                   np.where(route == 1, rng.integers(0, len(cat.manifest_digests), n), rng.integers(0, len(TAGS), n)))
    mbytes = cat.manifest_bytes[rng.integers(0, len(cat.manifest_bytes), n)]
    written = np.select([route == 0, route == 1, route == 3, route == 9, route == 10],
                        [mbytes, mbytes, cat.blob_bytes[ref % len(cat.blob_bytes)], 120, 2], 0)
    written = np.where(err == ERR_MANIFEST_UNKNOWN, 94 + 8, np.where(err == ERR_BLOB_UNKNOWN, 157,
                       np.where(err == ERR_SLOWDOWN, 212, written)))
    written = np.where(np.isin(route, [2, 4]) & (status != 500), 0, written)  # HEAD: no body
    bytes_in = np.where(route == 6, cat.blob_bytes[rng.integers(0, len(cat.blob_bytes), n)], 0)
    bytes_in = np.where(route == 8, mbytes, bytes_in)
    transfer_s = (written + bytes_in) / rng.uniform(80e6, 400e6, n)
    app_s = rng.lognormal(np.log(0.0012), 0.5, n)
    reg_ns = ((app_s + storage_s + transfer_s) * NS).astype(np.int64)
    # metadata locks: manifest requests wait for the GC's lock to go
    is_manifest = ROUTE_HANDLER[route] == HANDLERS.index("manifest")
    he = np.where(is_manifest, hold_end(arrival, win.holds), 0)
    lock_ns = np.where(he > 0, he - arrival, 0)
    reg_ns = reg_ns + lock_ns
    # registry down or stalled, nginx in front
    down = within_any(arrival, win.down)
    stalled = within(arrival, win.outage) if sc.outage is not None and sc.outage.kind == "stalled" else \
        np.zeros(n, bool)
    proxy_fail = (within(arrival, win.outage) & (rng.random(n) < sc.outage.proxy_share)
                  if sc.outage is not None and sc.outage.kind == "proxy" else np.zeros(n, bool))
    # a request in flight when the process dies is never logged by the registry: nginx answers 502
    killed = np.zeros(n, bool)
    nxt = np.zeros(n, np.int64)
    if len(win.down):
        i = np.searchsorted(win.down[:, 0], arrival, side="right")
        nxt = np.where(i < len(win.down), win.down[np.minimum(i, len(win.down) - 1), 0], np.iinfo(np.int64).max)
        killed = ~down & (arrival + np.minimum(reg_ns, PROXY_READ_TIMEOUT_NS) > nxt)
        down = down | killed
    has_reg = ~(down | stalled | proxy_fail)
    timeout = has_reg & (reg_ns >= PROXY_READ_TIMEOUT_NS) | stalled
    ngx_status = np.where(timeout, 504, status)
    ngx_status = np.where(down | proxy_fail, 502, ngx_status)
    up_ns = np.where(timeout, PROXY_READ_TIMEOUT_NS + rng.integers(0, 3_000_000, n), reg_ns
                     + rng.integers(80_000, 600_000, n))
    up_ns = np.where(down | proxy_fail, rng.integers(0, 900_000, n), up_ns)
    up_ns = np.where(killed, nxt - arrival + rng.integers(0, 900_000, n), up_ns)
    ngx_ns = up_ns + rng.integers(20_000, 900_000, n)
    ngx_bytes = np.where(ngx_status == 502, NGINX_PAGE_BYTES[502],
                         np.where(ngx_status == 504, NGINX_PAGE_BYTES[504], written))
    return {
        "arrival": arrival, "route": route, "abusive": abusive, "status": status, "err": err, "ref": ref,
        "written": written, "bytes_in": bytes_in, "reg_ns": reg_ns, "lock_ns": lock_ns, "storage_s": storage_s,
        "has_reg": has_reg, "ngx_status": ngx_status, "ngx_ns": ngx_ns, "up_ns": up_ns, "ngx_bytes": ngx_bytes,
        "op_req": op_req, "op_action": op_action, "op_s": op_s, "op_retries": retries,
    }
