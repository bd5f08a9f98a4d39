"""Database locks: what waited on what, for how long, who blocked, and which statements were slow.

From `db_lock_waits` (PostgreSQL log records) and `db_lock_snapshots` (pg_locks / pg_stat_activity dumps).
Wait quantiles are exact.
"""

from __future__ import annotations

import altair as alt
import ibis
import polars as pl

from .params import Window, bucket, frame, in_window


def lock_summary(con: ibis.BaseBackend, window: Window | None) -> pl.DataFrame:
    """Per event, relation and lock mode: records, distinct pids, p50/p99/max wait (ms), first and last seen."""
    t = in_window(con.table("db_lock_waits"), window)
    t = t.mutate(relation=t.relation.fill_null("(unknown)"), lock_mode=t.lock_mode.fill_null("(unknown)"))
    g = t.group_by(["event", "relation", "lock_mode"]).aggregate(
        records=t.count(), pids=t.pid.nunique(), p50_wait_ms=t.wait_ms.quantile(0.5),
        p99_wait_ms=t.wait_ms.quantile(0.99), max_wait_ms=t.wait_ms.max(), first=t.ts.min(), last=t.ts.max())
    return frame(g.order_by([ibis.desc("records"), "event", "relation", "lock_mode"]))


def lock_waits_per_bucket(con: ibis.BaseBackend, window: Window | None, every: str = "1m") -> pl.DataFrame:
    t = in_window(con.table("db_lock_waits"), window)
    t = t.mutate(bucket=bucket(t.ts, every))
    return frame(t.group_by(["bucket", "event"]).aggregate(records=t.count(), max_wait_ms=t.wait_ms.max())
                 .order_by(["bucket", "event"]))


def lock_chart(per_bucket: pl.DataFrame) -> alt.Chart:
    return alt.Chart(per_bucket).mark_bar().encode(
        x=alt.X("bucket:T", title="time (UTC)"), y=alt.Y("records:Q", title="log records"), color="event:N",
        tooltip=["bucket:T", "event", "records", "max_wait_ms"],
    ).properties(title="Lock-wait records over time", width=600, height=200)


def slow_statements(con: ibis.BaseBackend, window: Window | None, top: int = 20) -> pl.DataFrame:
    """Statement fingerprints by total time in waits and slow statements, ties broken by fingerprint."""
    t = in_window(con.table("db_lock_waits"), window)
    t = t.mutate(fp=t.fingerprint.fill_null(t.statement.fill_null("(no statement)")))
    g = t.group_by("fp").aggregate(records=t.count(), total_ms=t.wait_ms.sum(), max_ms=t.wait_ms.max(),
                                   events=t.event.collect().unique().sort().join(","))
    g = g.order_by([ibis.desc("total_ms"), ibis.desc("records"), "fp"]).limit(top)
    return frame(g.rename(fingerprint="fp"))


def blockers(con: ibis.BaseBackend, window: Window | None, top: int = 20) -> pl.DataFrame:
    """From lock snapshots: pids that blocked others, how many snapshots and waiters, and their query."""
    t = in_window(con.table("db_lock_snapshots"), window)
    t = t.filter(t.blocking_pids.length() > 0)
    u = t.mutate(blocker=t.blocking_pids.unnest())
    g = u.group_by("blocker").aggregate(snapshots=u.ts.nunique(), waiters=u.pid.nunique(),
                                        first=u.ts.min(), last=u.ts.max())
    s = con.table("db_lock_snapshots")
    s = in_window(s, window)
    q = s.group_by(blocker=s.pid).aggregate(query=s.query.max(), state=s.state.max(), xact_age_s=s.xact_age_s.max())
    j = g.left_join(q, "blocker").select(g.blocker, g.snapshots, g.waiters, g.first, g.last, q.query, q.state,
                                           q.xact_age_s)
    return frame(j.order_by([ibis.desc("waiters"), ibis.desc("snapshots"), "blocker"]).limit(top))
