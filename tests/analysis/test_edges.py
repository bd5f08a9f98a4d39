"""Edge cases on tiny hand-made cases: empty tables, one row, ties, windows, weekdays, the date filter."""

from __future__ import annotations

import datetime as dt

import ibis
import polars as pl
import pytest

from workbench.analysis import correlation, domain, latency, talkers, timeline, weekly
from workbench.analysis.params import Window, case_window, in_window, parse_time
from workbench.engine import connect
from workbench.errors import ParameterError, WorkbenchError

from .cases import make_case

UTC = dt.UTC
T = dt.datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # a Monday
W = Window(T, T + dt.timedelta(hours=1))


def _req(ts, **kw):
    return {"ts": ts, "layer": "registry", "method": "GET", "route": "manifest", "status": 200,
            "duration_s": 0.05, "remote_ip": "10.0.0.1", "repository": "a/b", **kw}


@pytest.fixture(scope="module")
def empty(tmp_path_factory):
    return connect(make_case(tmp_path_factory.mktemp("empty") / "case", {"requests": []}))


@pytest.fixture(scope="module")
def one(tmp_path_factory):
    return connect(make_case(tmp_path_factory.mktemp("one") / "case", {"requests": [_req(T + dt.timedelta(seconds=5))]}))


def test_every_analysis_on_an_empty_case(empty):
    r = empty.table("requests")
    assert case_window(empty) is None
    assert latency.percentile_table(r, latency.LatencyParams(window=W)).frame.is_empty()
    assert latency.histogram(r, latency.LatencyParams(window=W)).is_empty()
    assert latency.anomalous_windows(r, latency.AnomalyParams(window=W)).is_empty()
    assert latency.error_rates(r, latency.LatencyParams(window=W)).is_empty()
    assert talkers.talker_table(r, talkers.TalkerParams(window=W)).is_empty()
    assert talkers.bubbleup(r, talkers.BubbleUpParams(window=W)).is_empty()
    assert talkers.dominance_windows(r, talkers.DominanceParams(window=W)).is_empty()
    assert correlation.incident_intervals(empty, correlation.CorrelationParams(window=W)).is_empty()
    bda = correlation.before_during_after(r, W)
    assert bda["requests"].to_list() == [0, 0, 0]
    assert correlation.sufferers(r, W).is_empty()
    assert correlation.metric_shifts(empty, W).is_empty()
    assert timeline.timeline(empty, timeline.TimelineParams(window=W)).is_empty()
    assert weekly.latest_monday(r) is None
    from workbench.analysis import locks

    assert locks.lock_summary(empty, W).is_empty() and locks.blockers(empty, W).is_empty()
    assert locks.slow_statements(empty, W).is_empty() and locks.lock_waits_per_bucket(empty, W).is_empty()
    v = domain.failure_domain(empty, domain.DomainParams(window=W))
    assert v.verdict == "inconclusive" and v.tables == ()


def test_one_row(one):
    r = one.table("requests")
    w = case_window(one)
    assert w.start == T + dt.timedelta(seconds=5)
    pt = latency.percentile_table(r, latency.LatencyParams(window=w)).frame
    assert pt.height == 1 and pt["p50"][0] == pt["p999"][0] == pt["max"][0] == 0.05
    assert pt["bucket"][0] == T and pt["status_class"][0] == "2xx"
    h = latency.histogram(r, latency.LatencyParams(window=w))
    assert h["ecdf"].to_list() == [1.0] and h["ge_s"][0] <= 0.05 < h["le_s"][0]
    tt = talkers.talker_table(r, talkers.TalkerParams(window=w, dimensions=("remote_ip",)))
    assert tt.select("value", "requests", "request_share").rows() == [("10.0.0.1", 1, 1.0)]
    assert latency.anomalous_windows(r, latency.AnomalyParams(window=w)).is_empty()
    assert domain.failure_domain(one, domain.DomainParams(window=w)).verdict == "inconclusive"
    tl = timeline.timeline(one, timeline.TimelineParams(window=w))
    assert tl.height == 1 and tl["summary"][0].startswith("1 requests, 0 5xx")


def test_top_n_breaks_ties_by_value(tmp_path):
    rows = [_req(T + dt.timedelta(seconds=i), remote_ip=ip) for i, ip in enumerate(["10.0.0.9", "10.0.0.2", "10.0.0.5"] * 2)]
    con = connect(make_case(tmp_path / "case", {"requests": rows}))
    tt = talkers.talker_table(con.table("requests"), talkers.TalkerParams(window=W, dimensions=("remote_ip",), top=2))
    assert tt["value"].to_list() == ["10.0.0.2", "10.0.0.5"]


def test_window_is_utc_and_checked():
    with pytest.raises(ParameterError):
        Window(dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2))
    with pytest.raises(ParameterError):
        Window(T, T)
    cet = dt.timezone(dt.timedelta(hours=1))
    assert Window(dt.datetime(2026, 1, 1, 1, tzinfo=cet), T).start == dt.datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_time("2026-11-23T06:00:00") == T and parse_time("2026-11-23T07:00:00+01:00") == T


def test_window_filters_on_date_beside_ts(one):
    sql = str(ibis.to_sql(in_window(one.table("requests"), W)))
    assert '"date" >=' in sql and '"date" <=' in sql and '"ts" >=' in sql
    # a window ending at midnight does not read the next day's partition
    w = Window(T, dt.datetime(2026, 11, 24, tzinfo=UTC))
    assert "2026-11-24" not in str(ibis.to_sql(in_window(one.table("requests"), w)))


def test_weekdays_use_calendar_helpers(tmp_path):
    days = {"2026-11-09": 1, "2026-11-16": 2, "2026-11-23": 4, "2026-11-24": 8, "2026-11-27": 16,
            "2026-11-28": 32, "2026-11-22": 64}  # Mon, Mon, Mon (reviewed), Tue, Fri, Sat, Sun
    rows = [_req(dt.datetime.fromisoformat(d + "T09:30:00+00:00") + dt.timedelta(seconds=i))
            for d, n in days.items() for i in range(n)]
    con = connect(make_case(tmp_path / "case", {"requests": rows}))
    long = weekly.weekly_long(con.table("requests"), weekly.WeeklyParams(monday=dt.date(2026, 11, 23)))
    got = {r["cohort"]: (r["requests"], r["days"]) for r in long.iter_rows(named=True)}
    assert got == {"monday": (4, 1), "other_weekdays": (24, 2), "previous_mondays": (3, 2)}
    assert set(long["hour"]) == {9}
    with pytest.raises(ParameterError):
        weekly.WeeklyParams(monday=dt.date(2026, 11, 24))
    assert weekly.monday_of_week("2026-W48") == dt.date(2026, 11, 23)


def test_lock_waits_merge_into_intervals(tmp_path):
    locks = [{"ts": T + dt.timedelta(seconds=s), "event": "waiting", "wait_ms": 1000.0, "relation": "manifests"}
             for s in (10, 20, 30, 500)]
    events = [{"ts": T + dt.timedelta(minutes=5), "kind": "oom_kill", "instance": "registry-0"}]
    con = connect(make_case(tmp_path / "case", {"db_lock_waits": locks, "events": events}))
    iv = correlation.incident_intervals(con, correlation.CorrelationParams(window=W))
    assert iv.select("kind", "count").rows() == [("lock_wait", 3), ("oom_kill", 1), ("lock_wait", 1)]
    first = iv.row(0, named=True)
    assert first["start"] == T + dt.timedelta(seconds=9) and first["end"] == T + dt.timedelta(seconds=30)
    oom = iv.row(1, named=True)
    assert oom["end"] - oom["start"] == dt.timedelta(seconds=60)


def test_unknown_engine_and_missing_case(tmp_path, one):
    with pytest.raises(WorkbenchError):
        connect(tmp_path / "nowhere")
    case = make_case(tmp_path / "case", {"requests": []})
    with pytest.raises(WorkbenchError, match="engine 'spark' is not available"):
        connect(case, engine="spark")


def test_rank_by_is_checked(one):
    with pytest.raises(ParameterError):
        talkers.top_talkers(one.table("requests"), talkers.TalkerParams(rank_by="nope"), "remote_ip")


def test_push_throughput_uses_bytes_in(tmp_path):
    big = 400 * 1024 * 1024
    rows = [_req(T + dt.timedelta(seconds=1), route="blob_upload", method="PUT", status=201, bytes_in=big,
                 duration_s=big / 250e6),
            _req(T + dt.timedelta(seconds=2), route="blob_upload", method="PUT", status=201, bytes_in=big,
                 duration_s=big / 1000e6),
            _req(T + dt.timedelta(seconds=3), route="blob_upload", method="PUT", status=201, duration_s=1.0)]
    con = connect(make_case(tmp_path / "case", {"requests": rows}))
    res = latency.push_throughput(con.table("requests"), latency.LatencyParams(window=W))
    r = res.frame.row(0, named=True)
    assert r["requests"] == 2 and r["below"] == 1 and round(r["min_mb_s"]) == 250 and res.quantiles == "exact"
    assert "3 upload PUT/PATCH requests, 2 with bytes_in" in res.note


def test_backend_share_flags_bottleneck(tmp_path):
    rows = [_req(T + dt.timedelta(seconds=i), duration_s=1.0, storage_duration_s=0.9) for i in range(3)]
    con = connect(make_case(tmp_path / "case", {"requests": rows}))
    f = latency.backend_share(con.table("requests"), latency.LatencyParams(window=W)).frame
    assert f.row(0, named=True)["storage_share"] == pytest.approx(0.9) and f["backend_bottleneck"][0]
    assert pl.Series(f["upstream_share"]).is_null().all()


def test_lock_tables(tmp_path):
    from workbench.analysis import locks

    waits = [{"ts": T + dt.timedelta(seconds=s), "event": ev, "pid": pid, "wait_ms": w, "relation": "manifests",
              "lock_mode": "ShareLock", "fingerprint": "UPDATE manifests SET … WHERE id = $1"}
             for s, ev, pid, w in ((1, "waiting", 10, 1000.0), (3, "acquired", 10, 3000.0), (5, "waiting", 11, 1000.0),
                                   (9, "deadlock", 12, None))]
    snaps = [{"ts": T + dt.timedelta(seconds=2), "pid": p, "blocking_pids": b, "query": q, "state": "active"}
             for p, b, q in ((10, [7], "UPDATE manifests"), (11, [7], "UPDATE manifests"), (12, [10], "DELETE"),
                             (7, [], "VACUUM FULL manifests"))]
    con = connect(make_case(tmp_path / "case", {"db_lock_waits": waits, "db_lock_snapshots": snaps}))
    s = locks.lock_summary(con, W)
    assert s.select("event", "records", "pids").rows()[0] == ("waiting", 2, 2)
    assert s.filter(pl.col("event") == "acquired")["max_wait_ms"][0] == 3000.0
    b = locks.blockers(con, W)
    assert b.select("blocker", "waiters", "query").rows() == [(7, 2, "VACUUM FULL manifests"), (10, 1, "UPDATE manifests")]
    st = locks.slow_statements(con, W)
    assert st.row(0, named=True)["total_ms"] == 5000.0 and st["events"][0] == "acquired,deadlock,waiting"
    assert locks.lock_waits_per_bucket(con, W)["records"].sum() == 4
