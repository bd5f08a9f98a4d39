"""What every analysis shares: the time window, the thresholds, and how a window restricts a table.

A window always filters on `date` beside `ts`, so an engine reading the Hive-partitioned Parquet skips the
partitions outside it. Times are UTC; a naive datetime is refused rather than guessed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import ibis
import ibis.expr.types as ir
import polars as pl

from ..errors import ParameterError

UTC = dt.UTC
Quantiles = Literal["exact", "approximate", "none"]


def _utc(v: dt.datetime, name: str) -> dt.datetime:
    if not isinstance(v, dt.datetime):
        raise ParameterError(f"window {name} {v!r} is not a datetime")
    if v.tzinfo is None:
        raise ParameterError(f"window {name} {v.isoformat()} has no time zone; give it in UTC (…+00:00)")
    return v.astimezone(UTC)


def parse_time(text: str) -> dt.datetime:
    """An ISO time as UTC (`Z` or an offset; no zone means UTC)."""
    try:
        v = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ParameterError(f"{text!r} is not an ISO time; write it like 2026-11-23T06:00:00Z") from None
    return v if v.tzinfo else v.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    """A half-open UTC interval [start, end)."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _utc(self.start, "start"))
        object.__setattr__(self, "end", _utc(self.end, "end"))
        if self.end <= self.start:
            raise ParameterError(f"window end {self.end.isoformat()} is not after its start {self.start.isoformat()}")

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class Thresholds:
    """Service objectives: manifest GET/HEAD latency, large-layer push throughput, backend share of time."""

    manifest_slo_s: float = 0.2
    push_mb_s: float = 500.0
    backend_share: float = 0.8

    @classmethod
    def from_notebook(cls, manifest_slo_ms: float = 200, push_mb_s: float = 500, backend_share: float = 0.8):
        return cls(manifest_slo_s=manifest_slo_ms / 1000.0, push_mb_s=float(push_mb_s),
                   backend_share=float(backend_share))


def in_window(t: ir.Table, window: Window | None) -> ir.Table:
    """Rows of t with window.start <= ts < window.end, with the matching `date` filter for partition pruning."""
    if window is None:
        return t
    preds = [t.ts >= ibis.literal(window.start), t.ts < ibis.literal(window.end)]
    if "date" in t.columns:
        last = (window.end - dt.timedelta(microseconds=1)).date()
        preds += [t.date >= ibis.literal(window.start.date()), t.date <= ibis.literal(last)]
    return t.filter(*preds)


def as_utc(v: dt.datetime) -> dt.datetime:
    """A time an engine returned, in UTC: aware ones converted, naive ones (Spark's TIMESTAMP) read as UTC.

    Never `.astimezone()` on a naive value: Python would read it in the machine's zone.
    """
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


def case_window(con: ibis.BaseBackend, start: str = "", end: str = "", table: str = "requests") -> Window | None:
    """The notebook's window: given ends as ISO times, empty ends from the extent of `table` (None if empty)."""
    s = parse_time(start) if start else None
    e = parse_time(end) if end else None
    if s is None or e is None:
        t = con.table(table)
        lo, hi = t.aggregate(lo=t.ts.min(), hi=t.ts.max()).to_pyarrow().to_pylist()[0].values()
        if lo is None:
            return None
        s = s or as_utc(lo)
        e = e or (as_utc(hi) + dt.timedelta(seconds=1))
    return Window(s, e)


def bucket(ts: ir.TimestampValue, every: str) -> ir.TimestampValue:
    """Start of ts's bucket ('1m', '5m', '1h', '1d'), counted from the epoch in UTC, typed UTC.

    Epoch arithmetic rather than a calendar truncation: in UTC they agree, it compiles on every engine (ibis
    has no TimestampBucket rule for Spark), and DuckDB truncates a TIMESTAMPTZ through its calendar library,
    three times slower over a million rows.
    """
    step = bucket_seconds(every)
    return ((ts.epoch_seconds() // step) * step).as_timestamp("s").cast(ibis.dtype("timestamp('UTC')"))


def days(window: Window) -> list[Window]:
    """The window cut at UTC midnights: one piece per date partition it touches."""
    out, s = [], window.start
    while s < window.end:
        midnight = dt.datetime.combine(s.date() + dt.timedelta(days=1), dt.time(), UTC)
        out.append(Window(s, min(midnight, window.end)))
        s = midnight
    return out


def bucket_seconds(every: str) -> int:
    """'1m' -> 60; '5m', '1h', '1d' and so on."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        n, unit = int(every[:-1] or 1), every[-1]
    except (ValueError, IndexError):
        n, unit = 0, ""
    if unit not in units or n < 1:
        raise ParameterError(f"bucket {every!r}: write it like 1m, 5m, 1h or 1d")
    return n * units[unit]


def status_class(status: ir.IntegerValue) -> ir.StringValue:
    """'2xx', '4xx', '5xx', … ('0xx' for a client that went away before a status)."""
    return (status // 100).cast("string").concat("xx")


def frame(expr: ir.Table) -> pl.DataFrame:
    """Run an expression and bring its (small) result into polars, with timestamps in UTC."""
    df = expr.to_polars()
    fixes = [pl.col(c).dt.cast_time_unit("us").dt.replace_time_zone("UTC") for c, d in df.schema.items()
             if isinstance(d, pl.Datetime) and d.time_zone is None]
    fixes += [pl.col(c).dt.cast_time_unit("us").dt.convert_time_zone("UTC") for c, d in df.schema.items()
              if isinstance(d, pl.Datetime) and d.time_zone is not None]
    return df.with_columns(fixes) if fixes else df


def has_rows(t: ir.Table) -> bool:
    return bool(t.limit(1).count().to_pyarrow().as_py())
