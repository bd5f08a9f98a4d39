"""The compiled parsers (nginx combined, registry JSON) give, for every line, exactly what the SQL parser gives.

The SQL parser (nginx.py) is the reference: the same file is ingested once by the compiled parser and once
with it switched off (WORKBENCH_NATIVE=0, so DuckDB reads the whole file), and the requests, rejects and
ledgers must be identical. The lines cover the usual shapes, which the compiled parser takes, and the
unusual ones, which it must hand to the SQL.
"""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.case import new_connection
from workbench.ingest import derive, native
from workbench.ingest.base import Context
from workbench.ingest.catalog import get_format
from workbench.ingest.pipeline import ingest
from workbench.ingest.wrappers import as_block


def test_the_compiled_parser_is_built():
    """`pip install` builds it (setup.py); without it every file would quietly take the slower readers."""
    assert native._native is not None
    assert native.parser_for(get_format("nginx-combined")) is not None
    assert native.parser_for(get_format("registry-json")) is not None

SEGMENTS = ["v2", "library", "team", "a", "app", "manifests", "blobs", "uploads", "tags", "list", "reference",
            "referrers", "_catalog", "sha256:" + "ab" * 32, "v1.2", "-", "", "x?y=1", "%2F", "ünï", "latest"]
AGENTS = ["containerd/v1.7.2", "docker/24.0.7 go/go1.20.10 os/linux", "-", "", "curl/7.88.1", "kube-probe/1.28",
          "Mozilla/5.0 \\x22quoted\\x22", "back\\x5Cslash \\x5c", "tab\tin agent", "Go-http-client/1.1", "ünïcode/1"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _path(rng: random.Random) -> str:
    if rng.random() < 0.6:
        kind = rng.choice(["manifests/latest", "manifests/sha256:" + "cd" * 32, "blobs/sha256:" + "ef" * 32,
                           "blobs/uploads/", "blobs/uploads/0f1e", "tags/list", "tags/reference/v1", "referrers/x"])
        p = f"/v2/{rng.choice(['library/app', 'a', 'team/x/y', 'manifests', 'blobs/uploads'])}/{kind}"
    else:
        p = "/" + "/".join(rng.choice(SEGMENTS) for _ in range(rng.randint(0, 6)))
    if rng.random() < 0.1:
        p += rng.choice(["?n=100", "?", "/", "//"])
    return p


def _time(rng: random.Random) -> str:
    day, mon, year = rng.randint(27, 28), "Nov", 2026
    if rng.random() < 0.01:  # now and then another month (every name) and year; a case spans a few days
        day, mon, year = rng.randint(1, 28), rng.choice(MONTHS), 2024
    zone = rng.choice(["+0000"] * 6 + ["-0700", "+0530", "+1400", "-1200"])
    return f"{day:02d}/{mon}/{year}:{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} {zone}"


def _usual(rng: random.Random) -> str:
    """A line of a shape the compiled parser takes."""
    remote = rng.choice(["10.1.2.3", "10.1.2.3:5000", "::1", "-", "2001:db8::7"])
    req = rng.choice([f"{rng.choice(['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'])} {_path(rng)} HTTP/1.1",
                      "\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03", "-", "GET", "get /v2/ HTTP/1.1",
                      "GET  /v2/ HTTP/1.1", f"PUT {_path(rng)}"])
    size = rng.choice(["0", "-", str(rng.randint(1, 10**12)), "000123"])
    head = f'{remote} - {rng.choice(["-", "alice"])} [{_time(rng)}] "{req}" {rng.choice([200, 404, 499, 502])} {size}'
    head += f' "{rng.choice(["-", "https://x/", ""])}" "{rng.choice(AGENTS)}"'
    rt = f"{rng.randint(0, 30)}.{rng.randint(0, 999):03d}"
    urt = rng.choice(["-", f"{rng.random() * 3:.3f}", "0.5", "5.", ".5", "1.2.3", "007.10"])
    us = rng.choice(["200", "-", "502"])
    return head + rng.choice([
        "",
        f" {rt}",
        f" {rt} {urt}",
        f" {rt} {urt} {us} {rng.getrandbits(128):032x} {rng.randint(0, 5000)}",
        f" {rt} {urt} {us} {rng.getrandbits(64):016x} 0",
    ])


def _unusual(rng: random.Random) -> str:
    """A line the compiled parser must leave to the SQL: other layouts, broken lines, blanks."""
    base = _usual(rng)
    return rng.choice([
        "",
        "   ",
        "not an access log line",
        base.replace("+0000", ""),
        base.replace(" [", " [0", 1),
        base.replace("Nov", "nov").replace("Jan", "jan"),
        base.replace(":", "-", 1) if " [" not in base[:20] else base.replace("[", "[31/Nov/2026:00:00:00 +0000] [", 1),
        base + ' "10.9.9.9, 10.8.8.8"',
        base.replace('" 200 ', '" 200  ', 1),
        base + " rt=0.123 urt=\"0.100\" us=200",
        base + " 0.001 0.000, 0.002 : 0.003 502, 200 " + "ab" * 16 + " 12",
        base + " trailing words",
        base.replace('"-"', '"a \\" b"', 1),
        '10.0.0.1,10.0.0.2 - - [28/Nov/2026:12:57:33 +0000] "GET /v2/ HTTP/1.1" 200 2 "-" "curl/8"',
        '[::1]:5000 - - [28/Nov/2026:12:57:33 +0000] "GET /v2/ HTTP/1.1" 200 2 "-" "curl/8"',
        '10.0.0.1 - - [29/Feb/2025:12:57:33 +0000] "GET /v2/ HTTP/1.1" 200 2 "-" "curl/8"',
        '10.0.0.1 - - [28/Nov/2026:12:57:33 +0000] "GET /v2/ HTTP/1.1" 200 99999999999999999999 "-" "curl/8"',
        '10.0.0.1 - - [28/Nov/2026:24:57:33 +0000] "GET /v2/ HTTP/1.1" 200 2 "-" "curl/8"',
        '10.0.0.1 - - [28/Nov/2026:12:57:33 +0000] "GET /v2/ HTTP/1.1" 200 2',
    ])


def _write(path: Path, seed: int, n: int) -> int:
    rng = random.Random(seed)
    usual = 0
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(n):
            if rng.random() < 0.8:
                fh.write(_usual(rng) + "\n")
                usual += 1
            else:
                fh.write(_unusual(rng) + "\n")
    return usual


def _read(case: Path, table: str) -> list[dict]:
    files = sorted(case.glob(f"parquet/{table}/**/*.parquet"))
    if not files:
        return []
    con = duckdb.connect()
    names = ", ".join(f"'{f}'" for f in files)
    return con.sql(f"SELECT * FROM read_parquet([{names}], hive_partitioning = false) ORDER BY line_no").fetchall()


def _ledger(summary: dict) -> dict:
    f = summary["files"][0]
    return {k: f[k] for k in ("format", "lines", "rows", "used_lines", "rejects", "skipped", "balanced")}


def _registry_usual(rng: random.Random) -> dict:
    """A "response completed" record of a shape the compiled parser takes (keys as logrus writes them)."""
    rec = {"go.version": "go1.20.8", "http.request.host": "registry:5000",
           "http.request.id": rng.choice([f"{rng.getrandbits(128):032x}", "-", ""]),
           "http.request.method": rng.choice(["GET", "HEAD", "PUT", "-"]),
           "http.request.remoteaddr": rng.choice(["10.0.0.7:41234", "[::1]:5000", "::1", "10.0.0.8", "-", "",
                                                  "[fe80::1%eth0]:80"]),
           "http.request.uri": _path(rng), "http.request.useragent": rng.choice(AGENTS + ["é \"q\" \u00e9"]),
           "http.response.duration": rng.choice([f"{rng.uniform(0.1, 999):.6f}ms", f"{rng.randint(5, 999)}µs",
                                                 f"{rng.randint(5, 999)}μs", f"{rng.randint(5, 999)}us", "40ns",
                                                 f"{rng.uniform(1, 90):.9f}s", "0s", "5.ms", ".5s"]),
           "http.response.status": rng.choice([200, 201, 202, 307, 404, 0]),
           "http.response.written": rng.choice([0, 2, 1024, 10**15]), "level": "info", "msg": "response completed",
           "time": _rfc3339(rng)}
    if rng.random() < 0.3:
        rec["http.request.contentlength"] = rng.randint(0, 10**9)
    if rng.random() < 0.5:
        rec["instance.id"] = rng.choice(["1f2e3d", "", "node-a"])
    if rng.random() < 0.2:
        rec["vars.name"] = "library/app"
        rec["extra"] = rng.choice([None, True, False, -1.5, 0])
    for k in rng.sample(sorted(rec), k=rng.choice([0, 0, 0, 1])):  # a key logged as null
        if k not in ("msg", "time", "http.response.status"):  # a request without a status is left to the SQL
            rec[k] = None
    return rec


def _rfc3339(rng: random.Random) -> str:
    frac = rng.choice(["", ".5", ".123456", ".412004795", ".9999999"])
    return f"2026-11-{rng.randint(27, 28)}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}{frac}Z"


def _registry_line(rng: random.Random, dups: list[str]) -> tuple[str, bool]:
    """(a registry JSON log line, whether the compiled parser must take it)."""
    rec = _registry_usual(rng)
    sep = rng.choice([(",", ":")] * 4 + [(", ", ": ")])
    r = rng.random()
    if r < 0.75:
        return json.dumps(rec, separators=sep, ensure_ascii=rng.random() < 0.5), True
    if r < 0.85:  # an error: with its code, now and then logged twice for one request
        rid = rng.choice(dups) if dups and rng.random() < 0.5 else f"{rng.getrandbits(64):016x}"
        dups.append(rid)
        rec.update({"msg": "response completed with error", "http.request.id": rid, "level": "error",
                    "err.code": rng.choice(["manifest unknown", "BLOB_UNKNOWN"]), "err.message": "m",
                    "err.detail": "d", "http.response.status": 404})
        return json.dumps(rec, separators=sep), False
    rec = dict(rec)
    if r < 0.93:  # an event, which the compiled parser takes (its kind and fields come from the SQL)
        ev = {"level": rng.choice(["info", "INFO", "warning", "error", "panic", "debug"]), "time": rec["time"],
              "msg": rng.choice(["authorized request", "s3aws: SlowDown: Please reduce your request rate",
                                 "garbage collect: marking manifest", "listening on [::]:5000",
                                 "pq: too many clients", "runtime error: nil map", "é <b> & \u2028 \"x\"",
                                 "token expired", "x\ny\tz"])}
        for k, vals in (("err.code", ["blob unknown", "BLOB_UNKNOWN"]), ("err.detail", ["d", ""]),
                        ("err.message", ["m"]), ("error", ["storagedriver: timeout", "redis: nil"]),
                        ("vars.name", ["library/app"]), ("instance.id", ["i-1", ""]),
                        ("http.request.id", ["abc", "-"]), ("http.response.status", [200]), ("go.version", ["1"])):
            if rng.random() < 0.3:
                ev[k] = rng.choice(vals)
        if rng.random() < 0.1:
            ev.pop("msg")
        text = json.dumps(ev, separators=sep, ensure_ascii=rng.random() < 0.5)
        return text.replace("<", "\\u003c") if rng.random() < 0.3 else text, False
    return rng.choice([
        json.dumps({"level": 5, "msg": "a number for a level", "time": rec["time"]}),
        json.dumps({"go.version": "go1.20.8", "level": "info", "msg": "authorized request", "time": rec["time"],
                    "vars.name": "library/app"}),
        json.dumps({**rec, "http.response.status": "200"}),
        json.dumps({**rec, "http.response.written": 1.5}),
        json.dumps({**rec, "http.response.duration": "1m2.5s"}),
        json.dumps({**rec, "http.response.duration": "-1.5s"}),
        json.dumps({**rec, "time": "2026-11-28T06:29:38.412+02:00"}),
        json.dumps({**rec, "time": "not a time"}),
        json.dumps({**rec, "time": "2026-11-28T06:29:60Z"}),
        json.dumps({**rec, "http.request.remoteaddr": "10.0.0.1, 10.0.0.2"}),
        json.dumps({**rec, "nested": {"a": 1}}),
        json.dumps({**rec, "big": 1e300}),
        json.dumps(rec) + " ",
        " " + json.dumps(rec),
        json.dumps(rec)[:-5],
        json.dumps({**rec, "msg": None}),
        'time="2026-11-28T06:29:38Z" level=info msg="response completed" http.response.status=200',
        '10.0.0.1 - - [28/Nov/2026:12:57:33 +0000] "GET /v2/ HTTP/1.1" 200 2 "" "curl/8"',
        "",
        "panic: runtime error: invalid memory address",
    ]), False


def _write_registry(path: Path, seed: int, n: int) -> int:
    rng, dups, usual = random.Random(seed), [], 0
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(n):
            line, fast = _registry_line(rng, dups)
            fh.write(line + "\n")
            usual += fast
    return usual


@pytest.mark.parametrize("seed", [1, 2])
def test_compiled_registry_parser_gives_what_the_sql_gives(tmp_path, monkeypatch, seed):
    log = tmp_path / "registry.log"
    usual = _write_registry(log, seed, 5000)
    fast = ingest(tmp_path / "fast", [log], format="registry-json").to_dict()
    monkeypatch.setenv("WORKBENCH_NATIVE", "0")
    ref = ingest(tmp_path / "ref", [log], format="registry-json").to_dict()
    assert (fast["files"][0]["reader"], ref["files"][0]["reader"]) == ("native", "duckdb")
    assert _ledger(fast) == _ledger(ref)
    f = fast["files"][0]
    assert f["rejects"] > 0 and f["rows"]["log_events"] > 0 and f["skipped"].get("blank", 0) > 0
    for table in ("requests", "log_events", "rejects"):
        assert _read(tmp_path / "fast", table) == _read(tmp_path / "ref", table), table
    # repeated error lines of one request are events, found across the whole file
    kinds = duckdb.sql(f"SELECT count(*) FROM read_parquet('{tmp_path}/fast/parquet/log_events/**/*.parquet') "
                       "WHERE kind = 'request_error'").fetchall()[0][0]
    assert kinds > 0
    out = native._native.registry_json(log.read_bytes(), 1)
    assert out["lines"] == 5000 and out["rows"] == usual and out["events"] > 0
    assert out["slow"] + out["blank"] + out["events"] == 5000 - usual


@pytest.mark.parametrize("seed", [1, 2])
def test_compiled_parser_gives_what_the_sql_gives(tmp_path, monkeypatch, seed):
    log = tmp_path / "access.log"
    usual = _write(log, seed, 6000)
    with open(log, "ab") as fh:
        fh.write(b'10.0.0.1 - - [28/Nov/2026:12:57:33 +0000] "GET /v2/ HTTP/1.1" 200 2 "-" "curl/8"')  # no newline
    fast = ingest(tmp_path / "fast", [log], format="nginx-combined").to_dict()
    monkeypatch.setenv("WORKBENCH_NATIVE", "0")
    ref = ingest(tmp_path / "ref", [log], format="nginx-combined").to_dict()
    assert (fast["files"][0]["reader"], ref["files"][0]["reader"]) == ("native", "duckdb")
    assert _ledger(fast) == _ledger(ref)
    assert fast["files"][0]["rejects"] > 0 and fast["files"][0]["skipped"].get("blank", 0) > 0
    assert _read(tmp_path / "fast", "requests") == _read(tmp_path / "ref", "requests")
    assert _read(tmp_path / "fast", "rejects") == _read(tmp_path / "ref", "rejects")
    # the compiled parser took the usual lines itself and left the others to the SQL
    out = native._native.nginx_combined(log.read_bytes(), 1)
    assert out["lines"] == 6001 and out["rows"] >= usual and out["slow"] > 0


def test_blocks_cut_at_line_ends_and_keep_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(native, "BLOCK_BYTES", 8192)  # many blocks, and lines cut by every read
    log = tmp_path / "access.log"
    _write(log, 3, 1500)
    long_ua = "x" * 10_000  # a line longer than a block
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f'10.0.0.1 - - [28/Nov/2026:12:57:33 +0000] "GET /v2/ HTTP/1.1" 200 2 "-" "{long_ua}" 0.001\n')
        _write_more = random.Random(4)
        for _ in range(50):
            fh.write(_usual(_write_more) + "\n")
    fast = ingest(tmp_path / "fast", [log], format="nginx-combined").to_dict()
    monkeypatch.setenv("WORKBENCH_NATIVE", "0")
    ref = ingest(tmp_path / "ref", [log], format="nginx-combined").to_dict()
    assert fast["files"][0]["reader"] == "native" and _ledger(fast) == _ledger(ref)
    rows = _read(tmp_path / "fast", "requests")
    assert rows == _read(tmp_path / "ref", "requests")
    assert any(r[14] == long_ua for r in rows)


def test_invalid_utf8_is_left_to_the_other_readers(tmp_path):
    log = tmp_path / "access.log"
    _write(log, 5, 200)
    with open(log, "ab") as fh:
        fh.write(b'10.0.0.1 - - [28/Nov/2026:12:57:33 +0000] "GET /v2/\xff HTTP/1.1" 200 2 "-" "curl/8"\n')
    s = ingest(tmp_path / "case", [log], format="nginx-combined").to_dict()["files"][0]
    assert s["reader"] == "blocks" and s["balanced"] and s["lines"] == 201
    assert any("not valid UTF-8" in n for n in s["notes"])
    assert not list((tmp_path / "case" / ".staging").glob("**/*.parquet"))


@functools.cache
def _ctx() -> Context:
    con = new_connection()
    derive.install(con)
    return Context(con=con, source_file="p.log")


path_chars = st.sampled_from(list("/av2_.-?%:") + ["manifests", "blobs", "uploads", "tags", "reference",
                                                   "referrers", "_catalog", "/v2/", "ü"])


@settings(max_examples=60, deadline=None)
@given(paths=st.lists(st.lists(path_chars, max_size=14).map("".join), min_size=1, max_size=25))
def test_routes_match_the_sql(paths):
    texts = [f'10.0.0.1 - - [28/Nov/2026:12:57:33 +0000] "GET {p} HTTP/1.1" 200 2 "-" "curl/8" 0.001' for p in paths]
    fmt = get_format("nginx-combined")
    counts, tables = native._Run(_ctx(), fmt, native._native.nginx_combined, None, "f").rows(
        "\n".join(texts).encode(), 1)
    table = tables["requests"]
    assert counts.rows == {"requests": len(texts)} and counts.slow == 0  # the compiled parser took every line
    block = as_block(pa.table({"line_no": pa.array(range(1, len(texts) + 1), pa.int64()),
                               "text": pa.array(texts, pa.string())}))
    ref = fmt.parse(_ctx(), block, True).tables["requests"]
    assert table.to_pylist() == ref.sort_by("line_no").to_pylist()
