"""Ingest: files in, canonical Parquet out, with a per-file ledger that always adds up.

lines read = rows (lines that became rows) + rejects + skipped (by kind). Each file is committed on its own,
atomically; a file whose content is already in the case is skipped and reported as such.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from .. import schema
from ..case import Case, CaseWriter, Staged, by_day, fsync_file, ingest_session, new_connection
from ..errors import BadLine, InputError
from . import derive
from .base import INGEST_MEMORY, Context, Format, ParseResult
from .catalog import detect, get_format
from .native import ingest_native
from .source import LineReader, clip_raw, compression_of, scan_file
from .wholefile import ingest_whole_file
from .wrappers import WRAPPERS, Wrapper, as_block

ON_BAD_LINE = ("quarantine", "raise")


@dataclass
class FileSummary:
    source_file: str
    status: str  # ingested, already ingested, error
    format: str | None = None
    wrappers: list[str] = field(default_factory=list)
    compression: str | None = None
    lines: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    used_lines: int = 0
    rejects: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    damage: str | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    size: int = 0
    sha256: str | None = None
    #: "native": parsed by the compiled parser (see native.py); "duckdb": the whole file read and parsed by
    #: DuckDB; "blocks": streamed in blocks
    reader: str | None = None

    @property
    def balanced(self) -> bool:
        return self.lines == self.used_lines + self.rejects + sum(self.skipped.values())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rows_total"] = sum(self.rows.values())
        d["skipped_total"] = sum(self.skipped.values())
        d["balanced"] = self.balanced
        return d


@dataclass
class IngestSummary:
    case: str
    files: list[FileSummary]

    def to_dict(self) -> dict:
        files = [f.to_dict() for f in self.files]
        totals = {
            "files": len(files),
            "ingested": sum(1 for f in self.files if f.status == "ingested"),
            "already_ingested": sum(1 for f in self.files if f.status == "already ingested"),
            "errors": sum(1 for f in self.files if f.status == "error"),
            "lines": sum(f.lines for f in self.files),
            "rows": sum(f["rows_total"] for f in files),
            "used_lines": sum(f.used_lines for f in self.files),
            "rejects": sum(f.rejects for f in self.files),
            "skipped": sum(f["skipped_total"] for f in files),
        }
        totals["balanced"] = all(f.balanced for f in self.files)
        return {"case": self.case, "totals": totals, "files": files}


def expand_paths(paths: list[str | os.PathLike]) -> list[Path]:
    """Files from paths, directories (recursively, sorted) and globs; hidden files are left out."""
    out: list[Path] = []
    for p in paths:
        s = str(p)
        matches = [Path(m) for m in sorted(glob.glob(s, recursive=True))] if any(c in s for c in "*?[") else [Path(s)]
        if not matches:
            raise InputError(f"{s}: no file matches this pattern")
        for m in matches:
            if m.is_dir():
                out.extend(sorted(f for f in m.rglob("*") if f.is_file() and not any(
                    part.startswith(".") for part in f.relative_to(m).parts)))
            elif m.exists():
                out.append(m)
            else:
                raise InputError(f"{m}: no such file or directory")
    seen, uniq = set(), []
    for f in out:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            uniq.append(f)
    return uniq


def ingest(
    case: str | os.PathLike | Case,
    paths: list[str | os.PathLike],
    *,
    format: str | None = None,
    on_bad_line: str = "quarantine",
    tz: str = "UTC",
    at: dt.datetime | None = None,
    instance: str | None = None,
    options: dict | None = None,
    wait_s: float = 300.0,
    progress: Callable[[str], None] | None = None,
) -> IngestSummary:
    """Ingest files into a case. Returns the per-file ledger; raises only for a bad call or --on-bad-line raise."""
    if on_bad_line not in ON_BAD_LINE:
        raise InputError(f"--on-bad-line must be one of {', '.join(ON_BAD_LINE)}, not {on_bad_line!r}")
    if format is not None:
        get_format(format)  # unknown name: clear error before touching the case
    _check_tz(tz)
    case = case if isinstance(case, Case) else Case(case)
    files = expand_paths(paths)
    summaries: list[FileSummary] = []
    base = new_connection()  # each file gets a cursor of it: a connection costs ~30 ms, a cursor nothing
    # bounded memory whatever the input size: a block's temp tables spill to disk past this
    base.execute(f"SET memory_limit='{INGEST_MEMORY}'")
    derive.install(base)
    try:
        with case.writer(wait_s=wait_s) as writer:
            for path in files:
                if progress:
                    progress(str(path))
                summaries.append(
                    _ingest_file(writer, base, path, format=format, on_bad_line=on_bad_line, tz=tz, at=at,
                                 instance=instance, options=options or {})
                )
    finally:
        base.close()
    return IngestSummary(str(case.path), summaries)


def _check_tz(tz: str) -> None:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(tz)
    except Exception:
        raise InputError(f"--tz {tz!r} is not a time zone name; use an IANA name such as UTC or Europe/Berlin") from None


def _ingest_file(writer: CaseWriter, base, path: Path, *, format, on_bad_line, tz, at, instance,
                 options) -> FileSummary:
    fs = FileSummary(source_file=str(path), status="ingested")
    try:
        fs.size = path.stat().st_size
        scan = scan_file(path)
        fs.sha256 = scan.sha256
        fs.compression = compression_of(path)
    except OSError as exc:
        fs.status, fs.error = "error", f"{path}: cannot read ({exc.strerror}); check the path and permissions"
        return fs
    prior = writer.known_content(content_key(path, fs.sha256))
    if prior:
        fs.status = "already ingested"
        fs.notes.append(f"same content as {prior['source_file']}, ingested {prior['ingested_at']:%Y-%m-%d %H:%M:%S} UTC; nothing added")
        return fs
    con = ingest_session(base)
    mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
    ctx = Context(con=con, source_file=str(path), tz=tz, instance=instance, at=at, file_mtime=mtime,
                  options=dict(options))  # a copy: what a format learns of one file (its detected prefix) stays there
    reader = LineReader(path, fs.compression)
    try:
        head = reader.head()
        wrappers, fmt = detect(ctx, head, format)
    except InputError as exc:
        fs.status, fs.error = "error", str(exc)
        return fs
    fs.format, fs.wrappers = fmt.name, [w.name for w in wrappers]
    if tz == "UTC":
        ctx.note("lines without a zone were read as UTC (--tz)")
    else:
        ctx.note(f"lines without a zone were read as {tz} (--tz)")
    file_id = writer.new_file_id()
    staged: list[Staged] = []
    part = 0
    whole = None
    fs.reader = "blocks"
    if not wrappers and fs.compression is None:  # a plain file: the fastest reader that takes it
        whole = ingest_native(ctx, fmt, path, scan, writer, file_id, on_bad_line)
        if whole is not None:
            fs.reader = "native"
        elif fmt.whole_file and (whole := ingest_whole_file(ctx, fmt, path, scan, writer, file_id, on_bad_line)):
            fs.reader = "duckdb"
    if whole is not None:
        staged = whole["staged"]
        fs.rows = {t: n for t, n in whole["rows"].items() if n}
        fs.used_lines = whole["used_lines"]
        fs.rejects = whole["rejects"]
        fs.skipped = {"blank": whole["blank"]}
        reader.lines = whole["lines"]
        _check_stage(fmt.name, whole["lines"], fs.used_lines + fs.rejects + whole["blank"])
    fmt_carry: pa.Table | None = None
    wrap_carries: list[pa.Table | None] = [None] * len(wrappers)
    for block, final in (list_blocks(reader) if whole is None else ()):
        t = as_block(block.table)
        for i, w in enumerate(wrappers):
            t_in = _concat(wrap_carries[i], t)
            wr = w.unwrap(ctx, t_in, final)
            _check_stage(f"{w.name} wrapper", t_in.num_rows, wr.lines.num_rows + sum(wr.skipped.values())
                         + wr.rejects.num_rows + wr.held_back)
            wrap_carries[i] = t_in.slice(t_in.num_rows - wr.held_back) if wr.held_back else None
            _add(fs.skipped, {f"{w.name}:{k}": v for k, v in wr.skipped.items()})
            _take_rejects(fs, wr.rejects, f"{w.name} wrapper", on_bad_line, writer, file_id, staged, part)
            if wr.rejects.num_rows:
                part += 1
            t = wr.lines
        f_in = _concat(fmt_carry, t)
        res: ParseResult = fmt.parse(ctx, f_in, final)
        _check_stage(fmt.name, f_in.num_rows, res.used_lines + res.n_rejects + sum(res.skipped.values()) + res.held_back)
        fmt_carry = f_in.slice(f_in.num_rows - res.held_back) if res.held_back else None
        _add(fs.skipped, res.skipped)
        fs.used_lines += res.used_lines
        if res.rejects is not None and res.rejects.num_rows:
            _take_rejects(fs, res.rejects, fmt.name, on_bad_line, writer, file_id, staged, part)
            part += 1
        for table, data in res.tables.items():
            if data.num_rows:
                fs.rows[table] = fs.rows.get(table, 0) + data.num_rows
                part = _stage_table(writer, file_id, table, data, staged, part)
    fs.lines = reader.lines
    fs.skipped = {k: v for k, v in fs.skipped.items() if v}
    if reader.damage.message:
        fs.damage = f"{path}: {reader.damage.message}"
    if reader.invalid_utf8_lines:
        ctx.note(f"{reader.invalid_utf8_lines} lines had invalid UTF-8; bad bytes were replaced with U+FFFD")
    fs.notes.extend(ctx.notes)
    if not fs.balanced:
        raise AssertionError(f"{path}: ledger does not add up: {fs.to_dict()}")
    writer.commit(
        file_id,
        staged,
        {
            "source_file": str(path), "size": fs.size, "sha256": fs.sha256,
            "content_key": content_key(path, fs.sha256), "format": fs.format,
            "wrappers": ",".join(fs.wrappers) or None, "compression": fs.compression, "lines": fs.lines,
            "rows": sum(fs.rows.values()), "rejects": fs.rejects, "skipped": sum(fs.skipped.values()),
            "summary": fs.to_dict(),
        },
    )
    con.close()
    return fs


def content_key(path: Path, sha256: str) -> str:
    """What makes a file "the same file again": its bytes, plus the time stamp in its name when it has one.

    Scrapes and snapshots often carry their time only in the file name; two of them with identical bodies
    (nothing changed between scrapes) are still two observations.
    """
    from .capture import name_stamp

    stamp = name_stamp(path.name)
    return f"{sha256}@{stamp}" if stamp else sha256


def list_blocks(reader: LineReader):
    """(block, is_last) pairs, looking one block ahead.

    Blocks are read and split on a thread of their own while DuckDB parses the previous one (DuckDB releases
    the GIL), with at most two blocks waiting, so memory stays bounded. An error while reading is raised here.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=2)
    done = object()
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for b in reader.blocks():
                if not put(b):
                    return
            put(done)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)

    t = threading.Thread(target=produce, name="workbench-reader", daemon=True)
    t.start()

    def take():
        item = q.get()
        if isinstance(item, BaseException):
            raise item
        return None if item is done else item

    try:
        prev = take()
        if prev is None:
            from .source import LineBlock

            yield LineBlock(pa.table({"line_no": pa.array([], pa.int64()), "text": pa.array([], pa.string())}), 1), True
            return
        while (nxt := take()) is not None:
            yield prev, False
            prev = nxt
        yield prev, True
    finally:
        stop.set()
        t.join(timeout=5)


def _concat(carry: pa.Table | None, t: pa.Table) -> pa.Table:
    if carry is None or carry.num_rows == 0:
        return t
    return pa.concat_tables([carry.cast(t.schema), t]).combine_chunks()


def _check_stage(stage: str, n_in: int, n_out: int) -> None:
    if n_in != n_out:
        raise AssertionError(f"{stage}: {n_in} lines in, {n_out} accounted for (rows + rejects + skipped + held)")


def _add(total: dict[str, int], more: dict[str, int]) -> None:
    for k, v in more.items():
        total[k] = total.get(k, 0) + v


def _take_rejects(fs: FileSummary, rejects: pa.Table, stage: str, on_bad_line: str, writer: CaseWriter,
                  file_id: str, staged: list[Staged], part: int) -> None:
    if not rejects.num_rows:
        return
    if on_bad_line == "raise":
        first = rejects.slice(0, 1).to_pylist()[0]
        raise BadLine(fs.source_file, first["line_no"], f"{first['reason']} (parsed as {stage})")
    fs.rejects += rejects.num_rows
    raw = pa.array([clip_raw(t) for t in rejects.column("text").to_pylist()], pa.string())
    tbl = pa.table(
        {
            "source_file": pa.array([fs.source_file] * rejects.num_rows, pa.string()),
            "line_no": rejects.column("line_no"),
            "format": pa.array([stage] * rejects.num_rows, pa.string()),
            "reason": rejects.column("reason"),
            "raw": raw,
        }
    )
    _stage_table(writer, file_id, "rejects", schema.conform("rejects", tbl), staged, part)


def _stage_table(writer: CaseWriter, file_id: str, table: str, data: pa.Table, staged: list[Staged], part: int) -> int:
    """Write one table's rows, split by date partition and sorted by ts, into staging. Returns the next part no."""
    data = schema.conform(table, data)
    if table not in schema.PARTITIONED:
        path, rel = writer.stage_path(file_id, table, None, part)
        _write(path, data)
        staged.append(Staged(table, rel, data.num_rows))
        return part + 1
    for day, sub in by_day(data):
        path, rel = writer.stage_path(file_id, table, day.isoformat(), part)
        _write(path, sub)
        staged.append(Staged(table, rel, sub.num_rows))
        part += 1
    return part


def _write(path: Path, data: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(data, path, compression="zstd", row_group_size=1 << 20)
    fsync_file(path)


__all__ = ["ingest", "IngestSummary", "FileSummary", "expand_paths", "Wrapper", "Format", "WRAPPERS"]
