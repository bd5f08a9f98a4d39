"""The real registry stack's evidence, ingested, against what the lab knows from its own side of each request.

Assertions that need a format module that is not part of the package yet import it with `pytest.importorskip`,
so they run as soon as it is.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter

import pytest

from tests.lab import truth
from tests.lab.registry import CLIENTS

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def t(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def ip_case_sql() -> str:
    """SQL CASE mapping a remote_ip column to the lab's client names."""
    whens = " ".join(f"WHEN '{ip}' THEN '{name}'" for ip, name in truth.client_of_ip().items())
    return f"CASE remote_ip {whens} ELSE coalesce(remote_ip, '?') END"


def layer_counts(con, layer: str, instance: str | None = None) -> Counter:
    rows = con.sql(
        f"SELECT {ip_case_sql()} AS client, instance, status, count(*) FROM requests WHERE layer = ? "
        "GROUP BY ALL", params=[layer]).fetchall()
    return Counter({(c, i, s): n for c, i, s, n in rows if instance is None or i == instance})


# ---- the lab itself ---------------------------------------------------------------------------------------


def test_lab_played_its_script(registry_lab):
    run = registry_lab
    tl = run.timeline
    assert tl["elapsed_s"] < 120, "the lab must stay well under its time budget"
    scripted = [r for r in run.requests if r["expected"] is not None]
    wrong = [(r["op"], r["method"], r["path"], r["expected"], r["status"]) for r in scripted
             if r["status"] != r["expected"]]
    assert not wrong
    # five clients from five loopback addresses, two of them skopeo through the recording forwarder
    assert {r["src"] for r in run.requests} == {s for s, _, _ in CLIENTS.values()}
    by_via = Counter(r["via"] for r in run.requests)
    assert by_via["skopeo"] > 100 and by_via["curl"] > 100
    # skopeo probed TLS on the plain-HTTP port first: nginx answered those with 400
    probes = [r for r in run.requests if r["method"] == "-"]
    assert probes and {r["status"] for r in probes} == {400} and {r["client"] for r in probes} == {"ci", "puller"}
    # the outage gave only 502s, the read-only phases gave 405s on both instances
    out = tl["outages"][0]
    in_outage = [r for r in run.requests if r["op"] == "outage"]
    assert len(in_outage) == out["requests"] >= 5 and {r["status"] for r in in_outage} == {502}
    assert {r["instance"] for r in run.requests if r["status"] == 405} == {"json", "text"}
    # garbage collection removed exactly the blobs nothing referenced any more; the dry run removed none
    runs = {(g["instance"], g["dry_run"]): g for g in tl["gc_runs"]}
    assert set(runs) == {("json", True), ("json", False), ("text", False)}
    assert runs[("json", True)]["deleted_on_disk"] == []
    for inst in ("json", "text"):
        assert set(runs[(inst, False)]["deleted_on_disk"]) == truth.expected_garbage(run) | {truth.orphan(run, inst)}
    # every process the lab started is gone
    for e in tl["events"]:
        if "pid" in e:
            with pytest.raises(ProcessLookupError):
                os.kill(e["pid"], 0)


def test_nginx_wrote_one_line_per_request_the_lab_made(registry_lab):
    """The lab's record is the truth the nginx assertions use: check the raw logs against it, line by line."""
    from workbench.ingest.access import COMBINED_PY

    ip = truth.client_of_ip()
    for inst in ("json", "text"):
        want = Counter({k: v for k, v in truth.counts(registry_lab, "nginx").items() if k[1] == inst})
        combined, js = Counter(), Counter()
        text = (registry_lab.out / f"nginx-{inst}-access.log").read_text("utf-8", errors="replace")
        for line in text.splitlines():
            m = COMBINED_PY.match(line)
            assert m, line
            combined[(ip[m.group(1)], inst, int(m.group(6)))] += 1
        # nginx's escape=json leaves bytes >= 0x80 raw (TLS probes): read as UTF-8 with replacement
        text = (registry_lab.out / f"nginx-{inst}-access.json.log").read_text("utf-8", errors="replace")
        for line in text.splitlines():
            d = json.loads(line)
            js[(ip[d["remote_addr"]], inst, int(d["status"]))] += 1
        assert combined == want and js == want


# ---- ingest ledger ----------------------------------------------------------------------------------------


def _module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(f"workbench.ingest.{name}") is not None


EXPECTED_FORMAT = [  # (file name prefix, module that reads it, format names it may be read as)
    ("registry-json", "distribution", {"registry-json"}),
    ("registry-text", "distribution", {"registry-text"}),
    ("nginx-json-access.json", "nginx", {"nginx-json"}),
    ("nginx-text-access.json", "nginx", {"nginx-json"}),
    ("nginx-json-access.log", "nginx", {"nginx-combined", "nginx-timed"}),
    ("nginx-text-access.log", "nginx", {"nginx-combined", "nginx-timed"}),
    ("gc-", "gc", {"registry-gc"}),
    ("metrics-", "prometheus", {"prometheus-text"}),
]


def test_every_real_line_is_read_without_a_reject(lab_case, lab_con):
    _, files = lab_case
    checked = 0
    for name, fs in sorted(files.items()):
        prefix, module, fmts = next(e for e in EXPECTED_FORMAT if name.startswith(e[0]))
        if not _module(module):
            continue
        assert fs.status == "ingested", f"{name}: {fs.error}"
        assert fs.format in fmts, f"{name} read as {fs.format}"
        assert fs.balanced and fs.lines > 0
        if fs.rejects:
            bad = lab_con.sql("SELECT line_no, reason, raw FROM rejects WHERE source_file = ? ORDER BY line_no",
                              params=[fs.source_file]).fetchall()
            pytest.fail(f"{name}: {len(bad)} rejects on real lines, e.g. {bad[:5]}")
        assert sum(fs.rows.values()) > 0
        checked += 1
    assert checked >= 2


# ---- the registry's own logs ------------------------------------------------------------------------------


def test_registry_app_log_counts_per_client_and_status_match_the_lab(registry_lab, lab_con):
    assert layer_counts(lab_con, "registry") == truth.counts(registry_lab, "registry")


def test_readonly_405s_are_in_the_access_log_only(registry_lab, lab_con):
    lab = Counter((r["instance"], r["status"]) for r in truth.requests_seen(registry_lab, "registry-access"))
    logged = Counter({(i, s): n for i, s, n in lab_con.sql(
        "SELECT instance, status, count(*) FROM requests WHERE layer = 'registry-access' GROUP BY ALL").fetchall()})
    assert logged == lab
    assert lab[("json", 405)] >= 2 and lab[("text", 405)] >= 2
    assert lab_con.sql("SELECT count(*) FROM requests WHERE layer = 'registry' AND status = 405").fetchall()[0][0] == 0


def _top(con, layer: str, value: str, where: str = "true") -> list[tuple[str, int]]:
    return con.sql(
        f"SELECT {ip_case_sql()} AS client, {value} AS v FROM requests WHERE layer = ? AND {where} "
        "GROUP BY 1 ORDER BY v DESC, client", params=[layer]).fetchall()


def test_top_talkers_in_the_registry_log_are_the_labs(registry_lab, lab_con):
    by_req = truth.totals_by_client(registry_lab, "registry")
    # the registry logs a HEAD's `http.response.written` as the body it would have sent (a manifest HEAD 200
    # shows the manifest's size) although the client receives none: bytes are compared without HEADs
    by_bytes = truth.totals_by_client(registry_lab, "registry", "bytes_out", skip_head=True)
    assert truth.top(by_req)[0] == "kubelet" and truth.top(by_bytes)[0] == "puller"
    assert _top(lab_con, "registry", "count(*)")[0] == truth.top(by_req)
    bytes_rows = _top(lab_con, "registry", "sum(bytes_out)", "method <> 'HEAD'")
    assert bytes_rows[0] == truth.top(by_bytes)
    # the bytes each client received, as the registry logged them, are what the client counted
    got = dict(bytes_rows)
    assert got == by_bytes
    # the puller's bytes are the large image pulled three times plus the medium and small images
    images = registry_lab.timeline["images"]
    assert got["puller"] >= 3 * images["large"]["pull_bytes"] + images["medium"]["pull_bytes"]


def test_registry_log_is_silent_while_stopped_and_shows_the_restart(registry_lab, lab_con):
    out = registry_lab.timeline["outages"][0]
    start, end = t(out["start"]), t(out["end"])
    n = lab_con.sql("SELECT count(*) FROM requests WHERE layer = 'registry' AND instance = 'text' "
                    "AND ts > ? AND ts < ?", params=[start, end]).fetchall()[0][0]
    assert n == 0
    # the registry's own access log has whole seconds only
    n = lab_con.sql("SELECT count(*) FROM requests WHERE layer = 'registry-access' AND instance = 'text' "
                    "AND ts > ? AND ts < ?", params=[start + dt.timedelta(seconds=1), end - dt.timedelta(seconds=1)]
                    ).fetchall()[0][0]
    assert n == 0
    restart = lab_con.sql(
        "SELECT min(ts) FROM log_events WHERE instance = 'text' AND message LIKE 'listening on%' AND ts > ?",
        params=[end]).fetchall()[0][0]
    assert restart is not None and restart - end < dt.timedelta(seconds=5)


def test_registry_error_codes_match_what_the_lab_provoked(lab_con):
    codes = lab_con.sql(
        "SELECT instance, error_code, method, route, status, count(*) FROM requests WHERE layer = 'registry' "
        "AND remote_ip = '127.0.0.5' AND error_code IS NOT NULL GROUP BY ALL ORDER BY ALL").fetchall()
    per_instance = [  # what the docker client's mistakes provoked, on each registry
        ("BLOB_UNKNOWN", "GET", "blob", 404, 1),  # a blob digest of zeros
        ("BLOB_UNKNOWN", "HEAD", "blob", 404, 1),  # a blob in a repository that does not exist
        ("BLOB_UPLOAD_INVALID", "PATCH", "blob_upload", 404, 1),  # an upload id nobody started
        ("DIGEST_INVALID", "GET", "blob", 400, 1),  # sha256:not-a-digest
        ("DIGEST_INVALID", "PUT", "blob_upload", 400, 1),  # an upload finished with the wrong digest
        ("MANIFEST_INVALID", "PUT", "manifest", 400, 1),  # truncated JSON
        ("MANIFEST_UNKNOWN", "DELETE", "manifest", 404, 1),  # deleting a digest that was never pushed
        ("MANIFEST_UNKNOWN", "GET", "manifest", 404, 2),  # an unknown tag; the deleted manifest
    ]
    assert codes == [(inst, *row) for inst in ("json", "text") for row in per_instance]


# ---- nginx ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["access.log", "access.json.log"])
def test_nginx_counts_per_client_and_status_match_the_lab(registry_lab, lab_case, lab_con, suffix):
    pytest.importorskip("workbench.ingest.nginx")
    want = truth.counts(registry_lab, "nginx")
    for inst in ("json", "text"):
        fs = lab_case[1][f"nginx-{inst}-{suffix}"]
        rows = lab_con.sql(f"SELECT {ip_case_sql()}, instance, status, count(*) FROM requests "
                           "WHERE source_file = ? GROUP BY ALL", params=[fs.source_file]).fetchall()
        assert Counter({(c, inst, s): n for c, _, s, n in rows}) == Counter(
            {k: v for k, v in want.items() if k[1] == inst})


def test_nginx_top_talkers_and_502_window(registry_lab, lab_case, lab_con):
    pytest.importorskip("workbench.ingest.nginx")
    f = next(fs.source_file for n, fs in lab_case[1].items() if n == "nginx-text-access.json.log")
    # each request is in two nginx logs per instance (combined and JSON): count one format across instances
    files = [fs.source_file for n, fs in lab_case[1].items() if n.endswith("access.json.log")]
    for value, field in (("count(*)", None), ("sum(bytes_out)", "bytes_out")):
        got = lab_con.sql(f"SELECT {ip_case_sql()} AS client, {value} AS v FROM requests WHERE source_file IN "
                          "(SELECT unnest(?)) GROUP BY 1 ORDER BY v DESC, client", params=[files]).fetchall()
        want = truth.totals_by_client(registry_lab, "nginx", field)
        assert dict(got) == want and got[0] == truth.top(want)
    out = registry_lab.timeline["outages"][0]
    s502 = lab_con.sql("SELECT min(ts), max(ts), count(*) FROM requests WHERE source_file = ? AND status = 502",
                       params=[f]).fetchall()[0]
    assert s502[2] == out["requests"]
    # nginx logs whole seconds: the 502s fall inside the lab's stop window, widened by that resolution
    assert t(out["start"]) - dt.timedelta(seconds=1) <= s502[0] and s502[1] <= t(out["end"]) + dt.timedelta(seconds=1)


# ---- garbage collection -----------------------------------------------------------------------------------


def test_each_gc_run_and_its_deleted_blobs(registry_lab, lab_case, lab_con):
    pytest.importorskip("workbench.ingest.gc")
    expected = len(truth.expected_garbage(registry_lab)) + 1  # plus the orphan upload
    for run in registry_lab.timeline["gc_runs"]:
        rows = lab_con.sql("SELECT ts, deleted, detail FROM events WHERE kind = 'gc_run' AND source_file LIKE ?",
                           params=[f"%{run['file']}"]).fetchall()
        assert len(rows) == 1, run["file"]
        ts, deleted, detail = rows[0]
        # a dry run lists what a real run deletes; the real run deleted what vanished from the disk
        assert deleted == expected
        if not run["dry_run"]:
            assert deleted == len(run["deleted_on_disk"])
        assert json.loads(detail)["dry_run"] is run["dry_run"]
        assert t(run["start"]) - dt.timedelta(seconds=1) <= ts <= t(run["end"]) + dt.timedelta(seconds=1)


# ---- metrics ----------------------------------------------------------------------------------------------


def _bucket_bounds(buckets: list[tuple[float, float]], q: float) -> tuple[float, float, float]:
    """Prometheus histogram_quantile: (estimate, lower bound, upper bound of the bucket it falls in)."""
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le, prev_le, le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-12), prev_le, le
        prev_le, prev_c = le, c
    raise AssertionError("unreachable")


def test_scraped_histograms_agree_with_the_registry_log(registry_lab, lab_con):
    pytest.importorskip("workbench.ingest.prometheus")
    tl = registry_lab.timeline
    for inst, scrape in tl["quiet_scrape"].items():
        assert scrape["ok"]
        when = t(scrape["time"])
        started = max(t(e["time"]) for e in tl["events"] if e["kind"] == "registry_start" and e["instance"] == inst
                      and t(e["time"]) < when)
        for handler in ("manifest", "blob"):
            buckets = lab_con.sql(
                "SELECT le, sum(value) FROM metric_samples WHERE metric = 'registry_http_request_duration_seconds_bucket' "
                "AND instance = ? AND labels['handler'] = ? AND source_file LIKE ? GROUP BY le ORDER BY le",
                params=[inst, handler, f"%{scrape['file']}"]).fetchall()
            durations = [d for (d,) in lab_con.sql(
                "SELECT duration_s FROM requests WHERE layer = 'registry' AND instance = ? AND route = ? "
                "AND ts >= ? AND ts <= ? ORDER BY duration_s", params=[inst, handler, started, when]).fetchall()]
            # the histogram counted exactly the requests the log shows for that process up to the scrape
            assert buckets[-1][1] == len(durations) > 0, (inst, handler)
            for q in (0.5, 0.9, 0.99):
                est, lo, hi = _bucket_bounds(buckets, q)
                exact = durations[min(len(durations) - 1, int(q * len(durations)))]
                # the log's exact quantile lies in the bucket the histogram estimate comes from (or at its edge:
                # the two timings are taken at slightly different points of the same request)
                assert lo * 0.5 <= exact <= hi * 2, (inst, handler, q, exact, lo, hi, est)
