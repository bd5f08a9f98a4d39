"""Host evidence against its baseline: disk saturation, TLS handshake time, SYN-RECV and listen-queue
overflows, and the redis cache-miss ratio, as series per time bucket and as signals for the verdict.

The series come from what the host captures write into `metric_samples` (see workbench/ingest/sysstat.py,
netstat.py, redis.py, tls.py) and the `disk_saturation` events of iostat. Gauges are taken per bucket (the
busiest device's %util and queue, the mean handshake, the most SYN-RECV sockets in a snapshot); counters
(listen overflows, SYN drops, keyspace hits and misses) as their increase between consecutive snapshots of
one capture, a reset read as a restart from zero. Everything is aggregated in the engine; the frames that
come back hold one row per bucket and series.

A signal compares the incident with the baseline (the window outside the incident and its margin) and
scores only a change: a host that was always busy, or a capture with nothing outside the incident to
compare with, is recorded with 0 points.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import ibis
import polars as pl

from ..ingest.sysstat import QUEUE_MIN, UTIL_MIN
from .params import Window, bucket, bucket_seconds, frame, in_window

#: jobs the host captures write; their samples are not the registry's scrapes
HOST_JOBS = ("iostat", "vmstat", "ss", "netstat", "nstat", "redis", "curl", "s_client")
#: series -> (metrics, per-bucket aggregate: max, mean or sum)
GAUGES = {
    "disk_util_pct": (("iostat_util_pct",), "max"),
    "disk_queue": (("iostat_aqu_sz",), "max"),
    "tls_handshake_s": (("tls_handshake_seconds",), "mean"),
    "s_client_wall_s": (("tls_s_client_wall_seconds",), "mean"),
    "cache_reads": (("redis_cache_reads",), "sum"),
    "cache_fills": (("redis_cache_fills",), "sum"),
}
#: series -> counters (netstat -s and nstat name the same kernel counter differently)
COUNTERS = {
    "listen_overflows": ("netstat_TcpExt_ListenOverflows", "nstat_TcpExtListenOverflows"),
    "syn_drops": ("netstat_TcpExt_ListenDrops", "nstat_TcpExtListenDrops"),
    "cache_hits": ("redis_keyspace_hits",),
    "cache_misses": ("redis_keyspace_misses",),
}
BUCKETS = {"b": pl.Datetime("us", "UTC"), "series": pl.String, "value": pl.Float64, "seconds": pl.Float64,
           "n": pl.Int64}


@dataclass(frozen=True)
class HostParams:
    every: str = "1m"
    handshake_factor: float = 3.0  # handshake time this many times its baseline …
    handshake_min_s: float = 0.05  # … and this much slower counts as a pile-up
    syn_recv_min: float = 10.0  # SYN-RECV sockets in one snapshot
    overflow_min: float = 10.0  # listen overflows or SYN drops in the incident
    rate_factor: float = 3.0  # counter increase per minute against its baseline
    miss_ratio_min: float = 0.2  # cache misses per read
    miss_ratio_factor: float = 2.0
    util_rise: float = 30.0  # %util points above the baseline
    span_share: float = 0.25  # share of the incident the disk was saturated


def host_buckets(con: ibis.BaseBackend, window: Window | None, every: str = "1m") -> pl.DataFrame:
    """b, series, value (the bucket's aggregate or counter increase), seconds (counters: time the increase
    covers), n (samples); sorted by b and series."""
    t = in_window(con.table("metric_samples"), window)
    parts = []

    names = [m for ms, _ in GAUGES.values() for m in ms]
    g = t.filter(t.metric.isin(names))
    g = g.mutate(series=ibis.cases(*[(g.metric.isin(list(ms)), s) for s, (ms, _) in GAUGES.items()]),
                 b=bucket(g.ts, every))
    ga = frame(g.group_by(["b", "series"]).aggregate(max=g.value.max(), mean=g.value.mean(), sum=g.value.sum(),
                                                     n=g.count()))
    if ga.height:
        how = pl.col("series").replace_strict({s: a for s, (_, a) in GAUGES.items()})
        parts.append(ga.select("b", "series", value=pl.when(how == "max").then("max").when(how == "mean")
                               .then("mean").otherwise("sum"), seconds=pl.lit(None, pl.Float64), n="n"))

    # SYN-RECV per snapshot (a snapshot without one has no SYN-RECV row: it counts 0), the most per bucket
    s = t.filter(t.metric == "tcp_sockets")
    snap = s.group_by(["ts", "source_file"]).aggregate(
        v=ibis.cases((s.labels.get("state") == "SYN-RECV", s.value), else_=0.0).sum())
    snap = snap.mutate(b=bucket(snap.ts, every))
    sa = frame(snap.group_by("b").aggregate(value=snap.v.max(), n=snap.count()))
    if sa.height:
        parts.append(sa.select("b", series=pl.lit("syn_recv"), value="value", seconds=pl.lit(None, pl.Float64),
                               n="n"))

    c = _counters(t)
    w = ibis.window(group_by=[c.metric, c.instance, c.source_file], order_by=c.ts)
    c = c.mutate(prev=c.value.lag().over(w), prev_ts=c.ts.lag().over(w))
    c = c.filter(c.prev.notnull())
    c = c.mutate(inc=ibis.cases((c.value >= c.prev, c.value - c.prev), else_=c.value),
                 secs=(c.ts.epoch_seconds() - c.prev_ts.epoch_seconds()).cast("float64"),
                 series=ibis.cases(*[(c.metric.isin(list(ms)), s) for s, ms in COUNTERS.items()]),
                 b=bucket(c.ts, every))
    ca = frame(c.group_by(["b", "series", "metric"]).aggregate(value=c.inc.sum(), seconds=c.secs.sum(),
                                                               n=c.count()))
    if ca.height:  # the same counter captured twice (netstat -s and nstat): the larger, not the sum
        parts.append(ca.sort("value", descending=True).group_by(["b", "series"], maintain_order=True).first()
                     .select("b", "series", "value", "seconds", "n"))
    if not parts:
        return pl.DataFrame(schema=BUCKETS)
    return pl.concat([p.cast(BUCKETS) for p in parts]).sort(["b", "series"])


def _counters(t: ibis.Table) -> ibis.Table:
    """The counters, with 0 where a netstat -s / nstat snapshot leaves one out: both print only the counters
    that are not zero, so a listen-overflow counter first seen in the incident rose from 0 there."""
    names = [m for ms in COUNTERS.values() for m in ms]
    c = t.filter(t.metric.isin(names)).select("source_file", "ts", "instance", "metric", "value")
    sparse = {job: [m for m in names if m.startswith(job + "_")] for job in ("netstat", "nstat")}
    snaps = t.filter(t.job.isin(list(sparse))).select("source_file", "ts", "instance", "job").distinct()
    grid = snaps.join(ibis.memtable({"job": [j for j, ms in sparse.items() for _ in ms],
                                     "metric": [m for ms in sparse.values() for m in ms]}), "job")
    got = c.filter(c.metric.isin([m for ms in sparse.values() for m in ms]))
    dense = grid.left_join(got, ["source_file", "ts", "metric"]).select(
        "source_file", "ts", instance=grid.instance, metric=grid.metric, value=got.value.fill_null(0.0))
    return c.filter(~c.metric.isin([m for ms in sparse.values() for m in ms])).union(dense)


def saturation_spans(con: ibis.BaseBackend, window: Window | None) -> pl.DataFrame:
    """iostat's disk_saturation events (start, end, device, %util, detail) touching the window."""
    e = con.table("events")
    if window is not None:
        e = e.filter(e.ts < ibis.literal(window.end), e.end_ts.fill_null(e.ts) >= ibis.literal(window.start))
    e = e.filter(e.kind == "disk_saturation")
    return frame(e.select(start="ts", end=e.end_ts.fill_null(e.ts), device="subject", util="value", detail="detail")
                 .order_by(["start", "device"]))


@dataclass(frozen=True)
class Signal:
    domain: str
    signal: str
    incident: float | None
    baseline: float | None
    points: float
    detail: str


def _phases(buckets: pl.DataFrame, incident: Window, around: Window, every: str) -> pl.DataFrame:
    step = dt.timedelta(seconds=bucket_seconds(every))
    inc = (pl.col("b") >= incident.start) & (pl.col("b") < incident.end)
    base = (pl.col("b") + step <= around.start) | (pl.col("b") >= around.end)
    return buckets.with_columns(phase=pl.when(inc).then(pl.lit("incident")).when(base).then(pl.lit("baseline"))
                                .otherwise(None)).filter(pl.col("phase").is_not_null())


def _stat(ph: pl.DataFrame, series: str, phase: str, how: str) -> float | None:
    v = ph.filter((pl.col("series") == series) & (pl.col("phase") == phase))
    if v.is_empty():
        return None
    if how == "rate":  # increase per minute
        secs = v["seconds"].sum()
        return float(v["value"].sum()) / secs * 60 if secs else None
    return float(getattr(v["value"], how)())


def _ratio(ph: pl.DataFrame, num: str, den: str, phase: str, den_adds_num: bool) -> tuple[float | None, float]:
    """num / den (or num / (den + num)) over a phase; and the denominator."""
    n = ph.filter((pl.col("series") == num) & (pl.col("phase") == phase))["value"].sum()
    d = ph.filter((pl.col("series") == den) & (pl.col("phase") == phase))["value"].sum() + (n if den_adds_num else 0)
    return (float(n) / d if d else None), float(d)


def _has(ph: pl.DataFrame, series: str, phase: str) -> bool:
    return ph.filter((pl.col("series") == series) & (pl.col("phase") == phase)).height > 0


def host_signals(con: ibis.BaseBackend, window: Window | None, incident: Window, around: Window, flood: bool,
                 p: HostParams = HostParams()) -> list[Signal]:
    """The host evidence of the incident against its baseline, one Signal per series the captures hold."""
    ph = _phases(host_buckets(con, window, p.every), incident, around, p.every)
    out: list[Signal] = []
    no_base = "no samples outside the incident to compare with: recorded, not counted"
    flooded = "not counted: a client flood loads the storage path with no storage fault"

    # disk: the busiest device's %util with its queue, and iostat's saturation spans
    if _has(ph, "disk_util_pct", "incident"):
        iu, bu = _stat(ph, "disk_util_pct", "incident", "median"), _stat(ph, "disk_util_pct", "baseline", "median")
        iq, bq = _stat(ph, "disk_queue", "incident", "median"), _stat(ph, "disk_queue", "baseline", "median")
        busy = iu >= UTIL_MIN and (iq or 0) >= QUEUE_MIN and bu is not None and iu >= bu + p.util_rise
        pts = 1 if busy and not flood else 0
        out.append(Signal("blob_storage", "disk %util with its queue (iostat)", iu, bu, pts,
                          flooded if busy and flood else no_base if bu is None else
                          f"median of the busiest device per minute; queue {iq or 0:.1f} against {bq or 0:.1f}"))
        step = bucket_seconds(p.every)
        base_s = ph.filter((pl.col("series") == "disk_util_pct") & (pl.col("phase") == "baseline")).height * step
        spans = saturation_spans(con, window)
        if spans.height:
            def covered(lo: dt.datetime, hi: dt.datetime) -> float:
                c = spans.select((pl.min_horizontal(pl.col("end"), pl.lit(hi))
                                  - pl.max_horizontal(pl.col("start"), pl.lit(lo))).dt.total_seconds().clip(0))
                return float(c.to_series().sum())
            inc_share = covered(incident.start, incident.end) / incident.seconds
            lo, hi = (window.start, window.end) if window else (spans["start"].min(), spans["end"].max())
            base_cov = covered(lo, around.start) + covered(around.end, hi)
            base_share = base_cov / base_s if base_s else None
            sat = inc_share >= p.span_share and base_share is not None and inc_share >= 3 * base_share
            devs = ", ".join(sorted(set(spans["device"].drop_nulls().to_list())))
            out.append(Signal("blob_storage", "disk saturation spans (iostat)", inc_share, base_share,
                              2 if sat and not flood else 0,
                              flooded if sat and flood else no_base if base_share is None else
                              f"share of the time saturated ({devs}; %util over {UTIL_MIN:.0f} with a queue "
                              f"over {QUEUE_MIN:.0f})" + (": the storage path could not keep up" if sat else "")))

    # TLS: handshake time from curl -w and s_client wall time
    for series, name, pts in (("tls_handshake_s", "TLS handshake time (curl appconnect − connect)", 2),
                              ("s_client_wall_s", "openssl s_client handshake wall time", 1)):
        if not _has(ph, series, "incident"):
            continue
        i, b = _stat(ph, series, "incident", "median"), _stat(ph, series, "baseline", "median")
        up = b is not None and i >= p.handshake_factor * b and i - b >= p.handshake_min_s
        out.append(Signal("proxy_tls", name, i, b, pts if up else 0, no_base if b is None else
                          "median seconds per minute; handshakes piled up at the proxy" if up else
                          "median seconds per minute; no pile-up"))

    # TCP: SYN-RECV sockets, listen-queue overflows and SYN drops
    if _has(ph, "syn_recv", "incident"):
        i, b = _stat(ph, "syn_recv", "incident", "max"), _stat(ph, "syn_recv", "baseline", "max")
        up = b is not None and i >= max(p.syn_recv_min, p.rate_factor * b)
        out.append(Signal("proxy_tls", "SYN-RECV sockets (ss / netstat)", i, b, 1 if up else 0,
                          no_base if b is None else "most in one snapshot; half-open connections waiting for "
                          "the proxy to accept" if up else "most in one snapshot"))
    scored = False
    for series, name in (("listen_overflows", "listen queue overflows"), ("syn_drops", "SYNs to LISTEN dropped")):
        if not _has(ph, series, "incident"):
            continue
        i, b = _stat(ph, series, "incident", "rate"), _stat(ph, series, "baseline", "rate")
        total = float(ph.filter((pl.col("series") == series) & (pl.col("phase") == "incident"))["value"].sum())
        up = i is not None and b is not None and total >= p.overflow_min and i >= p.rate_factor * max(b, 1e-9)
        out.append(Signal("proxy_tls", f"{name} per minute (netstat -s / nstat)", i, b, 1 if up and not scored else 0,
                          no_base if b is None else f"{total:.0f} in the incident; the proxy's accept queue was full"
                          + (" (counted once with the overflows)" if up and scored else "") if up
                          else f"{total:.0f} in the incident"))
        scored = scored or up

    # cache: a miss storm sends every blob-descriptor lookup to the metadata database
    scored = False
    for num, den, adds, name in (("cache_fills", "cache_reads", False, "blob-descriptor cache misses per read "
                                  "(MONITOR: reads refilled)"),
                                 ("cache_misses", "cache_hits", True, "redis keyspace miss ratio (INFO)")):
        if not _has(ph, num, "incident") and not _has(ph, den, "incident"):
            continue
        (i, di), (b, _) = _ratio(ph, num, den, "incident", adds), _ratio(ph, num, den, "baseline", adds)
        if i is None:
            continue
        storm = b is not None and i >= p.miss_ratio_min and i >= p.miss_ratio_factor * max(b, 1e-9)
        out.append(Signal("metadata_database", name, i, b, 1 if storm and not scored else 0,
                          no_base if b is None else f"{di:.0f} lookups in the incident; the misses go to the "
                          "metadata database" + (" (counted once)" if scored else "") if storm
                          else f"{di:.0f} lookups in the incident; no miss storm"))
        scored = scored or storm
    return out


#: timeline kinds: (kind, series, denominator series or None, "ratio" adds the numerator to it, unit)
_MARKED = (("disk_util", "disk_util_pct", None, False, "%util"),
           ("tls_handshake", "tls_handshake_s", None, False, "s"),
           ("s_client_wall", "s_client_wall_s", None, False, "s"),
           ("syn_recv", "syn_recv", None, False, "sockets"),
           ("listen_overflows", "listen_overflows", None, False, "overflows"),
           ("syn_drops", "syn_drops", None, False, "SYNs dropped"),
           ("cache_miss_ratio", "cache_misses", "cache_hits", True, "misses per lookup (INFO)"),
           ("cache_fill_ratio", "cache_fills", "cache_reads", False, "misses per read (MONITOR)"))


def host_marks(buckets: pl.DataFrame, p: HostParams = HostParams()) -> pl.DataFrame:
    """One row per bucket and host kind: b, kind, value, severity (info, slow, warning), summary. A bucket is
    marked against the window's median bucket with the thresholds the verdict uses."""
    if buckets.is_empty():
        return pl.DataFrame(schema={"b": BUCKETS["b"], "kind": pl.String, "value": pl.Float64,
                                    "severity": pl.String, "summary": pl.String})
    wide = buckets.pivot(on="series", index="b", values="value").sort("b")
    for s in (*GAUGES, *COUNTERS, "syn_recv"):
        if s not in wide.columns:
            wide = wide.with_columns(pl.lit(None, pl.Float64).alias(s))
    out = []
    for kind, series, den, adds, unit in _MARKED:
        v = pl.col(series)
        if den is not None:
            d = pl.col(den).fill_null(0) + (v.fill_null(0) if adds else 0)
            v = pl.when(d > 0).then(v.fill_null(0) / d)
        f = wide.select("b", value=v, queue=pl.col("disk_queue")).filter(pl.col("value").is_not_null())
        if f.is_empty():
            continue
        med = f["value"].median() or 0.0
        if kind == "disk_util":
            hot = (pl.col("value") > UTIL_MIN) & (pl.col("queue").fill_null(0) > QUEUE_MIN)
            text = pl.format("busiest device %util {}, queue {}", pl.col("value").round(1), pl.col("queue").round(1))
        else:
            floor = {"tls_handshake": med + p.handshake_min_s, "s_client_wall": med + p.handshake_min_s,
                     "syn_recv": p.syn_recv_min}.get(kind, p.miss_ratio_min if den else 1.0)
            factor = p.miss_ratio_factor if den else p.handshake_factor if "tls" in kind or "wall" in kind \
                else p.rate_factor
            hot = (pl.col("value") >= floor) & (pl.col("value") >= factor * med)
            text = pl.format("{} {} (median {})", pl.col("value").round(3), pl.lit(unit), pl.lit(round(med, 3)))
        sev = pl.lit("slow" if kind in ("tls_handshake", "s_client_wall") else "warning")
        out.append(f.select("b", kind=pl.lit(kind), value="value",
                            severity=pl.when(hot).then(sev).otherwise(pl.lit("info")), summary=text))
    return pl.concat(out) if out else host_marks(pl.DataFrame(schema=BUCKETS))
