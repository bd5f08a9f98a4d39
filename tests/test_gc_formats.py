"""Garbage-collection runs into events, from real `registry garbage-collect` output."""

import datetime as dt
import json
import shutil

import pytest

from workbench import Case, ingest

UTC = dt.UTC
AT = dt.datetime(2026, 11, 28, 13, 0, tzinfo=UTC)


def _runs(tmp_path, *paths, at=AT):
    s = ingest(tmp_path / "case", list(paths), at=at).to_dict()
    con = Case(tmp_path / "case").connect()
    rows = con.sql("SELECT source_file, line_no, kind, ts, end_ts, marked, deleted, time_basis, detail FROM events "
                   "ORDER BY source_file, line_no").fetchall()
    return s, [dict(zip(("file", "line", "kind", "ts", "end", "marked", "deleted", "basis", "detail"), r, strict=True)) | {
        "detail": json.loads(r[8])} for r in rows]


def test_real_dry_run_and_real_run(tmp_path, fixtures):
    d = fixtures / "gc"
    s, runs = _runs(tmp_path, d / "gc-dry-run.txt", d / "gc.txt", d / "gc-untagged.txt", d / "gc-nothing.txt")
    assert all(f["format"] == "registry-gc" and f["balanced"] and f["rejects"] == 0 for f in s["files"])
    by = {r["file"].rsplit("/", 1)[1]: r for r in runs}
    dry, real, untagged, nothing = by["gc-dry-run.txt"], by["gc.txt"], by["gc-untagged.txt"], by["gc-nothing.txt"]
    assert (dry["marked"], dry["deleted"], dry["detail"]["dry_run"]) == (10, 3, True)
    assert dry["basis"] == "at" and dry["ts"] == AT
    # the real run deletes the 3 eligible blobs; its times are the logrus sweep lines
    assert (real["marked"], real["deleted"], real["detail"]["dry_run"], real["basis"]) == (10, 3, False, "log")
    assert real["ts"] == dt.datetime(2026, 11, 28, 12, 58, 51, 578175, tzinfo=UTC)
    assert real["end"] == dt.datetime(2026, 11, 28, 12, 58, 51, 579397, tzinfo=UTC)
    assert real["detail"]["repositories"] == ["library/app", "tools/base"]
    # --delete-untagged removes the old v1 manifest too
    assert (untagged["marked"], untagged["detail"]["manifests_eligible"], untagged["detail"]["manifests_deleted"]) == (7, 1, 1)
    assert nothing["deleted"] == 0 and nothing["detail"]["dry_run"] is None


def test_purge_lines_failed_run_and_rejects(tmp_path, fixtures):
    s, runs = _runs(tmp_path, fixtures / "gc" / "purge-and-broken.log")
    f = s["files"][0]
    assert f["balanced"] and f["rejects"] == 2 and f["rows"] == {"events": 3}
    purge, ok, failed = runs
    assert purge["kind"] == "upload_purge" and purge["deleted"] == 2 and purge["detail"]["errors"] == 1
    assert purge["ts"] == dt.datetime(2026, 11, 28, 6, 9, 8, 321004, tzinfo=UTC)
    assert ok["kind"] == "gc_run" and ok["line"] == 3 and ok["marked"] == 1
    assert failed["line"] == 9 and failed["detail"]["error"].startswith("failed to mark: s3aws: Path not found")
    con = Case(tmp_path / "case").connect()
    assert [r[0] for r in con.sql("SELECT line_no FROM rejects ORDER BY 1").fetchall()] == [6, 12]


def test_harbor_gc_job_log(tmp_path, fixtures):
    s, runs = _runs(tmp_path, fixtures / "gc" / "harbor-gc-job.log")
    f = s["files"][0]
    assert f["format"] == "harbor-gc" and f["balanced"] and f["rejects"] == 0
    (run,) = runs
    assert run["ts"] == dt.datetime(2026, 11, 28, 6, 0, 1, tzinfo=UTC)
    assert run["end"] == dt.datetime(2026, 11, 28, 6, 3, 43, tzinfo=UTC)
    assert run["deleted"] == 1 and run["detail"]["dry_run"] is False and run["detail"]["freed_mb"] == 34
    assert run["detail"]["outcome"] == "success"


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("skopeo") or not shutil.which("docker-registry"), reason="needs the lab packages")
def test_live_registry_garbage_collect_and_metrics(tmp_path):
    """The real registry, pushed to with skopeo, collected, and scraped: its runs, counts and quantiles."""
    from tests.lab.registry_lab import capture
    from workbench.analysis.metrics import QuantileParams, histogram_quantiles

    capture(tmp_path / "lab")
    s, runs = _runs(tmp_path, tmp_path / "lab" / "gc", tmp_path / "lab" / "prometheus")
    assert s["totals"]["balanced"] and s["totals"]["errors"] == 0
    fmts = {f["source_file"].rsplit("/", 1)[1]: f["format"] for f in s["files"]}
    assert fmts["registry-serve.log"] == "registry-text" and fmts["gc.txt"] == "registry-gc"
    by = {r["file"].rsplit("/", 1)[1]: r for r in runs if r["kind"] == "gc_run"}
    assert by["gc-dry-run.txt"]["detail"]["dry_run"] is True and by["gc-dry-run.txt"]["deleted"] == 3
    assert by["gc.txt"]["detail"]["blobs_deleted"] == 3 and by["gc.txt"]["basis"] == "log"
    assert by["gc-untagged.txt"]["detail"]["manifests_deleted"] == 1
    con = Case(tmp_path / "case").connect()
    q = histogram_quantiles(con, QuantileParams("registry_http_request_duration_seconds", quantiles=(0.5,),
                                                window_s=3600, by=("handler", "method"), mode="cumulative"))
    got = q.filter((q["handler"] == "manifest") & (q["method"] == "get"))
    assert got["observations"].max() == 20 and 0 < got["estimate"].max() <= 60
