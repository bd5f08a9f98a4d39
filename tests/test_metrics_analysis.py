"""Counter rates across restarts, histogram quantiles, scrape gaps and up == 0 spans."""

import datetime as dt

import pytest

from workbench import Case, ingest
from workbench.analysis.metrics import (
    GapParams,
    QuantileParams,
    RateParams,
    UpParams,
    counter_rate,
    down_spans,
    histogram_quantiles,
    scrape_gaps,
)

UTC = dt.UTC


@pytest.fixture
def con(tmp_path, fixtures):
    p = fixtures / "prometheus"
    ingest(tmp_path / "case", [p / "scrapes-concat.prom"])
    return Case(tmp_path / "case").connect()


def test_rate_survives_a_restart(con):
    r = counter_rate(con, RateParams("registry_http_requests_total", window_s=15, by=("handler",), by_instance=False))
    rows = r.filter(r["handler"] == "manifest").select("window_start", "increase", "resets").rows()
    # 100 -> 160 is +60; 160 -> 20 is a restart, so +20, not -140
    assert rows == [(dt.datetime(2026, 11, 28, 6, 29, 15, tzinfo=UTC), 60.0, 0),
                    (dt.datetime(2026, 11, 28, 6, 29, 30, tzinfo=UTC), 20.0, 1)]
    assert r["rate_per_s"][0] == 4.0


def test_histogram_quantile_interpolates_inside_the_bucket(con):
    q = histogram_quantiles(con, QuantileParams("registry_http_request_duration_seconds", quantiles=(0.5, 0.9, 1.0),
                                                window_s=15))
    est = dict(q.select("quantile", "estimate").rows())
    # between the scrapes: 20 in (0, 0.1], 31 in (0.1, 0.5], 9 above: 60 observations
    assert q["observations"][0] == 60
    assert est[0.5] == pytest.approx(0.1 + 0.4 * (30 - 20) / 31)
    assert est[0.9] == pytest.approx(0.5)
    assert est[1.0] == pytest.approx(0.5)  # the +Inf bucket adds nothing: the top finite bound


def test_cumulative_mode_reads_each_scrape(con):
    q = histogram_quantiles(con, QuantileParams("registry_http_request_duration_seconds_bucket", quantiles=(0.5,),
                                                window_s=15, mode="cumulative"))
    assert q["observations"].to_list() == [100, 160]
    assert q["estimate"][0] == pytest.approx(0.1 * 50 / 90)


def test_up_zero_span(tmp_path, fixtures):
    ingest(tmp_path / "case", [fixtures / "prometheus" / "api-query-range.json"])
    spans = down_spans(Case(tmp_path / "case").connect(), UpParams())
    (row,) = spans.rows(named=True)
    assert row["instance"] == "registry-0:5001" and row["samples"] == 2 and row["recovered"]
    assert row["down_from"] == dt.datetime(2026, 11, 28, 6, 29, 30, tzinfo=UTC)
    assert row["down_until"] == dt.datetime(2026, 11, 28, 6, 30, tzinfo=UTC) and row["down_s"] == 30


def test_scrape_gap_per_instance(tmp_path):
    # bodies differ: the case skips a file whose content it already holds, whatever its name
    for i, stamp in enumerate(("20261128T060000Z", "20261128T060015Z", "20261128T060030Z", "20261128T060145Z")):
        (tmp_path / f"metrics-{stamp}.prom").write_text(f"# TYPE x gauge\nx {i}\n")
    ingest(tmp_path / "case", [tmp_path], instance="registry-0")
    gaps = scrape_gaps(Case(tmp_path / "case").connect(), GapParams())
    assert gaps.select("instance", "gap_start", "gap_s", "expected_s").rows() == [
        ("registry-0", dt.datetime(2026, 11, 28, 6, 0, 30, tzinfo=UTC), 75.0, 15.0)]


def test_parameters_are_checked():
    with pytest.raises(ValueError):
        QuantileParams("x", mode="median")
    with pytest.raises(ValueError):
        QuantileParams("x", quantiles=(1.5,))
