"""pg_locks / pg_stat_activity / pg_blocking_pids dumps into `db_lock_snapshots`: CSV with a header (`psql --csv`,
`COPY … CSV HEADER`) and psql's aligned text (header, `---+---` rule, `(N rows)` footer, multi-line cells
continued with `+`, NULL as an empty cell).

A file may hold several snapshots: rows carry their snapshot time in a column (`snapshot_ts`, `now`,
`snapshot_time`, `captured_at`, `ts`), or a `-- snapshot <ISO time>` line comes before each snapshot; failing
both, `--at`, then the file's modification time is used (the summary says which). psql prints times in the
session's zone: values with an offset are exact; values without one are read in `--tz`.

Dumps are small (a snapshot is a few hundred rows), so they are parsed in Python once the whole file is read.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import zoneinfo

import pyarrow as pa

from .. import schema
from .base import Context, Format, ParseResult, empty_rejects

TIME_COLUMNS = ("snapshot_ts", "snapshot_time", "now", "captured_at", "ts", "clock_timestamp")
_MARKER = re.compile(r"^\s*--\s*snapshot\s+(\S+(?:[ T]\S+)?)\s*$", re.I)
_FOOTER = re.compile(r"^\((\d+) rows?\)$")
_RULE = re.compile(r"^-+(\+-+)*$")
# canonical column -> accepted header names
ALIASES = {
    "pid": ("pid", "blocked_pid", "waiting_pid"),
    "locktype": ("locktype", "lock_type"),
    "mode": ("mode", "lock_mode"),
    "granted": ("granted",),
    "relation": ("relation", "relname", "rel", "table_name"),
    "blocking_pids": ("blocking_pids", "pg_blocking_pids", "blocked_by"),
    "state": ("state",),
    "wait_event_type": ("wait_event_type",),
    "wait_event": ("wait_event",),
    "query": ("query", "current_query"),
    "xact_start": ("xact_start",),
    "query_start": ("query_start",),
    "xact_age_s": ("xact_age_s", "xact_age", "xact_age_seconds"),
    "application": ("application_name", "application"),
    "user_name": ("usename", "user_name", "username"),
}


def _looks_like_header(cols: list[str]) -> bool:
    names = {c.strip().lower() for c in cols}
    return "pid" in names or "blocked_pid" in names or "waiting_pid" in names


class _Snapshots(Format):
    family = "postgres"
    tables = ("db_lock_snapshots",)

    def parse(self, ctx: Context, block: pa.Table, final: bool) -> ParseResult:
        if not final:
            return ParseResult(rejects=empty_rejects(), held_back=block.num_rows)
        nos = block.column("line_no").to_pylist()
        texts = block.column("text").to_pylist()
        acc = _Acc(ctx)
        self.read(acc, nos, texts)
        return acc.result()

    def read(self, acc: _Acc, nos: list[int], texts: list[str]) -> None:
        raise NotImplementedError


class _Acc:
    """Rows, rejects and skips of one file, with the snapshot time in force."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.rows: list[dict] = []
        self.rejects: list[dict] = []
        self.skipped: dict[str, int] = {}
        self.used = 0
        self.marker: dt.datetime | None = None
        self.tz = zoneinfo.ZoneInfo(ctx.tz)

    def skip(self, kind: str, n: int = 1) -> None:
        self.skipped[kind] = self.skipped.get(kind, 0) + n

    def reject(self, line_no: int, reason: str, text: str, n_lines: int = 1, texts: list[str] | None = None) -> None:
        for i in range(n_lines):
            self.rejects.append({"line_no": line_no + i, "reason": reason, "text": (texts or [text])[i]})

    def marker_line(self, line_no: int, text: str) -> bool:
        """A `-- snapshot <time>` line: sets the time for the rows after it. False if the line is not one."""
        m = _MARKER.match(text)
        if not m:
            return False
        self.marker = self.time(m[1])
        if self.marker is None:
            self.reject(line_no, f"unreadable time in snapshot marker {m[1]!r}", text)
        else:
            self.skip("snapshot marker")
        return True

    def time(self, v: str | None) -> dt.datetime | None:
        if v is None or not v.strip():
            return None
        s = v.strip().replace("Z", "+00:00")
        try:
            t = dt.datetime.fromisoformat(s)
        except ValueError:
            return None
        return (t if t.tzinfo else t.replace(tzinfo=self.tz)).astimezone(dt.UTC)

    def add(self, line_no: int, n_lines: int, rec: dict[str, str | None], texts: list[str]) -> None:
        def get(name: str) -> str | None:
            for a in ALIASES[name]:
                v = rec.get(a)
                if v is not None:
                    return v if v != "" else None
            return None

        pid = get("pid")
        if pid is None or not pid.strip().isdigit():
            self.reject(line_no, "row without a numeric pid", "", n_lines, texts)
            return
        ts_raw = next((rec[c] for c in TIME_COLUMNS if rec.get(c)), None)
        ts = self.time(ts_raw) if ts_raw else None
        basis = "column"
        if ts_raw and ts is None:
            self.reject(line_no, f"unreadable snapshot time {ts_raw!r}", "", n_lines, texts)
            return
        if ts is None:
            ts, basis = self.marker, "marker"
        if ts is None and self.ctx.at:
            ts, basis = self.ctx.at.astimezone(dt.UTC), "at"
        if ts is None and self.ctx.file_mtime:
            ts, basis = self.ctx.file_mtime, "file_mtime"
        if ts is None:
            self.reject(line_no, "no snapshot time (no time column, no `-- snapshot` line, no --at)", "",
                        n_lines, texts)
            return
        self.ctx.note({"column": "snapshot time from a time column in the rows",
                       "marker": "snapshot time from `-- snapshot` lines",
                       "at": "snapshot time from --at", "file_mtime": "snapshot time from the file's modification time"}[basis])
        blocking = get("blocking_pids")
        xs, qs = self.time(get("xact_start")), self.time(get("query_start"))
        age = _seconds(get("xact_age_s"))
        if age is None and xs is not None:
            age = (ts - xs).total_seconds()
        granted = get("granted")
        self.rows.append({
            "ts": ts, "pid": int(pid), "locktype": get("locktype"), "mode": get("mode"),
            "granted": None if granted is None else granted.strip().lower() in ("t", "true", "1", "yes"),
            "relation": get("relation"),
            "blocking_pids": None if blocking is None else [int(x) for x in re.findall(r"\d+", blocking)],
            "state": get("state"), "wait_event_type": get("wait_event_type"), "wait_event": get("wait_event"),
            "query": get("query"), "xact_start": xs, "query_start": qs, "xact_age_s": age,
            "application": get("application"), "user_name": get("user_name"),
            "source_file": self.ctx.source_file, "line_no": line_no,
        })
        self.used += n_lines

    def result(self) -> ParseResult:
        tbl = pa.Table.from_pylist(self.rows, schema=schema.DB_LOCK_SNAPSHOTS)
        rej = pa.Table.from_pylist(self.rejects, schema=empty_rejects().schema) if self.rejects else empty_rejects()
        return ParseResult(tables={"db_lock_snapshots": tbl}, rejects=rej, skipped=self.skipped, used_lines=self.used)


def _seconds(v: str | None) -> float | None:
    """xact age as seconds: 12.5, or an interval as psql prints it (00:00:01.5, 1 day 02:00:00)."""
    if v is None:
        return None
    try:
        return float(v)
    except ValueError:
        pass
    m = re.fullmatch(r"\s*(?:(-?\d+) days? ?)?(-)?(\d+):(\d\d):(\d\d(?:\.\d+)?)\s*", v)
    if not m:
        return None
    s = int(m[3]) * 3600 + int(m[4]) * 60 + float(m[5])
    return int(m[1] or 0) * 86400 + (-s if m[2] else s)


def _csv_cols(record: str) -> list[str] | None:
    """The fields of one CSV record, or None when it is not valid CSV."""
    try:
        return next(csv.reader([record]), [])
    except csv.Error:
        return None


class SnapshotCSV(_Snapshots):
    name = "pg-locks-csv"
    description = ("pg_locks / pg_stat_activity / pg_blocking_pids dump as CSV with a header (psql --csv, COPY CSV "
                   "HEADER); one or several snapshots")
    example = ("snapshot_ts,pid,locktype,mode,granted,relation,blocking_pids,state,wait_event_type,wait_event,query\n"
               "    2026-11-28 07:14:41.27-06,17325,relation,AccessShareLock,f,blobs,{17323},active,Lock,relation,"
               "SELECT count(*) FROM blobs")

    def sniff(self, lines: list[str]) -> float:
        for ln in lines[:5]:
            if _MARKER.match(ln):
                continue
            cols = _csv_cols(ln) or []
            if len(cols) >= 3 and _looks_like_header(cols) and "|" not in ln:
                return 1.0
            return 0.0
        return 0.0

    def read(self, acc: _Acc, nos: list[int], texts: list[str]) -> None:
        header: list[str] | None = None
        i = 0
        while i < len(texts):
            t = texts[i]
            if not t.strip():
                acc.skip("blank")
                i += 1
                continue
            if acc.marker_line(nos[i], t):
                i += 1
                continue
            # one CSV record, possibly spanning lines (quoted newlines in queries)
            j, buf = i, t
            while buf.count('"') % 2 and j + 1 < len(texts):
                j += 1
                buf += "\n" + texts[j]
            n = j - i + 1
            if buf.count('"') % 2:
                acc.reject(nos[i], "unterminated quoted field at the end of the file", t, n, texts[i:j + 1])
                i = j + 1
                continue
            cols = _csv_cols(buf)
            if cols is None:
                acc.reject(nos[i], "not a CSV record (a quote or line break where CSV allows none)", t, n,
                           texts[i:j + 1])
                i = j + 1
                continue
            if _looks_like_header(cols):
                if header is None:
                    acc.skip("header")
                else:
                    acc.skip("repeated header")
                header = [c.strip().lower() for c in cols]
            elif header is None:
                acc.reject(nos[i], "data before the CSV header", t, n, texts[i:j + 1])
            elif len(cols) != len(header):
                acc.reject(nos[i], f"{len(cols)} fields; the header has {len(header)}", t, n, texts[i:j + 1])
            else:
                acc.add(nos[i], n, dict(zip(header, cols, strict=True)), texts[i:j + 1])
            i = j + 1


class SnapshotAligned(_Snapshots):
    name = "pg-locks-psql"
    description = ("pg_locks / pg_stat_activity / pg_blocking_pids dump in psql's aligned format (header, ---+--- "
                   "rule, (N rows) footer, + continuation lines); one or several snapshots")
    example = ("  pid  |   locktype    |        mode         | granted | relation | blocking_pids\n"
               "    -------+---------------+---------------------+---------+----------+---------------\n"
               "     17325 | relation      | AccessShareLock     | f       | blobs    | {17323}")

    def sniff(self, lines: list[str]) -> float:
        for a, b in zip(lines, lines[1:], strict=False):
            if _RULE.match(b.strip()) and "|" in a and _looks_like_header(a.split("|")):
                return 1.0
        return 0.0

    def read(self, acc: _Acc, nos: list[int], texts: list[str]) -> None:
        header: list[str] = []
        bounds: list[tuple[int, int]] = []
        pending: tuple[int, list[str], list[list[str]]] | None = None  # first line no, its lines, cell pieces
        last_conts: list[bool] = []
        count = 0

        def flush() -> None:
            nonlocal pending, count
            if pending:
                first, lines, pieces = pending
                rec = {h: ("\n".join(p) if len(p) > 1 else p[0].strip()) for h, p in zip(header, pieces, strict=True)}
                acc.add(first, len(lines), rec, lines)
                count += 1
            pending = None

        for k, (no, t) in enumerate(zip(nos, texts, strict=True)):
            s = t.strip()
            nxt = texts[k + 1] if k + 1 < len(texts) else ""
            if not s:
                flush()
                acc.skip("blank")
                continue
            if _MARKER.match(t):
                flush()
                acc.marker_line(no, t)
                continue
            f = _FOOTER.match(s)
            if f:
                flush()
                if header and int(f[1]) != count:
                    acc.ctx.note(f"a (N rows) footer said {f[1]} rows where {count} were read (line {no})")
                acc.skip("footer")
                header, count = [], 0
                continue
            if "|" in t and _RULE.match(nxt.strip()) and _looks_like_header(t.split("|")):
                flush()
                cuts = [-1] + [i for i, c in enumerate(nxt) if c == "+"] + [len(nxt.rstrip())]
                bounds = [(cuts[i] + 1, cuts[i + 1]) for i in range(len(cuts) - 1)]
                header = [t[a:b].strip().lower() for a, b in bounds]
                header[-1] = t[bounds[-1][0]:].strip().lower()
                acc.skip("header")
                continue
            if _RULE.match(s) and header:
                acc.skip("rule")
                continue
            if not header:
                acc.reject(no, "text outside a psql table (no header and rule before it)", t)
                continue
            # each cell is ' ' + value padded to the column width + a marker: '+' when the value goes on below
            values, conts = [], []
            for i, (a, b) in enumerate(bounds):
                c = t[a:b] if i < len(bounds) - 1 else t[a:]
                seg = b - a
                cont = len(c) >= seg and c[seg - 1] == "+"
                values.append((c[1:seg - 1] if cont else c[1:]).rstrip())
                conts.append(cont)
            if pending is not None and any(last_conts):
                pending[1].append(t)
                for i, v in enumerate(values):
                    if last_conts[i]:
                        pending[2][i].append(v)
            else:
                flush()
                pending = (no, [t], [[v] for v in values])
            last_conts = conts
        flush()


FORMATS: list[Format] = [SnapshotCSV(), SnapshotAligned()]
