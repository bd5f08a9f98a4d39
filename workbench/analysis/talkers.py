"""Top talkers and what is over-represented in a target set (slow, failing, or a time window).

Every top-N orders by its measure and then by the value itself, so ties come out the same on every engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import altair as alt
import ibis
import ibis.expr.types as ir
import polars as pl

from ..errors import ParameterError
from .params import Thresholds, Window, bucket, bucket_seconds, frame, in_window

DIMENSIONS = ("remote_ip", "user_agent", "client", "repository")
MEASURES = ("requests", "bytes", "errors", "slow")


@dataclass(frozen=True)
class TalkerParams:
    window: Window | None = None
    dimensions: tuple[str, ...] = DIMENSIONS
    top: int = 20
    rank_by: str = "requests"
    thresholds: Thresholds = field(default_factory=Thresholds)
    slow_s: float | None = None  # None: thresholds.manifest_slo_s
    layer: str | None = None

    @property
    def slow_cut(self) -> float:
        return self.thresholds.manifest_slo_s if self.slow_s is None else self.slow_s


def _scope(t: ir.Table, window: Window | None, layer: str | None) -> ir.Table:
    t = in_window(t, window)
    return t.filter(t.layer == layer) if layer else t


def top_talkers(t: ir.Table, p: TalkerParams, dimension: str) -> ir.Table:
    """Top `p.top` values of `dimension` by p.rank_by: requests, bytes (in+out), 5xx, 4xx, slow, and shares."""
    if p.rank_by not in MEASURES:
        raise ParameterError(f"rank_by {p.rank_by!r}: choose one of {', '.join(MEASURES)}")
    t = _scope(t, p.window, p.layer)
    t = t.mutate(nbytes=t.bytes_out.fill_null(0) + t.bytes_in.fill_null(0),
                 err=(t.status >= 500).cast("int64"),
                 cerr=((t.status >= 400) & (t.status < 500)).cast("int64"),
                 is_slow=(t.duration_s >= p.slow_cut).cast("int64"))
    # group on the column itself (cheaper than on an expression), name and fill the value afterwards
    g = t.group_by(dimension).aggregate(requests=t.count(), bytes=t.nbytes.sum(), errors=t.err.sum(),
                                        client_errors=t.cerr.sum(), slow=t.is_slow.sum(),
                                        duration_s=t.duration_s.sum())
    g = g.mutate(value=g[dimension].cast("string").fill_null("(none)"))
    whole = ibis.window()
    g = g.mutate(all_requests=g.requests.sum().over(whole), all_slow=g.slow.sum().over(whole),
                 all_bytes=g.bytes.sum().over(whole), all_duration_s=g.duration_s.sum().over(whole))
    # shares rounded to 12 digits: a parallel float sum differs in its last bits from run to run, and the
    # appendix must be byte-identical for the same case
    g = g.mutate(
        dimension=ibis.literal(dimension),
        request_share=(g.requests / g.all_requests).round(12),
        bytes_share=ibis.cases((g.all_bytes > 0, (g.bytes / g.all_bytes).round(12)), else_=ibis.null("float64")),
        slow_share=ibis.cases((g.all_slow > 0, (g.slow / g.all_slow).round(12)), else_=ibis.null("float64")),
        latency_share=ibis.cases((g.all_duration_s > 0, (g.duration_s / g.all_duration_s).round(12)),
                                 else_=ibis.null("float64")),
    )
    cols = ["dimension", "value", "requests", "bytes", "errors", "client_errors", "slow", "request_share",
            "bytes_share", "slow_share", "latency_share"]
    return g.select(cols).order_by([ibis.desc(p.rank_by), "value"]).limit(p.top)


def talker_table(t: ir.Table, p: TalkerParams) -> pl.DataFrame:
    """Top talkers of every dimension in one long frame (dimension, rank, value, measures)."""
    parts = [frame(top_talkers(t, p, d)).with_columns(rank=pl.int_range(1, pl.len() + 1).cast(pl.Int64))
             for d in p.dimensions]
    return pl.concat(parts, how="vertical").select("dimension", "rank", pl.exclude("dimension", "rank"))


def talker_chart(tt: pl.DataFrame, dimension: str = "remote_ip", measure: str = "requests") -> alt.Chart:
    df = tt.filter(pl.col("dimension") == dimension)
    return alt.Chart(df).mark_bar().encode(
        x=alt.X(f"{measure}:Q"), y=alt.Y("value:N", sort="-x", title=dimension),
        tooltip=["value", "requests", "bytes", "errors", "slow"],
    ).properties(title=f"Top {dimension} by {measure}", width=500, height=min(20 * max(df.height, 1), 400))


TargetKind = Literal["slow", "errors", "window"]


@dataclass(frozen=True)
class BubbleUpParams:
    """Target set against a baseline: the slow or failing requests against the rest of `window`, or the
    requests in `target_window` against those of `window` outside it."""

    window: Window | None = None
    target: TargetKind = "slow"
    target_window: Window | None = None
    dimensions: tuple[str, ...] = ("remote_ip", "user_agent", "client", "repository", "route", "method", "instance")
    thresholds: Thresholds = field(default_factory=Thresholds)
    slow_s: float | None = None  # None: slower than the route's own slow_quantile over the window
    slow_quantile: float = 0.95
    top: int = 10
    min_target: int = 1
    layer: str | None = None


def _target_flag(t: ir.Table, p: BubbleUpParams) -> ir.BooleanValue:
    if p.target == "slow":
        if p.slow_s is not None:
            return t.duration_s >= p.slow_s
        return t.duration_s > t.duration_s.quantile(p.slow_quantile).over(ibis.window(group_by="route"))
    if p.target == "errors":
        return t.status >= 500
    if p.target == "window":
        if p.target_window is None:
            raise ParameterError("BubbleUp target 'window' needs target_window")
        return (t.ts >= ibis.literal(p.target_window.start)) & (t.ts < ibis.literal(p.target_window.end))
    raise ParameterError(f"BubbleUp target {p.target!r}: choose slow, errors or window")


def bubbleup(t: ir.Table, p: BubbleUpParams) -> pl.DataFrame:
    """Attribute values ranked by how much more of the target set than of the baseline they hold.

    Slow means slower than p.slow_s, or (by default) slower than the route's own p95 over the window, so
    uploads that are slow by nature do not crowd out everything else (an exact windowed quantile).

    Per dimension and value: target and baseline counts and shares, `lift` = target share − baseline share
    (in points of share) and `ratio` = target share / baseline share. Ordered by lift, dimension, value.
    """
    t = _scope(t, p.window, p.layer)
    t = t.mutate(in_target=_target_flag(t, p).fill_null(False).cast("int64"))
    parts = []
    for d in p.dimensions:
        g = t.group_by(value=t[d].cast("string").fill_null("(none)")).aggregate(
            target=t.in_target.sum(), baseline=(1 - t.in_target).sum())
        parts.append(g.mutate(dimension=ibis.literal(d)))
    u = ibis.union(*parts) if len(parts) > 1 else parts[0]
    tot = t.aggregate(n_target=t.in_target.sum(), n_baseline=(1 - t.in_target).sum())
    u = u.cross_join(tot)
    u = u.mutate(
        target_share=ibis.cases((u.n_target > 0, u.target / u.n_target), else_=0.0),
        baseline_share=ibis.cases((u.n_baseline > 0, u.baseline / u.n_baseline), else_=0.0),
    )
    u = u.mutate(lift=u.target_share - u.baseline_share)
    u = u.filter(u.target >= p.min_target)
    w = ibis.window(group_by="dimension", order_by=[ibis.desc("lift"), "value"])
    u = u.mutate(rank=ibis.row_number().over(w) + 1).filter(lambda r: r["rank"] <= p.top)
    df = frame(u.select("dimension", "rank", "value", "target", "baseline", "target_share", "baseline_share", "lift")
               .order_by([ibis.desc("lift"), "dimension", "value"]))
    return df.with_columns(ratio=pl.when(pl.col("baseline_share") > 0)
                           .then(pl.col("target_share") / pl.col("baseline_share")))


def bubbleup_chart(bu: pl.DataFrame, top: int = 15) -> alt.Chart:
    df = bu.head(top).with_columns(label=pl.col("dimension") + "=" + pl.col("value"))
    long = df.unpivot(index="label", on=["target_share", "baseline_share"], variable_name="set", value_name="share")
    return alt.Chart(long).mark_bar().encode(
        y=alt.Y("label:N", sort=df["label"].to_list(), title=None), x=alt.X("share:Q", axis=alt.Axis(format="%")),
        yOffset="set:N", color="set:N", tooltip=["label", "set", alt.Tooltip("share:Q", format=".1%")],
    ).properties(title="Over-represented in the target set", width=500)


@dataclass(frozen=True)
class DominanceParams:
    window: Window | None = None
    dimension: str = "remote_ip"
    bucket: str = "1m"
    min_share: float = 0.2  # a value holding this share of a bucket's requests …
    factor: float = 5.0  # … and this many times its median share over the window dominates the bucket
    merge_gap_buckets: int = 2
    min_buckets: int = 3
    layer: str | None = None


def dominance_windows(t: ir.Table, p: DominanceParams) -> pl.DataFrame:
    """Windows in which one value of `dimension` (an IP, a User-Agent) takes a dominating share of requests.

    Columns: start, end, value, buckets, peak_share, median_share, requests (of that value in the window).
    """
    t = _scope(t, p.window, p.layer)
    t = t.mutate(bucket=bucket(t.ts, p.bucket), value=t[p.dimension].cast("string").fill_null("(none)"))
    g = t.group_by(["bucket", "value"]).aggregate(n=t.count())
    g = g.mutate(total=g.n.sum().over(ibis.window(group_by="bucket")))
    g = g.mutate(share=g.n / g.total)
    rk = ibis.window(group_by="bucket", order_by=[ibis.desc("n"), "value"])
    top = g.mutate(r=ibis.row_number().over(rk)).filter(lambda x: x.r == 0)
    per = frame(top.select("bucket", "value", "n", "share").order_by("bucket"))
    empty = pl.DataFrame(schema={"start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"),
                                 "value": pl.String, "buckets": pl.Int64, "peak_share": pl.Float64,
                                 "median_share": pl.Float64, "requests": pl.Int64})
    if per.height < 2 * p.min_buckets:
        return empty
    values = per.filter(pl.col("share") >= p.min_share)["value"].unique().to_list()
    if not values:
        return empty
    counts = frame(g.filter(g.value.isin(values)).select("bucket", "value", "share"))
    grid = per.select("bucket").join(pl.DataFrame({"value": values}), how="cross")
    med = (grid.join(counts, on=["bucket", "value"], how="left").with_columns(pl.col("share").fill_null(0.0))
           .group_by("value").agg(median_share=pl.col("share").median()))
    hit = per.join(med, on="value").filter(
        (pl.col("share") >= p.min_share) & (pl.col("share") >= p.factor * pl.col("median_share"))).sort("bucket")
    if hit.is_empty():
        return empty
    step = bucket_seconds(p.bucket)
    gap = ((pl.col("bucket").diff().dt.total_seconds() > step * (p.merge_gap_buckets + 1))
           | (pl.col("value") != pl.col("value").shift())).fill_null(False)
    runs = hit.with_columns(run=gap.cum_sum()).group_by("run").agg(
        start=pl.col("bucket").min(), end=pl.col("bucket").max() + pl.duration(seconds=step),
        value=pl.col("value").first(), buckets=pl.len().cast(pl.Int64), peak_share=pl.col("share").max(),
        median_share=pl.col("median_share").first(), requests=pl.col("n").sum().cast(pl.Int64),
    ).filter(pl.col("buckets") >= p.min_buckets)
    return runs.select(empty.columns).sort("start", "value")
