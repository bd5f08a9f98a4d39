"""Small whole-file parsers' shared pieces: the `events` row builder with its ledger, numbered lines of a
block, the fallback time of a file that carries none, RFC 3339 times with nanoseconds, and logrus lines."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field

import pyarrow as pa

from .. import schema
from .base import REJECT_COLUMNS, Context, ParseResult


def reject_table(rejects: list[tuple[int, str, str]]) -> pa.Table:
    """(line_no, reason, text) tuples as the reject shape."""
    return pa.table({"line_no": pa.array([r[0] for r in rejects], pa.int64()),
                     "reason": pa.array([r[1] for r in rejects], pa.string()),
                     "text": pa.array([r[2] for r in rejects], pa.string())}, schema=REJECT_COLUMNS)


_LOGRUS_TEXT = re.compile(r'^time="?([^" ]+)"? level=(\w+) msg=("(?:[^"\\]|\\.)*"|\S+)')


def logrus_msg(line: str) -> tuple[dt.datetime | None, str, str] | None:
    """(time, level, msg) of a logrus text or JSON line, or None."""
    s = line.strip()
    if s.startswith("{"):
        try:
            d = json.loads(s)
        except ValueError:
            return None
        if not isinstance(d, dict) or not isinstance(d.get("msg"), str):
            return None
        return parse_time(str(d.get("time", ""))), str(d.get("level", "")), d["msg"]
    m = _LOGRUS_TEXT.match(s)
    if not m:
        return None
    msg = m.group(3)
    if msg.startswith('"'):
        try:
            msg = json.loads(msg)
        except ValueError:
            msg = msg.strip('"')
    return parse_time(m.group(1)), m.group(2), msg


def parse_time(text: str) -> dt.datetime | None:
    """RFC 3339 time with nanoseconds (Go writes 9 fractional digits, Python reads 6); None if unreadable."""
    m = re.match(r"^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$", text.strip())
    if not m:
        return None
    base, frac, zone = m.groups()
    try:
        t = dt.datetime.fromisoformat(base.replace(" ", "T") + ("." + frac[:6].ljust(6, "0") if frac else ""))
    except ValueError:
        return None
    if zone and zone not in ("Z", "z"):
        z = zone.replace(":", "")
        off = dt.timedelta(hours=int(z[1:3]), minutes=int(z[3:5]))
        return t.replace(tzinfo=dt.timezone(off if z[0] == "+" else -off)).astimezone(dt.UTC)
    return t.replace(tzinfo=dt.UTC)


@dataclass
class Events:
    """Rows of `events` being built, with rejects and skips; the ledger of a small whole-file parser."""

    rows: list[dict] = field(default_factory=list)
    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    used: int = 0

    def skip(self, kind: str, n: int = 1) -> None:
        self.skipped[kind] = self.skipped.get(kind, 0) + n

    def add(self, ctx: Context, *, ts: dt.datetime, kind: str, source: str, line_no: int, time_basis: str,
            end_ts: dt.datetime | None = None, instance: str | None = None, subject: str | None = None,
            value: float | None = None, marked: int | None = None, deleted: int | None = None,
            detail: dict | str | None = None) -> None:
        self.rows.append({
            "ts": ts, "end_ts": end_ts, "kind": kind, "source": source,
            "instance": instance if instance is not None else ctx.instance, "subject": subject,
            "value": None if value is None else float(value), "marked": marked, "deleted": deleted,
            "detail": detail,
            "time_basis": time_basis, "source_file": ctx.source_file, "line_no": line_no,
        })

    def result(self) -> ParseResult:
        rows = [{**r, "detail": json.dumps(r["detail"], sort_keys=True, default=str)
                 if isinstance(r["detail"], dict) else r["detail"]} for r in self.rows]
        table = schema.conform("events", pa.Table.from_pylist(rows, schema=schema.EVENTS))
        return ParseResult(tables={"events": table}, rejects=reject_table(self.rejects),
                           skipped={k: v for k, v in self.skipped.items() if v}, used_lines=self.used)


def fallback_time(ctx: Context) -> tuple[dt.datetime, str]:
    """--at, else the file's modification time; notes which."""
    if ctx.at is not None:
        ctx.note("times: --at (the lines carry none)")
        return ctx.at.astimezone(dt.UTC), "at"
    if ctx.file_mtime is None:
        ctx.note("times: unknown (the lines carry none and there is no file time; pass --at)")
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC), "unknown"
    ctx.note("times: the file's modification time (the lines carry none; pass --at)")
    return ctx.file_mtime, "file_mtime"


def whole_lines(block: pa.Table) -> list[tuple[int, str, dt.datetime | None, str | None]]:
    """(line_no, text, wrapper time, wrapper host) of every line of a block, for the small Python parsers."""
    return list(zip(block.column("line_no").to_pylist(),
                    [t if t is not None else "" for t in block.column("text").to_pylist()],
                    block.column("wrap_ts").to_pylist(), block.column("wrap_host").to_pylist(), strict=True))
