"""Database locks: what waited on what and for how long, who blocked whom, and which statements were slow.

From `db_lock_waits` (PostgreSQL log records) and `db_lock_snapshots` (pg_locks / pg_stat_activity dumps).
The summaries run in the engine (ibis); wait quantiles are exact. The blocking graph (edges, trees, root
blockers, wait episodes) is computed from small frames — a snapshot has a few hundred rows — as plain Python
over the edges, which is what a blocking tree needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import altair as alt
import ibis
import polars as pl
import pyarrow as pa

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


def _frame(data: pl.DataFrame | pa.Table) -> pl.DataFrame:
    out = data if isinstance(data, pl.DataFrame) else pl.from_arrow(data)
    assert isinstance(out, pl.DataFrame)
    return out


def blocking_edges(snapshots: pl.DataFrame | pa.Table) -> pl.DataFrame:
    """One row per (snapshot ts, waiter, blocker) from `pg_blocking_pids`: ts, waiter, blocker."""
    df = _frame(snapshots)
    return (
        df.select("ts", pl.col("pid").alias("waiter"), pl.col("blocking_pids").alias("blocker"))
        .explode("blocker")
        .drop_nulls("blocker")
        .unique()
        .sort("ts", "waiter", "blocker")
    )


def _walk(edges: dict[int, list[int]], pid: int) -> tuple[list[int], bool]:
    """Chain from the root down to pid, following the lowest blocker; (chain, in_cycle)."""
    chain, seen = [pid], {pid}
    cur = pid
    for _ in range(10_000):
        nxt = edges.get(cur)
        if not nxt:
            return chain[::-1], False
        cur = min(nxt)
        if cur in seen:
            return chain[::-1], True
        seen.add(cur)
        chain.append(cur)
    return chain[::-1], True


def blocking_tree(snapshots: pl.DataFrame | pa.Table) -> pl.DataFrame:
    """Per snapshot, every pid in the blocking graph: ts, pid, blocked_by, root, depth (0 for a root), chain
    (pids from the root down to this one), in_cycle (a deadlock not yet broken). Roots block and wait on no one."""
    e = blocking_edges(snapshots)
    rows = []
    for (ts,), g in e.group_by(["ts"], maintain_order=True):
        edges: dict[int, list[int]] = {}
        for w, b in zip(g["waiter"].to_list(), g["blocker"].to_list(), strict=True):
            edges.setdefault(w, []).append(b)
        pids = sorted(set(edges) | {b for bs in edges.values() for b in bs})
        for pid in pids:
            chain, cyc = _walk(edges, pid)
            rows.append({"ts": ts, "pid": pid, "blocked_by": sorted(edges.get(pid, [])),
                         "root": None if cyc else chain[0], "depth": len(chain) - 1, "chain": chain,
                         "in_cycle": cyc})
    schema = {"ts": e.schema["ts"], "pid": pl.Int64, "blocked_by": pl.List(pl.Int64), "root": pl.Int64,
              "depth": pl.Int64, "chain": pl.List(pl.Int64), "in_cycle": pl.Boolean}
    return pl.DataFrame(rows, schema=schema).sort("ts", "depth", "pid")


def root_blockers(snapshots: pl.DataFrame | pa.Table) -> pl.DataFrame:
    """Each root blocker: root, first_seen, last_seen, snapshots (in how many it was a root), held_s (its
    transaction age at the last snapshot it blocked in, else last_seen - first_seen), waiters (every pid below it
    at any time), max_depth, and its application, state and query at the last snapshot. Longest holder first."""
    df = _frame(snapshots)
    tree = blocking_tree(df)
    if tree.is_empty():
        return pl.DataFrame(schema={"root": pl.Int64, "first_seen": df.schema.get("ts", pl.Datetime("us", "UTC")),
                                    "last_seen": df.schema.get("ts", pl.Datetime("us", "UTC")),
                                    "snapshots": pl.UInt32, "held_s": pl.Float64, "waiters": pl.List(pl.Int64),
                                    "max_depth": pl.Int64, "application": pl.Utf8, "state": pl.Utf8, "query": pl.Utf8})
    below = tree.filter(pl.col("root").is_not_null() & (pl.col("depth") > 0))
    agg = (
        below.group_by("root")
        .agg(pl.col("ts").min().alias("first_seen"), pl.col("ts").max().alias("last_seen"),
             pl.col("ts").n_unique().alias("snapshots"), pl.col("pid").unique().sort().alias("waiters"),
             pl.col("depth").max().alias("max_depth"))
    )
    info = (
        df.sort("ts", "line_no")
        .group_by("ts", "pid")
        .agg(pl.col("xact_age_s").max(), pl.col("application").first(), pl.col("state").first(),
             pl.col("query").first())
    )
    last = agg.join(info, left_on=["root", "last_seen"], right_on=["pid", "ts"], how="left")
    return (
        last.with_columns(
            pl.coalesce(pl.col("xact_age_s"),
                        (pl.col("last_seen") - pl.col("first_seen")).dt.total_microseconds() / 1e6).alias("held_s"))
        .select("root", "first_seen", "last_seen", "snapshots", "held_s", "waiters", "max_depth", "application",
                "state", "query")
        .sort(["held_s", "root"], descending=[True, False])
    )


@dataclass(frozen=True)
class WaitParams:
    """min_wait_ms: leave out waits shorter than this (the log only shows waits past deadlock_timeout anyway)."""

    min_wait_ms: float = 0.0


def who_waited_on_whom(lock_waits: pl.DataFrame | pa.Table, params: WaitParams = WaitParams()) -> pl.DataFrame:
    """From the server log: one row per wait episode (a pid's `still waiting` up to its outcome): waiter, holders
    (from the DETAIL), lock_mode, lock_type, lock_object, first_logged (UTC), wait_ms (the longest reported:
    the `acquired … after` time when there is one), outcome (acquired, deadlock, lock_timeout, still waiting),
    statement and its fingerprint."""
    df = _frame(lock_waits).sort("ts", "line_no")
    lock_rows = df.filter(pl.col("event").is_in(["waiting", "acquired", "deadlock", "lock_timeout"]))
    # an episode: a pid's rows from a `waiting` until the next outcome row
    ep = lock_rows.with_columns(
        pl.col("event").is_in(["acquired", "deadlock", "lock_timeout"]).shift(1, fill_value=True)
        .cum_sum().over("pid").alias("episode")
    )
    out = (
        ep.group_by("pid", "episode")
        .agg(
            pl.col("holders").filter(pl.col("event") == "waiting").first().alias("holders"),
            pl.col("lock_mode").drop_nulls().first(), pl.col("lock_type").drop_nulls().first(),
            pl.col("lock_object").drop_nulls().first(),
            pl.col("ts").min().alias("first_logged"), pl.col("wait_ms").max().alias("wait_ms"),
            pl.col("event").filter(pl.col("event") != "waiting").last().alias("outcome"),
            pl.col("statement").drop_nulls().first(), pl.col("fingerprint").drop_nulls().first(),
        )
        .filter(pl.col("lock_mode").is_not_null())
        .with_columns(pl.col("outcome").fill_null("still waiting"))
        .filter(pl.col("wait_ms").fill_null(0) >= params.min_wait_ms)
        .rename({"pid": "waiter"})
        .drop("episode")
        .sort("first_logged", "waiter")
    )
    return out


__all__ = ["blocking_edges", "blocking_tree", "root_blockers", "who_waited_on_whom", "WaitParams"]
