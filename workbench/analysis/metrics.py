"""Questions over `metric_samples`: counter rates that survive restarts, histogram quantile estimates from
`_bucket` series, scrape gaps and `up == 0` spans per instance.

Each function takes a DuckDB connection on which the samples are a table or view (a case's connection has
`metric_samples`; pass `table=` for another relation) and a typed parameter object, runs one SQL statement
inside the engine and returns a small polars frame. Times are UTC; every session is pinned to UTC.

Counter semantics follow Prometheus: a drop in a counter is a reset (the process restarted), and the increase
across it is the new value (the counter started again from zero). Increases are summed per window and put in
the window of the later sample; nothing is extrapolated to the window edges (Prometheus' `increase()` does
extrapolate, so its numbers can be slightly larger). Quantile estimates are approximate, as
`histogram_quantile` is: linear interpolation inside the bucket that holds the rank.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb
import polars as pl

SERIES_KEY = "metric, labels, le, instance, job"


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"{name!r} is not a plain table or label name")
    return name


def _label_cols(by: tuple[str, ...]) -> str:
    return "".join(f", labels['{_ident(k)}'] AS \"{k}\"" for k in by)


def _time_filter(start: dt.datetime | None, end: dt.datetime | None) -> tuple[str, list]:
    sql, params = [], []
    if start is not None:
        sql.append("ts >= ?")
        params.append(start)
    if end is not None:
        sql.append("ts < ?")
        params.append(end)
    return (" AND " + " AND ".join(sql)) if sql else "", params


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> pl.DataFrame:
    con.execute("SET TimeZone = 'UTC'")
    out = pl.from_arrow(con.sql(sql, params=params or None).to_arrow_table())
    assert isinstance(out, pl.DataFrame)
    return out


def _increases_sql(table: str, metric_sql: str, window_s: float, where: str) -> str:
    """Per series and window: the reset-aware increase and the number of resets seen."""
    return f"""
        WITH s AS (
            SELECT *, value - lag(value) OVER w AS d, lag(value) OVER w AS prev
            FROM {table}
            WHERE {metric_sql} AND value IS NOT NULL AND NOT isnan(value) {where}
            WINDOW w AS (PARTITION BY {SERIES_KEY} ORDER BY ts)
        )
        SELECT *, time_bucket(to_microseconds(CAST({int(window_s * 1e6)} AS BIGINT)), ts) AS window_start,
               CASE WHEN prev IS NULL THEN NULL WHEN d < 0 THEN value ELSE d END AS inc,
               CASE WHEN d < 0 THEN 1 ELSE 0 END AS reset
        FROM s
    """


@dataclass(frozen=True)
class RateParams:
    """Per-second rate of a counter, per window, summed over every label not in `by`."""

    metric: str
    window_s: float = 60.0
    by: tuple[str, ...] = ()
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    by_instance: bool = True


def counter_rate(con: duckdb.DuckDBPyConnection, p: RateParams, table: str = "metric_samples") -> pl.DataFrame:
    """window_start, [instance,] by-labels…, increase, rate_per_s, resets, samples."""
    where, params = _time_filter(p.start, p.end)
    inst = "instance, " if p.by_instance else ""
    keys = ", ".join(f'"{k}"' for k in p.by)
    sql = f"""
        WITH i AS ({_increases_sql(_ident(table), "metric = ?", p.window_s, where)})
        SELECT window_start, {inst}{keys + ', ' if keys else ''}
               sum(inc) AS increase, sum(inc) / {float(p.window_s)} AS rate_per_s,
               CAST(sum(reset) AS BIGINT) AS resets, count(*) AS samples
        FROM (SELECT *{_label_cols(p.by)} FROM i)
        WHERE inc IS NOT NULL OR reset = 1
        GROUP BY ALL ORDER BY ALL
    """
    return _frame(con, sql, [p.metric, *params])


@dataclass(frozen=True)
class QuantileParams:
    """histogram_quantile over `<histogram>_bucket`, per window, summed over every label not in `by`.

    mode `increase` (the default) estimates from what was observed inside each window (like
    `histogram_quantile(q, sum by (…) (rate(x_bucket[w])))`); mode `cumulative` uses the bucket counters as
    scraped (everything observed since the process started), which is what a single scrape can give.
    """

    histogram: str
    quantiles: tuple[float, ...] = (0.5, 0.9, 0.99)
    window_s: float = 300.0
    by: tuple[str, ...] = ()
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    mode: str = "increase"
    by_instance: bool = False

    def __post_init__(self) -> None:
        if self.mode not in ("increase", "cumulative"):
            raise ValueError("mode must be 'increase' or 'cumulative'")
        if not all(0 <= q <= 1 for q in self.quantiles):
            raise ValueError("quantiles must lie in [0, 1]")


def histogram_quantiles(con: duckdb.DuckDBPyConnection, p: QuantileParams,
                        table: str = "metric_samples") -> pl.DataFrame:
    """window_start, [instance,] by-labels…, quantile, estimate, observations (approximate, as in Prometheus)."""
    where, params = _time_filter(p.start, p.end)
    name = p.histogram.removesuffix("_bucket") + "_bucket"
    keys = [*(["instance"] if p.by_instance else []), *(f'"{k}"' for k in p.by)]
    g = ", ".join(["window_start", *keys])
    if p.mode == "increase":
        src = _increases_sql(_ident(table), "metric = ? AND le IS NOT NULL", p.window_s, where)
        counts = f"SELECT *{_label_cols(p.by)} FROM ({src}) WHERE inc IS NOT NULL"
    else:
        counts = f"""
            SELECT *, value AS inc{_label_cols(p.by)},
                   time_bucket(to_microseconds(CAST({int(p.window_s * 1e6)} AS BIGINT)), ts) AS window_start
            FROM {_ident(table)} WHERE metric = ? AND le IS NOT NULL AND NOT isnan(value) {where}
            QUALIFY ts = max(ts) OVER (PARTITION BY {SERIES_KEY}, window_start)
        """
    qs = ", ".join(f"({float(q)})" for q in p.quantiles)
    sql = f"""
        WITH c AS ({counts}),
        b AS (SELECT {g}, le, sum(inc) AS n FROM c GROUP BY ALL),
        -- buckets are cumulative; resets and missing scrapes can break that, so enforce it as Prometheus does
        m AS (SELECT *, max(n) OVER (PARTITION BY {g} ORDER BY le ROWS UNBOUNDED PRECEDING) AS cum FROM b),
        t AS (SELECT {g}, max(cum) FILTER (WHERE isinf(le)) AS total FROM m GROUP BY ALL),
        r AS (
            SELECT m.*, t.total, q.q, q.q * t.total AS rnk,
                   lag(le) OVER w AS prev_le, coalesce(lag(cum) OVER w, 0) AS prev_cum
            FROM m JOIN t USING ({g}) CROSS JOIN (VALUES {qs}) q(q)
            WINDOW w AS (PARTITION BY {g}, q.q ORDER BY le)
        ),
        pick AS (
            SELECT * FROM r WHERE total > 0 AND cum >= rnk
            QUALIFY row_number() OVER (PARTITION BY {g}, q ORDER BY le) = 1
        )
        SELECT {g}, CAST(q AS DOUBLE) AS quantile,
               CASE WHEN isinf(le) THEN prev_le
                    WHEN prev_le IS NULL AND le <= 0 THEN le
                    WHEN cum = prev_cum THEN le
                    ELSE coalesce(prev_le, 0) + (le - coalesce(prev_le, 0)) * (rnk - prev_cum) / (cum - prev_cum)
               END AS estimate,
               total AS observations
        FROM pick
        ORDER BY ALL
    """
    return _frame(con, sql, [name, *params])


@dataclass(frozen=True)
class GapParams:
    """A scrape gap is a pause between consecutive scrapes of one instance longer than `factor` times the
    expected interval (given, or the instance's median interval)."""

    expected_interval_s: float | None = None
    factor: float = 2.0
    start: dt.datetime | None = None
    end: dt.datetime | None = None


def scrape_gaps(con: duckdb.DuckDBPyConnection, p: GapParams = GapParams(),
                table: str = "metric_samples") -> pl.DataFrame:
    """instance, job, gap_start, gap_end, gap_s, expected_s: one row per gap."""
    where, params = _time_filter(p.start, p.end)
    expected = "median_s" if p.expected_interval_s is None else str(float(p.expected_interval_s))
    sql = f"""
        WITH t AS (
            SELECT DISTINCT coalesce(instance, '') AS instance, coalesce(job, '') AS job, ts
            FROM {_ident(table)} WHERE TRUE {where}
        ), d AS (
            SELECT *, lag(ts) OVER (PARTITION BY instance, job ORDER BY ts) AS prev FROM t
        ), s AS (
            SELECT *, epoch(ts) - epoch(prev) AS step_s,
                   median(epoch(ts) - epoch(prev)) OVER (PARTITION BY instance, job) AS median_s
            FROM d WHERE prev IS NOT NULL
        )
        SELECT instance, job, prev AS gap_start, ts AS gap_end, step_s AS gap_s, CAST({expected} AS DOUBLE) AS expected_s
        FROM s WHERE step_s > {float(p.factor)} * {expected}
        ORDER BY instance, job, gap_start
    """
    return _frame(con, sql, params)


@dataclass(frozen=True)
class UpParams:
    metric: str = "up"
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)


def down_spans(con: duckdb.DuckDBPyConnection, p: UpParams = UpParams(),
               table: str = "metric_samples") -> pl.DataFrame:
    """instance, job, down_from (first up == 0 sample), down_until (first up == 1 after it; null while still
    down at the last sample), last_down (last 0 sample), down_s, samples, recovered."""
    where, params = _time_filter(p.start, p.end)
    for k, v in p.labels.items():
        where += f" AND labels['{_ident(k)}'] = ?"
        params.append(v)
    sql = f"""
        WITH u AS (
            SELECT coalesce(instance, '') AS instance, coalesce(job, '') AS job, ts, value = 0 AS down
            FROM {_ident(table)} WHERE metric = ? AND value IS NOT NULL AND NOT isnan(value) {where}
        ), g AS (
            SELECT *, sum(CASE WHEN NOT down THEN 1 ELSE 0 END) OVER (
                PARTITION BY instance, job ORDER BY ts ROWS UNBOUNDED PRECEDING) AS grp FROM u
        ), spans AS (
            SELECT instance, job, grp, min(ts) AS down_from, max(ts) AS last_down, count(*) AS samples
            FROM g WHERE down GROUP BY ALL
        )
        SELECT s.instance, s.job, s.down_from,
               (SELECT min(ts) FROM u WHERE u.instance = s.instance AND u.job = s.job AND NOT u.down
                AND u.ts > s.last_down) AS down_until,
               s.last_down, s.samples
        FROM spans s ORDER BY instance, job, down_from
    """
    df = _frame(con, sql, [p.metric, *params])
    return df.with_columns(
        recovered=pl.col("down_until").is_not_null(),
        down_s=(pl.coalesce("down_until", "last_down") - pl.col("down_from")).dt.total_microseconds() / 1e6,
    )


__all__ = ["RateParams", "counter_rate", "QuantileParams", "histogram_quantiles", "GapParams", "scrape_gaps",
           "UpParams", "down_spans"]
