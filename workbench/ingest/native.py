"""Compiled ingest of the busiest logs, nginx `combined`, CNCF distribution's logrus JSON and PostgreSQL stderr:
one pass over the file, on every core.

A plain, unwrapped file is cut into blocks of whole lines (for PostgreSQL, of whole records: a block ends where
a record's head line starts). Each block is parsed by the C module `_native` (with the GIL released) into column
buffers, which become Arrow arrays without a copy, and its rows are written to Parquet, split by day, by the
same worker: parsing and writing use both cores, and memory stays bounded by the blocks in flight. The compiled
parser takes only lines of the usual shape (for the registry, "response completed" lines and events; for
PostgreSQL, records whose time, zone and duration it reads as the SQL does). Every other line (errors, access
lines, other layouts, broken lines) is kept with its number in a scratch file, and once the file is read they
go through the format's own SQL parse as a whole (the registry's repeated error lines are found across the
whole file), which decides whether each is a row, a blank or a reject.

Where the compiled parser and the SQL both read a line, they must give the same row: the test suite checks
this on generated lines of every shape (tests/ingest/test_native.py, test_native_pg.py). A file with a line
that is not valid UTF-8 is left to the other readers, as DuckDB's reader would refuse it.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import schema
from ..case import CaseWriter, Staged, by_day, fsync_file, ingest_session
from .base import INGEST_MEMORY, Context, Format, SqlFormat, sql_literal
from .derive import client_lookup
from .source import FileScan
from .wholefile import WholeRun, finish_sql_format, in_view

try:
    from . import _native
except ImportError:  # not built: the DuckDB readers do the work
    _native = None

BLOCK_BYTES = 16 << 20
#: a PostgreSQL block's rows take more memory per byte of log (two tables, statements twice): smaller blocks keep
#: the peak within 512 MiB
PG_BLOCK_BYTES = 10 << 20
SLOW_MEMORY = "160MB"  # DuckDB's memory for the SQL parse of the lines the compiled parser left
WORKERS = 2
ROUTES = pa.array(["manifest", "blob_upload", "blob", "tags", "referrers", "base", "catalog", "other"])
TS = schema.TABLES["requests"].field("ts").type
#: columns with few distinct values, dictionary-encoded in Parquet (the others are mostly distinct: ids, paths)
DICTIONARY = ["layer", "instance", "method", "repository", "route", "status", "user_agent", "client", "level", "kind",
              "client_version", "upstream_status", "source_file", "error_code", "event", "lock_mode", "lock_type",
              "relation", "fingerprint", "user_name", "database", "application", "sqlstate"]

#: columns with min/max statistics, for the filters readers use (the others are mostly distinct and unfiltered)
STATISTICS = ["ts", "line_no", "layer", "instance", "method", "repository", "route", "status", "duration_s", "kind",
              "client", "source_file"]


#: format -> (compiled parser's name, layer of its rows)
COMPILED = {"nginx-combined": ("nginx_combined", "nginx"), "registry-json": ("registry_json", "registry"),
            "postgres-stderr": ("postgres_stderr", "postgres")}


def parser_for(fmt: Format):
    """The compiled block parser of a format, or None (also when WORKBENCH_NATIVE=0, to compare)."""
    if _native is None or os.environ.get("WORKBENCH_NATIVE") == "0" or fmt.name not in COMPILED:
        return None
    return getattr(_native, COMPILED[fmt.name][0])


def _validity(valid: bytes) -> pa.Buffer | None:
    v = np.frombuffer(valid, np.uint8)
    return None if v.all() else pa.py_buffer(np.packbits(v, bitorder="little"))


def _num(cols: dict, name: str, typ: pa.DataType, n: int) -> pa.Array:
    vals, valid = cols[name]
    return pa.Array.from_buffers(typ, n, [_validity(valid), pa.py_buffer(vals)])


def _str(cols: dict, name: str, n: int) -> pa.Array:
    offsets, data, valid = cols[name]
    return pa.Array.from_buffers(pa.string(), n, [_validity(valid), pa.py_buffer(offsets), pa.py_buffer(data)])


@dataclass
class _Block:
    lines: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    used: int = 0  # lines in the compiled parser's rows
    slow: int = 0  # lines left to the SQL parse
    slow_lines: pa.Table | None = None  # (line_no, text) of those lines
    blank: int = 0
    slow_file: Path | None = None  # a Parquet file of those lines: (line_no, text)
    staged: list[Staged] = field(default_factory=list)
    bad_utf8: int = 0


class _Run:
    def __init__(self, ctx: Context, fmt: Format, parse, writer: CaseWriter, file_id: str):
        self.ctx, self.fmt, self.parse, self.writer, self.file_id = ctx, fmt, parse, writer, file_id
        self.layer = COMPILED[fmt.name][1]
        self.lock = threading.Lock()
        self.part = 0
        self.clients: dict[str | None, tuple[str | None, str | None]] = {}
        self.lookup = (pa.array([], pa.string()),) * 3  # self.clients as (keys, families, versions)
        self.local = threading.local()  # each worker's own DuckDB cursor, for the events' SQL
        self.cursors: list = []

    #: where a block may end (see _blocks): after any line
    head = None
    #: give each block's Arrow memory back to the system once it is written (16 MB request-log blocks: the peak
    #: RSS stays lower, at no measurable cost)
    release_each_block = True

    def block_bytes(self) -> int:
        return BLOCK_BYTES

    def ready(self, path: Path) -> bool:
        """Whether this file is for the compiled parser (else a note says why)."""
        return True

    def cursor(self):
        """This worker's own DuckDB cursor."""
        con = getattr(self.local, "con", None)
        if con is None:
            con = self.local.con = ingest_session(self.ctx.con)
            with self.lock:
                self.cursors.append(con)
        return con

    def next_part(self) -> int:
        with self.lock:
            self.part += 1
            return self.part - 1

    def client_columns(self, ua: pa.Array) -> tuple[pa.Array, pa.Array]:
        """Client family and version per row, each distinct User-Agent classified once per file."""
        with self.lock:
            new = [u for u in pc.unique(ua).to_pylist() if u not in self.clients]
            if new:
                found = client_lookup(pa.array(new, pa.string()))
                for u, f, v in zip(new, found.column("client").to_pylist(), found.column("client_version").to_pylist(),
                                   strict=True):
                    self.clients[u] = (f, v)
                self.lookup = (pa.array(list(self.clients), pa.string()),
                               pa.array([c[0] for c in self.clients.values()], pa.string()),
                               pa.array([c[1] for c in self.clients.values()], pa.string()))
            keys, fams, vers = self.lookup
        idx = pc.index_in(ua, value_set=keys)
        return fams.take(idx), vers.take(idx)

    def block(self, data, first_line: int, work: Path) -> _Block:
        """Parse a block of whole lines, stage its rows and write the lines left to the SQL into `work`."""
        res, tables = self.rows(data, first_line)
        for table, rows in tables.items():
            res.staged += self.stage(table, rows)
        if res.slow_lines is not None:
            res.slow_file = work / f"slow-{first_line:012d}.parquet"
            pq.write_table(res.slow_lines, res.slow_file, compression="snappy")
            res.slow_lines = None
        del tables
        if self.release_each_block:
            pa.default_memory_pool().release_unused()  # the block's Arrow memory, for the next one (peak RSS)
        return res

    def rows(self, data, first_line: int) -> tuple[_Block, dict[str, pa.Table]]:
        """Parse a block of whole lines: its counts and the lines left to the SQL, and the compiled parser's
        rows in canonical form, by table (none when a line is not valid UTF-8)."""
        out = self.parse(data, first_line)
        res = _Block(lines=out["lines"], slow=out["slow"], blank=out["blank"], bad_utf8=out["bad_utf8"])
        if res.bad_utf8:
            return res, {}
        n = out["rows"]
        ua = _str(out, "user_agent", n)
        client, version = self.client_columns(ua)
        inst = self.ctx.instance
        fast = pa.table({
            "ts": _num(out, "ts", pa.int64(), n).cast(TS),
            "layer": pa.repeat(pa.scalar(self.layer), n),
            "instance": _str(out, "instance", n) if inst is None else pa.repeat(pa.scalar(inst, pa.string()), n),
            "request_id": _str(out, "request_id", n),
            "method": _str(out, "method", n),
            "path": _str(out, "path", n),
            "repository": _str(out, "repository", n),
            "route": ROUTES.take(_num(out, "route", pa.int8(), n)),
            "reference": _str(out, "reference", n),
            "status": _num(out, "status", pa.int32(), n),
            "duration_s": _num(out, "duration_s", pa.float64(), n),
            "bytes_out": _num(out, "bytes_out", pa.int64(), n),
            "bytes_in": _num(out, "bytes_in", pa.int64(), n),
            "remote_ip": _str(out, "remote_ip", n),
            "user_agent": ua,
            "client": client,
            "client_version": version,
            "error_code": pa.nulls(n, pa.string()),
            "error_message": pa.nulls(n, pa.string()),
            "error_detail": pa.nulls(n, pa.string()),
            "storage_duration_s": pa.nulls(n, pa.float64()),
            "upstream_duration_s": _num(out, "upstream_duration_s", pa.float64(), n),
            "upstream_status": _str(out, "upstream_status", n),
            "source_file": pa.repeat(pa.scalar(self.ctx.source_file), n),
            "line_no": _num(out, "line_no", pa.int64(), n),
        })
        if out["slow"]:
            res.slow_lines = pa.table({"line_no": _num(out, "slow_line_no", pa.int64(), res.slow),
                                       "text": _str(out, "slow_text", res.slow)})
        tables = {"requests": schema.conform("requests", fast)}
        if out.get("events"):
            tables["log_events"] = self.events(out)
        res.rows = {t: v.num_rows for t, v in tables.items()}
        res.used = sum(res.rows.values())
        return res, tables

    def events(self, out: dict) -> pa.Table:
        """The block's events (registry lines other than requests) in canonical form, by the format's own SQL
        for events, on this worker's cursor."""
        k = out["events"]
        raw = pa.table({
            "tsv": _num(out, "ev_ts", pa.int64(), k).cast(TS), "wrap_ts": pa.nulls(k, TS),
            "instance_id": _str(out, "ev_instance_id", k), "wrap_host": pa.nulls(k, pa.string()),
            "level": _str(out, "ev_level", k), "msg": _str(out, "ev_msg", k), "err_code": _str(out, "ev_err_code", k),
            "err_message": _str(out, "ev_err_message", k), "err_detail": _str(out, "ev_err_detail", k),
            "error": _str(out, "ev_error", k), "request_id": _str(out, "ev_request_id", k),
            "vars_name": _str(out, "ev_vars_name", k), "fields": pa.nulls(k, pa.string()),
            "text": _str(out, "ev_text", k), "line_no": _num(out, "ev_line_no", pa.int64(), k),
        })
        con = self.cursor()
        con.register("_ev", raw)
        try:
            return schema.conform("log_events", con.sql(self.fmt.events_select(self.ctx, "_ev", "TRUE")).to_arrow_table())
        finally:
            con.unregister("_ev")

    def stage(self, table: str, data: pa.Table) -> list[Staged]:
        """Write one block's rows of a table sorted by (ts, line_no), a file per UTC day."""
        staged = []
        for day, sub in by_day(data):
            path, rel = self.writer.stage_path(self.file_id, table, day.isoformat(), self.next_part())
            path.parent.mkdir(parents=True, exist_ok=True)
            names = set(sub.column_names)
            pq.write_table(sub, path, compression="zstd", compression_level=1,
                           use_dictionary=[c for c in DICTIONARY if c in names],
                           write_statistics=[c for c in STATISTICS if c in names], row_group_size=1 << 20)
            fsync_file(path)
            staged.append(Staged(table, rel, sub.num_rows))
        return staged


class _PgRun(_Run):
    """The compiled parse of a PostgreSQL stderr log: blocks end where a record starts, the C code assembles
    and reads records (postgres_stderr) and gives the db_lock_waits rows of those whose event it knows (all but
    errors) whole. The other records' rows come from the format's own SQL (postgres.EVENT_SQL, lock_waits_sql,
    log_events_sql) on the worker's cursor; deadlocks are expanded and statements fingerprinted as in the block
    parse."""

    def ready(self, path: Path) -> bool:
        from .pg_time import ABBREVIATIONS, zone_offset

        def head() -> list[str]:  # the lines the SQL path detects the prefix from, read only when it is detected
            with open(path, "rb") as fh:
                return [ln.decode("utf-8", "replace").rstrip("\n") for ln in itertools.islice(fh, 2000)]

        self.prefix = self.fmt.log_line_prefix(self.ctx, head)
        if _native.postgres_stderr(b"", 1, self.prefix, {}) is None:
            self.ctx.note(f"not read by the compiled parser: log_line_prefix {self.prefix!r} has no %m or %t")
            return False
        # zones the C code turns into UTC itself: those with one offset (pg_time.zone_offset); a time in any
        # other zone (read in --tz, or unknown) leaves its record to the SQL
        self.zones = {}
        for z in ("", *ABBREVIATIONS):
            off = zone_offset(z, self.ctx.tz)
            if off == "tz" and self.ctx.tz == "UTC":  # read in --tz, which is UTC
                off = 0
            if isinstance(off, int):
                self.zones[z] = off
        self.fingerprints: dict[tuple[str, str], str] = {}
        return True

    def block_bytes(self) -> int:
        return PG_BLOCK_BYTES

    #: kept for the next block instead: a block's allocations then need no new pages (4 runs on 200 MB: 10 % less
    #: time, peak RSS 440 instead of 390 MiB; 437 MiB on 1 GB)
    release_each_block = False

    def head(self, block) -> int:
        cut = _native.pg_last_head(block, self.prefix)
        if cut <= 0:
            raise _Abandon(f"no record starts in a block of {len(block):,} bytes (a record longer than a block)")
        return cut

    def rows(self, data, first_line: int) -> tuple[_Block, dict[str, pa.Table]]:
        from .postgres import EVENT_SQL, NORM_SQL, expand_deadlock_rows, lock_waits_sql, log_events_sql

        out = self.parse(data, first_line, self.prefix, self.zones)
        res = _Block(lines=out["lines"], slow=out["slow"], blank=out["blank"], bad_utf8=out["bad_utf8"],
                     used=out["used"])
        if res.bad_utf8:
            return res, {}
        if res.slow:  # in line order, as the SQL's records need them
            slow = pa.table({"line_no": _num(out, "slow_line_no", pa.int64(), res.slow),
                             "text": _str(out, "slow_text", res.slow)})
            res.slow_lines = slow.sort_by("line_no")
        # the lock-wait rows the C code worked out whole, and the other records, whose rows the SQL makes
        parts = [_pg_waits(out, self.ctx.source_file)]
        n = out["rows"]
        wm = [_str(out, f"wm_{k}", n) for k in ("wpid", "verb", "mode", "obj", "ms")]
        rec = pa.table({
            "rec_line": _num(out, "rec_line", pa.int64(), n), "ts": _num(out, "ts", pa.int64(), n).cast(TS),
            "wrap_ts": pa.nulls(n, TS), "wrap_host": pa.nulls(n, pa.string()),
            "pid": _num(out, "pid", pa.int64(), n),
            **{c: _str(out, c, n) for c in ("user_name", "database", "application", "sqlstate", "severity", "message",
                                            "detail", "hint", "context", "statement")},
            "wm": pa.StructArray.from_arrays(wm, names=["wpid", "verb", "mode", "obj", "ms"], mask=pc.is_null(wm[0])),
            "dur_ms": _num(out, "dur_ms", pa.float64(), n), "dur_stmt": _str(out, "dur_stmt", n),
            "_norm": _str(out, "_norm", n), "event": _str(out, "event", n),
            "_event_sql": _num(out, "_event_sql", pa.int8(), n),
        })
        del out  # (its buffers live on in rec and parts, each until its table is done with)
        con = self.cursor()
        con.register("_pgc", rec)
        try:
            # the C code gives the event but for errors, which the SQL's regex tells connection failures from
            con.execute(f"""CREATE OR REPLACE TEMP VIEW _cls AS
                            SELECT * EXCLUDE (_event_sql) REPLACE (CASE WHEN _event_sql = 1 THEN {EVENT_SQL}
                                                                        ELSE event END AS event)
                            FROM _pgc""")
            if pc.sum(rec.column("_event_sql")).as_py() or rec.column("event").null_count < n:
                parts.append(con.sql(lock_waits_sql(self.ctx, ", _norm")).to_arrow_table().cast(PG_WAITS))
            events = con.sql(log_events_sql(self.ctx)).to_arrow_table()
            waits = pa.concat_tables(parts)
            dead = pc.fill_null(pc.equal(waits.column("event"), "deadlock"), False).to_numpy(zero_copy_only=False)
            if dead.any():  # a row per process, whose statements are normalised again, in the deadlock row's place
                con.register("_dl", expand_deadlock_rows(waits.filter(dead)))
                again = con.sql(f"SELECT * REPLACE ({NORM_SQL} AS _norm) FROM _dl").to_arrow_table().cast(PG_WAITS)
                con.unregister("_dl")
                waits = _in_line_order(pa.concat_tables([waits, again]),
                                       np.concatenate([dead, np.zeros(again.num_rows, bool)]))
            else:
                waits = _in_line_order(waits)
        finally:
            con.unregister("_pgc")
        del rec, parts
        waits = self.fingerprint(waits)
        tables = {"db_lock_waits": schema.conform("db_lock_waits", waits),
                  "log_events": schema.conform("log_events", events)}
        res.rows = {t: v.num_rows for t, v in tables.items()}
        return res, tables

    def fingerprint(self, waits: pa.Table) -> pa.Table:
        """`fingerprint` from `_norm`: pglast's fingerprint of the block's first statement of each normalised
        text (postgres.fingerprint_lookup takes the least; the two differ only if pglast tells apart two
        statements that differ in constants alone), each computed once per file."""
        from .postgres import _fingerprint_one

        codes = pc.dictionary_encode(waits.column("_norm")).combine_chunks()
        idx = pc.fill_null(codes.indices, -1).to_numpy()
        valid = idx >= 0
        first = np.full(len(codes.dictionary), -1, np.int64)
        seen, at = np.unique(idx[valid], return_index=True)
        first[seen] = np.flatnonzero(valid)[at]
        stmts = waits.column("statement").take(pa.array(first)).to_pylist()
        fps = []
        with self.lock:
            for norm, stmt in zip(codes.dictionary.to_pylist(), stmts, strict=True):
                if (norm, stmt) not in self.fingerprints:
                    self.fingerprints[(norm, stmt)] = _fingerprint_one(stmt, norm)
                fps.append(self.fingerprints[(norm, stmt)])
        fp = pa.DictionaryArray.from_arrays(codes.indices, pa.array(fps, pa.string())).cast(pa.string())
        return waits.drop_columns(["_norm", "fingerprint"]).append_column("fingerprint", fp)


def _in_line_order(rows: pa.Table, drop: np.ndarray | None = None) -> pa.Table:
    """`rows` (a few pieces, each in line order) in line order but the rows `drop` (a mask), rows of one line
    number in the order they come, as one piece: the writer writes one piece faster than many."""
    order = np.argsort(rows.column("line_no").to_numpy(), kind="stable")
    if drop is not None:
        order = order[~drop[order]]
    if len(order) == rows.num_rows and rows.column("line_no").num_chunks <= 1 and (np.diff(order) == 1).all():
        return rows
    return rows.take(pa.array(order))


#: db_lock_waits rows before their fingerprint, with the normalised statement it is looked up by
PG_WAITS = pa.schema([*schema.TABLES["db_lock_waits"], pa.field("_norm", pa.string())])


def _pg_waits(out: dict, source_file: str) -> pa.Table:
    """The db_lock_waits rows the compiled parser worked out whole (its w_* columns), as PG_WAITS."""
    k = out["w_rows"]

    def pids(name: str) -> pa.Array:
        offsets, vals, valid = out[name]
        values = pa.Array.from_buffers(pa.int64(), len(vals) // 8, [None, pa.py_buffer(vals)])
        return pa.Array.from_buffers(pa.list_(pa.int64()), k, [_validity(valid), pa.py_buffer(offsets)],
                                     children=[values])

    cols = {}
    for f in PG_WAITS:
        name = "w_" + f.name.lstrip("_")
        if f.name in ("ts", "pid", "line_no"):
            cols[f.name] = _num(out, name, pa.int64(), k)
        elif f.name == "wait_ms":
            cols[f.name] = _num(out, name, pa.float64(), k)
        elif f.name in ("holders", "waiters"):
            cols[f.name] = pids(name)
        elif f.name == "fingerprint":
            cols[f.name] = pa.nulls(k, pa.string())
        elif f.name == "source_file":
            cols[f.name] = pa.repeat(pa.scalar(source_file), k)
        else:
            cols[f.name] = _str(out, name, k)
    cols["ts"] = cols["ts"].cast(TS)
    return pa.table(cols).cast(PG_WAITS)


def _blocks(path: Path, head, size: int):
    """(whole lines as a memoryview, number of the first line) in file order; the last line may lack its
    newline. Each read ends at its last newline, or (`head`) at the last line where `head(block)` says a new
    record starts; the rest is read again with the next block, so no block is copied."""
    first, pos = 1, 0
    with open(path, "rb") as fh:
        while chunk := fh.read(size):
            full = len(chunk) == size
            cut = chunk.rfind(b"\n") + 1 if full else len(chunk)
            if full and cut == 0:  # a line longer than a block: read on until it ends
                while (more := fh.read(size)) and b"\n" not in more:
                    chunk += more
                if more:
                    chunk += more[:more.index(b"\n") + 1]
                cut = len(chunk)
            if head is not None and full:
                cut = head(memoryview(chunk)[:cut])
            pos += cut
            fh.seek(pos)
            block = memoryview(chunk)[:cut]
            yield block, first
            first += _native.scan(block)[0]


def ingest_native(ctx: Context, fmt: Format, path: Path, scan: FileScan, writer: CaseWriter, file_id: str,
                  on_bad_line: str) -> dict | None:
    """Parse and stage a plain file with the compiled parser. Returns what `wholefile.ingest_whole_file`
    returns, or None (with a note) when this file is not for it."""
    parse = parser_for(fmt)
    if parse is None or scan.has_cr or scan.has_nul:
        return None
    run = (_PgRun if fmt.name == "postgres-stderr" else _Run)(ctx, fmt, parse, writer, file_id)
    if not run.ready(path):
        return None
    work = writer.staging / file_id / "native"
    work.mkdir(parents=True, exist_ok=True)
    slow_files: list[Path] = []
    totals = {"lines": 0, "used_lines": 0, "blank": 0, "rejects": 0, "slow": 0}
    rows = {t: 0 for t in fmt.tables}
    staged: list[Staged] = []
    pending: deque[Future] = deque()
    bad = 0

    def take(res: _Block) -> None:
        nonlocal bad
        staged.extend(res.staged)
        if res.bad_utf8:
            bad = bad or res.bad_utf8
            return
        totals["lines"] += res.lines
        for t, k in res.rows.items():
            rows[t] += k
        totals["blank"] += res.blank
        totals["slow"] += res.slow
        totals["used_lines"] += res.used
        if res.slow_file is not None:
            slow_files.append(res.slow_file)

    # each worker's queries run on one of DuckDB's threads: the workers already use every core, and a block's
    # query is too small to gain from more (two threads each took 10-15 % longer)
    threads = ctx.con.sql("SELECT current_setting('threads')").fetchall()[0][0]
    ctx.con.execute("SET threads = 1")
    try:
        try:
            with ThreadPoolExecutor(WORKERS, thread_name_prefix="workbench-native") as pool:
                try:
                    for data, first in _blocks(path, run.head, run.block_bytes()):
                        pending.append(pool.submit(run.block, data, first, work))
                        while len(pending) >= WORKERS + 1 or (pending and pending[0].done()):
                            take(pending.popleft().result())
                        if bad:
                            break
                    while pending:
                        take(pending.popleft().result())
                finally:
                    for f in pending:
                        f.cancel()
        finally:
            ctx.con.execute(f"SET threads = {int(threads)}")
        for con in run.cursors:
            con.close()
        pa.default_memory_pool().release_unused()  # the blocks' buffers, before DuckDB's turn (peak RSS)
        if bad:
            raise _Abandon(f"line {bad} is not valid UTF-8")
        if totals["lines"] != scan.lines:  # not seen: a safety net, every line must keep its number
            raise AssertionError(f"{ctx.source_file}: the compiled parser read {totals['lines']} lines of {scan.lines}")
        if slow_files:
            counts = _parse_slow(ctx, fmt, writer, file_id, on_bad_line, work, slow_files, totals["slow"],
                                  run.next_part())
            staged.extend(counts["staged"])
            for t, k in counts["rows"].items():
                rows[t] += k
            totals["blank"] += counts["blank"]
            totals["rejects"] = counts["rejects"]
            totals["used_lines"] += counts["used_lines"]
    except BaseException as exc:
        shutil.rmtree(writer.staging / file_id, ignore_errors=True)  # nothing else is staged for it yet
        if isinstance(exc, _Abandon):
            ctx.note(f"not read by the compiled parser: {exc}")
            return None
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    del totals["slow"]
    return {"staged": staged, "rows": rows, **totals}


def _parse_slow(ctx: Context, fmt: Format, writer: CaseWriter, file_id: str, on_bad_line: str, work: Path,
                slow_files: list[Path], n_lines: int, part: int) -> dict:
    """The SQL parse of the lines the compiled parser left (files in line order), as one whole (see
    `wholefile`)."""
    con = ctx.con
    # less than a whole-file parse may take: what the blocks left in this process counts towards the peak
    con.execute(f"SET memory_limit = '{SLOW_MEMORY}'")
    (work / "spill").mkdir(exist_ok=True)
    con.execute(f"SET temp_directory = {sql_literal(str(work / 'spill'))}")
    in_view(con, f"read_parquet([{', '.join(sql_literal(str(f)) for f in slow_files)}])", False, line_no="line_no")
    # a format of one line per row classifies `_in`; another (PostgreSQL stderr: records of several lines) reads
    # the numbered lines itself
    by_line = isinstance(fmt, SqlFormat)
    lines = {} if by_line else {"lines": "_in", "n_lines": n_lines, "line_no": "line_no"}
    run = WholeRun(ctx, writer, file_id, work, on_bad_line, fmt.name, part=part, **lines)
    try:
        if by_line:
            run.scratch("_cls", fmt.classify(ctx), table=True)  # (a temp table spills; COPY to Parquet ran out of memory)
            counts = finish_sql_format(fmt, ctx, run)
        else:
            counts = fmt.parse_whole(ctx, run)
    finally:
        run.drop("_cls")
        con.execute(f"SET memory_limit = '{INGEST_MEMORY}'")  # the setting is the database's, not the cursor's
    counts["staged"] = run.staged
    return counts


class _Abandon(Exception):
    pass
