"""The same analyses, unchanged, on DuckDB and on Spark local[2] over the same Parquet: equal answers.

A case of about 500k requests over eight days (written straight into the canonical Parquet, as at scale it
would be), plus hand-made multi-table incidents for the evidence analyses. Counts and sums must be equal,
exact quantiles equal within 1e-9; the DuckDB run is repeated with the process in a non-UTC zone
(Asia/Kolkata) and Spark starts in that zone too: the answers do not move.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import os
import shutil
import time
from pathlib import Path

import polars as pl
import pytest

from workbench.analysis import correlation, domain, latency, locks, talkers, timeline, weekly
from workbench.analysis.params import Window, case_window
from workbench.engine import connect

ROOT = Path(__file__).resolve().parents[2]
ROWS = int(os.environ.get("WORKBENCH_SPARK_ROWS", "500000"))
UTC = dt.UTC

pytestmark = [pytest.mark.spark, pytest.mark.skipif(shutil.which("java") is None, reason="needs Java 17")]
pytest.importorskip("pyspark")


def _bench_build():
    spec = importlib.util.spec_from_file_location("bench_analysis", ROOT / "bench" / "analysis" / "__main__.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build


def _set_tz(zone: str) -> None:
    os.environ["TZ"] = zone
    time.tzset()


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    from tests.analysis.cases import make_case
    from tests.analysis.handmade import incident

    root = tmp_path_factory.mktemp("scale")
    _bench_build()(root / "big", ROWS, 8)
    hand = {k: make_case(root / f"hand-{k}", incident(k)) for k in ("locks", "throttle", "restart")}
    return root / "big", hand


def analyses_big(con) -> dict[str, pl.DataFrame]:
    t = con.table("requests")
    w = case_window(con)
    day = Window(w.start, w.start + dt.timedelta(hours=6))
    lp = latency.LatencyParams(window=day)
    out = {
        "percentiles": latency.percentile_table(t, lp).frame,
        "histogram": latency.histogram(t, lp),
        "manifest_slo": latency.manifest_slo(t, lp).frame,
        "manifest_slo_summary": latency.manifest_slo_summary(t, lp).frame,
        "error_rates": latency.error_rates(t, lp),
        "anomalous_windows": latency.anomalous_windows(t, latency.AnomalyParams(window=day)),
        "talkers": talkers.talker_table(t, talkers.TalkerParams(window=w)),
        "bubbleup": talkers.bubbleup(t, talkers.BubbleUpParams(window=day)),
        "dominance": talkers.dominance_windows(t, talkers.DominanceParams(window=day)),
    }
    monday = weekly.latest_monday(t)
    out["weekly"] = weekly.weekly_review(t, weekly.WeeklyParams(monday=monday, previous_mondays=1))
    return out


def analyses_evidence(con) -> dict[str, pl.DataFrame]:
    t = con.table("requests")
    w = case_window(con)
    intervals = correlation.incident_intervals(con, correlation.CorrelationParams(window=w))
    verdict = domain.failure_domain(con, domain.DomainParams(window=w))
    out = {
        "intervals": intervals,
        "latency_series": correlation.latency_series(t, w),
        "lock_wait_series": correlation.lock_wait_series(con, w),
        "lock_summary": locks.lock_summary(con, w),
        "lock_waits_per_bucket": locks.lock_waits_per_bucket(con, w),
        "slow_statements": locks.slow_statements(con, w),
        "blockers": locks.blockers(con, w),
        "backend_share": latency.backend_share(t, latency.LatencyParams(window=w)).frame,
        "timeline": timeline.timeline(con, timeline.TimelineParams(window=w)),
        "verdict": pl.DataFrame({"verdict": [verdict.verdict]}),
        "verdict_scores": verdict.scores,
        "verdict_evidence": verdict.evidence,
    }
    if intervals.height:
        first = intervals.row(0, named=True)
        iv = Window(first["start"], first["end"])
        out["before_during_after"] = correlation.before_during_after(t, iv)
        out["sufferers"] = correlation.sufferers(t, iv)
    return out


def _same(a: pl.DataFrame, b: pl.DataFrame, name: str) -> None:
    assert a.columns == b.columns, (name, a.columns, b.columns)
    assert a.height == b.height, (name, a.height, b.height)
    if a.height == 0:
        return
    floats = [c for c, d in a.schema.items() if d.is_float()]
    keys = [c for c in a.columns if c not in floats]
    a = a.sort(keys, nulls_last=True) if keys else a
    b = b.sort(keys, nulls_last=True) if keys else b
    for c in keys:
        left, right = a[c].to_list(), b[c].to_list()
        if a.schema[c] != b.schema[c] and isinstance(a.schema[c], pl.Datetime):
            right = [x.astimezone(UTC) if x is not None else None for x in right]
        assert left == right, (name, c, [(x, y) for x, y in zip(left, right) if x != y][:5])
    for c in floats:
        for x, y in zip(a[c].to_list(), b[c].to_list()):
            if x is None or y is None or (isinstance(x, float) and math.isnan(x)):
                assert (x is None or math.isnan(x)) == (y is None or math.isnan(y)), (name, c, x, y)
            else:
                assert abs(x - y) <= 1e-9 * max(1.0, abs(x), abs(y)), (name, c, x, y)


def test_every_analysis_gives_equal_answers_on_duckdb_and_spark(cases):
    big, hand = cases
    _set_tz("UTC")
    duck_big = analyses_big(connect(big))
    duck_hand = {k: analyses_evidence(connect(p)) for k, p in hand.items()}
    assert duck_big["percentiles"].height > 100 and duck_big["talkers"].height >= 20
    assert duck_hand["locks"]["verdict"]["verdict"][0] == "metadata_database"
    try:
        _set_tz("Asia/Kolkata")
        # DuckDB in a non-UTC process: unchanged
        for name, df in analyses_big(connect(big)).items():
            _same(duck_big[name], df, f"duckdb/tz:{name}")
        spark_big = analyses_big(connect(big, engine="pyspark"))
        for name, df in spark_big.items():
            _same(duck_big[name], df, f"spark:{name}")
        for kind, path in hand.items():
            for name, df in analyses_evidence(connect(path, engine="pyspark")).items():
                _same(duck_hand[kind][name], df, f"spark:{kind}:{name}")
    finally:
        _set_tz("UTC")
