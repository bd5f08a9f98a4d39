"""Real PostgreSQL lock evidence: a throw-away PostgreSQL 15 on 127.0.0.1 with stderr, csvlog and jsonlog at
once (log_timezone not UTC), real contention driven with psycopg, and pg_locks snapshots taken with psql.

`capture(out_dir)` starts the server (as the `postgres` user when running as root), runs the scenario, stops the
server by its pid, and leaves in out_dir:

- `postgresql.log`, `postgresql.csv`, `postgresql.json` — the server's own logs in the three formats
- `locks.csv` (psql --csv, several snapshots, one header) and `locks.txt` (psql aligned, several snapshots,
  `-- snapshot <ISO>` markers, wrapped multi-line queries, empty NULLs)
- `truth.json` — what the lab knows from the client side: the holder's pid, each waiter's pid, what it waited
  for and how long (measured by the client), the deadlock victim, the lock-timeout pid, snapshot times.

`python -m tests.lab.postgres OUT_DIR` does the same from the command line (the committed fixtures under
data/fixtures/postgres/ were trimmed from such a run).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BINDIR = Path("/usr/lib/postgresql/15/bin")
LOG_TZ = "Europe/Berlin"
PREFIX = "%m [%p] %q%u@%d "
PSQL_TZ = "America/Chicago"
STEP_TIMEOUT_S = 30.0  # every wait in the scenario is bounded by this


def available() -> bool:
    return (BINDIR / "postgres").exists() and (BINDIR / "initdb").exists() and shutil.which("psql") is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user() -> dict:
    """subprocess arguments that run a command as `postgres` when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


@dataclass
class Server:
    root: Path
    port: int
    proc: subprocess.Popen
    log_tz: str
    prefix: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def logdir(self) -> Path:
        return self.root / "log"

    def dsn(self, user: str = "postgres", password: str | None = None, app: str = "lab", db: str = "registry") -> str:
        pw = f" password={password}" if password else ""
        return f"host=127.0.0.1 port={self.port} dbname={db} user={user}{pw} application_name={app} connect_timeout=5"


def start(log_tz: str = LOG_TZ, prefix: str = PREFIX, max_connections: int = 14) -> Server:
    """initdb in a fresh temp dir and start postgres on a free loopback port; returns once it accepts connections."""
    root = Path(tempfile.mkdtemp(prefix="wb-pglab-"))
    os.chmod(root, 0o755)
    (root / "log").mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(root / "log", "postgres", "postgres")
    env = {**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC"}
    subprocess.run([str(BINDIR / "initdb"), "-D", str(root / "data"), "-U", "postgres", "--auth-local=trust",
                    "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"],
                   check=True, capture_output=True, timeout=120, env=env, **_as_user())
    hba = root / "data" / "pg_hba.conf"
    hba.write_text("local all all trust\nhost all postgres 127.0.0.1/32 trust\n"
                   "host all all 127.0.0.1/32 scram-sha-256\n")
    port = _free_port()
    settings = {
        "listen_addresses": "127.0.0.1", "port": str(port), "unix_socket_directories": str(root),
        "max_connections": str(max_connections), "superuser_reserved_connections": "3",
        "logging_collector": "on", "log_destination": "stderr,csvlog,jsonlog",
        "log_directory": str(root / "log"), "log_filename": "postgresql.log", "log_rotation_size": "0",
        "log_timezone": log_tz, "log_line_prefix": prefix, "log_lock_waits": "on",
        "deadlock_timeout": "100ms", "log_min_duration_statement": "200", "log_connections": "off",
        "fsync": "off", "timezone": "UTC",
    }
    args = [str(BINDIR / "postgres"), "-D", str(root / "data")]
    for k, v in settings.items():
        args += ["-c", f"{k}={v}"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, **_as_user())
    srv = Server(root, port, proc, log_tz, prefix)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"postgres exited with {proc.returncode}; see {root / 'log'}")
        r = subprocess.run([str(BINDIR / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True)
        if r.returncode == 0:
            break
        time.sleep(0.1)
    else:
        stop(srv)
        raise RuntimeError("postgres did not accept connections within 60 s")
    subprocess.run([shutil.which("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres",
                    "-qc", "CREATE DATABASE registry"], check=True, capture_output=True, timeout=30)
    return srv


def _shutdown(srv: Server) -> None:
    """Fast shutdown by the postmaster's pid; kill it if it does not go within 20 s."""
    if srv.proc.poll() is None:
        srv.proc.send_signal(signal.SIGINT)
        try:
            srv.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            srv.proc.kill()
            srv.proc.wait(timeout=10)


def stop(srv: Server) -> None:
    """Stop the server (if still running) and remove its temp dir."""
    _shutdown(srv)
    shutil.rmtree(srv.root, ignore_errors=True)


SCHEMA = """
CREATE ROLE registry LOGIN PASSWORD 'registry-secret';
CREATE TABLE repositories (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE blobs (id serial PRIMARY KEY, digest text NOT NULL UNIQUE, size bigint NOT NULL);
CREATE TABLE manifests (id serial PRIMARY KEY, repository_id int NOT NULL, digest text NOT NULL,
                        last_pulled timestamptz);
CREATE TABLE tags (id serial PRIMARY KEY, manifest_id int NOT NULL, name text NOT NULL);
INSERT INTO repositories (name) SELECT 'library/app-' || g FROM generate_series(1, 5) g;
INSERT INTO blobs (digest, size) SELECT 'sha256:' || md5(g::text), g * 1024 FROM generate_series(1, 200) g;
INSERT INTO manifests (repository_id, digest) SELECT 1 + g % 5, 'sha256:' || md5('m' || g) FROM generate_series(1, 20) g;
INSERT INTO tags (manifest_id, name) SELECT g, 'v' || g FROM generate_series(1, 20) g;
GRANT ALL ON ALL TABLES IN SCHEMA public TO registry;
"""

SNAPSHOT_SQL = """
SELECT now() AS snapshot_ts, l.pid, l.locktype, l.mode, l.granted,
       coalesce(c.relname, l.relation::text) AS relation, l.transactionid, l.page, l.tuple,
       pg_blocking_pids(l.pid) AS blocking_pids, a.state, a.wait_event_type, a.wait_event,
       a.application_name, a.usename, a.xact_start, a.query_start,
       extract(epoch FROM now() - a.xact_start) AS xact_age_s, a.query
FROM pg_locks l
JOIN pg_stat_activity a ON a.pid = l.pid
LEFT JOIN pg_class c ON c.oid = l.relation
WHERE a.datname = 'registry' AND a.pid <> pg_backend_pid()
  AND (l.locktype IN ('transactionid', 'tuple') OR c.relname IN ('blobs', 'manifests', 'tags'))
ORDER BY l.pid, l.locktype, l.mode
"""


@dataclass
class Waiter:
    name: str
    sql: str
    pid: int = 0
    started: float = 0.0
    ended: float = 0.0
    error: str | None = None
    thread: threading.Thread | None = field(default=None, repr=False)


def _run_waiter(srv: Server, w: Waiter, ready: threading.Event) -> None:
    import psycopg

    with psycopg.connect(srv.dsn("registry", "registry-secret", app=f"registry-{w.name}"), autocommit=True) as c:
        c.execute(f"SET statement_timeout = '{int(STEP_TIMEOUT_S * 1000)}ms'")
        w.pid = c.info.backend_pid
        ready.set()
        w.started = time.time()
        try:
            c.execute(w.sql)
        except psycopg.Error as exc:
            w.error = type(exc).__name__
        w.ended = time.time()


def _psql(srv: Server, args: list[str]) -> str:
    env = {**os.environ, "PGTZ": PSQL_TZ, "PGAPPNAME": "lab-snapshot"}
    r = subprocess.run([shutil.which("psql"), "-h", "127.0.0.1", "-p", str(srv.port), "-U", "postgres",
                        "-d", "registry", "-X", *args], capture_output=True, text=True, timeout=STEP_TIMEOUT_S,
                       env=env, check=True)
    return r.stdout


def _wait_until(cond, what: str, timeout: float = STEP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise TimeoutError(f"lab: {what} did not happen within {timeout} s")


def _waiting_pids(admin) -> set[int]:
    rows = admin.execute("SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'").fetchall()
    return {r[0] for r in rows}


def scenario(srv: Server, out: Path) -> dict:
    """Drive contention and failures against a started server; write snapshots into out; return the truth."""
    import psycopg

    truth: dict = {"log_timezone": srv.log_tz, "log_line_prefix": srv.prefix, "psql_timezone": PSQL_TZ, "server_pid": srv.pid}
    admin = psycopg.connect(srv.dsn(app="lab-admin"), autocommit=True)
    admin.execute(SCHEMA)
    truth["relations"] = dict(admin.execute(
        "SELECT relname, oid::bigint FROM pg_class WHERE relname IN ('blobs', 'manifests', 'tags')").fetchall())
    truth["database_oid"] = admin.execute("SELECT oid::bigint FROM pg_database WHERE datname = 'registry'").fetchall()[0][0]

    # 1. a GC-like transaction: row lock on a manifest, then an exclusive lock on blobs, held for a while
    gc = psycopg.connect(srv.dsn("registry", "registry-secret", app="registry-gc"))
    gc.execute("UPDATE manifests SET last_pulled = now() WHERE id = 1")
    gc.execute("LOCK TABLE blobs IN ACCESS EXCLUSIVE MODE")
    truth["holder"] = {"pid": gc.info.backend_pid,
                       "xid": int(gc.execute("SELECT txid_current()").fetchall()[0][0]),
                       "locked_at": time.time()}
    waiters = [
        Waiter("blob-stat", "SELECT id, size\n  FROM blobs\n WHERE digest = 'sha256:' || md5('7')"),
        Waiter("blob-count", "SELECT count(*) FROM blobs"),
        Waiter("manifest-touch", "UPDATE manifests\n   SET last_pulled = now()\n WHERE id = 1"),
        Waiter("manifest-touch-2", "UPDATE manifests SET last_pulled = now() WHERE id = 1"),
    ]
    for w in waiters:
        ready = threading.Event()
        w.thread = threading.Thread(target=_run_waiter, args=(srv, w, ready), daemon=True)
        w.thread.start()
        if not ready.wait(STEP_TIMEOUT_S):
            raise TimeoutError(f"lab: waiter {w.name} did not connect")
        _wait_until(lambda w=w: w.pid in _waiting_pids(admin), f"{w.name} waiting")
    time.sleep(0.3)  # past deadlock_timeout: every waiter has logged "still waiting"

    snaps_csv, snaps_txt, snap_times = [], [], []
    for i in range(3):
        csv_out = _psql(srv, ["--csv", *([] if i == 0 else ["-t"]), "-c", SNAPSHOT_SQL])
        snaps_csv.append(csv_out)
        now = dt.datetime.now(dt.UTC)
        snap_times.append(now.isoformat())
        snaps_txt.append(f"-- snapshot {now.isoformat()}\n" + _psql(srv, ["-P", "pager=off", "-c", SNAPSHOT_SQL]))
        time.sleep(0.4)
    (out / "locks.csv").write_text("".join(snaps_csv))
    (out / "locks.txt").write_text("\n".join(snaps_txt))
    truth["snapshots"] = {"count": 3, "times_utc": snap_times}

    gc.execute("SELECT pg_sleep(0.3)")  # a slow statement inside the GC transaction
    truth["holder"]["released_at"] = time.time()
    gc.commit()
    for w in waiters:
        w.thread.join(STEP_TIMEOUT_S)
        if w.thread.is_alive():
            raise TimeoutError(f"lab: waiter {w.name} still blocked after the holder committed")
    truth["waiters"] = [
        {"name": w.name, "pid": w.pid, "started": w.started, "ended": w.ended, "wait_ms": round((w.ended - w.started) * 1000, 1), "error": w.error,
         "statement": w.sql}
        for w in waiters
    ]
    gc.close()

    # 2. a deliberate deadlock between two backends
    d1 = psycopg.connect(srv.dsn("registry", "registry-secret", app="registry-deadlock-a"))
    d2 = psycopg.connect(srv.dsn("registry", "registry-secret", app="registry-deadlock-b"))
    d1.execute("UPDATE manifests SET last_pulled = now() WHERE id = 10")
    d2.execute("UPDATE manifests SET last_pulled = now() WHERE id = 11")
    result: dict[str, str] = {}

    def second(conn, name, sql):
        try:
            conn.execute(sql)
            result[name] = "ok"
        except psycopg.errors.DeadlockDetected:
            result[name] = "deadlock"

    t = threading.Thread(target=second, args=(d1, "a", "UPDATE manifests SET last_pulled = now() WHERE id = 11"),
                         daemon=True)
    t.start()
    _wait_until(lambda: d1.info.backend_pid in _waiting_pids(admin), "deadlock: first backend waiting")
    time.sleep(0.3)
    second(d2, "b", "UPDATE manifests SET last_pulled = now() WHERE id = 10")
    if result.get("b") == "deadlock":
        d2.rollback()
    t.join(STEP_TIMEOUT_S)
    for c in (d1, d2):
        c.rollback()
    victim = "a" if result.get("a") == "deadlock" else "b"
    pids = {"a": d1.info.backend_pid, "b": d2.info.backend_pid}
    truth["deadlock"] = {"pids": sorted(pids.values()), "victim_pid": pids[victim],
                         "survivor_pid": pids["b" if victim == "a" else "a"]}
    d1.close()
    d2.close()

    # 3. a lock timeout
    holder = psycopg.connect(srv.dsn("registry", "registry-secret", app="registry-retention"))
    holder.execute("LOCK TABLE tags IN ACCESS EXCLUSIVE MODE")
    with psycopg.connect(srv.dsn("registry", "registry-secret", app="registry-api"), autocommit=True) as c:
        c.execute("SET lock_timeout = '300ms'")
        try:
            c.execute("SELECT name FROM tags WHERE manifest_id = 3")
            raise AssertionError("lab: the lock timeout did not fire")
        except psycopg.errors.LockNotAvailable:
            truth["lock_timeout"] = {"pid": c.info.backend_pid, "holder_pid": holder.info.backend_pid}
    holder.rollback()
    holder.close()

    # 4. a statement timeout and a slow statement
    with psycopg.connect(srv.dsn("registry", "registry-secret", app="registry-api"), autocommit=True) as c:
        c.execute("SET statement_timeout = '200ms'")
        try:
            c.execute("SELECT pg_sleep(2)")
        except psycopg.errors.QueryCanceled:
            truth["statement_timeout"] = {"pid": c.info.backend_pid}
        c.execute("SET statement_timeout = 0")
        c.execute("SELECT pg_sleep(0.25), 'slow catalog listing'")
        truth["slow"] = {"pid": c.info.backend_pid}

    # 5. connection failures: a wrong password, then the connection slots running out
    try:
        psycopg.connect(srv.dsn("registry", "wrong-password", app="registry-api")).close()
    except psycopg.OperationalError:
        truth["auth_failures"] = 1
    held, refused = [], {"reserved": 0, "too_many": 0}
    try:
        for _ in range(20):
            try:
                held.append(psycopg.connect(srv.dsn("registry", "registry-secret", app="registry-pool")))
            except psycopg.OperationalError as exc:
                refused["reserved" if "reserved" in str(exc) else "too_many"] += 1
                break
        for _ in range(10):
            try:
                held.append(psycopg.connect(srv.dsn(app="lab-admin-extra")))
            except psycopg.OperationalError as exc:
                refused["reserved" if "reserved" in str(exc) else "too_many"] += 1
                break
    finally:
        for c in held:
            c.close()
    truth["connection_refusals"] = refused
    admin.close()
    return truth


def capture(out_dir: str | os.PathLike, log_tz: str = LOG_TZ, prefix: str = PREFIX) -> dict:
    """Run the whole lab; returns the truth (also written to out_dir/truth.json)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    srv = start(log_tz, prefix)
    try:
        truth = scenario(srv, out)
        time.sleep(0.5)  # let the logging collector write out the last records
    finally:
        _keep_logs(srv, out)
        stop(srv)
    (out / "truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True))
    return truth


def _keep_logs(srv: Server, out: Path) -> Server:
    """Stop the server first (so its logs are complete), copy them out, then let stop() clean up."""
    _shutdown(srv)
    for name in ("postgresql.log", "postgresql.csv", "postgresql.json"):
        src = srv.logdir / name
        if src.exists():
            shutil.copyfile(src, out / name)
    return srv


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(capture(args[0] if args else "pglab-out", *(args[1:3])), indent=2))
