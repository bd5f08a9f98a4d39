"""GC runs, lock waits, OOM kills and restarts against latency and errors: before / during / after with effect
sizes, which routes and repositories suffer, metric shifts, and lagged correlation with a driver series.

Quantiles are exact; effect sizes are Cohen's d on log duration (mean and standard deviation in the engine).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Literal

import altair as alt
import ibis
import ibis.expr.types as ir
import polars as pl

from ..errors import ParameterError
from .params import Window, bucket, bucket_seconds, frame, in_window

INTERVAL_KINDS = ("gc_run", "oom_kill", "restart", "throttle", "deploy", "disk_saturation")
LOCK_EVENTS = ("waiting", "acquired", "deadlock", "lock_timeout")
_INTERVALS = {"start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"), "kind": pl.String,
              "source": pl.String, "detail": pl.String, "count": pl.Int64}


@dataclass(frozen=True)
class CorrelationParams:
    window: Window | None = None
    instant_s: float = 60.0  # an instant (OOM kill, restart) is looked at as this long an interval
    lock_merge_gap_s: float = 60.0
    min_lock_wait_ms: float = 0.0
    layer: str | None = None


def incident_intervals(con: ibis.BaseBackend, p: CorrelationParams) -> pl.DataFrame:
    """Intervals on the timeline: events (GC runs, OOM kills, restarts, throttling, …) and merged lock waits.

    A lock wait logged at ts with wait_ms waited over [ts − wait_ms, ts]; overlapping waits (closer than
    lock_merge_gap_s) merge into one interval whose count says how many log records it holds.
    """
    ev = in_window(con.table("events"), p.window)
    ev = ev.filter(ev.kind.isin(INTERVAL_KINDS))
    e = frame(ev.select("ts", "end_ts", "kind", "source", "instance", "subject", "value", "deleted")
              .order_by(["ts", "kind", "instance"]))
    inst = dt.timedelta(seconds=p.instant_s)
    events = e.select(
        start=pl.col("ts"), end=pl.coalesce(pl.col("end_ts"), pl.col("ts") + inst),
        kind=pl.col("kind"), source=pl.col("source").fill_null("events"),
        detail=pl.concat_str([pl.col("instance").fill_null(""), pl.col("subject").fill_null("")], separator=" ")
        .str.strip_chars(), count=pl.lit(1, pl.Int64)).cast(_INTERVALS)
    lw = in_window(con.table("db_lock_waits"), p.window)
    lw = lw.filter(lw.event.isin(LOCK_EVENTS), lw.wait_ms.fill_null(0) >= p.min_lock_wait_ms)
    lk = frame(lw.select("ts", "wait_ms", "event", "relation").order_by(["ts", "event"]))
    locks = pl.DataFrame(schema=_INTERVALS)
    if lk.height:
        lk = lk.with_columns(start=pl.col("ts") - pl.duration(milliseconds=pl.col("wait_ms").fill_null(0.0)),
                             end=pl.col("ts")).sort("start")
        gap = pl.col("start") > (pl.col("end").cum_max().shift() + pl.duration(seconds=p.lock_merge_gap_s))
        locks = lk.with_columns(run=gap.fill_null(False).cum_sum()).group_by("run").agg(
            start=pl.col("start").min(), end=pl.col("end").max(), count=pl.len().cast(pl.Int64),
            detail=pl.col("relation").drop_nulls().unique().sort().str.join(","),
        ).select(start="start", end="end", kind=pl.lit("lock_wait"), source=pl.lit("db_lock_waits"),
                 detail="detail", count="count").cast(_INTERVALS)
    return pl.concat([events, locks]).sort("start", "kind", "detail")


def _phase(t: ir.Table, interval: Window) -> ir.StringValue:
    span = dt.timedelta(seconds=interval.seconds)
    b0, a1 = interval.start - span, interval.end + span
    return ibis.cases(
        ((t.ts >= ibis.literal(b0)) & (t.ts < ibis.literal(interval.start)), "before"),
        ((t.ts >= ibis.literal(interval.start)) & (t.ts < ibis.literal(interval.end)), "during"),
        ((t.ts >= ibis.literal(interval.end)) & (t.ts < ibis.literal(a1)), "after"),
        else_=ibis.null("string"),
    )


def _around(t: ir.Table, interval: Window, layer: str | None) -> ir.Table:
    span = interval.seconds
    t = in_window(t, Window(interval.start - dt.timedelta(seconds=span), interval.end + dt.timedelta(seconds=span)))
    if layer:
        t = t.filter(t.layer == layer)
    return t.mutate(phase=_phase(t, interval)).filter(lambda r: r.phase.notnull())


def before_during_after(t: ir.Table, interval: Window, layer: str | None = None) -> pl.DataFrame:
    """Requests in equal-length spans before, during and after an interval: rate, p50/p99, 5xx rate, and
    effect sizes of `during` against `before` (p99 ratio, Cohen's d on ln duration, 5xx rate difference)."""
    t = _around(t, interval, layer)
    t = t.mutate(ld=ibis.greatest(t.duration_s, 1e-6).ln())
    agg = t.group_by("phase").aggregate(
        requests=t.count(), p50=t.duration_s.quantile(0.5), p99=t.duration_s.quantile(0.99),
        e5xx=(t.status >= 500).cast("int64").sum(), mean_ln=t.ld.mean(), sd_ln=t.ld.std())
    df = frame(agg)
    order = pl.DataFrame({"phase": ["before", "during", "after"], "o": [0, 1, 2]})
    df = order.join(df, on="phase", how="left").sort("o").drop("o").with_columns(
        requests=pl.col("requests").fill_null(0), per_min=pl.col("requests").fill_null(0) / (interval.seconds / 60),
        rate_5xx=pl.col("e5xx") / pl.col("requests"))
    base = df.row(0, named=True)
    d = []
    for r in df.iter_rows(named=True):
        sd = math.sqrt(((base["sd_ln"] or 0) ** 2 + (r["sd_ln"] or 0) ** 2) / 2)
        d.append((r["mean_ln"] - base["mean_ln"]) / sd if sd and r["mean_ln"] is not None and base["mean_ln"] is not None else None)
    return df.with_columns(
        p99_ratio=pl.col("p99") / base["p99"] if base["p99"] else pl.lit(None, pl.Float64),
        cohens_d=pl.Series(d, dtype=pl.Float64),
        rate_5xx_diff=pl.col("rate_5xx") - (base["rate_5xx"] if base["rate_5xx"] is not None else float("nan")),
    ).drop("mean_ln", "sd_ln")


def sufferers(t: ir.Table, interval: Window, by: str = "route", top: int = 10, min_requests: int = 5,
              layer: str | None = None) -> pl.DataFrame:
    """Which values of `by` (route, repository, …) suffer during an interval: p99 before and during, ratio,
    5xx during. Ordered by ratio, then value."""
    t = _around(t, interval, layer).filter(lambda r: r.phase != "after")
    t = t.mutate(value=t[by].cast("string").fill_null("(none)"), d=(t.phase == "during").cast("int64"))
    g = t.group_by(["value", "phase"]).aggregate(n=t.count(), p99=t.duration_s.quantile(0.99),
                                                  e5xx=(t.status >= 500).cast("int64").sum())
    df = frame(g)
    if df.is_empty():
        return pl.DataFrame(schema={"value": pl.String, "before_p99": pl.Float64, "during_p99": pl.Float64,
                                    "p99_ratio": pl.Float64, "during_requests": pl.Int64, "during_5xx": pl.Int64})
    w = df.pivot(on="phase", index="value", values=["n", "p99", "e5xx"])
    for c in ("n_before", "n_during", "p99_before", "p99_during", "e5xx_during"):
        if c not in w.columns:
            w = w.with_columns(pl.lit(None, pl.Float64).alias(c))
    return (w.filter(pl.col("n_during").fill_null(0) >= min_requests)
            .select(pl.col("value").alias(by), before_p99="p99_before", during_p99="p99_during",
                    p99_ratio=pl.col("p99_during") / pl.col("p99_before"),
                    during_requests=pl.col("n_during").cast(pl.Int64), during_5xx=pl.col("e5xx_during").cast(pl.Int64))
            .sort(["p99_ratio", by], descending=[True, False], nulls_last=True).head(top))


def latency_series(t: ir.Table, window: Window | None, every: str = "1m", route: str | None = None,
                   layer: str | None = None, by: Literal["arrival", "logged"] = "arrival") -> pl.DataFrame:
    """Per bucket p99 (exact) and 5xx count: the response side of a lagged correlation.

    A request is bucketed by when it arrived (`by="arrival"`: its logged time less its duration, to the
    second), which is when the cause met it: a manifest that waits 40 s for a lock from 06:59:50 is logged at
    07:00:30, and counted in 07:00 it would make the slowdown seem to follow its cause by a minute.
    `by="logged"` buckets by the logged time (the end of the request) as the logs have it.
    """
    t = in_window(t, window)
    if route:
        t = t.filter(t.route == route)
    if layer:
        t = t.filter(t.layer == layer)
    if by == "arrival":
        step = bucket_seconds(every)
        # whole seconds first: DuckDB's epoch keeps the fraction, Spark's does not
        at = t.ts.epoch_seconds().floor() - t.duration_s.fill_null(0.0)
        t = t.mutate(bucket=((at / step).floor() * step).cast("int64").as_timestamp("s")
                     .cast(ibis.dtype("timestamp('UTC')")))
    elif by == "logged":
        t = t.mutate(bucket=bucket(t.ts, every))
    else:
        raise ParameterError(f"latency_series by {by!r}: choose arrival or logged")
    df = frame(t.group_by("bucket").aggregate(requests=t.count(), p99=t.duration_s.quantile(0.99),
                                              e5xx=(t.status >= 500).cast("int64").sum()).order_by("bucket"))
    if by == "arrival" and window is not None:  # arrived before the window: only the slow ones were logged in it
        step = bucket_seconds(every)
        first = dt.datetime.fromtimestamp(window.start.timestamp() // step * step, dt.UTC)
        df = df.filter(pl.col("bucket") >= first)
    return df


def lock_wait_series(con: ibis.BaseBackend, window: Window | None, every: str = "1m") -> pl.DataFrame:
    """Per bucket count of lock-wait records and their summed wait: a driver series."""
    t = in_window(con.table("db_lock_waits"), window)
    t = t.filter(t.event.isin(LOCK_EVENTS)).mutate(bucket=bucket(t.ts, every))
    return frame(t.group_by("bucket").aggregate(value=t.count(), wait_ms=t.wait_ms.sum()).order_by("bucket"))


def metric_series(con: ibis.BaseBackend, metric: str, window: Window | None, every: str = "1m") -> pl.DataFrame:
    """Per bucket mean of a metric over its series (counters are not rated here): a driver series."""
    t = in_window(con.table("metric_samples"), window)
    t = t.filter(t.metric == metric).mutate(bucket=bucket(t.ts, every))
    return frame(t.group_by("bucket").aggregate(value=t.value.mean()).order_by("bucket"))


def lagged_correlation(driver: pl.DataFrame, response: pl.DataFrame, max_lag: int = 10,
                       driver_col: str = "value", response_col: str = "p99") -> pl.DataFrame:
    """Pearson correlation of driver(t) with response(t + lag) for lag in −max_lag…max_lag buckets.

    Both frames have `bucket`; missing driver buckets count as 0 (no lock waits that minute).
    The best lag is the one with the largest correlation (ties: the smallest |lag|)."""
    resp = response.select("bucket", y=pl.col(response_col).cast(pl.Float64))
    x = resp.select("bucket").join(driver.select("bucket", x=pl.col(driver_col).cast(pl.Float64)), on="bucket",
                                   how="left").with_columns(pl.col("x").fill_null(0.0)).sort("bucket")
    y = resp.sort("bucket")
    rows = []
    for lag in range(-max_lag, max_lag + 1):
        df = pl.DataFrame({"x": x["x"], "y": y["y"].shift(-lag)}).drop_nulls()
        r = df.select(pl.corr("x", "y")).item() if df.height >= 3 else None
        rows.append({"lag": lag, "n": df.height, "r": None if r is None or (isinstance(r, float) and math.isnan(r)) else r})
    return pl.DataFrame(rows, schema={"lag": pl.Int64, "n": pl.Int64, "r": pl.Float64})


def lag_chart(lc: pl.DataFrame) -> alt.Chart:
    return alt.Chart(lc).mark_bar().encode(
        x=alt.X("lag:O", title="lag (buckets; positive: latency follows the driver)"),
        y=alt.Y("r:Q", title="Pearson r", scale=alt.Scale(domain=[-1, 1])), tooltip=["lag", "r", "n"],
    ).properties(title="Lagged correlation", width=500, height=200)


def metric_shifts(con: ibis.BaseBackend, interval: Window, top: int = 20) -> pl.DataFrame:
    """Metrics whose mean moved most during an interval against the same span before: ratio and change.
    Histogram buckets are left out (their _sum/_count carry the signal)."""
    t = _around(con.table("metric_samples"), interval, None).filter(lambda r: r.phase != "after")
    t = t.filter(t.le.isnull())
    g = frame(t.group_by(["metric", "phase"]).aggregate(mean=t.value.mean(), n=t.count()))
    empty = pl.DataFrame(schema={"metric": pl.String, "before": pl.Float64, "during": pl.Float64,
                                 "ratio": pl.Float64, "change": pl.Float64})
    if g.is_empty():
        return empty
    w = g.pivot(on="phase", index="metric", values="mean")
    for c in ("before", "during"):
        if c not in w.columns:
            w = w.with_columns(pl.lit(None, pl.Float64).alias(c))
    w = w.select("metric", "before", "during").with_columns(
        ratio=pl.when(pl.col("before") != 0).then(pl.col("during") / pl.col("before")),
        change=pl.col("during") - pl.col("before"))
    score = pl.when(pl.col("ratio") > 0).then(pl.col("ratio").log().abs()).otherwise(pl.lit(float("inf")))
    return (w.filter(pl.col("before").is_not_null() & pl.col("during").is_not_null())
            .with_columns(s=score).sort(["s", "metric"], descending=[True, False]).drop("s").head(top))


def counter_mean(con: ibis.BaseBackend, window: Window, like: str = "storage") -> float | None:
    """Mean observed value of the histograms or summaries whose name contains `like`, over a window:
    Δ`_sum` / Δ`_count`, the deltas taken per series (max − min; a counter reset inside the window is not
    followed) and added over series. None when nothing was counted."""
    d = _counter_deltas(con, window, lambda m: m.contains(like) & (m.endswith("_sum") | m.endswith("_count")),
                        lambda m: ibis.cases((m.endswith("_sum"), "sum"), else_="count"))
    return d["sum"] / d["count"] if d.get("count") and d.get("sum") is not None else None


def _counter_deltas(con: ibis.BaseBackend, window: Window, which, key) -> dict[str, float]:
    """Counter increases over a window (max − min per series, added over series) of the metrics `which`
    selects, added up by `key` (an expression of the metric name)."""
    t = in_window(con.table("metric_samples"), window)
    t = t.filter(which(t.metric), t.le.isnull())
    t = t.mutate(series=t.metric.concat("|", t.instance.fill_null(""), "|", t.labels.cast("string").fill_null("")))
    g = t.group_by(["metric", "series"]).aggregate(d=t.value.max() - t.value.min())
    df = frame(g.group_by(kind=key(g.metric)).aggregate(d=g.d.sum()))
    return dict(df.iter_rows()) if df.height else {}


def storage_time_share(con: ibis.BaseBackend, window: Window) -> float | None:
    """Share of the registry's request time spent in storage actions over a window, from its own metrics:
    Δ registry_storage_action_seconds_sum / Δ registry_http_request_duration_seconds_sum. None without both."""
    storage, request = "registry_storage_action_seconds_sum", "registry_http_request_duration_seconds_sum"
    d = _counter_deltas(con, window, lambda m: m.isin([storage, request]),
                        lambda m: ibis.cases((m == storage, "storage"), else_="request"))
    return d["storage"] / d["request"] if d.get("request") and d.get("storage") is not None else None


def interval_chart(intervals: pl.DataFrame, series: pl.DataFrame, value: str = "p99") -> alt.LayerChart:
    """Latency over time with the intervals shaded."""
    line = alt.Chart(series).mark_line().encode(x=alt.X("bucket:T", title="time (UTC)"),
                                                y=alt.Y(f"{value}:Q", title=f"{value} (s)"))
    band = alt.Chart(intervals).mark_rect(opacity=0.25).encode(x="start:T", x2="end:T", color="kind:N",
                                                                tooltip=["kind", "start:T", "end:T", "detail", "count"])
    return (band + line).properties(title="Latency and incident intervals", width=600, height=250)
