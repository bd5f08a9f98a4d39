"""Failure domain: metadata database, blob storage, proxy / TLS, client, or the registry process — a verdict
with the evidence rows and numbers behind it, or "inconclusive" when the evidence is thin or split.

It works with whatever tables have rows. Each signal adds points to one domain; the verdict needs
`min_score` points and a lead of `margin` over the runner-up. Rules follow what the real programs do:
- a client flood can triple storage latency with no error: storage time alone does not blame storage while
  one client dominates; storage errors (S3 SlowDown) or throttle events do;
- a stalled registry and a throttled storage both give proxy 504s: the proxy log alone is not a verdict, the
  registry log's gap, its errors and the metrics decide;
- a registry restart gives proxy 502s; an OOM kill or restart event nearby points at the registry process;
- manifests suffering more than blobs fits both locks and throttling, so it is recorded but scores nothing;
- host captures score only a change against their baseline (see host.py): a saturated disk points at the
  storage path (not under a client flood), handshake time, SYN-RECV sockets and listen-queue overflows at
  the proxy / TLS layer, and a cache-miss storm adds a point to the metadata database whose load it explains.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import ibis
import polars as pl

from .correlation import counter_mean, storage_time_share
from .host import HOST_JOBS, host_signals
from .latency import AnomalyParams, anomalous_windows
from .params import Thresholds, Window, bucket, frame, has_rows, in_window
from .talkers import DominanceParams, dominance_windows

DOMAINS = ("metadata_database", "blob_storage", "proxy_tls", "client", "registry_process")
PROXY_LAYERS = ("nginx", "haproxy")
EVIDENCE = {"domain": pl.String, "signal": pl.String, "incident": pl.Float64, "baseline": pl.Float64,
            "points": pl.Float64, "detail": pl.String}


@dataclass(frozen=True)
class DomainParams:
    window: Window | None = None  # what to look at; the incident is found inside it unless given
    incident: Window | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    min_score: float = 2.0
    margin: float = 1.0
    near_s: float = 120.0  # events this close to the incident count as in it
    dominant_share: float = 0.3


@dataclass(frozen=True)
class Verdict:
    verdict: str  # one of DOMAINS or "inconclusive"
    reason: str
    incident: Window | None
    scores: pl.DataFrame  # domain, points
    evidence: pl.DataFrame  # domain, signal, incident, baseline, points, detail
    tables: tuple[str, ...]  # tables that had rows in the window
    quantiles: str = "exact"


class _Ledger:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, domain: str, signal: str, incident: float | None, baseline: float | None, points: float,
            detail: str) -> None:
        self.rows.append({"domain": domain, "signal": signal, "incident": incident, "baseline": baseline,
                          "points": float(points), "detail": detail})

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.rows, schema=EVIDENCE)


def _find_incident(req, p: DomainParams) -> tuple[Window | None, pl.DataFrame, pl.DataFrame]:
    an = anomalous_windows(req, AnomalyParams(window=p.window))
    dom = dominance_windows(req, DominanceParams(window=p.window, min_share=p.dominant_share))
    if p.incident is not None:
        return p.incident, an, dom
    if an.is_empty():
        return None, an, dom
    # the longest anomalous run, grown to the runs that overlap it or lie within 5 minutes
    an = an.with_columns(len_s=(pl.col("end") - pl.col("start")).dt.total_seconds()).sort(
        ["len_s", "start"], descending=[True, False])
    s, e = an.row(0, named=True)["start"], an.row(0, named=True)["end"]
    near = dt.timedelta(minutes=5)
    for r in an.sort("start").iter_rows(named=True):
        if r["start"] <= e + near and r["end"] >= s - near:
            s, e = min(s, r["start"]), max(e, r["end"])
    return Window(s, e), an.drop("len_s"), dom


def _rates(req, incident: Window, p: DomainParams):
    """Per phase (incident, baseline) and layer group: requests per minute, 5xx, 502, 504 and storage share."""
    t = in_window(req, p.window)
    inside = (t.ts >= ibis.literal(incident.start)) & (t.ts < ibis.literal(incident.end))
    t = t.mutate(phase=ibis.cases((inside, "incident"), else_="baseline"),
                 proxy=t.layer.isin(PROXY_LAYERS))
    g = t.group_by(["phase", "proxy"]).aggregate(
        n=t.count(), e5xx=(t.status >= 500).cast("int64").sum(), e502=(t.status == 502).cast("int64").sum(),
        e504=(t.status == 504).cast("int64").sum(),
        p99=t.duration_s.quantile(0.99), storage_s=t.storage_duration_s.sum(),
        storage_req_s=ibis.cases((t.storage_duration_s.notnull(), t.duration_s), else_=0.0).sum())
    return frame(g)


def _registry_gap_minutes(req, incident: Window) -> tuple[int, int]:
    """Minutes of the incident in which the proxy logged requests and the registry logged none; and proxy minutes."""
    t = in_window(req, incident)
    t = t.mutate(m=bucket(t.ts, "1m"), proxy=t.layer.isin(PROXY_LAYERS).cast("int64"))
    g = frame(t.group_by("m").aggregate(proxy=t.proxy.sum(), registry=(1 - t.proxy).sum()))
    if g.is_empty():
        return 0, 0
    return (g.filter((pl.col("proxy") > 0) & (pl.col("registry") == 0)).height, g.filter(pl.col("proxy") > 0).height)


def _count(con, table: str, window: Window | None, pred=None) -> int:
    t = in_window(con.table(table), window)
    if pred is not None:
        t = t.filter(pred(t))
    return int(t.count().to_pyarrow().as_py())


def failure_domain(con: ibis.BaseBackend, p: DomainParams) -> Verdict:
    """Weigh the evidence of every table with rows and name the failure domain, or say inconclusive."""
    tables = tuple(n for n in ("requests", "events", "db_lock_waits", "db_lock_snapshots", "metric_samples",
                               "log_events") if has_rows(in_window(con.table(n), p.window)))
    led = _Ledger()
    req = con.table("requests")
    incident, anomalies, dominance = (None, None, None)
    if "requests" in tables:
        incident, anomalies, dominance = _find_incident(req, p)
    if incident is None:
        return Verdict("inconclusive", "no window of the requests stands out (latency or 5xx) from its baseline",
                       None, _scores(led), led.frame(), tables)
    near = dt.timedelta(seconds=p.near_s)
    around = Window(incident.start - near, incident.end + near)
    span_min = incident.seconds / 60
    base_min = max((p.window.seconds if p.window else incident.seconds) / 60 - span_min, 1.0)

    if anomalies is not None and not anomalies.is_empty():
        a = anomalies.filter((pl.col("start") < incident.end) & (pl.col("end") > incident.start))
        for r in a.iter_rows(named=True):
            led.add("none", f"anomaly {r['kind']} on {r['routes']}", r["peak_p99_s"], r["baseline_p99_s"], 0,
                    f"{r['start']:%H:%M}–{r['end']:%H:%M} UTC, peak 5xx rate {r['peak_5xx_rate']:.1%}")
        routes = set(",".join(a["routes"].to_list()).split(",")) if a.height else set()
        if "manifest" in routes and "blob" not in routes:
            led.add("none", "manifests slow, blobs not", None, None, 0,
                    "fits metadata locks and storage throttling alike (several storage reads per manifest)")

    rates = _rates(req, incident, p) if "requests" in tables else pl.DataFrame()

    def get(phase: str, proxy: bool, col: str) -> float:
        r = rates.filter((pl.col("phase") == phase) & (pl.col("proxy") == proxy))
        return float(r[col][0] or 0) if r.height else 0.0

    has_proxy = get("incident", True, "n") + get("baseline", True, "n") > 0
    has_registry = get("incident", False, "n") + get("baseline", False, "n") > 0
    front = has_proxy  # the layer clients see
    inc_n, base_n = get("incident", front, "n"), get("baseline", front, "n")
    vol_ratio = (inc_n / span_min) / (base_n / base_min) if base_n else None

    # client: one value dominating the incident's requests
    flood = False
    if dominance is not None and not dominance.is_empty():
        d = dominance.filter((pl.col("start") < incident.end) & (pl.col("end") > incident.start))
        for r in d.iter_rows(named=True):
            flood = True
            pts = 2.0 + (1.0 if vol_ratio and vol_ratio >= 1.5 else 0.0)
            led.add("client", f"remote_ip {r['value']} dominates", r["peak_share"], r["median_share"], pts,
                    f"{r['requests']} requests {r['start']:%H:%M}–{r['end']:%H:%M} UTC; volume ×{vol_ratio or 0:.2f}")
    if vol_ratio is not None:
        led.add("client" if flood else "none", "request rate ratio", vol_ratio, 1.0, 0, "incident / baseline per minute")

    # errors at the proxy and the registry
    if has_proxy:
        p502, p504 = get("incident", True, "e502"), get("incident", True, "e504")
        b502, b504 = get("baseline", True, "e502") / base_min, get("baseline", True, "e504") / base_min
        gap, pmin = _registry_gap_minutes(req, incident) if has_registry else (0, 0)
        reg5xx = get("incident", False, "e5xx")
        if p504 / span_min > max(3 * b504, 0.5):
            if has_registry and gap >= 2:
                led.add("registry_process", "proxy 504s while the registry logged nothing", p504, b504 * span_min, 2,
                        f"{gap} of {pmin} proxy minutes with no registry line: a stalled process, not a throttle")
            elif has_registry:
                led.add("none", "proxy 504s with the registry logging", p504, b504 * span_min, 0,
                        f"registry 5xx in the incident: {reg5xx:.0f}; look at storage and database evidence")
            else:
                led.add("none", "proxy 504s, no registry log", p504, b504 * span_min, 0,
                        "a stall and a throttle look alike in the proxy log alone")
        if p502 / span_min > max(3 * b502, 0.5):
            led.add("registry_process", "proxy 502s (upstream refused or reset)", p502, b502 * span_min, 1,
                    "a registry restart gives 502s")
            if has_registry and gap >= 2:
                led.add("registry_process", "proxy 502s while the registry logged nothing", p502, b502 * span_min, 1,
                        f"{gap} of {pmin} proxy minutes with no registry line: the process was down")
        reg_p99 = get("incident", False, "p99") / max(get("baseline", False, "p99"), 1e-9)
        if (p502 + p504) / span_min > max(3 * (b502 + b504), 0.5) and has_registry and gap == 0 and reg5xx == 0 \
                and reg_p99 < 2:
            led.add("proxy_tls", "proxy errors while the registry answered normally", p502 + p504,
                    (b502 + b504) * span_min, 2,
                    f"registry: no gap, no 5xx, p99 ×{reg_p99:.2f} of its baseline; the proxy or its network failed")

    # storage time share (never alone a verdict under a client flood)
    inc_share = get("incident", False, "storage_s") / max(get("incident", False, "storage_req_s"), 1e-9)
    base_share = get("baseline", False, "storage_s") / max(get("baseline", False, "storage_req_s"), 1e-9)
    if get("incident", False, "storage_req_s") > 0 and inc_share > p.thresholds.backend_share:
        led.add("blob_storage", "storage share of request time", inc_share, base_share, 0 if flood else 1,
                "not counted: a client flood raises storage latency with no storage fault" if flood
                else f"over {p.thresholds.backend_share:.0%}: the backend is the bottleneck")

    # log_events: storage errors, database errors, panics
    if "log_events" in tables:
        for kind, domain in (("storage_error", "blob_storage"), ("db_error", "metadata_database"),
                             ("panic", "registry_process")):
            n_inc = _count(con, "log_events", around, lambda t, k=kind: t.kind == k)
            n_all = _count(con, "log_events", p.window, lambda t, k=kind: t.kind == k)
            base = (n_all - n_inc) / base_min * (around.seconds / 60)
            if n_inc >= (1 if kind == "panic" else 3) and n_inc > 3 * base:
                led.add(domain, f"log_events {kind}", n_inc, base, 3 if kind == "panic" else 2,
                        f"{n_inc} {kind} lines in the incident")

    # events: throttling, OOM kills, restarts, GC runs
    if "events" in tables:
        ev = frame(in_window(con.table("events"), Window(around.start - dt.timedelta(hours=6), around.end))
                   .select("ts", "end_ts", "kind", "instance").order_by(["ts", "kind"]))
        ev = ev.with_columns(end_ts=pl.coalesce("end_ts", "ts")).filter(
            (pl.col("ts") < around.end) & (pl.col("end_ts") >= around.start))
        for kind, domain, pts in (("throttle", "blob_storage", 2), ("oom_kill", "registry_process", 3),
                                  ("restart", "registry_process", 2), ("gc_run", "metadata_database", 1)):
            k = ev.filter(pl.col("kind") == kind)
            if k.height:
                led.add(domain, f"event {kind}", float(k.height), None, pts,
                        f"{k.height} × {kind} at {', '.join(f'{x:%H:%M:%S}' for x in k['ts'].head(5))} UTC")

    # lock waits
    if "db_lock_waits" in tables:
        n_wait = _count(con, "db_lock_waits", around, lambda t: t.event.isin(["waiting", "acquired"]))
        n_bad = _count(con, "db_lock_waits", around, lambda t: t.event.isin(["deadlock", "lock_timeout"]))
        n_all = _count(con, "db_lock_waits", p.window, lambda t: t.event.isin(["waiting", "acquired"]))
        base = (n_all - n_wait) / base_min * (around.seconds / 60)
        if n_wait >= 3 and n_wait > 3 * base:
            led.add("metadata_database", "lock waits", n_wait, base, 2, f"{n_wait} lock-wait records in the incident")
        if n_bad:
            led.add("metadata_database", "deadlocks / lock timeouts", n_bad, None, 1, f"{n_bad} in the incident")

    # metrics: scrapes missing during the incident point at a stalled process
    if "metric_samples" in tables:
        def scraped(t):
            return ~t.job.fill_null("").isin(HOST_JOBS)
        m_inc = _count(con, "metric_samples", incident, scraped)
        m_all = _count(con, "metric_samples", p.window, scraped)
        expected = (m_all - m_inc) / base_min * span_min
        if expected >= 10 and m_inc < 0.2 * expected:
            led.add("registry_process", "metric scrapes missing", m_inc, expected, 1,
                    "scrapes time out while the process is stalled or down")
        before = Window(incident.start - dt.timedelta(seconds=incident.seconds), incident.start)
        inc_mean, base_mean = counter_mean(con, incident), counter_mean(con, before)
        if inc_mean is not None and base_mean and inc_mean >= 3 * base_mean:
            led.add("blob_storage", "storage action time in the registry's metrics", inc_mean, base_mean,
                    0 if flood else 1, "not counted: a client flood raises storage latency with no storage fault"
                    if flood else "mean storage action seconds, incident against the span before")
        # the registry's request log carries no storage time (its app log does not): its metrics hold the share
        if get("incident", False, "storage_req_s") == 0:
            inc_sh, base_sh = storage_time_share(con, incident), storage_time_share(con, before)
            if inc_sh is not None and inc_sh > p.thresholds.backend_share and inc_sh > (base_sh or 0.0):
                led.add("blob_storage", "storage share of request time in the registry's metrics", inc_sh, base_sh,
                        0 if flood else 1, "not counted: a client flood raises storage latency with no storage fault"
                        if flood else f"over {p.thresholds.backend_share:.0%}: the backend is the bottleneck")
        for sig in host_signals(con, p.window, incident, around, flood):
            led.add(sig.domain, sig.signal, sig.incident, sig.baseline, sig.points, sig.detail)

    return _decide(led, incident, tables, p)


def _scores(led: _Ledger) -> pl.DataFrame:
    ev = led.frame().filter(pl.col("domain").is_in(DOMAINS))
    base = pl.DataFrame({"domain": list(DOMAINS)})
    s = ev.group_by("domain").agg(points=pl.col("points").sum())
    return base.join(s, on="domain", how="left").with_columns(pl.col("points").fill_null(0.0)).sort(
        ["points", "domain"], descending=[True, False])


def _decide(led: _Ledger, incident: Window, tables: tuple[str, ...], p: DomainParams) -> Verdict:
    scores = _scores(led)
    top, second = scores.row(0, named=True), scores.row(1, named=True)
    ev = led.frame()
    if top["points"] < p.min_score:
        return Verdict("inconclusive", f"thin evidence: best {top['domain']} with {top['points']:.0f} points, "
                       f"{p.min_score:.0f} needed", incident, scores, ev, tables)
    if top["points"] - second["points"] < p.margin:
        return Verdict("inconclusive", f"split evidence: {top['domain']} {top['points']:.0f} against "
                       f"{second['domain']} {second['points']:.0f}", incident, scores, ev, tables)
    return Verdict(top["domain"], f"{top['domain']}: {top['points']:.0f} points, next {second['domain']} "
                   f"{second['points']:.0f}", incident, scores, ev, tables)
