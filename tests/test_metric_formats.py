"""Prometheus scrapes and API answers into metric_samples."""

import datetime as dt
import math

from workbench import Case, ingest
from workbench.ingest.prometheus import time_from_name

UTC = dt.UTC


def _load(tmp_path, *paths, **kw):
    summary = ingest(tmp_path / "case", list(paths), **kw).to_dict()
    return summary, Case(tmp_path / "case").connect()


def test_real_registry_scrape_time_from_file_name(tmp_path, fixtures):
    s, con = _load(tmp_path, fixtures / "prometheus" / "metrics-20261128T125851Z.prom")
    f = s["files"][0]
    assert f["format"] == "prometheus-text" and f["balanced"] and f["rejects"] == 0
    assert "scrape time: the time in the file name" in f["notes"]
    assert f["skipped"] == {"metadata": 84}  # HELP and TYPE lines
    (ts, basis), = con.sql("SELECT DISTINCT ts, time_basis FROM metric_samples").fetchall()
    assert ts == dt.datetime(2026, 11, 28, 12, 58, 51, tzinfo=UTC) and basis == "filename"
    # the 20 manifest GETs of the capture, in the +Inf bucket, with le kept out of the labels
    v, le, labels = con.sql(
        "SELECT value, le, labels FROM metric_samples WHERE metric = 'registry_http_request_duration_seconds_bucket'"
        " AND labels['handler'] = 'manifest' AND labels['method'] = 'get' AND isinf(le)").fetchall()[0]
    assert v == 20 and math.isinf(le) and dict(labels) == {"handler": "manifest", "method": "get"}


def test_concatenated_scrapes_markers_rejects_and_own_timestamps(tmp_path, fixtures):
    s, con = _load(tmp_path, fixtures / "prometheus" / "scrapes-concat.prom")
    f = s["files"][0]
    assert f["balanced"] and f["lines"] == 27
    assert f["skipped"] == {"scrape_marker": 3, "metadata": 3, "blank": 1, "comment": 1}
    rej = con.sql("SELECT line_no, reason FROM rejects ORDER BY line_no").fetchall()
    assert [r[0] for r in rej] == [15, 24, 26, 27]
    assert "oops" in rej[0][1] and "banana" in rej[1][1] and "yesterday" in rej[2][1]
    times = con.sql("SELECT line_no, ts, time_basis, instance FROM metric_samples ORDER BY line_no").fetchall()
    by_line = {r[0]: r[1:] for r in times}
    assert by_line[4][:2] == (dt.datetime(2026, 11, 28, 6, 29, tzinfo=UTC), "capture")
    assert by_line[14][0] == dt.datetime(2026, 11, 28, 6, 29, 15, tzinfo=UTC)
    # text exposition timestamps are milliseconds; the instance label wins over nothing
    assert by_line[23] == (dt.datetime(2026, 11, 28, 6, 30, tzinfo=UTC), "sample", "explicit:5001")


def test_openmetrics_seconds_timestamps_exemplars_and_eof(tmp_path, fixtures):
    s, con = _load(tmp_path, fixtures / "prometheus" / "openmetrics-1795847378.txt")
    f = s["files"][0]
    assert f["format"] == "openmetrics" and f["balanced"]
    assert f["skipped"] == {"metadata": 5, "eof": 1}
    assert con.sql("SELECT line_no FROM rejects").fetchall() == [(15,)]
    rows = dict(con.sql("SELECT line_no, ts FROM metric_samples").fetchall())
    assert rows[3] == dt.datetime(2026, 11, 28, 6, 29, 38, tzinfo=UTC)  # exemplar cut off, file-name time
    assert rows[13] == dt.datetime(2026, 11, 28, 6, 29, 50, 250000, tzinfo=UTC)  # OpenMetrics: seconds


def test_api_json_matrix_vector_scalar_string_and_errors(tmp_path, fixtures):
    s, con = _load(tmp_path, fixtures / "prometheus" / "api-query-range.json", fixtures / "prometheus" / "api-answers.jsonl")
    rng, ans = s["files"]
    assert rng["format"] == ans["format"] == "prometheus-api-json"
    assert rng["balanced"] and rng["rows"] == {"metric_samples": 7} and rng["rejects"] == 0
    assert ans["balanced"] and ans["rejects"] == 3 and ans["skipped"] == {"empty_result": 1}
    up = con.sql("SELECT ts, value, instance, job FROM metric_samples WHERE metric = 'up' ORDER BY ts").fetchall()
    assert [r[1] for r in up] == [1, 1, 0, 0, 1] and up[0][2:] == ("registry-0:5001", "registry")
    assert up[0][0] == dt.datetime(2026, 11, 28, 6, 29, tzinfo=UTC)
    kinds = dict(con.sql("SELECT metric, count(*) FROM metric_samples WHERE source_file LIKE '%jsonl' GROUP BY 1").fetchall())
    assert kinds == {"api-answers": 2, "scalar": 1, "string": 1}
    rej = [r[0] for r in con.sql("SELECT line_no FROM rejects ORDER BY 1").fetchall()]
    assert rej == [5, 7, 8]


def test_time_from_name_forms():
    t = dt.datetime(2026, 11, 28, 6, 29, 38, tzinfo=UTC)
    assert time_from_name("metrics-20261128T062938Z.prom") == t
    assert time_from_name("/x/reg-2026-11-28T06:29:38Z.txt") == t
    assert time_from_name("reg-1795847378.txt") == t
    assert time_from_name("reg-1795847378000.txt") == t
    assert time_from_name("reg-20261128T072938+0100.prom") == t
    assert time_from_name("metrics.prom") is None


def test_at_then_mtime_when_nothing_else(tmp_path):
    p = tmp_path / "scrape.prom"
    p.write_text("# TYPE up gauge\nup 1\n")
    at = dt.datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
    s, con = _load(tmp_path, p, at=at)
    assert "scrape time: --at (the file carries no time)" in s["files"][0]["notes"]
    assert con.sql("SELECT ts, time_basis FROM metric_samples").fetchall() == [(at, "at")]
