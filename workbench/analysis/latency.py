"""Latency: exact percentiles by route × method × status class × time bucket, histograms and ECDFs on a log
scale, the manifest SLO and large-layer push throughput, error rates, and the backend's share of request time.

Quantiles here are exact (DuckDB `quantile_cont`; Spark's `percentile`), recorded as `quantiles="exact"`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import altair as alt
import ibis
import ibis.expr.types as ir
import polars as pl

from .params import Quantiles, Thresholds, Window, bucket, bucket_seconds, days, frame, in_window, status_class

PERCENTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p999": 0.999}


@dataclass(frozen=True)
class LatencyParams:
    window: Window | None = None
    bucket: str = "1m"
    thresholds: Thresholds = field(default_factory=Thresholds)
    layer: str | None = None  # None: every layer; "registry" or "nginx" to look at one
    large_layer_bytes: int = 100 * 1024 * 1024
    bins_per_decade: int = 10


@dataclass(frozen=True)
class Result:
    """A small result frame and how its quantiles were computed."""

    frame: pl.DataFrame
    quantiles: Quantiles = "exact"
    note: str = ""


def _scope(t: ir.Table, p: LatencyParams) -> ir.Table:
    t = in_window(t, p.window)
    return t.filter(t.layer == p.layer) if p.layer else t


def percentiles(t: ir.Table, p: LatencyParams, by: tuple[str, ...] = ("route", "method", "status_class")) -> ir.Table:
    """Exact p50/p90/p95/p99/p99.9/max of duration_s per time bucket and `by` (status_class is derived)."""
    t = _scope(t, p)
    t = t.mutate(bucket=bucket(t.ts, p.bucket), status_class=status_class(t.status))
    aggs = {"requests": t.count(), **{k: t.duration_s.quantile(q) for k, q in PERCENTILES.items()},
            "max": t.duration_s.max()}
    return t.group_by(["bucket", *by]).aggregate(**aggs).order_by(["bucket", *by])


def percentile_table(t: ir.Table, p: LatencyParams, by: tuple[str, ...] = ("route", "method", "status_class")) -> Result:
    """percentiles() as a frame, run one UTC day (one date partition) at a time when buckets fit in a day.

    Exact quantiles hold every value of a group in memory and do not spill; a day at a time keeps the peak to
    one partition's durations, and the answer is the same because no bucket crosses midnight.
    """
    if p.window is None or bucket_seconds(p.bucket) > 86_400 or 86_400 % bucket_seconds(p.bucket):
        return Result(frame(percentiles(t, p, by)), "exact")
    parts = [frame(percentiles(t, replace(p, window=d), by)) for d in days(p.window)]
    return Result(pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0], "exact")


def _log_bin(d: ir.FloatingValue, per_decade: int) -> ir.FloatingValue:
    """Lower edge of d's bin on a log scale (per_decade bins per factor of ten), 1 µs floor."""
    return ((ibis.greatest(d, 1e-6).log10() * per_decade).floor() / per_decade).cast("float64")


def histogram(t: ir.Table, p: LatencyParams, by: str = "route") -> pl.DataFrame:
    """Request counts per log-scale duration bin and `by`, with the cumulative share (the ECDF) per group."""
    t = _scope(t, p).filter(lambda r: r.duration_s.notnull())
    t = t.mutate(lb=_log_bin(t.duration_s, p.bins_per_decade))
    df = frame(t.group_by([by, "lb"]).aggregate(requests=t.count()).order_by([by, "lb"]))
    if df.is_empty():
        return pl.DataFrame(schema={by: pl.String, "le_s": pl.Float64, "ge_s": pl.Float64, "requests": pl.Int64,
                                    "ecdf": pl.Float64})
    return df.with_columns(
        ge_s=(10 ** pl.col("lb")), le_s=(10 ** (pl.col("lb") + 1.0 / p.bins_per_decade)),
        ecdf=pl.col("requests").cum_sum().over(by) / pl.col("requests").sum().over(by),
    ).select(by, "ge_s", "le_s", "requests", "ecdf")


def histogram_chart(hist: pl.DataFrame, by: str = "route") -> alt.Chart:
    return alt.Chart(hist).mark_bar(opacity=0.6).encode(
        x=alt.X("ge_s:Q", scale=alt.Scale(type="log"), title="duration (s, log scale)"),
        x2="le_s:Q", y=alt.Y("requests:Q", title="requests"), color=f"{by}:N",
        tooltip=[by, "ge_s", "le_s", "requests"],
    ).properties(title="Request duration histogram", width=600, height=250)


def ecdf_chart(hist: pl.DataFrame, by: str = "route", slo_s: float | None = None) -> alt.LayerChart | alt.Chart:
    line = alt.Chart(hist).mark_line(interpolate="step-after").encode(
        x=alt.X("le_s:Q", scale=alt.Scale(type="log"), title="duration (s, log scale)"),
        y=alt.Y("ecdf:Q", title="share of requests at or under", scale=alt.Scale(domain=[0, 1])),
        color=f"{by}:N", tooltip=[by, "le_s", "ecdf"],
    ).properties(title="Request duration ECDF", width=600, height=250)
    if slo_s is None:
        return line
    rule = alt.Chart(pl.DataFrame({"slo_s": [slo_s]})).mark_rule(strokeDash=[4, 4]).encode(x="slo_s:Q")
    return line + rule


def percentile_chart(pt: pl.DataFrame, route: str | None = "manifest") -> alt.Chart:
    """p50/p99/max over time from a percentile table grouped by route only (`by=("route",)`)."""
    df = pt.filter(pl.col("route") == route) if route else pt
    long = df.unpivot(index=["bucket", "route"], on=["p50", "p99", "max"], variable_name="stat", value_name="s")
    return alt.Chart(long).mark_line().encode(
        x=alt.X("bucket:T", title="time (UTC)"), y=alt.Y("s:Q", scale=alt.Scale(type="log"), title="seconds"),
        color="stat:N", strokeDash="route:N", tooltip=["bucket:T", "route", "stat", "s"],
    ).properties(title=f"Latency over time{' — ' + route if route else ''}", width=600, height=250)


def manifest_slo(t: ir.Table, p: LatencyParams) -> Result:
    """Manifest GET/HEAD against manifest_slo_s, overall and per bucket: share within, p99, and breach."""
    slo = p.thresholds.manifest_slo_s
    t = _scope(t, p)
    t = t.filter(t.route == "manifest", t.method.isin(["GET", "HEAD"]), t.duration_s.notnull())
    t = t.mutate(bucket=bucket(t.ts, p.bucket), over=(t.duration_s >= slo).cast("int64"))
    per = t.group_by("bucket").aggregate(requests=t.count(), over_slo=t.over.sum(), p99=t.duration_s.quantile(0.99))
    df = frame(per.order_by("bucket")).with_columns(
        within_share=1 - pl.col("over_slo") / pl.col("requests"), breach=pl.col("p99") >= slo)
    return Result(df, "exact", f"manifest GET/HEAD: p99 of a bucket at or over {slo * 1000:.0f} ms is a breach")


def manifest_slo_summary(t: ir.Table, p: LatencyParams) -> Result:
    slo = p.thresholds.manifest_slo_s
    t = _scope(t, p)
    t = t.filter(t.route == "manifest", t.method.isin(["GET", "HEAD"]), t.duration_s.notnull())
    agg = t.aggregate(requests=t.count(), over_slo=(t.duration_s >= slo).cast("int64").sum(),
                      p50=t.duration_s.quantile(0.5), p99=t.duration_s.quantile(0.99))
    df = frame(agg).with_columns(slo_s=pl.lit(slo), within_share=1 - pl.col("over_slo") / pl.col("requests"),
                                 met=pl.col("p99") < slo)
    return Result(df, "exact")


def push_throughput(t: ir.Table, p: LatencyParams) -> Result:
    """Large-layer upload throughput in MB/s (10^6 bytes) per request against push_mb_s.

    Size: bytes_in of the upload request (the body the registry or proxy read; for a monolithic upload the
    completing PUT carries the layer, for a chunked one the PATCH does, so both count). Requests with no
    bytes_in, or under large_layer_bytes, are left out and counted in the note.
    """
    t = _scope(t, p)
    t = t.filter(t.route == "blob_upload", t.method.isin(["PUT", "PATCH"]), t.status < 400)
    sized = t.filter(t.bytes_in.notnull(), t.duration_s > 0)
    counts = frame(t.aggregate(uploads=t.count(), sized=t.bytes_in.notnull().cast("int64").sum(),
                               large=(t.bytes_in >= p.large_layer_bytes).cast("int64").sum()))
    large = sized.filter(sized.bytes_in >= p.large_layer_bytes)
    large = large.mutate(mb_s=large.bytes_in / large.duration_s / 1e6)
    agg = large.aggregate(requests=large.count(), p50_mb_s=large.mb_s.quantile(0.5),
                          p10_mb_s=large.mb_s.quantile(0.1), min_mb_s=large.mb_s.min(),
                          below=(large.mb_s < p.thresholds.push_mb_s).cast("int64").sum())
    df = frame(agg).with_columns(target_mb_s=pl.lit(p.thresholds.push_mb_s),
                                 met=pl.col("p50_mb_s") >= p.thresholds.push_mb_s)
    c = counts.row(0, named=True)
    note = (f"{c['uploads']} upload PUT/PATCH requests, {c['sized'] or 0} with bytes_in, {c['large'] or 0} of at "
            f"least {p.large_layer_bytes} bytes; size from bytes_in (Content-Length of the request body)")
    return Result(df, "exact", note)


def error_rates(t: ir.Table, p: LatencyParams) -> pl.DataFrame:
    """Per bucket: requests, 4xx, 5xx and their rates."""
    t = _scope(t, p)
    t = t.mutate(bucket=bucket(t.ts, p.bucket))
    agg = t.group_by("bucket").aggregate(
        requests=t.count(), e4xx=((t.status >= 400) & (t.status < 500)).cast("int64").sum(),
        e5xx=(t.status >= 500).cast("int64").sum())
    return frame(agg.order_by("bucket")).with_columns(
        rate_4xx=pl.col("e4xx") / pl.col("requests"), rate_5xx=pl.col("e5xx") / pl.col("requests"))


def error_rate_chart(er: pl.DataFrame) -> alt.Chart:
    long = er.unpivot(index="bucket", on=["rate_4xx", "rate_5xx"], variable_name="class", value_name="rate")
    return alt.Chart(long).mark_line().encode(
        x=alt.X("bucket:T", title="time (UTC)"), y=alt.Y("rate:Q", axis=alt.Axis(format="%"), title="error rate"),
        color="class:N", tooltip=["bucket:T", "class", alt.Tooltip("rate:Q", format=".2%")],
    ).properties(title="Error rates", width=600, height=200)


def backend_share(t: ir.Table, p: LatencyParams, by: str = "route") -> Result:
    """Share of request time spent in storage (registry) or upstream (proxy), where logged, per `by`.

    Over thresholds.backend_share means the backend, not the front, is the bottleneck.
    """
    t = _scope(t, p).filter(lambda r: r.duration_s > 0)
    agg = t.group_by(by).aggregate(
        requests=t.count(),
        with_storage=t.storage_duration_s.notnull().cast("int64").sum(),
        with_upstream=t.upstream_duration_s.notnull().cast("int64").sum(),
        storage_s=t.storage_duration_s.sum(),
        upstream_s=t.upstream_duration_s.sum(),
        storage_req_s=ibis.cases((t.storage_duration_s.notnull(), t.duration_s), else_=0.0).sum(),
        upstream_req_s=ibis.cases((t.upstream_duration_s.notnull(), t.duration_s), else_=0.0).sum(),
    )
    thr = p.thresholds.backend_share
    df = frame(agg.order_by(by)).with_columns(
        storage_share=pl.when(pl.col("storage_req_s") > 0).then(pl.col("storage_s") / pl.col("storage_req_s")),
        upstream_share=pl.when(pl.col("upstream_req_s") > 0).then(pl.col("upstream_s") / pl.col("upstream_req_s")),
    ).with_columns(backend_bottleneck=(pl.col("storage_share") > thr) | (pl.col("upstream_share") > thr)
                   ).drop("storage_req_s", "upstream_req_s")
    return Result(df, "none", "shares only over requests that logged the backend time")


@dataclass(frozen=True)
class AnomalyParams:
    window: Window | None = None
    bucket: str = "1m"
    layer: str | None = None
    route: str | None = None
    p99_factor: float = 3.0  # a bucket whose p99 is this many times the median bucket's p99 is slow …
    slow_share: float = 0.03  # … when this share of its requests (and min_slow of them) are that slow too
    min_slow: int = 3
    p50_factor: float = 2.0  # a bucket whose median is this many times the median bucket's median is slow …
    p50_requests: int = 10  # … when it holds this many requests (a median of a handful is noise)
    error_rate: float = 0.05  # a bucket whose 5xx rate is at least this (and 5× the median) is failing
    min_requests: int = 5
    merge_gap_buckets: int = 2
    min_buckets: int = 3


def _over(t: ir.Table, per: pl.DataFrame, p: AnomalyParams) -> pl.DataFrame:
    """Per bucket and route: requests at or over p99_factor × the route's median bucket p99."""
    cuts = per.group_by("route").agg(cut=p.p99_factor * pl.col("med_p99").first()).drop_nulls().sort("route")
    if cuts.is_empty():
        return pl.DataFrame(schema={"bucket": pl.Datetime("us", "UTC"), "route": pl.String, "over": pl.Int64})
    cut = ibis.cases(*((t.route == r, c) for r, c in cuts.iter_rows()), else_=ibis.null("float64"))
    t = t.mutate(is_over=(t.duration_s >= cut).fill_null(False).cast("int64"))
    return frame(t.group_by(["bucket", "route"]).aggregate(over=t.is_over.sum()))


def anomalous_windows(t: ir.Table, p: AnomalyParams) -> pl.DataFrame:
    """Windows of buckets whose p99 or 5xx rate stands out from the median bucket of the same route.

    A slow bucket needs more than its p99: with a few dozen requests a minute the p99 is the slowest one or
    two (one large layer pulled, one big upload), so the bucket also needs slow_share of its requests (and
    min_slow of them) over the same cut. A stall, a lock or a throttle slows many requests; one big blob does not.
    A bucket is slow too when its median is p50_factor times the route's median bucket median over at least
    p50_requests requests: a storage slowed for everyone (a client flood makes every action two or three times
    slower) moves the bulk of the requests more than their tail.

    Each route is held against its own median (uploads are slow by nature, manifests are not). Flagged buckets
    of any route that lie close together (merge_gap_buckets) merge; runs shorter than min_buckets are dropped.
    Columns: start, end, kind (slow, errors, slow+errors), buckets, routes, peak_p99_s, baseline_p99_s (the
    median bucket p99 of the worst route), peak_5xx_rate.
    """
    t = in_window(t, p.window)
    if p.layer:
        t = t.filter(t.layer == p.layer)
    if p.route:
        t = t.filter(t.route == p.route)
    t = t.mutate(bucket=bucket(t.ts, p.bucket), route=t.route.fill_null("other"))
    per = frame(t.group_by(["bucket", "route"]).aggregate(
        requests=t.count(), p50=t.duration_s.quantile(0.5), p99=t.duration_s.quantile(0.99),
        e5xx=(t.status >= 500).cast("int64").sum()
    ).order_by(["bucket", "route"]))
    empty = pl.DataFrame(schema={"start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"),
                                 "kind": pl.String, "buckets": pl.Int64, "routes": pl.String,
                                 "peak_p99_s": pl.Float64, "baseline_p99_s": pl.Float64, "peak_5xx_rate": pl.Float64})
    per = per.filter(pl.col("requests") >= p.min_requests).with_columns(rate=pl.col("e5xx") / pl.col("requests"))
    per = per.with_columns(med_p99=pl.col("p99").median().over("route"), med_rate=pl.col("rate").median().over("route"),
                           med_p50=pl.col("p50").median().over("route"),
                           nb=pl.len().over("route")).filter(pl.col("nb") >= 2 * p.min_buckets)
    per = per.join(_over(t, per, p), on=["bucket", "route"], how="left").with_columns(pl.col("over").fill_null(0))
    flagged = per.with_columns(
        slow=((pl.col("p99") >= p.p99_factor * pl.col("med_p99")) & (pl.col("over") >= p.min_slow)
              & (pl.col("over") >= p.slow_share * pl.col("requests")))
        | ((pl.col("p50") >= p.p50_factor * pl.col("med_p50")) & (pl.col("requests") >= p.p50_requests)),
        failing=(pl.col("rate") >= p.error_rate) & (pl.col("rate") >= 5 * pl.col("med_rate")),
    ).filter(pl.col("slow") | pl.col("failing"))
    if flagged.is_empty():
        return empty
    step = bucket_seconds(p.bucket)
    flagged = flagged.with_columns(ratio=pl.col("p99") / pl.col("med_p99")).sort("bucket", "route")
    buckets = flagged.group_by("bucket").agg(slow=pl.col("slow").any(), failing=pl.col("failing").any()).sort("bucket")
    gap = (pl.col("bucket").diff().dt.total_seconds() > step * (p.merge_gap_buckets + 1)).fill_null(False)
    runs_of = buckets.with_columns(run=gap.cum_sum()).select("bucket", "run")
    flagged = flagged.join(runs_of, on="bucket")
    worst = flagged.sort("ratio", "route", descending=[True, False]).group_by("run").agg(
        baseline_p99_s=pl.col("med_p99").first())
    runs = flagged.group_by("run").agg(
        start=pl.col("bucket").min(), end=pl.col("bucket").max() + pl.duration(seconds=step),
        buckets=pl.col("bucket").n_unique().cast(pl.Int64), slow=pl.col("slow").any(), failing=pl.col("failing").any(),
        routes=pl.col("route").unique().sort().str.join(","),
        peak_p99_s=pl.col("p99").max(), peak_5xx_rate=pl.col("rate").max(),
    ).join(worst, on="run").filter(pl.col("buckets") >= p.min_buckets)
    kind = (pl.when(pl.col("slow") & pl.col("failing")).then(pl.lit("slow+errors"))
            .when(pl.col("slow")).then(pl.lit("slow")).otherwise(pl.lit("errors")))
    return runs.with_columns(kind=kind).select(empty.columns).sort("start")


__all__ = ["LatencyParams", "AnomalyParams", "Result", "PERCENTILES", "percentiles", "percentile_table",
           "histogram", "histogram_chart", "ecdf_chart", "percentile_chart", "manifest_slo", "manifest_slo_summary",
           "push_throughput", "error_rates", "error_rate_chart", "backend_share", "anomalous_windows"]

