"""The case store: Hive-partitioned Parquet plus case.duckdb (manifest, views), with atomic, idempotent commits.

Writers take an exclusive file lock (one ingest at a time), stage Parquet under `.staging/`, rename the files
into `parquet/`, then record them in the manifest in one DuckDB transaction. Readers build their views from the
manifest, so a reader sees a file's rows only once its ingest committed: before or after, never half.
Files left in `parquet/` by a killed ingest are not in the manifest; the next writer removes them.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from . import schema
from .errors import CaseBusy, CaseError

DB_NAME = "case.duckdb"
MANIFEST_DDL = """
CREATE TABLE IF NOT EXISTS manifest (
    file_id VARCHAR PRIMARY KEY,
    source_file VARCHAR NOT NULL,
    size BIGINT NOT NULL,
    sha256 VARCHAR NOT NULL,
    content_key VARCHAR NOT NULL UNIQUE,
    format VARCHAR NOT NULL,
    wrappers VARCHAR,
    compression VARCHAR,
    lines BIGINT NOT NULL,
    rows BIGINT NOT NULL,
    rejects BIGINT NOT NULL,
    skipped BIGINT NOT NULL,
    summary JSON NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS manifest_files (
    file_id VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    relpath VARCHAR NOT NULL UNIQUE,
    rows BIGINT NOT NULL
);
"""


def _connect_file(path: Path, read_only: bool, wait_s: float = 60.0) -> duckdb.DuckDBPyConnection:
    """Open case.duckdb, waiting while another process holds DuckDB's lock on it."""
    deadline = time.monotonic() + wait_s
    delay = 0.02
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            con.execute("SET TimeZone='UTC'")
            return con
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise CaseError(f"{path}: cannot open the case catalog ({exc}); is another process writing it?") from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def ingest_session(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor of `con`: a session of its own (temp tables, settings) in the same database, at no cost, pinned
    to UTC and without DuckDB's progress bar (it would write into the `--json` ledger on standard output)."""
    cur = con.cursor()
    cur.execute("SET TimeZone = 'UTC'")
    cur.execute("SET enable_progress_bar = false")
    return cur


def by_day(data: pa.Table) -> Iterator[tuple[dt.date, pa.Table]]:
    """A partitioned table's rows sorted by (ts, line_no) (sorted here only when they are not already), as one
    contiguous run per UTC day: (day, rows)."""
    if not _sorted_by_ts(data):
        data = data.sort_by([("ts", "ascending"), ("line_no", "ascending")])
    runs = pc.run_end_encode(pc.cast(data.column("ts"), pa.date32()).combine_chunks())
    start = 0
    for end, day in zip(runs.run_ends.to_pylist(), runs.values.to_pylist(), strict=True):
        yield day, data.slice(start, end - start)
        start = end


def _sorted_by_ts(data: pa.Table) -> bool:
    """True when rows are already in (ts, line_no) order (DuckDB sorted them), so no second sort is needed."""
    n = data.num_rows
    if n < 2:
        return True
    ts, ln = data.column("ts"), data.column("line_no")
    a, b = ts.slice(0, n - 1), ts.slice(1)
    ok = pc.or_(pc.less(a, b), pc.and_(pc.equal(a, b), pc.less_equal(ln.slice(0, n - 1), ln.slice(1))))
    return bool(pc.all(ok).as_py())


def fsync_file(path: Path) -> None:
    """Flush a written file to disk (staged files are durable before the commit renames them into place)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection pinned to UTC."""
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    return con


@dataclass
class Case:
    """A case folder. `Case(path).connect()` gives a read-only view of everything committed."""

    path: Path

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).resolve()

    @property
    def db_path(self) -> Path:
        return self.path / DB_NAME

    @property
    def parquet_dir(self) -> Path:
        return self.path / "parquet"

    def exists(self) -> bool:
        return self.db_path.exists()

    # ---- readers -------------------------------------------------------------------------------
    def read_catalog(self) -> tuple[dict[str, list[str]], "pa.Table"]:
        """(table -> committed relative paths, manifest rows), read together so they agree."""
        import pyarrow as pa  # noqa: F401

        out: dict[str, list[str]] = {t: [] for t in schema.TABLES}
        if not self.exists():
            raise CaseError(f"{self.path}: no case here (no {DB_NAME}); create one with `workbench ingest {self.path} FILES…`")
        con = _connect_file(self.db_path, read_only=True)
        try:
            for table, rel in con.execute("SELECT table_name, relpath FROM manifest_files ORDER BY relpath").fetchall():
                out.setdefault(table, []).append(rel)
            man = con.sql(
                "SELECT * EXCLUDE (summary), CAST(summary AS VARCHAR) AS summary FROM manifest "
                "ORDER BY ingested_at, source_file"
            ).to_arrow_table()
        finally:
            con.close()
        return out, man

    def committed_files(self) -> dict[str, list[str]]:
        """table -> relative paths of committed Parquet files (empty when the case is new)."""
        if not self.exists():
            return {t: [] for t in schema.TABLES}
        return self.read_catalog()[0]

    def manifest(self) -> list[dict]:
        return self.read_catalog()[1].to_pylist() if self.exists() else []

    def base(self) -> str:
        """Where relative paths in the manifest are rooted (a folder here, a URL for a remote case)."""
        return str(self.path)

    def connect(self, con: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
        """In-memory DuckDB connection (UTC) with one view per canonical table over the committed files.

        It holds no lock on the case: ingests may run while it is open; it sees the case as it was when opened.
        """
        files, man = self.read_catalog()
        con = con or new_connection()
        self.prepare(con)
        for table in schema.TABLES:
            con.execute(f'CREATE OR REPLACE VIEW "{table}" AS {view_sql(self.base(), table, files.get(table, []))}')
        con.register("_manifest_arrow", man)
        con.execute("CREATE OR REPLACE TEMP TABLE manifest AS SELECT * FROM _manifest_arrow")
        con.unregister("_manifest_arrow")
        return con

    def prepare(self, con: duckdb.DuckDBPyConnection) -> None:
        """Hook for remote cases to register their file system on a connection."""

    # ---- writers -------------------------------------------------------------------------------
    @contextmanager
    def writer(self, wait_s: float = 300.0) -> Iterator["CaseWriter"]:
        """Exclusive writer: waits up to wait_s for another ingest to finish, then fails with CaseBusy."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock_path = self.path / ".lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise CaseBusy(
                            f"{self.path}: another ingest is writing this case; waited {wait_s:.0f} s. "
                            "Try again when it finishes (or raise --wait)."
                        ) from None
                    time.sleep(0.1)
            w = CaseWriter(self)
            w.recover()
            try:
                yield w
            except (OSError, duckdb.IOException) as exc:  # DuckDB's own writes fail with an IOException
                if not _out_of_space(exc):
                    raise
                shutil.rmtree(w.staging, ignore_errors=True)
                what = (f"{exc.strerror}: {exc.filename or 'case files'}" if isinstance(exc, OSError)
                        else str(exc).splitlines()[0])
                raise CaseError(
                    f"{self.path}: out of space while writing ({what}); "
                    "the files not yet committed were discarded and the case is as it was. Free space and rerun "
                    "the same ingest: what was committed is skipped."
                ) from None
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _out_of_space(exc: Exception) -> bool:
    """Disk full, file-size limit or quota, whether from the OS directly or wrapped by pyarrow/DuckDB."""
    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return True
    text = str(exc)
    return any(s in text for s in ("No space left", "File too large", "Disk quota exceeded"))


def view_sql(base: str | Path, table: str, relpaths: list[str]) -> str:
    """SELECT over a table's committed Parquet files; typed and empty when there are none."""
    cols = ", ".join(f'"{f.name}"' for f in schema.TABLES[table])
    if not relpaths:
        empty = schema.select_list(table)
        nulls = ", ".join(f'NULL AS "{f.name}"' for f in schema.TABLES[table])
        date = ", NULL::DATE AS date" if table in schema.PARTITIONED else ""
        return f"SELECT {empty}{date} FROM (SELECT {nulls}) WHERE false"
    root = str(base).rstrip("/")
    paths = ", ".join("'" + f"{root}/{rel}".replace("'", "''") + "'" for rel in relpaths)
    if table in schema.PARTITIONED:
        return (
            f"SELECT {cols}, CAST(date AS DATE) AS date FROM read_parquet([{paths}], hive_partitioning=true, "
            "hive_types={'date': DATE}, union_by_name=false)"
        )
    return f"SELECT {cols} FROM read_parquet([{paths}])"


@dataclass
class Staged:
    table: str
    relpath: str
    rows: int


@dataclass
class CaseWriter:
    case: Case
    staged: list[Staged] = field(default_factory=list)
    #: content key -> (source_file, ingested_at) of every file in the case, read once: the writer holds the
    #: case's lock, so only its own commits add to it
    _known: dict | None = field(default=None, repr=False)
    _views_built: bool = field(default=False, repr=False)

    @property
    def staging(self) -> Path:
        return self.case.path / ".staging"

    def recover(self) -> None:
        """Remove what a killed ingest left: the staging folder, a catalog it was creating, and Parquet files not
        in the manifest."""
        shutil.rmtree(self.staging, ignore_errors=True)
        for half in self.case.path.glob(f".{DB_NAME}.*.new*"):
            half.unlink()
        if not self.case.db_path.exists():
            self._create_catalog()
        con = _connect_file(self.case.db_path, read_only=False)
        try:
            con.execute(MANIFEST_DDL)
            known = {r[0] for r in con.execute("SELECT relpath FROM manifest_files").fetchall()}
        finally:
            con.close()
        if self.case.parquet_dir.exists():
            for p in self.case.parquet_dir.rglob("*.parquet"):
                if str(p.relative_to(self.case.path)) not in known:
                    p.unlink()

    def _create_catalog(self) -> None:
        """A new case's catalog, created under another name and renamed into place once its tables exist: a
        reader never finds a case.duckdb without them, even after a kill -9 in the middle."""
        path = self.case.db_path
        tmp = path.with_name(f".{DB_NAME}.{os.getpid()}.new")
        con = duckdb.connect(str(tmp))
        try:
            con.execute(MANIFEST_DDL)
        finally:
            con.close()
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_file(path.parent)

    def known_content(self, content_key: str) -> dict | None:
        if self._known is None:
            con = _connect_file(self.case.db_path, read_only=True)
            try:
                self._known = {k: (f, t) for k, f, t in con.execute(
                    "SELECT content_key, source_file, ingested_at FROM manifest ORDER BY ingested_at DESC").fetchall()}
            finally:
                con.close()
        row = self._known.get(content_key)
        return {"source_file": row[0], "ingested_at": row[1]} if row else None

    def new_file_id(self) -> str:
        return uuid.uuid4().hex[:16]

    def stage_path(self, file_id: str, table: str, date: str | None, part: int) -> tuple[Path, str]:
        """(staging path, final relative path) for one Parquet part of one input file."""
        sub = f"{table}/date={date}" if date else table
        rel = f"parquet/{sub}/{file_id}-{part:05d}.parquet"
        return self.staging / file_id / rel, rel

    def commit(self, file_id: str, staged: list[Staged], manifest_row: dict) -> None:
        """Move a file's staged Parquet into place, then record it, in one catalog transaction."""
        for s in staged:
            src = self.staging / file_id / s.relpath
            dst = self.case.path / s.relpath
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
        now = dt.datetime.now(dt.timezone.utc)
        with self._catalog_transaction({s.table for s in staged}) as con:
            con.execute(
                "INSERT INTO manifest VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    file_id,
                    manifest_row["source_file"],
                    manifest_row["size"],
                    manifest_row["sha256"],
                    manifest_row.get("content_key", manifest_row["sha256"]),
                    manifest_row["format"],
                    manifest_row.get("wrappers"),
                    manifest_row.get("compression"),
                    manifest_row["lines"],
                    manifest_row["rows"],
                    manifest_row["rejects"],
                    manifest_row["skipped"],
                    json.dumps(manifest_row["summary"], default=str, sort_keys=True),
                    now,
                ],
            )
            if staged:
                con.executemany(
                    "INSERT INTO manifest_files VALUES (?, ?, ?, ?)",
                    [[file_id, s.table, s.relpath, s.rows] for s in staged],
                )
        if self._known is not None:
            key = manifest_row.get("content_key", manifest_row["sha256"])
            self._known.setdefault(key, (manifest_row["source_file"], now))
        shutil.rmtree(self.staging / file_id, ignore_errors=True)

    def replace_files(self, old: list[str], new: list[Staged], file_id: str = "compacted") -> None:
        """Swap committed files for others holding the same rows (compaction), in one catalog transaction."""
        with self._catalog_transaction() as con:
            con.executemany("DELETE FROM manifest_files WHERE relpath = ?", [[r] for r in old])
            con.executemany("INSERT INTO manifest_files VALUES (?, ?, ?, ?)",
                            [[file_id, s.table, s.relpath, s.rows] for s in new])

    @contextmanager
    def _catalog_transaction(self, tables: set[str] | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction on case.duckdb: the caller's changes, then the views rebuilt (of `tables`, once this
        writer has built them all), committed together."""
        con = _connect_file(self.case.db_path, read_only=False)
        try:
            con.execute("BEGIN TRANSACTION")
            yield con
            self._refresh_views(con, None if not self._views_built else tables)
            con.execute("COMMIT")
            self._views_built = True
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def _refresh_views(self, con: duckdb.DuckDBPyConnection, tables: set[str] | None = None) -> None:
        """Views in case.duckdb for people who open it with the duckdb CLI (absolute paths); `tables`: only
        these (None: all)."""
        files: dict[str, list[str]] = {t: [] for t in schema.TABLES}
        for table, rel in con.execute("SELECT table_name, relpath FROM manifest_files ORDER BY relpath").fetchall():
            files[table].append(rel)
        for table in schema.TABLES if tables is None else sorted(tables):
            con.execute(f'CREATE OR REPLACE VIEW "{table}" AS {view_sql(self.case.path, table, files[table])}')
