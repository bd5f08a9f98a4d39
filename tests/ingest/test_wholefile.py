"""DuckDB reading a whole plain file gives exactly what the block reader gives, line numbers included."""

import gzip
import json
import random
import shutil

import pytest

from workbench import Case, ingest

# Plain request logs of every format that DuckDB can read whole, broken lines included.
WHOLE = [
    "registry/distribution-json.log", "registry/real/distribution-2.8.2-json.log",
    "registry/real/distribution-2.8.2-text.log", "proxy/nginx-combined.log", "proxy/nginx-broken.log",
    "proxy/nginx-timed.log", "proxy/nginx-json-broken.log", "proxy/nginx-json-variant.log",
]

COLUMNS = {
    "requests": "* EXCLUDE (source_file)",
    "log_events": "* EXCLUDE (source_file)",
    "rejects": "line_no, format, reason, raw",
}


def _rows(case):
    con = Case(case).connect()
    return {t: con.sql(f"SELECT {cols} FROM {t} ORDER BY line_no").fetchall() for t, cols in COLUMNS.items()}


@pytest.mark.parametrize("name", WHOLE)
def test_whole_file_and_blocks_give_the_same_rows(tmp_path, fixtures, name):
    src = fixtures / name
    plain = tmp_path / src.name
    shutil.copy(src, plain)
    packed = tmp_path / (src.name + ".gz")  # compressed: read in blocks
    packed.write_bytes(gzip.compress(src.read_bytes()))
    a = ingest(tmp_path / "a", [plain]).to_dict()["files"][0]
    b = ingest(tmp_path / "b", [packed]).to_dict()["files"][0]
    assert (a["reader"], b["reader"]) == ("duckdb", "blocks")
    for key in ("format", "lines", "rows", "used_lines", "rejects", "skipped", "balanced"):
        assert a[key] == b[key], key
    assert a["balanced"] and a["rows_total"] > 0
    assert _rows(tmp_path / "a") == _rows(tmp_path / "b")


def test_line_numbers_hold_across_a_parallel_read(tmp_path):
    """48 MB, more than one of DuckDB's read buffers, so it is read on both cores: every row's line_no must be
    the line it came from (each line carries its own number in its request id), blanks and junk included."""
    rng = random.Random(7)
    path = tmp_path / "registry.log"
    junk, blank = set(), set()
    with open(path, "w") as fh:
        for n in range(1, 80_001):
            if n % 9973 == 0:
                blank.add(n)
                fh.write("\n")
                continue
            if n % 7919 == 0:
                junk.add(n)
                fh.write(f"panic: not a log line {n}\n")
                continue
            fh.write(json.dumps({
                "http.request.id": f"line-{n}", "http.request.method": "GET", "http.request.remoteaddr": "10.0.0.1:5",
                "http.request.uri": f"/v2/team/app/blobs/sha256:{rng.getrandbits(256):064x}",
                "http.request.useragent": "containerd/v1.7.2", "http.response.duration": "1.5ms",
                "http.response.status": 200, "http.response.written": rng.randint(1, 10**9), "level": "info",
                "msg": "response completed", "padding": "x" * rng.randint(300, 700),
                "time": f"2026-11-28T06:{(n // 2000) % 60:02d}:{(n // 40) % 50:02d}.{n:06d}Z",
            }) + "\n")
    f = ingest(tmp_path / "case", [path]).to_dict()["files"][0]
    assert f["reader"] == "duckdb" and f["balanced"]
    assert f["lines"] == 80_000 and f["skipped"] == {"blank": len(blank)} and f["rejects"] == len(junk)
    con = Case(tmp_path / "case").connect()
    wrong = con.sql("SELECT count(*) FROM requests WHERE request_id <> 'line-' || line_no").fetchall()[0][0]
    assert wrong == 0
    assert con.sql("SELECT count(*) FROM requests").fetchall()[0][0] == 80_000 - len(junk) - len(blank)
    assert {r[0] for r in con.sql("SELECT line_no FROM rejects").fetchall()} == junk


@pytest.mark.parametrize("body, why", [
    (b"\r\n", "CR line ends"),
    (b"\x00\n", "NUL bytes"),
    (b"\xff\n", "invalid UTF-8"),
])
def test_files_duckdb_cannot_read_as_lines_take_the_block_reader(tmp_path, fixtures, body, why):
    lines = (fixtures / "proxy" / "nginx-combined.log").read_bytes().splitlines()
    path = tmp_path / "nginx.log"
    path.write_bytes(body.join(lines) + body)
    f = ingest(tmp_path / "case", [path], format="nginx-combined").to_dict()["files"][0]
    assert f["reader"] == "blocks" and f["balanced"]
    assert any(why in n for n in f["notes"]), f["notes"]
    assert f["lines"] == len(lines)
