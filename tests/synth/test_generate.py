"""The incident generator: same seed, same bytes; memory flat in the request count; the ground truth agrees with
the files; the files in formats the ingest already reads go in with no reject."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from workbench.case import Case
from workbench.errors import WorkbenchError
from workbench.ingest.pipeline import ingest
from workbench.synth import GCRun, Scenario, generate, preset
from workbench.synth.render import go_duration, rfc3339nano

SMALL = dict(requests=6_000, chunk_rows=2_000)


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    truth = generate(out, preset("demo", requests=12_000, chunk_rows=3_000,
                                 abuse=preset("demo").abuse.__class__(at_min=60, minutes=20, requests=4_000)))
    return out, truth


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    sc = preset("demo", **SMALL)
    generate(tmp_path / "a", sc)
    generate(tmp_path / "b", sc)
    a, b = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert a == b and len(a) > 100  # every file, scrapes included
    generate(tmp_path / "c", preset("demo", seed=8, **SMALL))
    c = _digests(tmp_path / "c")
    assert c["registry.json.log"] != a["registry.json.log"]


def test_chunk_size_does_not_change_the_traffic_model(tmp_path):
    """Lines come out time-ordered whatever the chunking (late completions are carried to the next chunk)."""
    generate(tmp_path / "x", preset("s3_throttle", requests=5_000, chunk_rows=700))
    for name, rx in (("nginx-access.log", r"\[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d) \+0000\]"),):
        stamps = [dt.datetime.strptime(m.group(1), "%d/%b/%Y:%H:%M:%S")
                  for m in map(re.compile(rx).search, (tmp_path / "x" / name).read_text().splitlines())]
        assert stamps == sorted(stamps)
    times = [json.loads(ln)["time"] for ln in (tmp_path / "x" / "registry.json.log").read_text().splitlines()
             if ln.startswith("{")]
    assert times == sorted(times, key=_utc)


def _utc(stamp: str) -> dt.datetime:
    """A Go RFC3339Nano UTC stamp, to the microsecond."""
    return dt.datetime.fromisoformat(stamp.rstrip("Z")[:26] + "+00:00")


def _peak_rss_mib(n: int, out: Path) -> float:
    code = ("import resource, sys; from workbench.synth import generate, preset; "
            f"generate(sys.argv[1], preset('monday_gc', requests={n}, chunk_rows=10_000, scrape_interval_s=300)); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    r = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, check=True, timeout=600,
                       cwd=Path(__file__).resolve().parents[2])
    return float(r.stdout.strip().splitlines()[-1])


def test_memory_does_not_grow_with_requests(tmp_path):
    small = _peak_rss_mib(40_000, tmp_path / "s")
    big = _peak_rss_mib(200_000, tmp_path / "b")
    assert (tmp_path / "b" / "nginx-access.log").stat().st_size > 4 * (tmp_path / "s" / "nginx-access.log").stat().st_size
    assert big - small < 60, (small, big)


def test_truth_agrees_with_the_files(demo):
    out, truth = demo
    ngx = (out / "nginx-access.log").read_text().splitlines()
    reg = (out / "registry.json.log").read_text().splitlines()
    c = truth["counts"]
    assert len(ngx) == c["requests"] == truth["files"]["nginx-access.log"]
    tt = truth["top_talker"]
    assert sum(1 for ln in ngx if ln.startswith(tt["ip"] + " ") and f'"{tt["user_agent"]}"' in ln) == tt["count"]
    assert tt["count"] == 4_000 + tt["retries"] and tt["retries"] > 0
    completions = [json.loads(ln) for ln in reg if ln.startswith("{") and '"response completed' in ln]
    assert len(completions) == c["registry_lines"]
    assert sum(1 for ln in ngx if '" 502 ' in ln) == c["nginx_502s"] > 0
    assert sum(1 for r in completions if r["http.response.status"] == 500) == c["registry_500s"]
    # the abusive client is the top talker in its window, in both logs
    ips = pl.Series([r["http.request.remoteaddr"] for r in completions])
    assert ips.value_counts(sort=True)[0, 0] == tt["ip"]
    # OOM: no registry line while it was down, start-up lines when it came back
    oom = truth["oom"]
    kill, back = (dt.datetime.fromisoformat(oom[k]) for k in ("time", "restart"))
    stamps = [_utc(r["time"]) for r in completions]
    assert not any(kill <= s < back for s in stamps)
    assert sum('"msg":"listening on [::]:5000"' in ln for ln in reg) == 1
    dmesg = (out / "dmesg.txt").read_text()
    assert f"Killed process {oom['pid']} (registry)" in dmesg
    # scrapes: none while down, counters start again after the restart
    scrapes = sorted((out / "metrics").glob("*.prom"))
    assert len(scrapes) == truth["metrics"]["scrapes"] == truth["files"]["metrics/"]
    times = [dt.datetime.strptime(p.name.split("-")[-1][:-5], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
             for p in scrapes]
    assert not any(kill <= t < back for t in times)
    after = next(p for p, t in zip(scrapes, times, strict=True) if t >= back)
    before = [p for p, t in zip(scrapes, times, strict=True) if t < kill][-1]

    def total(p: Path) -> int:
        return sum(int(float(ln.rsplit(" ", 1)[1])) for ln in p.read_text().splitlines()
                   if ln.startswith("registry_http_requests_total{"))
    assert total(after) < total(before) / 10
    assert "\nup " not in after.read_text()


def test_gc_and_postgres_evidence(demo):
    out, truth = demo
    gc, pg = truth["gc"], truth["postgres"]
    text = (out / gc["file"]).read_text()
    run = gc["runs"][0]
    assert f"{run['blobs_marked']} blobs marked, {run['blobs_deleted']} blobs and {run['manifests_deleted']} " \
           "manifests eligible for deletion" in text
    assert text.count("Deleting blob: ") == run["blobs_deleted"]
    log = next(out.glob("postgresql-*.log")).read_text()
    waits = re.findall(r"\[(\d+)\] registry@registry LOG:  process \1 still waiting for (\w+) on relation 16385", log)
    assert len(waits) == pg["lock_waits_logged"] > 0
    assert sorted({int(p) for p, _ in waits}) == pg["waiter_pids"]
    assert set(re.findall(r"Process holding the lock: (\d+)\.", log)) == {str(pg["holder_pid"])}
    assert log.count(" acquired ") == len(waits)
    assert " CET [" in log and "UTC" not in log
    first = re.search(r"^(\S+ \S+) CET \[\d+\] registry@registry LOG:  process", log, re.M).group(1)
    first_utc = dt.datetime.fromisoformat(first) - dt.timedelta(hours=1)
    g0 = dt.datetime.fromisoformat(run["start"]).replace(tzinfo=None)
    assert g0 <= first_utc < dt.datetime.fromisoformat(run["end"]).replace(tzinfo=None)
    snaps = (out / "pg_locks.csv").read_text().splitlines()
    assert snaps[0].startswith("snapshot_ts,pid,locktype,mode,granted,relation,blocking_pids")
    blocked = [ln for ln in snaps if f",{{{pg['holder_pid']}}}," in ln and ",f,manifests," in ln]
    assert blocked and all(int(ln.split(",")[1]) in pg["waiter_pids"] for ln in blocked)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_registry_log_ingests_with_no_reject(tmp_path, fmt):
    truth = generate(tmp_path / "raw", preset("demo", registry_format=fmt, **SMALL))
    name = "registry.json.log" if fmt == "json" else "registry.log"
    gc = truth["gc"]["file"]
    summary = ingest(tmp_path / "case", [tmp_path / "raw" / name, tmp_path / "raw" / gc, tmp_path / "raw" / "dmesg.txt",
                                         *sorted((tmp_path / "raw" / "metrics").glob("*.prom"))[:20]]).to_dict()
    assert summary["totals"]["rejects"] == 0
    assert all(f["error"] is None for f in summary["files"])
    con = Case(tmp_path / "case").connect()
    n, n500, slow = con.sql("SELECT count(*), count(*) FILTER (WHERE status = 500), max(duration_s) "
                            "FROM requests WHERE layer = 'registry'").fetchall()[0]
    assert n == truth["counts"]["registry_lines"] and n500 == truth["counts"]["registry_500s"]
    ev = dict(con.sql("SELECT kind, count(*) FROM events GROUP BY ALL").fetchall())
    assert ev.get("oom_kill") == 1 and ev.get("gc_run") == 1
    oom_ts = con.sql("SELECT ts FROM events WHERE kind = 'oom_kill'").fetchall()[0][0]
    assert abs((oom_ts - dt.datetime.fromisoformat(truth["oom"]["time"])).total_seconds()) < 1


def test_quiet_week_injects_nothing(tmp_path):
    truth = generate(tmp_path, preset("quiet_week", requests=20_000, scrape_interval_s=3600))
    assert truth["windows"] == [] and truth["failure_domain"] == "none" and truth["top_talker"] is None
    assert truth["counts"]["registry_500s"] == 0 and truth["counts"]["nginx_502s"] == 0
    assert truth["span"] == ["2026-11-16T00:00:00+00:00", "2026-11-23T00:00:00+00:00"]
    assert (tmp_path / "registry.log").exists()


@pytest.mark.parametrize("name,verdict", [("monday_gc", "metadata_database"), ("s3_throttle", "blob_storage"),
                                          ("abusive_client", "client"), ("proxy_502", "registry_process"),
                                          ("oom_restart", "registry_process")])
def test_each_preset_alone(tmp_path, name, verdict):
    truth = generate(tmp_path, preset(name, requests=30_000))
    assert truth["failure_domain"] == verdict and len(truth["windows"]) == 1
    c = truth["counts"]
    if name == "s3_throttle":
        th = truth["throttle"]
        assert th["slowdown_503s"] > 50 * max(1, th["registry_500s"])  # retried quietly: few surface
        assert th["registry_500s"] <= 15
    if name == "proxy_502":
        assert c["nginx_502s"] > 100 and c["registry_lines"] < c["requests"]
    if name == "monday_gc":
        assert c["lock_delayed"] > 0 and truth["postgres"]["waiter_pids"]


def test_throttle_gives_504s_the_registry_logs_as_200(tmp_path):
    truth = generate(tmp_path, preset("s3_throttle", requests=60_000,
                                      throttle=preset("s3_throttle").throttle.__class__(retries_per_action=1.4)))
    th = truth["throttle"]
    assert th["nginx_504s"] > 0 and th["nginx_504_registry_200"] > 0
    text = (tmp_path / "registry.json.log").read_text()
    assert "s3aws: SlowDown" in text


def test_go_formats():
    ns = pl.Series([850_000, 1_168_018, 111_900_179_248, 2_000_000_000, 3_605_000_000_000, 0, 999, 1_500])
    got = pl.DataFrame({"ns": ns}).select(go_duration(pl.col("ns")).alias("d"))["d"].to_list()
    assert got == ["850µs", "1.168018ms", "1m51.900179248s", "2s", "1h0m5s", "0s", "999ns", "1.5µs"]
    t = pl.DataFrame({"t": [1_795_847_378_412_004_795, 1_795_847_378_000_000_000]}).select(rfc3339nano(pl.col("t")).alias("s"))
    assert t["s"].to_list() == ["2026-11-28T06:29:38.412004795Z", "2026-11-28T06:29:38Z"]


def test_bad_scenarios_are_refused():
    with pytest.raises(WorkbenchError):
        Scenario(minutes=60, gc=GCRun(at_min=50, minutes=20))
    with pytest.raises(WorkbenchError):
        preset("nope")
    with pytest.raises(WorkbenchError):
        preset("demo", colour="blue")
