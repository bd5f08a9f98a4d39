"""Overview of a case: what was ingested (the ledger), what time each table covers, load and errors per minute,
and why lines were rejected. Pure functions: a DuckDB connection from `Case(path).connect()` in, frames and
charts out.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import altair as alt
import duckdb
import polars as pl

from .. import schema
from ..errors import ParameterError

UTC = dt.UTC


def locate_case(case_path: str | os.PathLike) -> Path:
    """The case folder for a notebook's `case_path`: as given, or, when relative and missing where the notebook
    runs (JupyterLab starts kernels in `notebooks/`), the same relative path under a parent folder."""
    p = Path(case_path)
    if p.is_absolute() or (p / "case.duckdb").exists():
        return p.resolve()
    for parent in Path.cwd().resolve().parents:
        if (parent / p / "case.duckdb").exists():
            return (parent / p).resolve()
    return p.resolve()


def parse_time(value: str, name: str, tz: str = "UTC") -> dt.datetime | None:
    """An ISO time parameter ("" means unset); a time written without a zone is read in `tz`."""
    if not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ParameterError(f"{name}={value!r} is not an ISO time; write it like 2026-11-23T06:00:00Z") from None
    if t.tzinfo is None:
        from zoneinfo import ZoneInfo

        t = t.replace(tzinfo=ZoneInfo(tz))
    return t.astimezone(UTC)


def data_span(con: duckdb.DuckDBPyConnection) -> tuple[dt.datetime, dt.datetime] | None:
    """First and last timestamp over every timed table, or None for a case with no timed rows."""
    parts = " UNION ALL ".join(f'SELECT min(ts) AS lo, max(ts) AS hi FROM "{t}"' for t in schema.PARTITIONED)
    lo, hi = con.sql(f"SELECT min(lo), max(hi) FROM ({parts})").fetchall()[0]
    return (lo.astimezone(UTC), hi.astimezone(UTC)) if lo is not None else None


def window(con: duckdb.DuckDBPyConnection, start: str = "", end: str = "", tz: str = "UTC") -> tuple[dt.datetime, dt.datetime]:
    """The analysis window: the given start/end, each defaulting to the case's first/last timestamp."""
    s, e = parse_time(start, "start", tz), parse_time(end, "end", tz)
    if s is None or e is None:
        span = data_span(con)
        if span is None:
            now = dt.datetime(1970, 1, 1, tzinfo=UTC)
            span = (now, now)
        s = s or span[0]
        e = e or span[1] + dt.timedelta(microseconds=1)
    if e <= s:
        raise ParameterError(f"end ({e.isoformat()}) must be after start ({s.isoformat()})")
    return s, e


def ingest_ledger(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """One row per ingested file: format (with wrappers and compression), lines, rows, rejects, skipped, and
    whether the counts balance (lines = rows used + rejects + skipped). Sorted by file."""
    cols = {r[0] for r in con.sql("DESCRIBE manifest").fetchall()}
    if "source_file" not in cols:
        return pl.DataFrame(schema={"file": pl.String, "format": pl.String, "lines": pl.Int64, "rows": pl.Int64,
                                    "rejects": pl.Int64, "skipped": pl.Int64, "balanced": pl.Boolean})
    tbl = con.sql(
        """
        SELECT source_file AS file,
               concat_ws('/', nullif(compression, ''), nullif(wrappers, ''), format) AS format,
               lines, rows, rejects, skipped,
               coalesce(CAST(json_extract(summary, '$.balanced') AS BOOLEAN), rows + rejects + skipped = lines)
                   AS balanced
        FROM manifest ORDER BY source_file, sha256
        """
    ).to_arrow_table()
    return pl.from_arrow(tbl)


def table_spans(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Per canonical table: rows, first and last timestamp (UTC) and the minutes between them."""
    parts = []
    for t in schema.TABLES:
        if t in schema.PARTITIONED:
            parts.append(f"SELECT '{t}' AS \"table\", count(*) AS rows, min(ts) AS first_ts, max(ts) AS last_ts FROM \"{t}\"")
        else:
            parts.append(f"SELECT '{t}', count(*), NULL::TIMESTAMPTZ, NULL::TIMESTAMPTZ FROM \"{t}\"")
    sql = " UNION ALL ".join(parts)
    tbl = con.sql(
        f"SELECT *, round(epoch(last_ts - first_ts) / 60.0, 1) AS span_min FROM ({sql})"
    ).to_arrow_table()
    order = {t: i for i, t in enumerate(schema.TABLES)}
    return pl.from_arrow(tbl).sort(pl.col("table").replace_strict(order, return_dtype=pl.Int32))


def per_minute(con: duckdb.DuckDBPyConnection, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    """Requests and 5xx responses per minute and layer in [start, end). Minutes with no request are absent."""
    tbl = con.sql(
        """
        SELECT time_bucket(INTERVAL 1 minute, ts) AS minute, layer,
               count(*) AS requests, count(*) FILTER (WHERE status >= 500) AS errors_5xx
        FROM requests
        WHERE ts >= $start AND ts < $end AND date BETWEEN CAST($start AS DATE) AND CAST($end AS DATE)
        GROUP BY ALL ORDER BY minute, layer
        """,
        params={"start": start, "end": end},
    ).to_arrow_table()
    return pl.from_arrow(tbl)


def per_minute_chart(df: pl.DataFrame) -> alt.VConcatChart:
    """Two stacked line charts over UTC time: requests per minute and 5xx per minute, one line per layer."""
    data = df.with_columns(pl.col("minute").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    base = alt.Chart(data).encode(
        x=alt.X("minute:T", title="minute (UTC)", scale=alt.Scale(type="utc"),
                axis=alt.Axis(format="%H:%M")),
        color=alt.Color("layer:N", title="layer"),
    )
    reqs = base.mark_line().encode(y=alt.Y("requests:Q", title="requests / min")).properties(width=640, height=180)
    errs = base.mark_line(color="firebrick").encode(y=alt.Y("errors_5xx:Q", title="5xx / min")).properties(
        width=640, height=120)
    return alt.vconcat(reqs, errs).properties(title="Requests and 5xx responses per minute")


def peak(df: pl.DataFrame, column: str) -> tuple[str, int] | None:
    """(minute as ISO, count) of the busiest minute for `column`, summed over layers; earliest on a tie."""
    if df.is_empty():
        return None
    tot = df.group_by("minute").agg(pl.col(column).sum()).sort([column, "minute"], descending=[True, False])
    m, n = tot.row(0)
    return m.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"), int(n)


def top_reject_reasons(con: duckdb.DuckDBPyConnection, n: int = 10) -> pl.DataFrame:
    """The n most frequent reject reasons with their format, count, and the first file:line showing each."""
    tbl = con.sql(
        """
        SELECT reason, coalesce(format, '?') AS format, count(*) AS rejects,
               arg_min(source_file || ':' || line_no, (source_file, line_no)) AS first_seen
        FROM rejects GROUP BY ALL ORDER BY rejects DESC, reason, format LIMIT $n
        """,
        params={"n": n},
    ).to_arrow_table()
    return pl.from_arrow(tbl)


def summary_text(ledger: pl.DataFrame, spans: pl.DataFrame, minutes: pl.DataFrame,
                 start: dt.datetime, end: dt.datetime) -> str:
    """A one-paragraph impact statement: what the case holds and the worst minutes in the window."""
    fmt = "%Y-%m-%d %H:%M UTC"
    lines = int(ledger["lines"].sum()) if ledger.height else 0
    rejects = int(ledger["rejects"].sum()) if ledger.height else 0
    req = int(minutes["requests"].sum()) if minutes.height else 0
    err = int(minutes["errors_5xx"].sum()) if minutes.height else 0
    text = (f"The case holds {ledger.height} file(s), {lines:,} lines and {rejects:,} rejected line(s). "
            f"Between {start.strftime(fmt)} and {end.strftime(fmt)} there were {req:,} requests and "
            f"{err:,} 5xx responses ({(100.0 * err / req) if req else 0:.2f} %).")
    pr, pe = peak(minutes, "requests"), peak(minutes, "errors_5xx")
    if pr:
        text += f" Busiest minute: {pr[0]} with {pr[1]:,} requests."
    if pe and pe[1] > 0:
        text += f" Most 5xx in one minute: {pe[1]:,} at {pe[0]}."
    return text


def coverage_text(spans: pl.DataFrame) -> str:
    """One sentence per timed table that has rows: how many and from when to when (UTC)."""
    fmt = "%Y-%m-%d %H:%M:%S UTC"
    parts = [f"`{r['table']}`: {r['rows']:,} rows from {r['first_ts'].astimezone(UTC).strftime(fmt)} to "
             f"{r['last_ts'].astimezone(UTC).strftime(fmt)}"
             for r in spans.iter_rows(named=True) if r["rows"] and r["first_ts"] is not None]
    empty = [r["table"] for r in spans.iter_rows(named=True) if not r["rows"] and r["table"] != "rejects"]
    text = "Evidence coverage: " + ("; ".join(parts) if parts else "no timed rows") + "."
    if empty:
        text += " No rows in " + ", ".join(f"`{t}`" for t in empty) + "."
    return text
