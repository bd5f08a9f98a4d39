"""Ingest speed for a PostgreSQL stderr log: `python -m bench.postgres [--mb 200] [--seed 7] [--dir DIR]`.

Generates (once, seeded) a log of the given size with a realistic mix in the lab's format
(`%m [%p] %q%u@%d `, log_timezone CET): `duration:` lines for most statements, multi-line statements with
tab-indented continuations, connection lines, checkpoints, autovacuum, lock waits with DETAIL / CONTEXT / STATEMENT,
deadlocks, lock and statement timeouts, too-many-clients and password failures. Then ingests it into a fresh case in
a child process and prints MB/s, lines/s and the child's peak RSS, next to a plain DuckDB `read_csv` of the same file
(one column per line, no parsing) in the same process as the floor, and the load average before and after (the
machine is shared: say it with the figures). `--sql-path` also times the ingest with the compiled parser off
(DuckDB's SQL parse of the whole file), which must give the same counts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APPS = ["registry-api", "registry-gc", "harbor-core", "gitlab-registry", "psql"]
TABLES = ["blobs", "manifests", "tags", "repositories", "repository_blobs", "layers"]


def _stmt(r: random.Random) -> str:
    t = r.choice(TABLES)
    k = r.random()
    if k < 0.45:
        return f"SELECT id, digest, size FROM {t} WHERE digest = 'sha256:{r.getrandbits(128):032x}'"
    if k < 0.65:
        return f"UPDATE {t} SET last_pulled = now() WHERE id = {r.randrange(1, 10**7)}"
    if k < 0.8:
        return (f"SELECT m.id, m.digest\n\t  FROM manifests m\n\t  JOIN tags t ON t.manifest_id = m.id\n"
                f"\t WHERE t.name = 'v{r.randrange(1, 999)}' AND m.repository_id = {r.randrange(1, 5000)}")
    if k < 0.9:
        return f"INSERT INTO {t} (digest, size) VALUES ('sha256:{r.getrandbits(128):032x}', {r.randrange(1, 10**9)})"
    return f"DELETE FROM {t} WHERE id IN ({', '.join(str(r.randrange(1, 10**7)) for _ in range(r.randrange(1, 8)))})"


def generate(path: Path, mb: int, seed: int) -> None:
    r = random.Random(seed)
    t = dt.datetime(2026, 11, 30, 6, 0, 0)
    target = mb << 20
    size = 0
    with open(path, "w", encoding="utf-8") as fh:
        while size < target:
            buf = []
            for _ in range(2000):
                t += dt.timedelta(microseconds=r.randrange(100, 5000))
                ts = t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d} CET"
                pid = r.randrange(1000, 60000)
                who = "registry@registry" if r.random() < 0.9 else "postgres@postgres"
                p = f"{ts} [{pid}] {who} "
                k = r.random()
                if k < 0.70:
                    buf.append(f"{p}LOG:  duration: {r.expovariate(1 / 40):.3f} ms  statement: {_stmt(r)}")
                elif k < 0.80:
                    buf.append(f"{ts} [{pid}] LOG:  connection received: host=127.0.0.{r.randrange(1, 250)} port={r.randrange(1024, 65535)}")
                elif k < 0.87:
                    buf.append(f"{p}LOG:  connection authorized: user=registry database=registry application_name={r.choice(APPS)}")
                elif k < 0.93:
                    holder, other = r.randrange(1000, 60000), r.randrange(1000, 60000)
                    verb = "still waiting for" if r.random() < 0.6 else "acquired"
                    what = r.choice([f"ShareLock on transaction {r.randrange(700, 10**6)}",
                                     f"AccessShareLock on relation {r.randrange(16384, 17000)} of database 16384",
                                     f"ExclusiveLock on tuple (0,{r.randrange(1, 90)}) of relation 16407 of database 16384"])
                    buf.append(f"{p}LOG:  process {pid} {verb} {what} after {r.uniform(100, 30000):.3f} ms")
                    if verb == "still waiting for":
                        buf.append(f"{p}DETAIL:  Process holding the lock: {holder}. Wait queue: {pid}, {other}.")
                    if what.startswith("ShareLock"):
                        buf.append(f"{p}CONTEXT:  while updating tuple (0,{r.randrange(1, 90)}) in relation \"manifests\"")
                    buf.append(f"{p}STATEMENT:  {_stmt(r)}")
                elif k < 0.935:
                    other = r.randrange(1000, 60000)
                    buf += [f"{p}ERROR:  deadlock detected",
                            f"{p}DETAIL:  Process {pid} waits for ShareLock on transaction 9; blocked by process {other}.",
                            f"\tProcess {other} waits for ShareLock on transaction 8; blocked by process {pid}.",
                            f"\tProcess {pid}: {_stmt(r)}", f"\tProcess {other}: {_stmt(r)}",
                            f"{p}HINT:  See server log for query details.", f"{p}STATEMENT:  {_stmt(r)}"]
                elif k < 0.95:
                    why = r.choice(["lock timeout", "statement timeout"])
                    buf += [f"{p}ERROR:  canceling statement due to {why}", f"{p}STATEMENT:  {_stmt(r)}"]
                elif k < 0.96:
                    buf.append(r.choice([f"{p}FATAL:  sorry, too many clients already",
                                         f"{p}FATAL:  remaining connection slots are reserved for non-replication superuser connections",
                                         f"{p}FATAL:  password authentication failed for user \"registry\""]))
                elif k < 0.98:
                    buf.append(f"{ts} [{pid}] LOG:  automatic vacuum of table \"registry.public.{r.choice(TABLES)}\": index scans: 1")
                    buf.append(f"\tpages: 0 removed, {r.randrange(1, 9999)} remain, 0 skipped due to pins")
                else:
                    buf.append(f"{ts} [{pid}] LOG:  checkpoint complete: wrote {r.randrange(1, 9999)} buffers (1.2%); "
                               "0 WAL file(s) added, 0 removed, 1 recycled; write=26.9 s, sync=0.002 s, total=27.0 s")
            text = "\n".join(buf) + "\n"
            fh.write(text)
            size += len(text.encode())


CHILD = """
import duckdb, json, resource, sys, time
from workbench import ingest
# the floor: DuckDB reading the same file as lines (one column, no parsing), in this process
con = duckdb.connect()
t = time.perf_counter()
con.sql("SELECT count(*), sum(length(line)) FROM read_csv(?, columns={'line': 'VARCHAR'}, header=false, "
        "delim=chr(0), quote='', escape='', auto_detect=false)", params=[sys.argv[2]]).fetchall()
base = time.perf_counter() - t
con.close()
t = time.perf_counter()
s = ingest(sys.argv[1], [sys.argv[2]], format="postgres-stderr").to_dict()
el = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_SELF)
f = s["files"][0]
print(json.dumps({"seconds": el, "read_s": base, "rss_kib": ru.ru_maxrss, "cpu_s": ru.ru_utime + ru.ru_stime,
                  "lines": s["totals"]["lines"], "rows": s["totals"]["rows"], "rejects": s["totals"]["rejects"],
                  "balanced": s["totals"]["balanced"], "reader": f["reader"]}))
"""


def _child(code: str, *args: str, env: dict | None = None) -> dict:
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True,
                         cwd=repo, timeout=1800, env={**os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "workbench-bench-postgres")
    ap.add_argument("--sql-path", action="store_true",
                    help="also time the workbench with its compiled parser off (WORKBENCH_NATIVE=0: DuckDB parses)")
    a = ap.parse_args()
    a.dir.mkdir(parents=True, exist_ok=True)
    log = a.dir / f"postgresql-{a.mb}mb-seed{a.seed}.log"
    if not log.exists():
        t = time.perf_counter()
        generate(log.with_suffix(".tmp"), a.mb, a.seed)
        log.with_suffix(".tmp").rename(log)
        print(f"generated {log} in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    mb = log.stat().st_size / 1e6
    case = Path(tempfile.mkdtemp(prefix="case-", dir=a.dir))
    load = os.getloadavg()[0]
    ing = _child(CHILD, str(case), str(log))
    result = {
        "file_mb": round(mb, 1), "lines": ing["lines"], "rows": ing["rows"], "rejects": ing["rejects"],
        "balanced": ing["balanced"], "reader": ing["reader"], "ingest_s": round(ing["seconds"], 2),
        "ingest_mb_s": round(mb / ing["seconds"], 1), "ingest_lines_s": round(ing["lines"] / ing["seconds"]),
        "ingest_peak_rss_mib": round(ing["rss_kib"] / 1024), "ingest_cpu_s": round(ing["cpu_s"], 2),
        "load_average_1m": [round(load, 1), round(os.getloadavg()[0], 1)],
        "duckdb_read_csv_s": round(ing["read_s"], 2), "duckdb_read_csv_mb_s": round(mb / ing["read_s"], 1),
        "ratio_to_read_csv": round(ing["seconds"] / ing["read_s"], 1),
        "targets": {"mb_s>=50": mb / ing["seconds"] >= 50, "rss<=512MiB": ing["rss_kib"] / 1024 <= 512},
    }
    shutil.rmtree(case, ignore_errors=True)
    if a.sql_path:
        case = Path(tempfile.mkdtemp(prefix="case-", dir=a.dir))
        sql = _child(CHILD, str(case), str(log), env={"WORKBENCH_NATIVE": "0"})
        shutil.rmtree(case, ignore_errors=True)
        if (sql["rows"], sql["rejects"], sql["lines"]) != (ing["rows"], ing["rejects"], ing["lines"]):
            raise SystemExit(f"the SQL path gave other counts: {sql}")
        result["sql_path"] = {"reader": sql["reader"], "ingest_s": round(sql["seconds"], 2),
                              "ingest_mb_s": round(mb / sql["seconds"], 1),
                              "ingest_peak_rss_mib": round(sql["rss_kib"] / 1024),
                              "ratio_native_to_sql": round(sql["seconds"] / ing["seconds"], 1)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
