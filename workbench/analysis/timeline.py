"""One incident timeline across every table: requests per minute with error and latency markers, events,
lock waits per minute, registry log lines of kinds storage_error, db_error and panic per minute, and the host
captures per minute (disk %util, TLS handshake time, SYN-RECV sockets, listen overflows and SYN drops, cache
miss ratios; see host.py), marked when they stand out from their median minute.

Everything is aggregated in the engine first; the timeline holds one row per minute and source at most
(plus one per event), sorted by time, source, kind and summary so the same case gives the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import altair as alt
import ibis
import polars as pl

from .correlation import LOCK_EVENTS
from .host import host_buckets, host_marks
from .latency import AnomalyParams, anomalous_windows
from .params import Window, bucket, frame, in_window

LOG_KINDS = ("storage_error", "db_error", "panic")
COLUMNS = {"ts": pl.Datetime("us", "UTC"), "end_ts": pl.Datetime("us", "UTC"), "source": pl.String,
           "kind": pl.String, "severity": pl.String, "value": pl.Float64, "summary": pl.String}


@dataclass(frozen=True)
class TimelineParams:
    window: Window | None = None
    bucket: str = "1m"
    error_rate: float = 0.05  # a minute with this 5xx rate is marked error
    p99_factor: float = 3.0  # a minute whose p99 is this many times its route's median minute is marked slow
    quiet_minutes: bool = True  # keep unmarked request minutes (the baseline) in the timeline


def _requests(con: ibis.BaseBackend, p: TimelineParams) -> pl.DataFrame:
    """Requests per bucket; buckets inside an anomalous window (per-route latency or 5xx, see
    latency.anomalous_windows) are marked slow or error."""
    req = con.table("requests")
    t = in_window(req, p.window)
    t = t.mutate(b=bucket(t.ts, p.bucket))
    g = frame(t.group_by("b").aggregate(n=t.count(), e5xx=(t.status >= 500).cast("int64").sum(),
                                        e4xx=((t.status >= 400) & (t.status < 500)).cast("int64").sum(),
                                        p99=t.duration_s.quantile(0.99)).order_by("b"))
    if g.is_empty():
        return pl.DataFrame(schema=COLUMNS)
    an = anomalous_windows(req, AnomalyParams(window=p.window, bucket=p.bucket, error_rate=p.error_rate,
                                              p99_factor=p.p99_factor))
    g = g.with_columns(severity=pl.lit("info"), routes=pl.lit(""))
    for r in an.iter_rows(named=True):
        inside = (pl.col("b") >= r["start"]) & (pl.col("b") < r["end"])
        sev = "error" if "errors" in r["kind"] else "slow"
        g = g.with_columns(severity=pl.when(inside).then(pl.lit(sev)).otherwise("severity"),
                           routes=pl.when(inside).then(pl.lit(r["routes"])).otherwise("routes"))
    out = g.select(
        ts="b", end_ts=pl.lit(None, COLUMNS["end_ts"]), source=pl.lit("requests"), kind=pl.lit("requests"),
        severity="severity", value="p99",
        summary=pl.format("{} requests, {} 5xx, {} 4xx, p99 {} ms{}", "n", "e5xx", "e4xx",
                          (pl.col("p99") * 1000).round(0),
                          pl.when(pl.col("routes") != "").then(pl.lit("; anomalous: ") + pl.col("routes"))
                          .otherwise(pl.lit(""))))
    if not p.quiet_minutes:
        out = out.filter(pl.col("severity") != "info")
    return out.cast(COLUMNS)


def _events(con: ibis.BaseBackend, p: TimelineParams) -> pl.DataFrame:
    t = in_window(con.table("events"), p.window)
    e = frame(t.select("ts", "end_ts", "kind", "source", "instance", "subject", "value", "detail")
              .order_by(["ts", "kind", "instance"]))
    sev = pl.when(pl.col("kind").is_in(["oom_kill", "restart", "throttle"])).then(pl.lit("error")).otherwise(
        pl.lit("warning"))
    return e.select("ts", "end_ts", source=pl.lit("events"), kind="kind", severity=sev, value="value",
                    summary=pl.concat_str([pl.col("kind"), pl.col("instance").fill_null(""), pl.col("subject").fill_null(""),
                                           pl.col("detail").fill_null("")], separator=" ").str.strip_chars()).cast(COLUMNS)


def _locks(con: ibis.BaseBackend, p: TimelineParams) -> pl.DataFrame:
    t = in_window(con.table("db_lock_waits"), p.window)
    t = t.mutate(b=bucket(t.ts, p.bucket))
    g = frame(t.group_by(["b", "event"]).aggregate(n=t.count(), max_wait=t.wait_ms.max(),
                                                   rel=t.relation.min()).order_by(["b", "event"]))
    sev = pl.when(pl.col("event").is_in(["deadlock", "lock_timeout", "connection_error"])).then(pl.lit("error")) \
        .when(pl.col("event").is_in(list(LOCK_EVENTS))).then(pl.lit("warning")).otherwise(pl.lit("info"))
    return g.select(ts="b", end_ts=pl.lit(None, COLUMNS["end_ts"]), source=pl.lit("db_lock_waits"), kind="event",
                    severity=sev, value="max_wait",
                    summary=pl.format("{} × {} (max wait {} ms) {}", "n", "event", pl.col("max_wait").round(0),
                                      pl.col("rel").fill_null(""))).cast(COLUMNS)


def _logs(con: ibis.BaseBackend, p: TimelineParams) -> pl.DataFrame:
    t = in_window(con.table("log_events"), p.window)
    t = t.filter(t.kind.isin(LOG_KINDS)).mutate(b=bucket(t.ts, p.bucket))
    g = frame(t.group_by(["b", "kind"]).aggregate(n=t.count(), msg=t.message.min()).order_by(["b", "kind"]))
    return g.select(ts="b", end_ts=pl.lit(None, COLUMNS["end_ts"]), source=pl.lit("log_events"), kind="kind",
                    severity=pl.lit("error"), value=pl.col("n").cast(pl.Float64),
                    summary=pl.format("{} × {}: {}", "n", "kind", pl.col("msg").fill_null(""))).cast(COLUMNS)


def _host(con: ibis.BaseBackend, p: TimelineParams) -> pl.DataFrame:
    h = host_marks(host_buckets(con, p.window, p.bucket))
    if not p.quiet_minutes:
        h = h.filter(pl.col("severity") != "info")
    return h.select(ts="b", end_ts=pl.lit(None, COLUMNS["end_ts"]), source=pl.lit("host"), kind="kind",
                    severity="severity", value="value", summary="summary").cast(COLUMNS)


def timeline(con: ibis.BaseBackend, p: TimelineParams) -> pl.DataFrame:
    """The merged timeline: ts, end_ts (intervals), source, kind, severity (info, slow, warning, error),
    value, summary."""
    parts = [_requests(con, p), _events(con, p), _locks(con, p), _logs(con, p), _host(con, p)]
    return pl.concat(parts).sort(["ts", "source", "kind", "summary"])


def timeline_chart(tl: pl.DataFrame) -> alt.Chart:
    """One lane per source; marked minutes and events coloured by severity."""
    df = tl.filter(pl.col("severity") != "info").with_columns(end_ts=pl.coalesce("end_ts", pl.col("ts")
                                                                               + pl.duration(minutes=1)))
    return alt.Chart(df).mark_rect().encode(
        x=alt.X("ts:T", title="time (UTC)"), x2="end_ts:T", y=alt.Y("source:N", title=None),
        color=alt.Color("severity:N", scale=alt.Scale(domain=["slow", "warning", "error"],
                                                        range=["#f2b701", "#e68310", "#cf1c90"])),
        tooltip=["ts:T", "source", "kind", "severity", "summary"],
    ).properties(title="Incident timeline", width=650, height=160)
