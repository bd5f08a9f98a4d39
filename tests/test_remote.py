"""A case on a local S3-compatible server (moto in server mode on loopback)."""

import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from workbench import Case, ingest
from workbench.remote import open_case, sync

pytest.importorskip("s3fs")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def s3(monkeypatch):
    if not shutil.which("moto_server"):
        pytest.skip("moto[server] not installed")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
               "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
        s3fs.S3FileSystem(endpoint_url=env["AWS_ENDPOINT_URL"]).mkdir("cases")
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_sync_then_query_from_s3(tmp_path, fixtures, s3):
    case = tmp_path / "case"
    ingest(case, [fixtures / "registry" / "distribution-json.log"])
    first = sync(case, "s3://cases/inc-1")
    assert first.uploaded >= 3 and first.already_there == 0
    again = sync(case, "s3://cases/inc-1")
    assert again.uploaded == 0 and again.already_there == first.uploaded
    local = Case(case).connect().sql("SELECT route, status, duration_s FROM requests ORDER BY line_no").fetchall()
    remote = open_case("s3://cases/inc-1").connect()
    assert remote.sql("SELECT route, status, duration_s FROM requests ORDER BY line_no").fetchall() == local
    assert remote.sql("SELECT count(*) FROM rejects").fetchall()[0][0] == 2
    out = subprocess.run([sys.executable, "-m", "workbench", "query", "s3://cases/inc-1",
                          "SELECT count(*) AS n FROM requests", "--format", "csv"],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, **s3}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["n", "5"]


def test_missing_remote_case_is_one_clear_error(s3):
    out = subprocess.run([sys.executable, "-m", "workbench", "query", "s3://cases/nothing", "SELECT 1"],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, **s3}, timeout=120)
    assert out.returncode == 2 and out.stderr.startswith("error: s3://cases/nothing: no case here")
