"""nginx and HAProxy access logs, captured from the real programs on loopback (see data/notes/proxy-capture)."""

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench import Case, ingest

FIXTURES = Path(__file__).resolve().parent.parent / "data" / "fixtures"

UTC = dt.UTC


def _ingest(tmp_path, fixtures, name, **kw):
    summary = ingest(tmp_path / "case", [fixtures / "proxy" / name], **kw).to_dict()
    f = summary["files"][0]
    assert f["balanced"], f
    return f, Case(tmp_path / "case").connect()


def _by_request_id(con):
    cols = ("layer", "method", "route", "repository", "reference", "status", "duration_s", "upstream_duration_s",
            "upstream_status", "bytes_out", "bytes_in", "client", "client_version", "remote_ip", "ts", "line_no")
    rows = con.sql(f"SELECT request_id, {', '.join(cols)} FROM requests").fetchall()
    return {r[0]: dict(zip(cols, r[1:], strict=True)) for r in rows}


def test_nginx_combined_with_timings(tmp_path, fixtures):
    f, con = _ingest(tmp_path, fixtures, "nginx-timed.log")
    assert f["format"] == "nginx-combined" and f["lines"] == 34 and f["rows"] == {"requests": 34}
    assert f["rejects"] == 0
    r = _by_request_id(con)
    put = r["7bf54de6498d115f95e8b500afff9202"]
    assert (put["layer"], put["method"], put["route"], put["repository"], put["reference"], put["status"]) == (
        "nginx", "PUT", "manifest", "library/app", "v1", 201)
    assert put["duration_s"] == pytest.approx(0.009) and put["upstream_duration_s"] == pytest.approx(0.008)
    assert put["bytes_in"] == 593 and put["client"] == "docker" and put["client_version"] == "24.0.7"
    assert put["ts"] == dt.datetime(2026, 11, 28, 12, 57, 32, tzinfo=UTC)
    # a dead upstream gives 502, a slow one 504 after proxy_read_timeout (1 s)
    assert r["3301a23b4b808efa7b0213d5cf2d6bd6"]["status"] == 502
    slow = r["b5dcf4a514b5a4bbea5dbf6fe35f3a93"]
    assert slow["status"] == 504 and slow["duration_s"] == pytest.approx(1.002)
    # retried across two upstreams: times are summed, statuses kept as logged
    pair = r["cfc6771bd5f4267477bd2ad18e284a5a"]
    assert pair["upstream_status"] == "502, 404" and pair["upstream_duration_s"] == pytest.approx(0.002)
    redirect = r["e0b93bc25bddc347ee00a90db9fde54d"]
    assert redirect["upstream_status"] == "502 : 404" and redirect["upstream_duration_s"] == pytest.approx(0.001)
    # the client gave up: 499, no upstream status
    gone = r["f2cf0a3c6986e167bac0470462be41fb"]
    assert gone["status"] == 499 and gone["upstream_status"] is None and gone["upstream_duration_s"] == pytest.approx(0.299)
    # TLS ClientHellos sent to the plain-HTTP port are requests with 400, not rejects
    tls = con.sql("SELECT status, method, path, route, upstream_duration_s, client FROM requests "
                  "WHERE method IS NULL ORDER BY line_no").fetchall()
    assert tls == [(400, None, None, "other", None, None)] * 5
    assert dict(con.sql("SELECT client, count(*) FROM requests GROUP BY 1").fetchall())["skopeo"] == 6
    assert r["055446ff6982c0ab8109882e20502c02"]["client"] == "kube-probe"


def test_nginx_plain_combined_and_json_agree(tmp_path, fixtures):
    ingest(tmp_path / "case", [fixtures / "proxy" / "nginx-combined.log", fixtures / "proxy" / "nginx-json.log"])
    con = Case(tmp_path / "case").connect()
    per_file = con.sql(
        "SELECT regexp_extract(source_file, '[^/]+$'), count(*), sum(status), count(DISTINCT route), "
        "sum(CASE WHEN route = 'blob' THEN 1 ELSE 0 END), min(ts), max(ts) FROM requests GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert per_file[0][1:] == per_file[1][1:]
    # the JSON log carries the timings the plain combined line lacks
    j = _by_request_id(con)
    assert j["cfc6771bd5f4267477bd2ad18e284a5a"]["upstream_duration_s"] == pytest.approx(0.002)
    assert j["daf393bb4d29414953347c15085736c1"]["status"] == 400
    assert j["daf393bb4d29414953347c15085736c1"]["method"] is None


def test_nginx_json_field_name_variants(tmp_path, fixtures):
    f, con = _ingest(tmp_path, fixtures, "nginx-json-variant.log")
    assert f["format"] == "nginx-json" and f["rows"] == {"requests": 7}
    rows = con.sql("SELECT ts, method, path, route, status, duration_s, upstream_duration_s, bytes_out, remote_ip, "
                   "client FROM requests ORDER BY line_no").fetchall()
    assert rows[0][4] == 404 and rows[0][6] == pytest.approx(0.001)  # "0.000 : 0.001"
    assert rows[1][1:5] == ("GET", "/v2/library/app/manifests/v1", "manifest", 404)
    assert rows[3][4:6] == (504, pytest.approx(1.002))
    assert rows[5][1:5] == (None, None, "other", 400)
    assert rows[6][4] == 499 and rows[6][9] == "curl"
    assert rows[0][0] == dt.datetime(2026, 11, 28, 12, 57, 50, tzinfo=UTC)


def test_nginx_broken_lines_are_rejected_with_reasons(tmp_path, fixtures):
    f, con = _ingest(tmp_path, fixtures, "nginx-broken.log")
    assert f["format"] == "nginx-combined"
    assert (f["lines"], f["rows"], f["rejects"], f["skipped"]) == (7, {"requests": 4}, 2, {"blank": 1})
    rej = con.sql("SELECT line_no, reason FROM rejects ORDER BY line_no").fetchall()
    assert rej == [(5, "not a combined access-log line"), (6, "unreadable [time_local] in an access-log line")]
    f2, _ = _ingest(tmp_path / "j", fixtures, "nginx-json-broken.log")
    assert (f2["format"], f2["rows"], f2["rejects"]) == ("nginx-json", {"requests": 2}, 1)


def test_haproxy_syslog_udp(tmp_path, fixtures):
    f, con = _ingest(tmp_path, fixtures, "haproxy-udp-rfc3164.log")
    assert f["format"] == "haproxy-http" and f["wrappers"] == []
    assert f["rows"] == {"requests": 12, "log_events": 6} and f["rejects"] == 0
    rows = con.sql("SELECT ts, method, route, repository, status, duration_s, upstream_duration_s, bytes_out, "
                   "client, error_detail, remote_ip FROM requests ORDER BY line_no").fetchall()
    blob = rows[2]
    assert blob[1:5] == ("GET", "blob", "library/app", 200) and blob[8] == "containerd"
    assert blob[5] == pytest.approx(0.004) and blob[6] == pytest.approx(0.004) and blob[7] == 389
    # completion time = request date 13:01:48.074 + Ta 4 ms
    assert blob[0] == dt.datetime(2026, 11, 28, 13, 1, 48, 78000, tzinfo=UTC)
    slow = rows[6]  # server timeout: Tr = -1 (never answered), 504
    assert slow[4] == 504 and slow[5] == pytest.approx(1.001) and slow[6] is None
    assert slow[9] == "termination state sH-- at be_slow/slow1"
    dead = rows[7]  # connection refused: Tc = Tr = -1, 503 after 3 retries
    assert dead[4] == 503 and dead[6] is None and dead[0] == dt.datetime(2026, 11, 28, 13, 1, 52, 137000, tzinfo=UTC)
    badreq = rows[9]  # TLS ClientHello on the plain-HTTP port
    assert badreq[1] is None and badreq[2] == "other" and badreq[4] == 400 and "PR--" in badreq[9]
    assert rows[8][2] == "catalog" and rows[8][8] is None  # frontend without header captures
    assert {r[10] for r in rows} == {"127.0.0.1"}
    ev = con.sql("SELECT level, kind, message FROM log_events ORDER BY line_no").fetchall()
    assert ev[0] == ("warning", "startup", "Proxy fe_registry stopped (cumulated conns: FE: 22, BE: 0).")


@pytest.mark.parametrize("name,n", [("haproxy-udp-hostname.log", 4), ("haproxy-udp-rfc5424.log", 16)])
def test_haproxy_behind_syslog_wrapper(tmp_path, fixtures, name, n):
    f, con = _ingest(tmp_path, fixtures, name)
    assert f["format"] == "haproxy-http" and f["wrappers"] == ["syslog"] and f["rows"]["requests"] == n
    podman = con.sql("SELECT client, route, status FROM requests WHERE client = 'podman'").fetchall()
    assert podman == [("podman", "tags", 200)]
    assert con.sql("SELECT instance FROM requests WHERE client = 'podman'").fetchall() == [("lab-lb-1",)]


def test_haproxy_cut_line_is_a_reject(tmp_path, fixtures):
    f, con = _ingest(tmp_path, fixtures, "haproxy-broken.log")
    assert (f["rows"], f["rejects"]) == ({"requests": 3}, 1)
    assert con.sql("SELECT line_no, reason FROM rejects").fetchall() == [
        (3, "HAProxy HTTP log line cut short or with fields out of shape")]


def test_format_detection_keeps_proxy_and_registry_apart(tmp_path, fixtures):
    summary = ingest(tmp_path / "case", [fixtures / "proxy", fixtures / "registry"]).to_dict()
    formats = {f["source_file"].rsplit("/", 1)[-1]: f["format"] for f in summary["files"]}
    assert formats["distribution-json.log"] == "registry-json"
    assert formats["nginx-json.log"] == "nginx-json" and formats["haproxy-udp-rfc5424.log"] == "haproxy-http"
    assert summary["totals"]["balanced"]


# Any text, and mutations of real lines, yield rows + rejects + skips that add up; a parser never raises.
_REAL = [ln for name in ("nginx-timed.log", "nginx-json.log", "haproxy-udp-rfc3164.log")
         for ln in (FIXTURES / "proxy" / name).read_text(errors="replace").splitlines()[:6]]


@pytest.mark.parametrize("fmt_name", ["nginx-combined", "nginx-json", "haproxy-http"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.one_of(st.text(max_size=200), st.sampled_from(_REAL),
                                st.builds(lambda s, i: s[:i], st.sampled_from(_REAL), st.integers(0, 300))),
                      max_size=12))
def test_proxy_parsers_account_for_every_line(fmt_name, lines):
    import pyarrow as pa

    from workbench.case import new_connection
    from workbench.ingest import derive
    from workbench.ingest.base import Context
    from workbench.ingest.catalog import get_format
    from workbench.ingest.wrappers import as_block

    lines = [ln.replace("\n", " ").replace("\r", " ") for ln in lines]
    con = new_connection()
    derive.install(con)
    block = as_block(pa.table({"line_no": pa.array(range(1, len(lines) + 1), pa.int64()),
                               "text": pa.array(lines, pa.string())}))
    res = get_format(fmt_name).parse(Context(con=con, source_file="x"), block, True)
    assert res.used_lines + res.n_rejects + sum(res.skipped.values()) + res.held_back == len(lines)
    assert sum(t.num_rows for t in res.tables.values()) == res.used_lines
