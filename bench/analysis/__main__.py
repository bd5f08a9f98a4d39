"""Benchmark: the per-minute percentile table and the top-20 talkers, through ibis on DuckDB and as
hand-written DuckDB SQL in the same process, over a generated case.

    python bench/analysis                       # 1.5M and 50M requests
    python bench/analysis --rows 1500000        # one size
    python bench/analysis --out /tmp/wb-bench   # where the cases go (kept; reused when the size matches)

The data is generated in a streamed way, one million rows at a time, and written straight as Parquet in the
canonical `requests` schema through the case writer (not as log text to ingest: the point is the analysis).
Each size's queries run in a child process, so its peak RSS is the queries' alone. Printed per size:
seconds in the engine for ibis and for SQL (best of --repeat), their ratio, whether the answers are
identical, and peak RSS.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from workbench import schema  # noqa: E402
from workbench.case import Case  # noqa: E402

CHUNK = 1_000_000
START_US = 1_795_392_000_000_000  # 2026-11-23T00:00:00Z, a Monday
ROUTES = np.array(["manifest", "blob", "blob_upload", "tags", "base"])
METHODS = np.array(["GET", "GET", "PUT", "GET", "GET"])
P_ROUTE = [0.5, 0.38, 0.05, 0.05, 0.02]
UAS = np.array([f"containerd/v1.7.{i}" for i in range(20)] + [f"docker/24.0.{i} go/go1.20" for i in range(20)]
               + ["skopeo/1.9.3", "kubelet/v1.29.1", "python-requests/2.31.0", "crane/v0.19.0"])


def _strings(idx: np.ndarray, values: np.ndarray) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(idx.astype(np.int32)), pa.array(values)).cast(pa.string())


def chunk(rng: np.random.Generator, n: int, t0_us: int, span_us: int, ips: np.ndarray, repos: np.ndarray) -> pa.Table:
    ts = np.sort(rng.integers(t0_us, t0_us + span_us, n))
    r = rng.choice(len(ROUTES), n, p=P_ROUTE)
    ip_idx = np.minimum(rng.zipf(1.3, n) - 1, len(ips) - 1)  # heavy-tailed: a few clients talk a lot
    ua_idx = rng.integers(0, len(UAS), n)
    base = np.array([0.03, 0.06, 0.9, 0.02, 0.01])[r]
    dur = base * rng.lognormal(0, 0.7, n)
    status = np.where(rng.random(n) < 0.01, 500, np.where(rng.random(n) < 0.02, 404, 200)).astype(np.int32)
    cols = {f.name: pa.nulls(n, f.type) for f in schema.REQUESTS}
    cols.update(
        ts=pa.array(ts, pa.timestamp("us", tz="UTC")), layer=_strings(np.zeros(n, int), np.array(["registry"])),
        method=_strings(r, METHODS), route=_strings(r, ROUTES), status=pa.array(status),
        duration_s=pa.array(dur), bytes_out=pa.array(rng.integers(0, 5_000_000, n)),
        remote_ip=_strings(ip_idx, ips), user_agent=_strings(ua_idx, UAS),
        repository=_strings(rng.integers(0, len(repos), n), repos),
        source_file=_strings(np.zeros(n, int), np.array(["bench"])), line_no=pa.array(np.arange(n)),
    )
    return pa.table(cols, schema=schema.REQUESTS)


def build(path: Path, rows: int, days: int) -> None:
    """Write `rows` requests over `days` days into a new case at `path`, a chunk at a time."""
    from workbench.ingest.pipeline import _stage_table

    rng = np.random.default_rng(20261123)
    ips = np.array([f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(20_000)])
    repos = np.array([f"team{i % 40}/svc{i}" for i in range(800)])
    span = days * 86_400_000_000
    k = max(1, -(-rows // CHUNK))
    with Case(path).writer() as w:
        fid = w.new_file_id()
        staged: list = []
        part = 0
        for i in range(k):
            n = min(CHUNK, rows - i * CHUNK)
            part = _stage_table(w, fid, "requests", chunk(rng, n, START_US + span * i // k, span // k, ips, repos),
                                staged, part)
        sha = hashlib.sha256(f"bench-{rows}-{days}".encode()).hexdigest()
        w.commit(fid, staged, {"source_file": f"bench:{rows}", "size": 0, "sha256": sha, "format": "bench",
                               "lines": rows, "rows": rows, "rejects": 0, "skipped": 0, "summary": {}})


SQL_PERCENTILES = """
SELECT time_bucket(INTERVAL 1 MINUTE, ts) AS bucket, route, count(*) AS requests,
       quantile_cont(duration_s, 0.5) AS p50, quantile_cont(duration_s, 0.9) AS p90,
       quantile_cont(duration_s, 0.95) AS p95, quantile_cont(duration_s, 0.99) AS p99,
       quantile_cont(duration_s, 0.999) AS p999, max(duration_s) AS max
FROM requests WHERE ts >= $s AND ts < $e AND date >= $sd AND date <= $ed
GROUP BY ALL ORDER BY bucket, route
"""
SQL_TOP = """
SELECT '{dim}' AS dimension, coalesce(CAST({dim} AS VARCHAR), '(none)') AS value, requests, bytes, errors,
       client_errors, slow, requests / sum(requests) OVER () AS request_share,
       CASE WHEN sum(bytes) OVER () > 0 THEN bytes / sum(bytes) OVER () END AS bytes_share,
       CASE WHEN sum(slow) OVER () > 0 THEN slow / sum(slow) OVER () END AS slow_share,
       CASE WHEN sum(duration_s) OVER () > 0 THEN duration_s / sum(duration_s) OVER () END AS latency_share
FROM (SELECT {dim}, count(*) AS requests, sum(coalesce(bytes_out, 0) + coalesce(bytes_in, 0)) AS bytes,
             count(*) FILTER (status >= 500) AS errors, count(*) FILTER (status >= 400 AND status < 500) AS client_errors,
             count(*) FILTER (duration_s >= 0.2) AS slow, sum(duration_s) AS duration_s
      FROM requests WHERE ts >= $s AND ts < $e AND date >= $sd AND date <= $ed GROUP BY {dim})
ORDER BY requests DESC, value LIMIT 20
"""


def _peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM: reset by exec, unlike ru_maxrss which a child inherits)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_queries(path: Path, repeat: int, memory_limit: str, threads: int) -> dict:
    """Child process: time the ibis set and the SQL set, compare answers; returns figures."""
    import polars as pl

    from workbench.analysis import latency, talkers
    from workbench.analysis.params import case_window, days
    from workbench.engine import connect

    con = connect(path)
    for s in (f"SET memory_limit='{memory_limit}'", f"SET threads={threads}", "SET preserve_insertion_order=false"):
        con.raw_sql(s)
    w = case_window(con)
    req = con.table("requests")

    def ibis_set():
        pt = latency.percentile_table(req, latency.LatencyParams(window=w), by=("route",)).frame
        tops = [talkers.top_talkers(req, talkers.TalkerParams(window=w, top=20), d).to_polars()
                for d in ("remote_ip", "user_agent")]
        return pt, tops

    duck = Case(path).connect()
    for s in (f"SET memory_limit='{memory_limit}'", f"SET threads={threads}", "SET preserve_insertion_order=false"):
        duck.execute(s)
    params = {"s": w.start, "e": w.end, "sd": w.start.date(), "ed": w.end.date()}

    def sql_set():  # the same plan by hand: one query per UTC day, then the top talkers over the window
        pt = pl.concat([pl.from_arrow(duck.sql(SQL_PERCENTILES, params={
            "s": d.start, "e": d.end, "sd": d.start.date(), "ed": d.start.date()}).to_arrow_table()) for d in days(w)])
        tops = [pl.from_arrow(duck.sql(SQL_TOP.format(dim=d), params=params).to_arrow_table())
                for d in ("remote_ip", "user_agent")]
        return pt, tops

    def best(f):
        times, out = [], None
        for _ in range(repeat):
            t0 = time.perf_counter()
            out = f()
            times.append(time.perf_counter() - t0)
        return min(times), out

    t_ibis, (pt_i, tops_i) = best(ibis_set)
    t_sql, (pt_s, tops_s) = best(sql_set)
    pt_s = pt_s.with_columns(pl.col("bucket").dt.cast_time_unit("us").dt.convert_time_zone("UTC"))
    same = pt_i.select(pt_s.columns).equals(pt_s) and all(
        a.columns == b.columns and a.select(pl.exclude(pl.Float64)).equals(b.select(pl.exclude(pl.Float64)))
        and all((a[c] - b[c]).abs().max() < 1e-9 for c in a.columns if a[c].dtype == pl.Float64)
        for a, b in zip(tops_i, tops_s, strict=True))
    return {"rows": int(req.count().to_pyarrow().as_py()), "ibis_s": t_ibis, "sql_s": t_sql,
            "ratio": t_ibis / t_sql, "identical": bool(same), "minutes": pt_i["bucket"].n_unique(),
            "peak_rss_mib": _peak_rss_mib(),
            "top_ip": tops_i[0]["value"][0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/analysis", description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, action="append", help="request count (repeatable); default 1.5M and 50M")
    ap.add_argument("--days", type=int, default=0, help="days the requests span (default: 1 per 10M rows, at least 1)")
    ap.add_argument("--out", default="/tmp/wb-bench")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--memory-limit", default="1GB", help="DuckDB memory_limit for the query processes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(run_queries(Path(a.child), a.repeat, a.memory_limit, a.threads)))
        return 0
    for rows in a.rows or [1_500_000, 50_000_000]:
        days = a.days or max(1, rows // 10_000_000)
        path = Path(a.out) / f"requests-{rows}-{days}d"
        if not Case(path).exists():
            t0 = time.perf_counter()
            build(path, rows, days)
            gen_s = time.perf_counter() - t0
            gen_rss = _peak_rss_mib()
            print(f"generated {rows:,} requests over {days} d in {gen_s:.1f} s (generator peak RSS {gen_rss:.0f} MiB)")
        out = subprocess.run([sys.executable, str(Path(__file__).parent), "--child", str(path),
                              "--repeat", str(a.repeat), "--memory-limit", a.memory_limit,
                              "--threads", str(a.threads)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['rows']:>11,} requests, {r['minutes']:,} minutes: ibis {r['ibis_s']:.3f} s, SQL {r['sql_s']:.3f} s, "
              f"ratio {r['ratio']:.2f}, identical answers: {'yes' if r['identical'] else 'NO'}, "
              f"peak RSS {r['peak_rss_mib']:.0f} MiB (memory_limit {a.memory_limit}, {a.threads} threads); "
              f"top IP {r['top_ip']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
