"""Small captures read as a whole (host tools' output): held back until the last block, then parsed in Python.

`Capture.parse_lines` marks every line used, skipped (by kind) or rejected through a `Ledger`, which turns
the marks into a ParseResult; a line nobody marked becomes a reject, so nothing is lost by omission.
Snapshot times come from timestamp lines inside the capture (`date`, `date -Is`, `date +%s`, iostat's
`11/28/26 06:29:38`), else from a stamp in the file name, else `--at`, else the file's mtime; the ingest
summary says which.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from .. import schema
from .base import REJECT_COLUMNS, Context, Format, ParseResult

_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
_STAMP_PATTERNS: list[tuple[re.Pattern, str]] = [
    (re.compile(r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?$"), "iso"),
    (re.compile(r"^(?:[A-Z][a-z]{2} )?[A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d(?: [A-Z]{2,5})? \d{4}$"), "date"),
    (re.compile(r"^\d{2}/\d{2}/\d{2,4} \d\d:\d\d:\d\d(?: [AP]M)?$"), "mdy"),
    (re.compile(r"^1\d{9}(?:\.\d+)?$"), "epoch"),
]
_FILENAME_STAMP = re.compile(r"(\d{4})-?(\d\d)-?(\d\d)[T_-]?(\d\d)[:-]?(\d\d)[:-]?(\d\d)(Z)?")
_FILENAME_EPOCH = re.compile(r"(?<!\d)(1\d{9})(?!\d)")
_ZONE_ABBR = {"UTC": 0, "GMT": 0, "Z": 0, "CET": 1, "CEST": 2, "EET": 2, "EEST": 3, "WET": 0, "WEST": 1,
              "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
              "BST": 1, "IST": 5.5, "JST": 9}


def _strip_decoration(text: str) -> str:
    t = text.strip()
    t = re.sub(r"^(?:#+|=+|-+|\*+)\s*", "", t)
    t = re.sub(r"\s*(?:=+|-+|\*+)$", "", t)
    return re.sub(r"^(?:time|timestamp|snapshot|captured|at)[:=]?\s+", "", t, flags=re.I)


def parse_stamp(text: str, tz: str) -> dt.datetime | None:
    """A line that is only a timestamp (in any of the usual shapes) -> UTC datetime, else None."""
    t = _strip_decoration(text)
    if len(t) > 40:
        return None
    for rx, kind in _STAMP_PATTERNS:
        if not rx.match(t):
            continue
        try:
            if kind == "iso":
                v = dt.datetime.fromisoformat(t.replace(",", ".").replace("Z", "+00:00"))
            elif kind == "epoch":
                return dt.datetime.fromtimestamp(float(t), dt.timezone.utc)
            elif kind == "date":
                parts = t.split()
                if parts[0] not in _MONTHS:
                    parts = parts[1:]
                zone = parts[3] if len(parts) == 5 else None
                year = parts[-1]
                v = dt.datetime.strptime(f"{parts[0]} {parts[1]} {parts[2]} {year}", "%b %d %H:%M:%S %Y")
                if zone is not None:
                    if zone not in _ZONE_ABBR:
                        return None
                    return (v - dt.timedelta(hours=_ZONE_ABBR[zone])).replace(tzinfo=dt.timezone.utc)
            else:  # mdy, as iostat -t writes it in the C locale
                fmt = "%m/%d/%y" if len(t.split()[0]) == 8 else "%m/%d/%Y"
                fmt += " %I:%M:%S %p" if t.endswith("M") else " %H:%M:%S"
                v = dt.datetime.strptime(t, fmt)
        except ValueError:
            return None
        if v.tzinfo is None:
            v = v.replace(tzinfo=zoneinfo.ZoneInfo(tz))
        return v.astimezone(dt.timezone.utc)
    return None


def unstamped(lines: list[str]) -> list[str]:
    """The lines that are not timestamp lines: what a looped capture (`date -Is; nstat -a`) shows of its tool."""
    return [ln for ln in lines if parse_stamp(ln, "UTC") is None]


def name_stamp(name: str) -> str | None:
    """The time stamp written in a file name (as written), if any."""
    m = _FILENAME_STAMP.search(name) or _FILENAME_EPOCH.search(name)
    return m.group(0) if m else None


def file_time(ctx: Context) -> tuple[dt.datetime, str]:
    """Time for a capture with no timestamp lines: file-name stamp, --at, or mtime; and which it was."""
    name = Path(ctx.source_file).name
    m = _FILENAME_STAMP.search(name)
    if m:
        y, mo, d, h, mi, s, z = m.groups()
        v = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))
        v = v.replace(tzinfo=dt.timezone.utc if z else zoneinfo.ZoneInfo(ctx.tz)).astimezone(dt.timezone.utc)
        return v, "filename"
    m = _FILENAME_EPOCH.search(name)
    if m:
        return dt.datetime.fromtimestamp(int(m.group(1)), dt.timezone.utc), "filename"
    if ctx.at:
        return ctx.at.astimezone(dt.timezone.utc), "at"
    if ctx.file_mtime:
        return ctx.file_mtime, "file_mtime"
    return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc), "unknown"


@dataclass
class Ledger:
    """Marks for every line of a capture, and the rows they produced."""

    ctx: Context
    lines: list[tuple[int, str]]
    marks: dict[int, tuple[str, str]] = field(default_factory=dict)  # line_no -> (kind, detail)
    metrics: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)

    def used(self, line_no: int) -> None:
        self.marks[line_no] = ("used", "")

    def skip(self, line_no: int, kind: str) -> None:
        self.marks[line_no] = ("skip", kind)

    def reject(self, line_no: int, reason: str) -> None:
        self.marks[line_no] = ("reject", reason)

    def metric(self, line_no: int, ts: dt.datetime, metric: str, value: float, labels: dict | None = None,
               basis: str = "capture", instance: str | None = None, job: str | None = None) -> None:
        self.used(line_no)
        self.metrics.append({
            "ts": ts, "metric": metric, "labels": sorted((labels or {}).items()), "value": float(value),
            "le": None, "instance": instance or self.ctx.instance, "job": job, "time_basis": basis,
            "source_file": self.ctx.source_file, "line_no": line_no,
        })

    def event(self, line_no: int, ts: dt.datetime, kind: str, *, end_ts: dt.datetime | None = None,
              source: str | None = None, subject: str | None = None, value: float | None = None,
              detail: str | None = None, basis: str = "capture") -> None:
        self.used(line_no)
        self.events.append({
            "ts": ts, "end_ts": end_ts, "kind": kind, "source": source, "instance": self.ctx.instance,
            "subject": subject, "value": value, "marked": None, "deleted": None, "detail": detail,
            "time_basis": basis, "source_file": self.ctx.source_file, "line_no": line_no,
        })

    def result(self, default_reason: str) -> ParseResult:
        rejects, skipped, used = [], {}, 0
        for line_no, text in self.lines:
            kind, detail = self.marks.get(line_no, ("reject", default_reason))
            if kind == "used":
                used += 1
            elif kind == "skip":
                skipped[detail] = skipped.get(detail, 0) + 1
            else:
                rejects.append({"line_no": line_no, "reason": detail, "text": text})
        tables = {}
        if self.metrics:
            tables["metric_samples"] = schema.conform("metric_samples", pa.Table.from_pylist(
                self.metrics, schema=schema.METRIC_SAMPLES))
        if self.events:
            tables["events"] = schema.conform("events", pa.Table.from_pylist(self.events, schema=schema.EVENTS))
        return ParseResult(tables=tables, rejects=pa.Table.from_pylist(rejects, schema=REJECT_COLUMNS),
                           skipped=skipped, used_lines=used)


class Capture(Format):
    """A whole-file capture format. Subclasses implement `looks_like` (per line) and `parse_lines`."""

    tables = ("metric_samples", "events")
    default_reason = "not understood in this capture"

    def looks_like(self, lines: list[str]) -> float:
        raise NotImplementedError

    def sniff(self, lines: list[str]) -> float:
        return self.looks_like(lines) if lines else 0.0

    def parse(self, ctx: Context, block: pa.Table, final: bool) -> ParseResult:
        if not final:
            return ParseResult(rejects=REJECT_COLUMNS.empty_table(), held_back=block.num_rows)
        lines = list(zip(block.column("line_no").to_pylist(), block.column("text").to_pylist()))
        ledger = Ledger(ctx, lines)
        for line_no, text in lines:
            if not text.strip():
                ledger.skip(line_no, "blank")
        self.parse_lines(ctx, ledger)
        return ledger.result(self.default_reason)

    def parse_lines(self, ctx: Context, ledger: Ledger) -> None:
        raise NotImplementedError


def snapshots(ctx: Context, ledger: Ledger) -> list[tuple[dt.datetime, str, list[tuple[int, str]]]]:
    """Split a capture at its timestamp lines: [(time, basis, lines)], the stamp lines marked used.

    Lines before the first stamp (or all, when there is none) get the file's time.
    """
    out: list[tuple[dt.datetime, str, list[tuple[int, str]]]] = []
    ft, basis = None, None
    cur: list[tuple[int, str]] = []
    cur_ts: dt.datetime | None = None
    cur_basis = "capture"
    for line_no, text in ledger.lines:
        stamp = parse_stamp(text, ctx.tz) if text.strip() else None
        if stamp is not None:
            if cur:
                out.append((cur_ts, cur_basis, cur))  # type: ignore[arg-type]
            ledger.skip(line_no, "snapshot_stamp")
            cur, cur_ts, cur_basis = [], stamp, "capture"
            continue
        if cur_ts is None:
            if ft is None:
                ft, basis = file_time(ctx)
                ctx.note(f"capture has no timestamp lines before line {line_no}: used the time from {basis}")
            cur_ts, cur_basis = ft, basis or "unknown"
        cur.append((line_no, text))
    if cur:
        out.append((cur_ts, cur_basis, cur))  # type: ignore[arg-type]
    return out
