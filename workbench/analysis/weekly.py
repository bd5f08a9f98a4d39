"""Weekly review: the Monday under review against the other weekdays of its week and the previous Mondays,
hour by hour (UTC). Days come from ibis's calendar helpers (`day_of_week.index()`, Monday = 0 on every
engine), never from an engine's own weekday numbering. Quantiles are exact.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import altair as alt
import ibis
import ibis.expr.types as ir
import polars as pl

from ..errors import ParameterError
from .params import UTC, Window, frame, in_window

COHORTS = ("monday", "other_weekdays", "previous_mondays")


def monday_of_week(week: str) -> dt.date:
    """The Monday of an ISO week written YYYY-Www (2026-W48)."""
    try:
        year, w = week.upper().split("-W")
        return dt.date.fromisocalendar(int(year), int(w), 1)
    except ValueError:
        raise ParameterError(f"week {week!r}: write it like 2026-W48") from None


def monday_on_or_before(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def latest_monday(t: ir.Table) -> dt.date | None:
    """The last Monday that has requests."""
    d = t.filter(t.ts.day_of_week.index() == 0).aggregate(d=t.date.max()).to_pyarrow().to_pylist()[0]["d"]
    return d


@dataclass(frozen=True)
class WeeklyParams:
    monday: dt.date
    previous_mondays: int = 4
    layer: str | None = None
    route: str | None = None

    def __post_init__(self) -> None:
        if self.monday.weekday() != 0:
            raise ParameterError(f"{self.monday} is a {self.monday:%A}, not a Monday")


def weekly_hours(t: ir.Table, p: WeeklyParams) -> ir.Table:
    """Per cohort (monday, other_weekdays = Tue–Fri of its week, previous_mondays) and hour of day: requests
    per day, p50/p99 and 5xx rate."""
    first = p.monday - dt.timedelta(days=7 * p.previous_mondays)
    span = Window(dt.datetime.combine(first, dt.time(), UTC),
                  dt.datetime.combine(p.monday + dt.timedelta(days=5), dt.time(), UTC))
    t = in_window(t, span)
    if p.layer:
        t = t.filter(t.layer == p.layer)
    if p.route:
        t = t.filter(t.route == p.route)
    dow = t.ts.day_of_week.index()
    mon = ibis.literal(p.monday)
    cohort = ibis.cases(
        (t.date == mon, "monday"),
        ((dow == 0) & (t.date < mon), "previous_mondays"),
        ((dow >= 1) & (dow <= 4) & (t.date > mon), "other_weekdays"),
        else_=ibis.null("string"),
    )
    t = t.mutate(cohort=cohort, hour=t.ts.hour()).filter(lambda r: r.cohort.notnull())
    g = t.group_by(["cohort", "hour"]).aggregate(
        requests=t.count(), days=t.date.nunique(), p50=t.duration_s.quantile(0.5),
        p99=t.duration_s.quantile(0.99), e5xx=(t.status >= 500).cast("int64").sum())
    return g.mutate(per_day=g.requests / g.days, rate_5xx=g.e5xx / g.requests).order_by(["cohort", "hour"])


def weekly_review(t: ir.Table, p: WeeklyParams) -> pl.DataFrame:
    """Hour by hour: the Monday's requests/day, p99 and 5xx rate beside the other cohorts', with ratios."""
    long = frame(weekly_hours(t, p))
    hours = pl.DataFrame({"hour": list(range(24))}, schema={"hour": pl.Int32})
    out = hours
    for c in COHORTS:
        part = long.filter(pl.col("cohort") == c).select(
            pl.col("hour").cast(pl.Int32), *(pl.col(m).alias(f"{c}_{m}") for m in ("per_day", "p99", "rate_5xx")))
        out = out.join(part, on="hour", how="left")
    return out.with_columns(
        p99_vs_weekdays=pl.col("monday_p99") / pl.col("other_weekdays_p99"),
        p99_vs_mondays=pl.col("monday_p99") / pl.col("previous_mondays_p99"),
        volume_vs_weekdays=pl.col("monday_per_day") / pl.col("other_weekdays_per_day"),
    ).sort("hour")


def weekly_long(t: ir.Table, p: WeeklyParams) -> pl.DataFrame:
    return frame(weekly_hours(t, p))


def weekly_chart(long: pl.DataFrame, measure: str = "p99") -> alt.Chart:
    return alt.Chart(long).mark_line(point=True).encode(
        x=alt.X("hour:O", title="hour of day (UTC)"), y=alt.Y(f"{measure}:Q"), color=alt.Color("cohort:N"),
        tooltip=["cohort", "hour", "requests", "days", "p99", "rate_5xx"],
    ).properties(title=f"Monday against other days: {measure} by hour", width=600, height=250)
