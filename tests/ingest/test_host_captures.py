"""Host evidence: fixtures captured from the real tools, and fresh captures from them on this machine."""

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from workbench import Case, ingest

UTC = dt.timezone.utc


def _ingest(tmp_path, *paths, **kw):
    d = ingest(tmp_path / "case", list(paths), **kw).to_dict()
    assert d["totals"]["balanced"], d
    return d, Case(tmp_path / "case").connect()


def test_iostat_skips_since_boot_and_reads_both_column_sets(tmp_path, fixtures):
    d, con = _ingest(tmp_path, fixtures / "host" / "iostat-x-t.txt")
    f = d["files"][0]
    assert f["format"] == "iostat" and f["rejects"] == 0 and f["skipped"]["since_boot"] == 2
    rows = con.sql("SELECT DISTINCT ts FROM metric_samples").fetchall()
    assert rows == [(dt.datetime(2026, 11, 28, 13, 0, 38, tzinfo=UTC),)]  # second report only, `-t` stamp
    names = {r[0] for r in con.sql("SELECT metric FROM metric_samples").fetchall()}
    assert {"iostat_util_pct", "iostat_aqu_sz", "iostat_r_await_ms", "cpu_iowait_pct"} <= names


def test_old_sysstat_columns_map_to_the_same_names(tmp_path):
    old = tmp_path / "old-iostat.txt"
    old.write_text(
        "Linux 3.10.0-1160.el7.x86_64 (reg-1) \t11/23/2026 \t_x86_64_\t(8 CPU)\n\n"
        "11/23/2026 06:40:00 AM\navg-cpu:  %user   %nice %system %iowait  %steal   %idle\n"
        "           1.00    0.00    1.00    0.10    0.00   97.90\n\n"
        "Device:         rrqm/s   wrqm/s     r/s     w/s    rkB/s    wkB/s avgrq-sz avgqu-sz   await r_await w_await  svctm  %util\n"
        "sda               0.00     0.10    1.00    2.00    10.00    20.00    20.00     0.01    1.00    1.00    1.00   0.50   0.10\n\n"
        "11/23/2026 06:40:10 AM\navg-cpu:  %user   %nice %system %iowait  %steal   %idle\n"
        "           5.00    0.00    3.00   60.00    0.00   32.00\n\n"
        "Device:         rrqm/s   wrqm/s     r/s     w/s    rkB/s    wkB/s avgrq-sz avgqu-sz   await r_await w_await  svctm  %util\n"
        "sda               0.00     0.10  900.00    2.00 90000.00    20.00   200.00    25.00   30.00   31.00    1.00   1.10  99.50\n\n"
    )
    d, con = _ingest(tmp_path, old, tz="Europe/Berlin")
    got = dict(con.sql("SELECT metric, value FROM metric_samples WHERE labels['device'] = 'sda'").fetchall())
    assert got["iostat_aqu_sz"] == 25.0 and got["iostat_await_ms"] == 30.0 and got["iostat_util_pct"] == 99.5
    ts = con.sql("SELECT DISTINCT ts FROM metric_samples").fetchall()
    assert ts == [(dt.datetime(2026, 11, 23, 5, 40, 10, tzinfo=UTC),)]  # 06:40:10 CET


def test_saturation_span_becomes_an_event(tmp_path, fixtures):
    d, con = _ingest(tmp_path, fixtures / "host" / "iostat-saturated.txt")
    ev = con.sql("SELECT ts, end_ts, subject, value FROM events WHERE kind = 'disk_saturation'").fetchall()
    assert len(ev) == 1
    ts, end, dev, util = ev[0]
    assert dev == "vda" and util == 99.8
    assert ts == dt.datetime(2026, 11, 23, 6, 40, 10, tzinfo=UTC)
    assert end == dt.datetime(2026, 11, 23, 6, 40, 40, tzinfo=UTC)  # first unsaturated report


def test_vmstat_t_times_and_values(tmp_path, fixtures):
    d, con = _ingest(tmp_path, fixtures / "host" / "vmstat-t.txt")
    rows = con.sql("SELECT ts, value FROM metric_samples WHERE metric = 'vmstat_us' ORDER BY ts").fetchall()
    assert rows == [(dt.datetime(2026, 11, 28, 13, 0, 40, tzinfo=UTC), 49.0),
                    (dt.datetime(2026, 11, 28, 13, 0, 41, tzinfo=UTC), 48.0)]


def test_netstat_counters_and_nstat(tmp_path, fixtures):
    d, con = _ingest(tmp_path, fixtures / "host" / "netstat-s.txt", fixtures / "host" / "nstat.txt",
                     at=dt.datetime(2026, 11, 28, 13, 0, tzinfo=UTC))
    got = dict(con.sql("SELECT metric, value FROM metric_samples").fetchall())
    assert got["netstat_Tcp_ActiveOpens"] == 309 and got["netstat_Tcp_OutRsts"] == 33
    assert got["nstat_TcpActiveOpens"] == 309
    basis = {r[0] for r in con.sql("SELECT DISTINCT time_basis FROM metric_samples").fetchall()}
    assert basis == {"at"}


def test_redis_monitor_counts_cache_fills_after_misses(tmp_path):
    mon = tmp_path / "monitor.txt"
    mon.write_text(
        "OK\n"
        '1795870859.100000 [0 127.0.0.1:47316] "hget" "blobs::sha256:bbbb" "mediatype"\n'
        '1795870859.200000 [0 127.0.0.1:47316] "hset" "blobs::sha256:bbbb" "mediatype" "x"\n'
        '1795870859.300000 [0 127.0.0.1:47318] "sismember" "repository::library/app::blobs" "sha256:cccc"\n'
        '1795870859.400000 [0 127.0.0.1:47318] "sadd" "repository::library/app::blobs" "sha256:cccc"\n'
        '1795870859.500000 [0 127.0.0.1:47318] "hget" "blobs::sha256:dddd" "mediatype"\n'
        "garbage\n"
    )
    d, con = _ingest(tmp_path, mon)
    assert d["files"][0]["rejects"] == 1 and d["files"][0]["skipped"] == {"monitor_ok": 1}
    fills = dict(con.sql("SELECT labels['prefix'], sum(value) FROM metric_samples WHERE metric = 'redis_cache_fills' GROUP BY 1").fetchall())
    reads = dict(con.sql("SELECT labels['prefix'], sum(value) FROM metric_samples WHERE metric = 'redis_cache_reads' GROUP BY 1").fetchall())
    assert fills == {"blobs::*": 1, "repository::*::blobs": 1}
    assert reads == {"blobs::*": 2, "repository::*::blobs": 1}


def test_slowlog_plain_output(tmp_path, fixtures):
    d, con = _ingest(tmp_path, fixtures / "host" / "slowlog.txt")
    assert d["files"][0]["rejects"] == 0
    ev = con.sql("SELECT subject, value FROM events WHERE kind = 'redis_slowlog' ORDER BY detail").fetchall()
    assert ev == [("config set", 7e-06), ("get blobs::sha256:aaaa", 7e-06), ("info", 0.000103)]


def test_curl_handshake_time(tmp_path, fixtures):
    d, con = _ingest(tmp_path, fixtures / "host" / "curl.txt")
    hs = [r[0] for r in con.sql("SELECT value FROM metric_samples WHERE metric = 'tls_handshake_seconds' ORDER BY line_no").fetchall()]
    assert [round(x, 6) for x in hs] == [0.002982, 0.003189, 0.002684]


def test_looped_curl_and_nstat_captures_are_detected_with_their_date_lines(tmp_path, fixtures):
    """`while sleep 30; do date -Is; curl -w …; done` and `…; nstat -a; …`: half the lines are stamps."""
    curl = (fixtures / "host" / "curl.txt").read_text().splitlines()
    (tmp_path / "probe.txt").write_text("".join(f"2026-11-23T06:0{i}:00+00:00\n{ln}\n" for i, ln in enumerate(curl)))
    nstat = (fixtures / "host" / "nstat.txt").read_text()
    (tmp_path / "kernel.txt").write_text("2026-11-23T06:00:00+00:00\n" + nstat + "2026-11-23T06:01:00+00:00\n" + nstat)
    d, con = _ingest(tmp_path, tmp_path / "probe.txt", tmp_path / "kernel.txt")
    assert [f["format"] for f in d["files"]] == ["curl-timing", "nstat"] and all(f["rejects"] == 0 for f in d["files"])
    hs = con.sql("SELECT ts, round(value, 6) FROM metric_samples WHERE metric = 'tls_handshake_seconds' ORDER BY ts").fetchall()
    assert hs == [(dt.datetime(2026, 11, 23, 6, i, tzinfo=UTC), v) for i, v in enumerate([0.002982, 0.003189, 0.002684])]
    opens = con.sql("SELECT ts, value FROM metric_samples WHERE metric = 'nstat_TcpActiveOpens' ORDER BY ts").fetchall()
    assert opens == [(dt.datetime(2026, 11, 23, 6, 0, tzinfo=UTC), 309.0), (dt.datetime(2026, 11, 23, 6, 1, tzinfo=UTC), 309.0)]


def test_s_client_reconnect_resumption(tmp_path, fixtures):
    d, con = _ingest(tmp_path, fixtures / "host" / "s_client-reconnect.txt")
    reused = [r[0] for r in con.sql("SELECT value FROM metric_samples WHERE metric = 'tls_session_reused' ORDER BY line_no").fetchall()]
    assert reused[0] == 0.0 and all(v == 1.0 for v in reused[1:]) and len(reused) >= 2


# ---- fresh captures from the real tools, bounded in time, on loopback ------------------------------------

def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.skipif(not shutil.which("iostat") or not shutil.which("vmstat"), reason="sysstat/procps not installed")
def test_real_iostat_and_vmstat(tmp_path):
    (tmp_path / "iostat.txt").write_text(subprocess.run(["iostat", "-x", "-t", "1", "3"], capture_output=True,
                                                        text=True, timeout=20, env={**os.environ, "S_TIME_FORMAT": ""}).stdout)
    (tmp_path / "vmstat.txt").write_text(subprocess.run(["vmstat", "-t", "1", "3"], capture_output=True, text=True,
                                                        timeout=20).stdout)
    d, con = _ingest(tmp_path, tmp_path / "iostat.txt", tmp_path / "vmstat.txt")
    assert all(f["rejects"] == 0 for f in d["files"]), d
    n = dict(con.sql("SELECT job, count(DISTINCT ts) FROM metric_samples GROUP BY 1").fetchall())
    assert n == {"iostat": 2, "vmstat": 2}  # three reports each, the first (since boot) skipped


@pytest.mark.skipif(not shutil.which("ss") or not shutil.which("nstat"), reason="iproute2 not installed")
def test_real_ss_and_nstat_snapshots(tmp_path):
    port = _free_port()
    srv = socket.socket()
    srv.bind(("127.0.0.1", port))
    srv.listen(8)
    clients = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(3)]
    try:
        with open(tmp_path / "ss-tan.txt", "w") as fh:
            for _ in range(2):
                fh.write(dt.datetime.now(UTC).isoformat() + "\n")
                fh.write(subprocess.run(["ss", "-tan"], capture_output=True, text=True, timeout=10).stdout)
                time.sleep(1.1)
        (tmp_path / "nstat.txt").write_text(subprocess.run(["nstat", "-a"], capture_output=True, text=True,
                                                           timeout=10).stdout)
        (tmp_path / "ss-s.txt").write_text(subprocess.run(["ss", "-s"], capture_output=True, text=True, timeout=10).stdout)
    finally:
        for c in clients:
            c.close()
        srv.close()
    d, con = _ingest(tmp_path, tmp_path / "ss-tan.txt", tmp_path / "nstat.txt", tmp_path / "ss-s.txt",
                     options={"ports": str(port)})
    assert all(f["rejects"] == 0 for f in d["files"]), d
    est = con.sql(f"SELECT value FROM metric_samples WHERE metric = 'tcp_sockets_by_port' "
                  f"AND labels['port'] = '{port}' AND labels['state'] = 'ESTABLISHED' ORDER BY ts").fetchall()
    # three connections, seen from both ends (client side counted by the server port too), in two snapshots
    assert len(est) == 2 and all(v[0] >= 3 for v in est)


@pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server not installed")
def test_real_redis_info_monitor_slowlog(tmp_path):
    port = _free_port()
    srv = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                            "--appendonly", "no", "--slowlog-log-slower-than", "0"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cli = ["redis-cli", "-p", str(port)]
    try:
        for _ in range(50):
            if subprocess.run(cli + ["ping"], capture_output=True, text=True).stdout.strip() == "PONG":
                break
            time.sleep(0.1)
        mon = subprocess.Popen(cli + ["monitor"], stdout=open(tmp_path / "monitor.txt", "w"))
        time.sleep(0.3)
        for i in range(5):  # the blob-descriptor cache pattern: miss, then fill
            subprocess.run(cli + ["hget", f"blobs::sha256:{i:064x}", "mediatype"], capture_output=True, timeout=5)
            subprocess.run(cli + ["hset", f"blobs::sha256:{i:064x}", "mediatype", "application/octet-stream"],
                           capture_output=True, timeout=5)
        subprocess.run(cli + ["hget", "blobs::sha256:" + "0" * 64, "mediatype"], capture_output=True, timeout=5)
        time.sleep(0.3)
        mon.send_signal(signal.SIGTERM)
        mon.wait(timeout=5)
        (tmp_path / "info.txt").write_text(subprocess.run(cli + ["info"], capture_output=True, text=True, timeout=5).stdout)
        (tmp_path / "slowlog.txt").write_text(subprocess.run(cli + ["slowlog", "get", "5"], capture_output=True,
                                                             text=True, timeout=5).stdout)
    finally:
        srv.terminate()
        srv.wait(timeout=10)
    d, con = _ingest(tmp_path, tmp_path / "monitor.txt", tmp_path / "info.txt", tmp_path / "slowlog.txt")
    assert [f["format"] for f in d["files"]] == ["redis-monitor", "redis-info", "redis-slowlog"]
    assert all(f["rejects"] == 0 for f in d["files"]), d
    fills = con.sql("SELECT sum(value) FROM metric_samples WHERE metric = 'redis_cache_fills'").fetchall()[0][0]
    reads = con.sql("SELECT sum(value) FROM metric_samples WHERE metric = 'redis_cache_reads'").fetchall()[0][0]
    assert fills == 5 and reads == 6
    misses = con.sql("SELECT value FROM metric_samples WHERE metric = 'redis_keyspace_misses'").fetchall()
    assert misses == [(5.0,)]
    assert con.sql("SELECT count(*) FROM events WHERE kind = 'redis_slowlog'").fetchall()[0][0] == 5


@pytest.mark.skipif(not shutil.which("nginx") or not shutil.which("openssl") or not shutil.which("curl"),
                    reason="nginx/openssl/curl not installed")
def test_real_tls_handshakes_against_nginx(tmp_path):
    port = _free_port()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", tmp_path / "key.pem",
                    "-out", tmp_path / "cert.pem", "-days", "1", "-subj", "/CN=localhost"], capture_output=True,
                   check=True, timeout=30)
    (tmp_path / "logs").mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""daemon off; pid {tmp_path}/nginx.pid; error_log {tmp_path}/logs/error.log;
events {{}}
http {{ access_log off; client_body_temp_path {tmp_path}/t; proxy_temp_path {tmp_path}/t;
  fastcgi_temp_path {tmp_path}/t; uwsgi_temp_path {tmp_path}/t; scgi_temp_path {tmp_path}/t;
  server {{ listen 127.0.0.1:{port} ssl; ssl_certificate {tmp_path}/cert.pem;
           ssl_certificate_key {tmp_path}/key.pem; location / {{ return 200 "ok\\n"; }} }} }}
""")
    ngx = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp_path)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        fmt = ("time_connect=%{time_connect} time_appconnect=%{time_appconnect} "
               "time_starttransfer=%{time_starttransfer} time_total=%{time_total} http_code=%{http_code}\\n")
        with open(tmp_path / "curl.txt", "w") as fh:
            for _ in range(5):
                fh.write(subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", fmt, f"https://127.0.0.1:{port}/"],
                                        capture_output=True, text=True, timeout=10).stdout)
        sc = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-reconnect"],
                            input="", capture_output=True, text=True, timeout=20)
        (tmp_path / "sclient.txt").write_text(sc.stdout)
    finally:
        ngx.terminate()
        ngx.wait(timeout=10)
    d, con = _ingest(tmp_path, tmp_path / "curl.txt", tmp_path / "sclient.txt")
    assert all(f["rejects"] == 0 for f in d["files"]), d
    hs = con.sql("SELECT count(*), min(value), max(value) FROM metric_samples WHERE metric = 'tls_handshake_seconds'").fetchall()[0]
    assert hs[0] == 5 and 0 < hs[1] <= hs[2] < 2
    reused = con.sql("SELECT sum(value), count(*) FROM metric_samples WHERE metric = 'tls_session_reused'").fetchall()[0]
    assert reused[1] == 6 and reused[0] == 5  # one new session, then five reconnects reusing it
