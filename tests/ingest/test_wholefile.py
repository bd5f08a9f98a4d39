"""DuckDB reading a whole plain file gives exactly what the block reader gives, line numbers included."""

import gzip
import json
import random
import shutil

import pytest

from workbench import Case, ingest
from workbench.ingest import native
from workbench.ingest.catalog import get_format

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
def test_whole_file_and_blocks_give_the_same_rows(tmp_path, fixtures, monkeypatch, name):
    src = fixtures / name
    plain = tmp_path / src.name
    shutil.copy(src, plain)
    packed = tmp_path / (src.name + ".gz")  # compressed: read in blocks
    packed.write_bytes(gzip.compress(src.read_bytes()))
    a = ingest(tmp_path / "a", [plain]).to_dict()["files"][0]
    b = ingest(tmp_path / "b", [packed]).to_dict()["files"][0]
    compiled = native.parser_for(get_format(a["format"])) is not None  # then DuckDB's whole-file read as well
    assert (a["reader"], b["reader"]) == ("native" if compiled else "duckdb", "blocks")
    for key in ("format", "lines", "rows", "used_lines", "rejects", "skipped", "balanced"):
        assert a[key] == b[key], key
    assert a["balanced"] and a["rows_total"] > 0
    assert _rows(tmp_path / "a") == _rows(tmp_path / "b")
    if compiled:
        monkeypatch.setenv("WORKBENCH_NATIVE", "0")
        c = ingest(tmp_path / "c", [plain]).to_dict()["files"][0]
        assert c["reader"] == "duckdb" and c["rows"] == a["rows"] and c["rejects"] == a["rejects"]
        assert _rows(tmp_path / "c") == _rows(tmp_path / "a")


@pytest.mark.parametrize("reader", ["native", "duckdb"])
def test_line_numbers_hold_across_a_parallel_read(tmp_path, monkeypatch, reader):
    """48 MB, more than one of DuckDB's read buffers, so it is read on both cores: every row's line_no must be
    the line it came from (each line carries its own number in its request id), blanks and junk included; by
    the compiled parser (on both cores, in blocks) and by DuckDB."""
    if reader == "duckdb":
        monkeypatch.setenv("WORKBENCH_NATIVE", "0")
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
    assert f["reader"] == reader and f["balanced"]
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


# PostgreSQL stderr logs: records of several lines, deadlocks, rejects of every kind, zones read in --tz.
PG_STDERR = [("postgres/berlin-postgresql.log", {}), ("postgres/saopaulo-pgbadger-prefix.log", {}),
             ("postgres/broken-stderr.log", {}), ("postgres/broken-stderr.log", {"tz": "Europe/Berlin"}),
             ("postgres/saopaulo-pgbadger-prefix.log", {"options": {"pg_prefix": "%m [%p] "}})]
PG_QUERIES = {
    "db_lock_waits": "SELECT * EXCLUDE (source_file) FROM db_lock_waits ORDER BY line_no, event, pid",
    "log_events": "SELECT * EXCLUDE (source_file) FROM log_events ORDER BY line_no",
    "rejects": "SELECT line_no, format, reason, raw FROM rejects ORDER BY line_no",
}


@pytest.mark.parametrize("name, kw", PG_STDERR)
def test_postgres_stderr_whole_file_and_blocks_give_the_same_rows(tmp_path, monkeypatch, fixtures, name, kw):
    """The compiled parser, DuckDB's whole-file read and the block reader give the same rows and ledger."""
    src = fixtures / name
    plain = tmp_path / src.name
    shutil.copy(src, plain)
    packed = tmp_path / (src.name + ".gz")
    packed.write_bytes(gzip.compress(src.read_bytes()))
    a = ingest(tmp_path / "a", [plain], **kw).to_dict()["files"][0]
    b = ingest(tmp_path / "b", [packed], **kw).to_dict()["files"][0]
    monkeypatch.setenv("WORKBENCH_NATIVE", "0")
    c = ingest(tmp_path / "c", [plain], **kw).to_dict()["files"][0]
    assert (a["reader"], b["reader"], c["reader"]) == ("native", "blocks", "duckdb")
    assert a["format"] == "postgres-stderr"
    for key in ("lines", "rows", "used_lines", "rejects", "skipped", "balanced", "notes"):
        assert a[key] == b[key] == c[key], key
    assert a["balanced"] and a["rows_total"] + a["rejects"] > 0
    got = [{t: Case(c).connect().sql(q).fetchall() for t, q in PG_QUERIES.items()}
           for c in (tmp_path / "a", tmp_path / "b", tmp_path / "c")]
    assert got[0] == got[1] == got[2]


@pytest.mark.parametrize("reader", ["native", "duckdb"])
def test_postgres_line_numbers_hold_across_a_parallel_read(tmp_path, monkeypatch, reader):
    """48 MB of stderr log read on both cores (by the compiled parser, in blocks, and by DuckDB): every statement
    names the line it is on, records of several lines (a lock wait with its DETAIL and STATEMENT) keep their first
    line's number, and junk and blank lines are counted where they are."""
    if reader == "duckdb":
        monkeypatch.setenv("WORKBENCH_NATIVE", "0")
    path = tmp_path / "postgresql.log"
    junk, blank, waits = set(), set(), set()
    n = 0
    with open(path, "w") as fh:
        while n < 330_000:
            n += 1
            ts = f"2026-11-28 06:{(n // 6000) % 60:02d}:{(n // 100) % 60:02d}.{n % 1000:03d} CET [{n % 9000 + 1000}] u@d "
            if n % 9973 == 0:
                blank.add(n)
                fh.write("\n")
            elif n % 7919 == 0:
                junk.add(n)
                fh.write(f"panic: not a log line {n}\n")
            elif n % 1013 == 0:
                waits.add(n)
                fh.write(f"{ts}LOG:  process {n} still waiting for ShareLock on transaction 7 after 100.5 ms\n"
                         f"{ts}DETAIL:  Process holding the lock: 1. Wait queue: {n}.\n"
                         f"{ts}STATEMENT:  UPDATE t SET a = 1\n\t  WHERE id = {n}\n")
                n += 3
            else:
                fh.write(f"{ts}LOG:  duration: 1.{n % 1000:03d} ms  statement: SELECT {n} /* {'x' * (n % 200)} */\n")
    f = ingest(tmp_path / "case", [path]).to_dict()["files"][0]
    assert f["reader"] == reader and f["balanced"] and f["lines"] == n
    assert f["skipped"] == {"blank": len(blank)} and f["rejects"] == len(junk)
    con = Case(tmp_path / "case").connect()
    slow = con.sql("SELECT count(*), count(*) FILTER (WHERE split_part(statement, ' ', 2) <> line_no::VARCHAR) "
                   "FROM db_lock_waits WHERE event = 'slow_statement'").fetchall()[0]
    assert slow == (n - len(junk) - len(blank) - 4 * len(waits), 0)
    got = con.sql("SELECT line_no, pid, statement, waiters FROM db_lock_waits WHERE event = 'waiting' ORDER BY 1").fetchall()
    assert got == [(w, w, f"UPDATE t SET a = 1\n  WHERE id = {w}", [w]) for w in sorted(waits)]
    assert {r[0] for r in con.sql("SELECT line_no FROM rejects").fetchall()} == junk
