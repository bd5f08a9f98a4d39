"""Host captures in the verdict and on the timeline: a saturated disk names the storage, a handshake pile-up
the proxy / TLS layer, a cache-miss storm adds to the metadata database; the same requests without the host
captures, or with captures that do not change, give no such verdict. The captures are written in the real
tools' shapes (hostcaps.py) and ingested through the pipeline."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from workbench.analysis.domain import DomainParams, failure_domain
from workbench.analysis.params import case_window
from workbench.analysis.timeline import TimelineParams, timeline
from workbench.engine import connect

from . import hostcaps
from .cases import host_case
from .handmade import T0, incident

DISK = ("iostat",)
TLS = ("curl_timings", "ss_tan", "nstat")
CACHE = ("redis_info", "redis_monitor")


def _case(tmp_path, kind: str, captures=(), busy: str = "incident", tables: tuple[str, ...] = ("requests",)):
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = incident(kind)
    files = [getattr(hostcaps, c)(tmp_path / f"{c}.txt", busy) for c in captures]
    return connect(host_case(tmp_path / "case", {t: data[t] for t in tables}, files))


def _verdict(con):
    return failure_domain(con, DomainParams(window=case_window(con)))


def _row(v, signal: str) -> dict:
    r = v.evidence.filter(pl.col("signal") == signal)
    assert r.height == 1, v.evidence
    return r.row(0, named=True)


def _score(v, domain: str) -> float:
    return v.scores.filter(pl.col("domain") == domain)["points"][0]


def test_saturated_disk_turns_the_verdict_to_storage(tmp_path):
    v = _verdict(_case(tmp_path, "disk", DISK))
    assert v.verdict == "blob_storage", (v.reason, v.evidence)
    spans = _row(v, "disk saturation spans (iostat)")
    assert spans["incident"] == pytest.approx(0.9) and spans["baseline"] == 0 and spans["points"] == 2
    util = _row(v, "disk %util with its queue (iostat)")
    assert util["incident"] > 97 and util["baseline"] < 5 and util["points"] == 1
    assert _score(v, "blob_storage") == 4  # storage share 1, %util 1, saturation 2
    assert v.incident.start == T0 + dt.timedelta(minutes=25) and v.incident.end == T0 + dt.timedelta(minutes=35)


@pytest.mark.parametrize(("captures", "points"), [(("curl_timings",), 2), (("ss_tan", "nstat"), 2), (TLS, 4)])
def test_handshake_pileup_turns_the_verdict_to_proxy_tls(tmp_path, captures, points):
    v = _verdict(_case(tmp_path, "tls", captures))
    assert v.verdict == "proxy_tls", (v.reason, v.evidence)
    assert _score(v, "proxy_tls") == points
    if "curl_timings" in captures:
        hs = _row(v, "TLS handshake time (curl appconnect − connect)")
        assert 0.8 < hs["incident"] < 1.6 and 0.0025 < hs["baseline"] < 0.0035 and hs["points"] == 2
    if "ss_tan" in captures:
        syn = _row(v, "SYN-RECV sockets (ss / netstat)")
        assert syn == {**syn, "incident": 30, "baseline": 0, "points": 1}
        over = _row(v, "listen queue overflows per minute (netstat -s / nstat)")
        drops = _row(v, "SYNs to LISTEN dropped per minute (netstat -s / nstat)")
        assert over["incident"] > 150 and over["baseline"] == 0 and over["points"] == 1
        assert drops["incident"] == over["incident"] and drops["points"] == 0  # the same full queue, counted once


@pytest.mark.parametrize("kind", ["disk", "tls"])
def test_the_same_requests_without_host_captures_are_no_verdict(tmp_path, kind):
    v = _verdict(_case(tmp_path, kind))
    assert v.verdict == "inconclusive", (v.reason, v.evidence)
    assert v.incident is not None  # the slow window is found; nothing says where it came from
    assert _score(v, "blob_storage") <= 1 and _score(v, "proxy_tls") == 0


def test_host_captures_that_do_not_change_do_not_move_the_verdict(tmp_path):
    """The disk, the handshakes, the accept queue and the cache all as busy before the incident as in it."""
    v = _verdict(_case(tmp_path, "disk", DISK + TLS + CACHE, busy="always"))
    assert v.verdict == "inconclusive", (v.reason, v.evidence)
    host = v.evidence.filter(pl.col("signal").str.contains("iostat|curl|ss / netstat|nstat|INFO|MONITOR"))
    assert host.height == 8 and host["points"].sum() == 0
    assert _row(v, "disk saturation spans (iostat)")["baseline"] > 0.99


def test_quiet_requests_with_a_busy_host_stay_inconclusive(tmp_path):
    v = _verdict(_case(tmp_path, "quiet", DISK + TLS + CACHE))
    assert v.verdict == "inconclusive" and v.incident is None and v.evidence.is_empty()


def test_a_client_flood_saturating_the_disk_is_not_blamed_on_storage(tmp_path):
    v = _verdict(_case(tmp_path, "flood", DISK))
    assert v.verdict == "client", (v.reason, v.evidence)
    assert v.evidence.filter(pl.col("domain") == "blob_storage")["points"].sum() == 0
    assert "client flood" in _row(v, "disk saturation spans (iostat)")["detail"]


def test_cache_miss_storm_adds_to_the_metadata_database(tmp_path):
    every = ("requests", "events", "db_lock_waits", "log_events", "metric_samples")
    without = _verdict(_case(tmp_path / "without", "locks", tables=every))
    v = _verdict(_case(tmp_path / "with", "locks", CACHE, tables=every))
    assert v.verdict == without.verdict == "metadata_database"
    assert _score(v, "metadata_database") == _score(without, "metadata_database") + 1
    mon = _row(v, "blob-descriptor cache misses per read (MONITOR: reads refilled)")
    info = _row(v, "redis keyspace miss ratio (INFO)")
    assert 0.6 < mon["incident"] < 0.8 and mon["baseline"] < 0.1 and mon["points"] == 1
    assert 0.6 < info["incident"] < 0.8 and info["baseline"] < 0.05 and info["points"] == 0  # one storm, one point
    alone = _verdict(_case(tmp_path / "alone", "locks", CACHE))
    assert alone.verdict == "inconclusive"  # slow manifests and a miss storm: thin without the database's own log


def test_timeline_shows_the_host_beside_request_latency(tmp_path):
    con = _case(tmp_path, "tls", DISK + TLS + CACHE)
    tl = timeline(con, TimelineParams(window=case_window(con)))
    marked = tl.filter(pl.col("severity") != "info")
    minutes = {k: sorted(int((t - T0).total_seconds() // 60) for t in g["ts"])
               for (k,), g in marked.group_by("kind")}
    assert minutes["requests"] == list(range(25, 35))
    assert minutes["tls_handshake"] == list(range(25, 35))  # probes every 30 s, stamped when they ran
    assert minutes["syn_recv"] == list(range(25, 35))
    assert minutes["cache_fill_ratio"] == list(range(25, 35))
    # iostat, nstat and INFO stamp a report at the end of the minute it covers
    for kind in ("disk_util", "listen_overflows", "syn_drops", "cache_miss_ratio"):
        assert minutes[kind] == list(range(26, 36)), kind
    assert minutes["disk_saturation"] == [26]  # the span event, 06:26 to 06:36
    host = tl.filter(pl.col("source") == "host")
    assert set(host["kind"]) == {"disk_util", "tls_handshake", "syn_recv", "listen_overflows", "syn_drops",
                                 "cache_miss_ratio", "cache_fill_ratio"}
    assert host.filter(pl.col("kind") == "tls_handshake").height == 60  # every minute, marked or not
    row = marked.filter(pl.col("kind") == "tls_handshake").row(0, named=True)
    assert row["severity"] == "slow" and row["value"] > 0.8 and "s (median 0.003)" in row["summary"]
