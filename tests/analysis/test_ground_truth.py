"""Every analysis recovers what each generator scenario injected, as its ground_truth.json says.

Tolerance for window boundaries: one bucket (60 s) at either end.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from workbench.analysis import correlation, latency, talkers, timeline, weekly
from workbench.analysis.params import Window, case_window

from .truth import expectations

TOL = dt.timedelta(seconds=60)


def _matches(found: pl.DataFrame, span) -> bool:
    return any(abs(r["start"] - span.start) <= TOL and abs(r["end"] - span.end) <= TOL
               for r in found.iter_rows(named=True))


def test_slow_windows_found(scenario_case):
    con, truth, name = scenario_case
    exp = expectations(truth)
    found = latency.anomalous_windows(con.table("requests"), latency.AnomalyParams(window=case_window(con)))
    for span in exp.slow:
        assert _matches(found, span), (name, span, found)
    # nothing flagged outside what was injected (a client flood slows storage too), nothing on a quiet case
    injected = exp.slow + exp.clients
    for r in found.iter_rows(named=True):
        assert any(r["start"] < s.end + TOL and r["end"] > s.start - TOL for s in injected), (name, r, injected)


def test_dominant_client_windows_found(scenario_case):
    con, truth, name = scenario_case
    exp = expectations(truth)
    for dim, want in (("remote_ip", exp.top_ip), ("user_agent", exp.top_user_agent)):
        found = talkers.dominance_windows(con.table("requests"),
                                          talkers.DominanceParams(window=case_window(con), dimension=dim))
        for span in exp.clients:
            assert _matches(found, span), (name, dim, span, found)
            assert set(found["value"]) == {want}
        assert found.height == len(exp.clients), (name, found)


def test_top_talker_is_the_abusive_client(scenario_case):
    con, truth, name = scenario_case
    exp = expectations(truth)
    if not exp.clients:  # no one stands out over the whole case
        tt = talkers.talker_table(con.table("requests"), talkers.TalkerParams(window=case_window(con), top=1))
        assert tt.filter(pl.col("dimension") == "remote_ip")["request_share"][0] < 0.02
        return
    span = exp.clients[0]
    tt = talkers.talker_table(con.table("requests"), talkers.TalkerParams(window=Window(span.start, span.end), top=5))
    top = {r["dimension"]: r["value"] for r in tt.filter(pl.col("rank") == 1).iter_rows(named=True)}
    assert top["remote_ip"] == exp.top_ip and top["user_agent"] == exp.top_user_agent
    bu = talkers.bubbleup(con.table("requests"), talkers.BubbleUpParams(
        window=case_window(con), target="window", target_window=Window(span.start, span.end)))
    first_ip = bu.filter(pl.col("dimension") == "remote_ip").row(0, named=True)
    assert first_ip["value"] == exp.top_ip and first_ip["lift"] > 0.2


def test_before_during_after_and_sufferers(scenario_case):
    con, truth, name = scenario_case
    exp = expectations(truth)
    if not exp.slow:
        pytest.skip(f"{name} injects no slow window")
    iv = Window(exp.slow[0].start, exp.slow[0].end)
    req = con.table("requests")
    # on the route the injection slows: the metadata lock holds cover under a third of a GC window, so they
    # move the manifests' tail a hundredfold and leave their median, and every other route, as it was
    bda = correlation.before_during_after(req.filter(req.route == "manifest"), iv)
    assert bda["phase"].to_list() == ["before", "during", "after"]
    during = bda.row(1, named=True)
    assert during["cohens_d"] > 0.8 and during["p99"] > 3 * bda.row(0, named=True)["p99"]
    assert abs(bda.row(2, named=True)["cohens_d"]) < 0.3  # it ended
    suf = correlation.sufferers(req, iv, by="route")
    assert suf.row(0, named=True)["route"] == "manifest" and suf.row(0, named=True)["p99_ratio"] > 3


def test_lagged_correlation_peaks_at_the_injected_window(scenario_case):
    con, truth, name = scenario_case
    exp = expectations(truth)
    if not exp.slow:
        pytest.skip(f"{name} injects no slow window")
    s = correlation.latency_series(con.table("requests"), case_window(con), route="manifest")
    span = exp.slow[0]
    driver = s.select("bucket", value=((pl.col("bucket") >= span.start) & (pl.col("bucket") < span.end)).cast(pl.Float64))
    lc = correlation.lagged_correlation(driver, s, max_lag=5)
    best = lc.sort(["r", "lag"], descending=[True, False]).row(0, named=True)
    assert best["lag"] == 0 and best["r"] > 0.8


def test_timeline_marks_the_slow_minutes(scenario_case):
    con, truth, name = scenario_case
    exp = expectations(truth)
    tl = timeline.timeline(con, timeline.TimelineParams(window=case_window(con)))
    marked = tl.filter((pl.col("source") == "requests") & (pl.col("severity") != "info"))
    if not exp.slow:  # nothing marked, or (a client flood slows storage for everyone) only the flood's minutes
        for ts in marked["ts"]:
            assert any(s.start - TOL <= ts and ts + dt.timedelta(minutes=1) <= s.end + TOL for s in exp.clients), \
                (name, ts, exp.clients)
        return
    span = exp.slow[0]
    assert abs(marked["ts"].min() - span.start) <= TOL
    assert abs(marked["ts"].max() + dt.timedelta(minutes=1) - span.end) <= TOL


def test_weekly_puts_the_incident_monday_in_its_cohort(scenario_case):
    con, truth, name = scenario_case
    req = con.table("requests")
    monday = weekly.latest_monday(req)
    assert monday is not None and monday.weekday() == 0
    wr = weekly.weekly_review(req, weekly.WeeklyParams(monday=monday))
    hours = wr.filter(pl.col("monday_per_day").is_not_null())["hour"].to_list()
    lo, hi = req.aggregate(lo=req.ts.min(), hi=req.ts.max()).to_pyarrow().to_pylist()[0].values()
    assert hours == list(range(lo.hour, hi.hour + 1))
    assert int(wr["monday_per_day"].sum()) == int(req.count().to_pyarrow().as_py())
