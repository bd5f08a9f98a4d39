"""PostgreSQL log and lock-snapshot formats on committed fixtures (trimmed from real runs of tests/lab/postgres.py,
some broken on purpose), block boundaries, time zones, and any-text property tests."""

import datetime as dt
import json

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench import Case, ingest
from workbench.ingest import derive, source
from workbench.ingest.base import Context
from workbench.ingest.pg_snapshots import SnapshotAligned, SnapshotCSV
from workbench.ingest.postgres import PostgresCSV, PostgresJSON, PostgresStderr, detect_prefix, prefix_regex

UTC = dt.UTC


@pytest.fixture
def pg(fixtures):
    return fixtures / "postgres"


def _one(tmp_path, path, **kw):
    s = ingest(tmp_path / "case", [path], **kw).to_dict()
    f = s["files"][0]
    assert f["balanced"], f
    return f, Case(tmp_path / "case").connect()


def test_stderr_fixture(tmp_path, pg):
    truth = json.loads((pg.parents[1] / "truth" / "postgres-berlin.json").read_text())
    f, con = _one(tmp_path, pg / "berlin-postgresql.log")
    assert f["format"] == "postgres-stderr" and f["rejects"] == 0
    assert f["rows"] == {"db_lock_waits": 27, "log_events": 12}
    assert any("'%m [%p] %q%u@%d '" in n for n in f["notes"])
    rows = con.sql("SELECT ts, pid, holders, waiters, wait_ms FROM db_lock_waits WHERE event = 'waiting' "
                   "ORDER BY line_no LIMIT 1").fetchall()
    # 2026-11-28 14:22:22.873 CET is 13:22:22.873 UTC
    assert rows[0][0] == dt.datetime(2026, 11, 28, 13, 22, 22, 873000, tzinfo=UTC)
    assert rows[0][1] == truth["waiters"][0]["pid"] and rows[0][2] == [truth["holder"]["pid"]]
    assert rows[0][3] == [truth["waiters"][0]["pid"], truth["waiters"][1]["pid"]] and rows[0][4] == 103.635
    victim = con.sql("SELECT pid FROM db_lock_waits WHERE event = 'deadlock'").fetchall()
    assert victim == [(truth["deadlock"]["victim_pid"],)]
    kinds = dict(con.sql("SELECT message, kind FROM log_events").fetchall())
    assert kinds["database system is ready to accept connections"] == "startup"


def test_connection_failures_get_their_sqlstate_without_e_in_the_prefix(tmp_path):
    """A stderr prefix without %e: a connection failure's SQLSTATE comes from its message, as PostgreSQL's
    errcodes give it (too many clients 53300, password 28P01, starting up 57P03, no database 3D000, role or
    pg_hba 28000)."""
    messages = {"sorry, too many clients already": "53300",
                'password authentication failed for user "registry"': "28P01",
                "the database system is starting up": "57P03", 'database "nope" does not exist': "3D000",
                'role "x" does not exist': "28000",
                'no pg_hba.conf entry for host "10.0.0.1", user "x", database "y", no encryption': "28000"}
    log = tmp_path / "postgresql.log"
    log.write_text("".join(f"2026-11-28 10:00:0{i}.000 CET [{100 + i}] x@y FATAL:  {m}\n" for i, m in enumerate(messages))
                   + "2026-11-28 10:00:09.000 CET [9] x@y LOG:  duration: 1.5 ms  statement: SELECT 'too many clients'\n")
    f, con = _one(tmp_path, log)
    got = dict(con.sql("SELECT message, sqlstate FROM db_lock_waits WHERE event = 'connection_error'").fetchall())
    assert got == messages
    # a statement that quotes the words is no connection failure
    assert con.sql("SELECT sqlstate FROM db_lock_waits WHERE event = 'slow_statement'").fetchall() == [(None,)]


def test_pgbadger_prefix_and_numeric_offset(tmp_path, pg):
    """log_line_prefix '%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ' and log_timezone America/Sao_Paulo (-03)."""
    truth = json.loads((pg.parents[1] / "truth" / "postgres-saopaulo.json").read_text())
    f, con = _one(tmp_path, pg / "saopaulo-pgbadger-prefix.log")
    assert f["rejects"] == 0 and f["rows"]["db_lock_waits"] == 27
    r = con.sql("SELECT ts, application, user_name, database FROM db_lock_waits WHERE event = 'deadlock'").fetchall()[0]
    assert r[1:] == ("registry-deadlock-b", "registry", "registry") or r[1] == "registry-deadlock-a"
    first = (pg / "saopaulo-pgbadger-prefix.log").read_text().split("\n")[0]
    local = dt.datetime.fromisoformat(first[:19])
    ev = con.sql("SELECT ts FROM log_events ORDER BY line_no LIMIT 1").fetchall()[0][0]
    assert ev == (local + dt.timedelta(hours=3)).replace(tzinfo=UTC)
    assert con.sql("SELECT pid FROM db_lock_waits WHERE event = 'lock_timeout'").fetchall() == [
        (truth["lock_timeout"]["pid"],)]


def test_each_file_gets_its_own_prefix(tmp_path, pg):
    """Two logs with different log_line_prefix settings in one ingest: each is detected on its own."""
    s = ingest(tmp_path / "case", [pg / "berlin-postgresql.log", pg / "saopaulo-pgbadger-prefix.log"]).to_dict()
    by_name = {f["source_file"].rsplit("/", 1)[-1]: f for f in s["files"]}
    for name in ("berlin-postgresql.log", "saopaulo-pgbadger-prefix.log"):
        assert by_name[name]["rejects"] == 0 and by_name[name]["rows"]["db_lock_waits"] == 27, by_name[name]
    assert any("'%m [%p] %q%u@%d '" in n for n in by_name["berlin-postgresql.log"]["notes"])
    assert any("%t [%p]" in n for n in by_name["saopaulo-pgbadger-prefix.log"]["notes"])


def test_given_prefix_is_used(tmp_path, pg):
    f, _ = _one(tmp_path, pg / "saopaulo-pgbadger-prefix.log",
                options={"pg_prefix": "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h "})
    assert f["rejects"] == 0 and not any("detected" in n for n in f["notes"])
    f2, _ = _one(tmp_path / "b", pg / "saopaulo-pgbadger-prefix.log", options={"pg_prefix": "%m [%p] "})
    assert f2["rejects"] > 0  # the wrong prefix: lines are rejected, with the reason, not misread


@pytest.mark.parametrize("name,fmt", [("berlin-postgresql.csv", "postgres-csvlog"),
                                      ("berlin-postgresql.json", "postgres-jsonlog")])
def test_csvlog_and_jsonlog_fixtures(tmp_path, pg, name, fmt):
    f, con = _one(tmp_path, pg / name)
    assert f["format"] == fmt and f["rejects"] == 0 and f["rows"] == {"db_lock_waits": 27, "log_events": 12}
    peer = con.sql("SELECT pid, statement FROM db_lock_waits WHERE event = 'deadlock_peer'").fetchall()
    assert len(peer) == 1 and "WHERE id = 11" in peer[0][1]


def test_broken_stderr(tmp_path, pg):
    f, con = _one(tmp_path, pg / "broken-stderr.log")
    rej = con.sql("SELECT line_no, reason FROM rejects ORDER BY line_no").fetchall()
    assert rej[0] == (1, "continuation line with no record before it")
    assert rej[1][0] == 7 and "not a PostgreSQL log line" in rej[1][1]
    assert [r[0] for r in rej[2:]] == list(range(9, 15)) and all("XYZT" in r[1] for r in rej[2:])
    assert f["skipped"] == {"blank": 1}
    assert sorted(e for (e,) in con.sql("SELECT event FROM db_lock_waits").fetchall()) == [
        "deadlock", "deadlock_peer", "waiting"]


def test_unknown_zone_read_in_tz_when_given(tmp_path, pg):
    f, con = _one(tmp_path, pg / "broken-stderr.log", tz="Europe/Berlin")
    assert f["rejects"] == 2  # the orphan and the stray line; the XYZT record is read in Europe/Berlin
    ts = con.sql("SELECT ts FROM db_lock_waits WHERE lock_object = 'transaction 726'").fetchall()
    assert ts == [(dt.datetime(2026, 11, 28, 13, 22, 22, 949000, tzinfo=UTC),)]


def test_broken_csvlog_and_jsonlog(tmp_path, pg):
    f, con = _one(tmp_path, pg / "broken-truncated.csv")
    assert f["rejects"] == 2 and f["used_lines"] == 6
    assert {r for (r,) in con.sql("SELECT reason FROM rejects").fetchall()} == {
        "unterminated quoted field at the end of the file"}
    f, con = _one(tmp_path / "j", pg / "broken.json")
    assert f["format"] == "postgres-jsonlog" and f["rows"]["db_lock_waits"] == 4
    assert [r for (r,) in con.sql("SELECT reason FROM rejects ORDER BY line_no").fetchall()] == [
        "not a JSON object", "JSON without a PostgreSQL error_severity", "not a JSON object"]


def test_snapshot_fixtures(tmp_path, pg):
    f, con = _one(tmp_path, pg / "berlin-locks.txt")
    assert f["rows"] == {"db_lock_snapshots": 36} and f["rejects"] == 0
    assert f["skipped"] == {"blank": 5, "footer": 3, "header": 3, "rule": 3, "snapshot marker": 3}
    q = con.sql("SELECT ts, query, relation, blocking_pids FROM db_lock_snapshots WHERE line_no = 7").fetchall()[0]
    # psql printed 07:22:23.412598-06 (America/Chicago)
    assert q[0] == dt.datetime(2026, 11, 28, 13, 22, 23, 412598, tzinfo=UTC)
    assert q[1] == "SELECT id, size\n  FROM blobs\n WHERE digest = 'sha256:' || md5('7')"
    assert q[2] == "blobs" and q[3] == [13434]
    f, con = _one(tmp_path / "c", pg / "berlin-locks.csv")
    assert f["rows"] == {"db_lock_snapshots": 36} and f["skipped"] == {"header": 1}


def test_broken_snapshots(tmp_path, pg):
    f, con = _one(tmp_path, pg / "broken-locks.txt")
    assert f["rejects"] == 1 and f["rows"] == {"db_lock_snapshots": 6}
    assert any("footer said 5 rows where 6" in n for n in f["notes"])
    f, con = _one(tmp_path / "c", pg / "broken-locks.csv")
    assert [r for (r,) in con.sql("SELECT reason FROM rejects ORDER BY line_no").fetchall()] == [
        "row without a numeric pid", "3 fields; the header has 19"]


def test_snapshot_marker_and_tz_without_offsets(tmp_path):
    p = tmp_path / "locks.txt"
    p.write_text("-- snapshot 2026-11-28 07:00:00\n pid  | mode | granted | blocking_pids\n"
                 "------+------+---------+---------------\n 4242 | x    | f       | {7}\n(1 row)\n")
    f, con = _one(tmp_path, p, tz="America/Chicago")
    assert con.sql("SELECT ts, pid, granted, blocking_pids FROM db_lock_snapshots").fetchall() == [
        (dt.datetime(2026, 11, 28, 13, 0, tzinfo=UTC), 4242, False, [7])]
    assert "snapshot time from `-- snapshot` lines" in f["notes"]


@pytest.mark.parametrize("stamp,utc", [
    ("2026-07-01 14:00:00.5 CEST", "2026-07-01 12:00:00.5"),
    ("2026-07-01 09:00:00 CDT", "2026-07-01 14:00:00"),
    ("2026-07-01 14:00:00 +02", "2026-07-01 12:00:00"),
    ("2026-07-01 14:00:00 -0530", "2026-07-01 19:30:00"),
    ("2026-07-01 14:00:00.123 UTC", "2026-07-01 14:00:00.123"),
    ("2026-01-01 00:30:00 CET", "2025-12-31 23:30:00"),
])
def test_zone_abbreviations_and_offsets(stamp, utc):
    from workbench.ingest.pg_time import ts_sql

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE t AS SELECT $s AS s", {"s": stamp})
    got = con.sql(f"SELECT {ts_sql(con, 't', 's', 'UTC')} FROM t").fetchall()[0][0]
    assert got == dt.datetime.fromisoformat(utc).replace(tzinfo=UTC)


def test_prefix_detection_and_regex():
    line = "2026-11-28 10:28:50 -03 [16051]: [2-1] user=registry,db=registry,app=a b,client=127.0.0.1 DETAIL:  x"
    assert detect_prefix([line])[0] == "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h "
    rx, names = prefix_regex("%m [%p] %q%u@%d ")
    assert names == ["ts", "pid", "user", "db"] and rx.endswith(")?")


def test_records_split_across_blocks(tmp_path, pg, monkeypatch):
    """Tiny blocks: every multi-line record is cut somewhere, held back and finished with the next block."""
    whole = {}
    for name in ("berlin-postgresql.log", "berlin-postgresql.csv", "berlin-locks.txt"):
        f, con = _one(tmp_path / ("w" + name), pg / name)
        whole[name] = (f["rows"], con.sql("SELECT * EXCLUDE (source_file) FROM db_lock_waits ORDER BY line_no, event, pid"
                                          ).fetchall() if "locks" not in name else None)
    orig = source.LineReader.blocks
    monkeypatch.setattr(source.LineReader, "blocks", lambda self, block_bytes=0: orig(self, 700))
    for name, (rows, waits) in whole.items():
        f, con = _one(tmp_path / ("s" + name), pg / name)
        assert f["rows"] == rows and f["rejects"] == 0
        if waits is not None:
            assert con.sql("SELECT * EXCLUDE (source_file) FROM db_lock_waits ORDER BY line_no, event, pid"
                           ).fetchall() == waits


_LINE = st.one_of(
    st.text(max_size=80),
    st.sampled_from([
        "2026-11-28 14:22:22.873 CET [1] u@d LOG:  process 1 still waiting for ShareLock on transaction 5 after 100.1 ms",
        "2026-11-28 14:22:22.873 CET [1] u@d DETAIL:  Process holding the lock: 2. Wait queue: 1.",
        "2026-11-28 14:22:22.873 CET [1] u@d ERROR:  deadlock detected", "\tProcess 1: UPDATE t SET a = 1",
        "2026-11-28 14:22:22.873 QQQ [1] u@d LOG:  duration: 5.0 ms  statement: SELECT 1", "", '"', '""', ",,,",
        '2026-11-28 14:22:22.873 CET,"u","d",1,"h",s,1,"",2026-11-28 14:22:22 CET,1/1,0,LOG,00000,"x",,,,,,,,,"a","client backend",,0',
        '{"timestamp":"2026-11-28 14:22:22.873 CET","pid":1,"error_severity":"LOG","message":"m"}',
    ]),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_LINE, max_size=12), final=st.booleans())
def test_any_text_adds_up(lines, final):
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    derive.install(con)
    lines = [ln.replace("\n", " ").replace("\r", " ") for ln in lines]
    block = pa.table({"line_no": pa.array(range(1, len(lines) + 1), pa.int64()), "text": pa.array(lines, pa.string()),
                      "wrap_ts": pa.array([None] * len(lines), pa.timestamp("us", tz="UTC")),
                      "wrap_host": pa.array([None] * len(lines), pa.string()),
                      "wrap_program": pa.array([None] * len(lines), pa.string())})
    for fmt in (PostgresStderr(), PostgresCSV(), PostgresJSON(), SnapshotCSV(), SnapshotAligned()):
        ctx = Context(con=con, source_file="x.log")
        res = fmt.parse(ctx, block, final)
        assert res.used_lines + res.n_rejects + sum(res.skipped.values()) + res.held_back == len(lines), fmt.name
