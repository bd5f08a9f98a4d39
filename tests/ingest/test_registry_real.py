"""Real captures: distribution 2.8.2 on loopback (skopeo push/pull/inspect, curl for errors), and pasted lines
from GitLab, zot and Harbor issue threads and docs (see data/registry-fixtures.md)."""

import pytest

from workbench import Case, ingest

REAL = ("distribution-2.8.2-json.log", "distribution-2.8.2-text.log")


def _one(tmp_path, path, **kw):
    summary = ingest(tmp_path / "case", [path], **kw).to_dict()
    f = summary["files"][0]
    assert f["balanced"], f
    return f, Case(tmp_path / "case").connect()


@pytest.mark.parametrize("name", REAL)
def test_distribution_real_capture(tmp_path, fixtures, name):
    f, con = _one(tmp_path, fixtures / "registry" / "real" / name)
    assert f["format"] == ("registry-json" if "json" in name else "registry-text")
    # 28 app-log completions (one logged twice, for two errors), 28 access-log lines, 4 startup lines
    assert f["lines"] == 60 and f["rejects"] == 0
    assert f["rows"] == {"requests": 55, "log_events": 5}
    by_layer = dict(con.sql("SELECT layer, count(*) FROM requests GROUP BY 1").fetchall())
    assert by_layer == {"registry": 27, "registry-access": 28}
    # the manifest PUT with two errors is one request; its second error is a request_error event
    put = con.sql("SELECT status, error_code FROM requests WHERE layer = 'registry' AND method = 'PUT' "
                  "AND reference = 'bad'").fetchall()
    assert put == [(400, "DIGEST_INVALID")]
    extra = con.sql("SELECT kind, error_code FROM log_events WHERE request_id IS NOT NULL").fetchall()
    assert extra == [("request_error", "MANIFEST_BLOB_UNKNOWN")]
    # "redis not configured" is start-up, not a database error
    kinds = dict(con.sql("SELECT message, kind FROM log_events").fetchall())
    assert kinds["redis not configured"] == "startup"
    # old spelling in the log ("blob unknown"), normalised
    codes = {r[0] for r in con.sql("SELECT DISTINCT error_code FROM requests WHERE error_code IS NOT NULL").fetchall()}
    assert codes == {"BLOB_UNKNOWN", "MANIFEST_UNKNOWN", "UNKNOWN", "DIGEST_INVALID"}
    # the filesystem driver's error on a bad digest is a 500 with its detail
    det = con.sql("SELECT status, error_detail FROM requests WHERE reference = 'sha256:zz' AND layer = 'registry'"
                  ).fetchall()
    assert det[0][0] == 500 and det[0][1].startswith("filesystem: invalid path")
    # nested repository names, uploads with and without uuid, catalog, tags/list with a query string
    rows = con.sql("SELECT DISTINCT route, repository FROM requests WHERE layer = 'registry'").fetchall()
    assert ("blob_upload", "team/sub/app") in rows and ("catalog", None) in rows and ("tags", "library/app") in rows
    # the referrers probe is only in the access log (2.8.2 has no such route: its app log is silent)
    ref = con.sql("SELECT layer, route, status, client FROM requests WHERE route = 'referrers'").fetchall()
    assert ref == [("registry-access", "referrers", 404, "go-http-client")]
    # skopeo's own User-Agent, as it sent it
    assert con.sql("SELECT count(*) FROM requests WHERE user_agent = 'skopeo/1.9.3' AND client = 'skopeo' "
                   "AND client_version = '1.9.3'").fetchall()[0][0] > 10


def test_text_quoted_microsecond_duration(tmp_path, fixtures):
    # logrus quotes values with non-ASCII characters: http.response.duration="778.629µs"
    _, con = _one(tmp_path, fixtures / "registry" / "real" / "distribution-2.8.2-text.log")
    d = con.sql("SELECT duration_s FROM requests WHERE request_id = 'b181e068-1880-4675-a92e-05d833886242'"
                ).fetchall()
    assert d == [(pytest.approx(778.629e-6),)]


def test_gitlab(tmp_path, fixtures):
    f, con = _one(tmp_path, fixtures / "registry" / "gitlab-registry.log")
    assert f["format"] == "gitlab-registry"
    assert f["rows"] == {"requests": 3, "log_events": 2} and f["rejects"] == 2 and f["skipped"] == {"blank": 1}
    rows = con.sql("SELECT request_id, route, repository, reference, status, duration_s, remote_ip, client "
                   "FROM requests ORDER BY line_no").fetchall()
    assert rows[0] == ("01JKY0ZMDMP25HMMVS01X5ANNH", "base", None, None, 401, 0.0, "111.111.111.111", "docker")
    assert rows[1][1:6] == ("tags", "group/sub/app", "v1.2", 202, 0.062) and rows[1][7] == "gitlab"
    assert rows[2][5] == 1.523  # duration_s read as seconds
    ev = con.sql("SELECT kind, error_detail FROM log_events ORDER BY line_no").fetchall()
    assert ev[1] == ("db_error", "failed to acquire connection: context deadline exceeded")


def test_zot(tmp_path, fixtures):
    f, con = _one(tmp_path, fixtures / "registry" / "zot.log")
    assert f["format"] == "zot" and f["rows"] == {"requests": 3, "log_events": 2} and f["rejects"] == 1
    rows = con.sql("SELECT route, repository, reference, status, duration_s, bytes_in, remote_ip, client "
                   "FROM requests ORDER BY line_no").fetchall()
    assert rows[0] == ("base", None, None, 401, 0.0, None, "127.0.0.1", "go-http-client")
    assert rows[1][:4] == ("manifest", "liquidmetal-dev/flintlock-kernel", "5.10.77", 201)
    assert rows[1][4] == pytest.approx(0.012345678) and rows[1][5] == 1024 and rows[1][7] == "containerd"
    assert rows[2][0] == "catalog" and rows[2][4] == 62.5
    ts = con.sql("SELECT ts::VARCHAR FROM log_events WHERE message = 'failed to get manifest'").fetchall()[0][0]
    assert ts.startswith("2026-09-27 12:54:57")  # +02:00 stored in UTC


def test_harbor_syslog(tmp_path, fixtures):
    f, con = _one(tmp_path, fixtures / "registry" / "harbor-syslog.log")
    assert f["format"] == "harbor" and f["wrappers"] == ["syslog"]
    assert f["rows"] == {"requests": 4, "log_events": 5} and f["rejects"] == 1
    assert f["skipped"] == {"syslog:blank": 1}
    reqs = con.sql("SELECT layer, method, route, status, duration_s, error_code FROM requests ORDER BY line_no"
                   ).fetchall()
    assert [r[0] for r in reqs] == ["harbor-registry", "harbor-registry-access", "harbor-registry", "harbor-core"]
    assert reqs[0][5] == "BLOB_UNKNOWN" and reqs[3][1:5] == ("PUT", "manifest", 500, pytest.approx(0.170608505))
    ev = con.sql("SELECT layer, level, kind, error_code, request_id FROM log_events ORDER BY line_no").fetchall()
    assert ev[0][:4] == ("harbor-core", "error", "auth", "UNKNOWN")
    assert ev[1] == ("harbor-core", "info", "startup", None, "8b1f3a2c")
    assert [e[2] for e in ev[2:]] == ["panic", "panic", "panic"]
