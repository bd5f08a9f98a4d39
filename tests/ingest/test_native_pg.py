"""The compiled PostgreSQL stderr parser gives, for every line, exactly what the SQL parser gives.

As for the request logs (test_native.py): the same generated log is ingested once by the compiled parser and once
with it switched off (WORKBENCH_NATIVE=0: DuckDB reads the whole file with postgres.py's SQL), and db_lock_waits,
log_events, the rejects and the ledger must be identical. The records cover the usual shapes, which the compiled
parser reads, and the unusual ones (zones it cannot turn into UTC, odd durations, repeated parts, lines of no
record), which it must leave to the SQL.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.ingest import native
from workbench.ingest.catalog import get_format
from workbench.ingest.pipeline import ingest

PREFIXES = {
    "%m [%p] %q%u@%d ": lambda ts, pid, u, d, a: f"{ts} [{pid}] " + (f"{u}@{d} " if u is not None else ""),
    "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ":
        lambda ts, pid, u, d, a: f"{ts} [{pid}]: [3-1] user={u or ''},db={d or ''},app={a or ''},client=10.0.0.9 ",
    "%m %u %d [%p] ": lambda ts, pid, u, d, a: f"{ts} {u or ''} {d or ''} [{pid}] ",
    "%t:%r:%u@%d:[%p]:": lambda ts, pid, u, d, a: f"{ts}:10.0.0.9(5{pid % 999}):{u or ''}@{d or ''}:[{pid}]:",
}
ZONES = ["CET"] * 6 + ["CEST", "UTC", "+02", "-0530", "+05:30", "cet", "XYZ", "IST", ""]
TABLES = ["blobs", "manifests", "tags", "repository_blobs"]


def _stmt(r: random.Random) -> str:
    t = r.choice(TABLES)
    return r.choice([
        f"SELECT id FROM {t} WHERE digest = 'sha256:{r.getrandbits(64):016x}' AND n = {r.randrange(99)}",
        f"UPDATE {t} SET last_pulled = now() WHERE id = {r.randrange(10**6)}",
        f"SELECT m.id\n\t  FROM manifests m\n\t WHERE m.name = 'it''s v{r.randrange(9)}' AND m.x = 1.5",
        f"DELETE FROM {t} WHERE id IN ({', '.join(str(r.randrange(99)) for _ in range(r.randrange(1, 4)))})",
        "SELEC broken 'unterminated", "select t1.a2 from t1 where b = 3x and c = 0.5y and d=7.", "",
        "SELECT 'ünï' || 'c''ode', 12.5e3", "SELECT 'it''s", "SELECT '''' FROM t WHERE a = 'x'''' AND b = 'y",
    ])


def _ts(r: random.Random, frac: bool, odd: bool) -> str:
    t = f"2026-11-{r.randint(28, 29)} {r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}"
    if frac:
        t += "." + "".join(r.choice("0123456789") for _ in range(r.choice([3, 3, 3, 1, 6, 7] if odd else [3])))
    zone = r.choice(ZONES if odd else ["CET"])
    return t + (f" {zone}" if zone else "")


def _record(r: random.Random, prefix: str, odd: bool) -> list[str]:
    """The lines of one record, as PostgreSQL writes them with this prefix."""
    fmt = PREFIXES[prefix]
    ts, pid = _ts(r, "%m" in prefix, odd), r.randrange(1000, 60000)
    u, d, a = (None, None, None) if r.random() < 0.1 else ("registry", r.choice(["registry", "ünï"]), "harbor-core")
    p = fmt(ts, pid, u, d, a)
    k = r.random()
    if k < 0.45:
        dur = f"{r.expovariate(1 / 40):.3f}"
        if odd and r.random() < 0.3:
            dur = r.choice(["1e3", "", "1.2.3", "12", ".5", "7."])
        stmt = _stmt(r)
        first, *rest = stmt.split("\n")
        how = r.choice(["statement: ", "execute <unnamed>: ", "parse S_1: ", "", "bind"])
        return [f"{p}LOG:  duration: {dur} ms  {how}{first}", *rest]
    if k < 0.6:
        verb = r.choice(["still waiting for", "acquired", "avoided deadlock for", "detected deadlock while waiting for"])
        what = r.choice([f"ShareLock on transaction {r.randrange(700, 10**6)}",
                         f"AccessExclusiveLock on relation {r.randrange(16384, 17000)} of database 16384",
                         f"ExclusiveLock on tuple (0,{r.randrange(1, 90)}) of relation 16407 of database 16384",
                         "ExclusiveLock on advisory lock [16384,1,2,2]", "RowExclusiveLock on extension of relation 16407"])
        tail = r.choice(["", "", "by rearranging queue order "]) if verb == "avoided deadlock for" else ""
        msg = f"process {pid} {verb} {what} {tail}after {r.uniform(100, 30000):.3f} ms"
        if odd and r.random() < 0.3:
            msg = r.choice([msg + " extra", msg.replace(" on ", "  on "), f"process {pid} still waiting for X on y after 1 ms",
                            f"process {pid} acquired ShareLock on relation x of relation 17 after . ms",
                            f"process {pid} acquired ShareLock on transaction 5 after 1.2.3 ms",
                            f"process {'9' * r.choice([18, 19, 25])} acquired ShareLock on transaction 5 after 5. ms",
                            f"process {pid} acquired ShareLock on virtual transaction 3/7 after .5 ms",
                            f"process 00{pid} acquired Lock on Relation 5 after 1 ms"])
        out = [f"{p}LOG:  {msg}"]
        if r.random() < 0.8:
            out.append(f"{p}DETAIL:  Process{'es' if r.random() < 0.3 else ''} holding the lock: {r.randrange(1000, 60000)}"
                       f"{', 77' if r.random() < 0.3 else ''}. Wait queue: {pid}, {r.randrange(1000, 60000)}.")
            if odd and r.random() < 0.5:
                out[-1] = f"{p}DETAIL:  " + r.choice([
                    "Process holding the lock: . Wait queue: .", "Processes holding the lock: 1,, 2 3 ,4. Wait queue: 5",
                    "Process holding the lock: 1 Processes holding the lock: 7, 8. Wait queue:  , .",
                    "Process x. Process holding the lock: 12.", "holding the lock", "",
                    f"Process holding the lock: {'1' * r.choice([18, 19])}. Wait queue: 2."])
        if r.random() < 0.5:
            out.append(f"{p}CONTEXT:  while updating tuple (0,{r.randrange(1, 90)}) in relation \"manifests\"")
            if odd and r.random() < 0.5:
                out[-1] = f"{p}CONTEXT:  " + r.choice(['in relation "" in relation "b"', 'in relation "a', "",
                                                       'SQL function "f" statement 1', 'in relation "x\ny"'])
                if r.random() < 0.3:
                    out.append('\tin relation "continued"')
        if odd and r.random() < 0.3:
            out.append(f"{p}HINT:  " + r.choice(["", "retry"]))
        if odd and r.random() < 0.1:
            out.append(f"{p}DETAIL:  a second detail")
        out.append(f"{p}STATEMENT:  {_stmt(r)}".split("\n")[0])
        return out
    if k < 0.65:
        other = r.randrange(1000, 60000)
        return [f"{p}ERROR:  deadlock detected",
                f"{p}DETAIL:  Process {pid} waits for ShareLock on transaction 9; blocked by process {other}.",
                f"\tProcess {other} waits for ShareLock on transaction 8; blocked by process {pid}.",
                f"\tProcess {pid}: {_stmt(r).split(chr(10))[0]}", f"\tProcess {other}: UPDATE tags SET x = 1",
                f"{p}HINT:  See server log for query details.",
                f"{p}CONTEXT:  while locking tuple (0,1) in relation \"tags\"",
                f"{p}STATEMENT:  {_stmt(r).split(chr(10))[0]}"]
    if k < 0.7:
        return [f"{p}ERROR:  canceling statement due to {r.choice(['lock', 'statement'])} timeout",
                f"{p}STATEMENT:  UPDATE tags SET x = {r.randrange(9)}"]
    if k < 0.75:
        return [r.choice([f"{p}FATAL:  sorry, too many clients already",
                          f"{p}FATAL:  remaining connection slots are reserved for non-replication superuser connections",
                          f"{p}FATAL:  password authentication failed for user \"registry\"",
                          f"{p}ERROR:  relation \"nope\" does not exist at character {r.randrange(1, 99)}",
                          f"{p}ERROR:  syntax error at or near \"x\" at character 15",
                          f"{p}WARNING:  there is no transaction in progress",
                          f"{p}PANIC:  could not write to file", f"{p}FATAL:  the database system is starting up",
                          f'{p}FATAL:  database "nope" does not exist', f'{p}FATAL:  role "x" does not exist',
                          f'{p}FATAL:  no pg_hba.conf entry for host "10.0.0.1", user "x", database "y", no encryption'])]
    if k < 0.85:
        return [r.choice([f"{p}LOG:  connection received: host=10.0.0.{r.randrange(1, 250)} port={r.randrange(1024, 65535)}",
                          f"{p}LOG:  connection authorized: user=registry database=registry application_name=x",
                          f"{p}LOG:  database system is ready to accept connections",
                          f"{p}LOG:  checkpoint complete: wrote 12 buffers (0.1%); write=1.2 s",
                          f"{p}NOTICE:  ünïcode notice \"q\" \\ back"])]
    if k < 0.9:
        return [f"{p}LOG:  automatic vacuum of table \"registry.public.{r.choice(TABLES)}\": index scans: 1",
                f"\tpages: 0 removed, {r.randrange(1, 9999)} remain, 0 skipped due to pins", "\t", "\ttuples: 1 removed"]
    if k < 0.95:
        return [f"{p}ERROR:  duplicate key value violates unique constraint \"tags_pkey\"",
                f"{p}DETAIL:  Key (name)=(v1) already exists.", f"{p}QUERY:  SELECT 1", "\tcontinued query",
                f"{p}LOCATION:  _bt_check_unique, nbtinsert.c:664", f"{p}STATEMENT:  INSERT INTO tags VALUES (1)"]
    # lines of no record, blank lines, another layout
    return [r.choice(["", "   ", "not a postgres line", "\torphan-looking continuation", "2026-11-28 12:00:00 broken",
                      f"{p}STATEMENT:  a statement after a line of no record",
                      f"{p}LOG:  " + "x" * r.choice([10, 700])])]


def _write(path: Path, prefix: str, seed: int, n: int, odd: float = 0.2) -> None:
    r = random.Random(seed)
    lines = []
    if r.random() < 2:  # lines before the first record: no record for them
        lines += ["\tcontinuation before any record", f"{PREFIXES[prefix]('2026-11-28 00:00:00.000 CET', 1, 'u', 'd', 'a')}"
                  "DETAIL:  a detail before any record", ""]
    while len(lines) < n:
        lines += _record(r, prefix, r.random() < odd)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _read(case: Path, table: str) -> list:
    files = sorted(case.glob(f"parquet/{table}/**/*.parquet"))
    if not files:
        return []
    names = ", ".join(f"'{f}'" for f in files)
    return duckdb.sql(f"SELECT * FROM read_parquet([{names}], hive_partitioning = false) ORDER BY ALL").fetchall()


def _ledger(summary: dict) -> dict:
    f = summary["files"][0]
    return {k: f[k] for k in ("format", "lines", "rows", "used_lines", "rejects", "skipped", "balanced")}


def _same(tmp_path: Path, monkeypatch, log: Path, **kw) -> dict:
    fast = ingest(tmp_path / "fast", [log], format="postgres-stderr", **kw).to_dict()
    with monkeypatch.context() as m:
        m.setenv("WORKBENCH_NATIVE", "0")
        ref = ingest(tmp_path / "ref", [log], format="postgres-stderr", **kw).to_dict()
    assert (fast["files"][0]["reader"], ref["files"][0]["reader"]) == ("native", "duckdb")
    assert _ledger(fast) == _ledger(ref)
    for table in ("db_lock_waits", "log_events", "rejects"):
        assert _read(tmp_path / "fast", table) == _read(tmp_path / "ref", table), table
    return fast["files"][0]


def test_the_compiled_postgres_parser_is_built():
    assert native.parser_for(get_format("postgres-stderr")) is not None


@pytest.mark.parametrize("prefix", list(PREFIXES))
def test_compiled_postgres_parser_gives_what_the_sql_gives(tmp_path, monkeypatch, prefix):
    log = tmp_path / "postgresql.log"
    _write(log, prefix, seed=len(prefix), n=6000)
    f = _same(tmp_path, monkeypatch, log, options={"pg_prefix": prefix})
    assert f["rejects"] > 0 and f["skipped"].get("blank", 0) > 0
    assert f["rows"]["db_lock_waits"] > 500 and f["rows"]["log_events"] > 100
    # the compiled parser read most records itself and left the others to the SQL
    out = native._native.postgres_stderr(log.read_bytes(), 1, prefix, {"CET": 3600, "": 0})
    assert out["lines"] == f["lines"] and out["slow"] > 50
    # most lock-wait rows it worked out whole; the other records went on to the SQL as records
    assert out["w_rows"] > 400 and out["rows"] > 300 and out["w_rows"] + out["rows"] > 1000


def test_times_in_tz_and_blocks_cut_at_records(tmp_path, monkeypatch):
    """--tz given: times without a zone, and ambiguous zones, are the SQL's; small blocks end where records
    start, so a record's DETAIL and continuations are never cut from it."""
    monkeypatch.setattr(native, "PG_BLOCK_BYTES", 4096)
    prefix = "%m [%p] %q%u@%d "
    log = tmp_path / "postgresql.log"
    _write(log, prefix, seed=11, n=3000, odd=0.3)
    f = _same(tmp_path, monkeypatch, log, tz="Asia/Kolkata")
    assert f["rows"]["db_lock_waits"] > 200


def test_a_record_longer_than_a_block_leaves_the_file_to_the_sql(tmp_path, monkeypatch):
    monkeypatch.setattr(native, "PG_BLOCK_BYTES", 4096)
    log = tmp_path / "postgresql.log"
    _write(log, "%m [%p] %q%u@%d ", seed=5, n=200, odd=0)
    with open(log, "a", encoding="utf-8") as fh:
        fh.write("2026-11-28 10:00:00.000 CET [7] u@d LOG:  duration: 1.000 ms  statement: SELECT\n")
        fh.write("".join(f"\t, column_{i}\n" for i in range(1000)))
    s = ingest(tmp_path / "case", [log], format="postgres-stderr").to_dict()["files"][0]
    assert s["reader"] == "duckdb" and s["balanced"]
    assert any("a record longer than a block" in n for n in s["notes"]), s["notes"]


def test_a_prefix_without_a_time_leaves_the_file_to_the_sql(tmp_path):
    log = tmp_path / "postgresql.log"
    log.write_text("".join(f"[{p}-1] user=u,db=d,app=a,client=h LOG:  duration: 1.5 ms  statement: SELECT {p}\n"
                           for p in range(100, 200)))
    s = ingest(tmp_path / "case", [log], format="postgres-stderr").to_dict()["files"][0]
    assert s["reader"] == "duckdb" and s["rejects"] == 100  # no time: every record is a reject, with its reason
    assert any("has no %m or %t" in n for n in s["notes"]), s["notes"]


_PIECES = st.sampled_from(["2026-11-28 10:00:00.123 CET ", "2026-11-28 10:00:00 CET ", "2026-11-28 10:00:00.5 +02 ",
                           "2026-11-28 10:00:00.1234567 UTC ", "2026-13-28 10:00:00.000 CET ", "[12] ", "[x] ", "u@d ",
                           "ü@d ", "@ ", "LOG:  ", "DETAIL:  ", "STATEMENT:  ", "HINT:  ", "CONTEXT:  ", "QUERY:  ",
                           "ERROR:  ", "FATAL:  ", "log:  ", "LOG: ", "\t", " ", "duration: ", "1.5 ms  ",
                           "statement: ", "SELECT 1", "'a''b'", "process 7 still waiting for ShareLock on x after 1 ms",
                           " at character 5", "deadlock detected", "é", "'x''", "''", "'", " 1.2.3 ", "t1 2x",
                           "process 7 acquired ShareLock on relation 5 of database 1 after 2.5 ms",
                           "process 8 avoided deadlock for ExclusiveLock on advisory lock [1,2] after . ms",
                           "process 9 still waiting for ShareLock on virtual transaction 3/1 after 7. ms",
                           "Process holding the lock: 1, 2. ", "Processes holding the lock: ", "Wait queue: 3 ,4.",
                           "Wait queue: .", " in relation \"t\"", 'in relation "', "canceling statement due to lock timeout",
                           ", ", ". ", "00000 "])


_TS = st.sampled_from(["2026-11-28 10:00:00.123 CET", "2026-11-28 10:00:00.123 CET", "2026-11-28 10:00:00.1 +02", "2026-11-28 10:00:00.1234567 UTC",
                       "2026-13-28 10:00:00.000 CET", "2026-11-28 10:00:00.000 XYZ", "2026-11-28 10:00:00.000",
                       "2026-11-28 10:00:00.000+02"])
_LINE = st.builds(lambda ts, pid, who, sev, rest: f"{ts} [{pid}] {who}{sev}{rest}", _TS,
                  st.sampled_from(["7", "7", "99999999999999999999"]), st.sampled_from(["u@d ", "", "ü@d ", "@ ", "a b@c "]),
                  st.sampled_from(["LOG:  ", "LOG:  ", "ERROR:  ", "FATAL:  ", "DETAIL:  ", "STATEMENT:  ", "CONTEXT:  ",
                                   "HINT:  ", "QUERY:  ", "", "LOG: "]),
                  st.lists(_PIECES, max_size=5).map("".join))
_CONT = st.lists(_PIECES, max_size=4).map(lambda p: "\t" + "".join(p))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.one_of(_LINE, _LINE, _CONT, st.lists(_PIECES, max_size=6).map("".join)), min_size=1, max_size=30))
def test_any_lines_give_what_the_sql_gives(tmp_path_factory, lines):
    """Lines pieced together from prefixes, severities and messages (broken ones too): the compiled parser and
    the SQL give the same ledger and rows, and the compiled parser's own counts add up."""
    tmp = tmp_path_factory.mktemp("pg")
    log = tmp / "postgresql.log"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = native._native.postgres_stderr(log.read_bytes(), 1, "%m [%p] %q%u@%d ", {"CET": 3600, "UTC": 0, "": 0})
    assert out["used"] + out["slow"] + out["blank"] == out["lines"] == len(lines)
    kw = {"options": {"pg_prefix": "%m [%p] %q%u@%d "}}
    fast = ingest(tmp / "fast", [log], format="postgres-stderr", **kw).to_dict()
    os.environ["WORKBENCH_NATIVE"] = "0"
    try:
        ref = ingest(tmp / "ref", [log], format="postgres-stderr", **kw).to_dict()
    finally:
        del os.environ["WORKBENCH_NATIVE"]
    if fast["files"][0]["status"] == "error":  # nothing that looks like this format: both say so
        assert ref["files"][0]["error"] == fast["files"][0]["error"]
        return
    assert fast["files"][0]["reader"] == "native"
    assert _ledger(fast) == _ledger(ref)
    for table in ("db_lock_waits", "log_events", "rejects"):
        assert _read(tmp / "fast", table) == _read(tmp / "ref", table), table


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(_LINE, _CONT, st.lists(_PIECES, max_size=6).map("".join)), min_size=1, max_size=40),
       st.sampled_from(sorted(PREFIXES)))
def test_prefix_counts_match_the_regex(lines, prefix):
    """detect_prefix's count of the lines a prefix fits, by the compiled module, is Python's regex's: on lines
    pieced together and on lines PostgreSQL writes with other prefixes."""
    from workbench.ingest.postgres import COMMON_PREFIXES, _py_regex

    r = random.Random(len(lines))
    lines = [ln for ln in lines + _record(r, prefix, True) if ln.isascii() and len(ln) <= 600]
    for p in COMMON_PREFIXES:
        rx = _py_regex(p)
        want = sum(1 for ln in lines if rx.match(ln))
        assert native._native.pg_prefix_count("\n".join(lines).encode(), p) == want, p
