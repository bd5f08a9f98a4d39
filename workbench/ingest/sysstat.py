"""sysstat and procps captures: `iostat -x[z] -t` (every sysstat version's columns) and `vmstat [-t]`.

Device and CPU columns become `metric_samples` (iostat_<column>{device}, cpu_<column>); the first report of
each run is the average since boot and is skipped (counted as `since_boot`). Spans where a device is
saturated (%util over 90 with a queue over 2, by default) become `disk_saturation` events.
"""

from __future__ import annotations

import datetime as dt
import re

from .base import Context
from .capture import Capture, Ledger, file_time, parse_stamp

UTIL_MIN = 90.0
QUEUE_MIN = 2.0


def _col(name: str) -> str:
    """iostat/vmstat column -> metric suffix: r/s -> r_per_s, %util -> util_pct, avgqu-sz -> aqu_sz."""
    n = name.strip().rstrip(":")
    pct = n.startswith("%")
    n = n.lstrip("%").replace("/s", "_per_s").replace("-", "_")
    n = {"avgqu_sz": "aqu_sz", "avgrq_sz": "areq_sz_sectors", "await": "await_ms", "r_await": "r_await_ms",
         "w_await": "w_await_ms", "d_await": "d_await_ms", "f_await": "f_await_ms", "svctm": "svctm_ms"}.get(n, n)
    return n + ("_pct" if pct else "")


class Iostat(Capture):
    name = "iostat"
    family = "host"
    description = "sysstat `iostat -x` / `-xz` with `-t` stamps (old avgqu-sz/await and new aqu-sz/r_await columns)"
    example = "vda              3.31    109.98     0.75  18.38    0.28    33.20    1.61 … 0.04    0.00   0.07"
    _dev_header = re.compile(r"^Device:?\s")

    def looks_like(self, lines: list[str]) -> float:
        heads = sum(1 for ln in lines if self._dev_header.match(ln) or ln.startswith("avg-cpu:"))
        return 0.9 if heads and any(ln.startswith("Linux ") for ln in lines[:3]) or heads >= 2 else 0.0

    def parse_lines(self, ctx: Context, ledger: Ledger) -> None:
        ts: dt.datetime | None = None
        basis = "capture"
        report = 0  # reports seen (a report starts at a stamp or at an avg-cpu/Device header without one)
        cols: list[str] = []
        cpu_cols: list[str] = []
        mode = None
        interval = None
        prev_ts = None
        sat: dict[str, list] = {}
        seen_in_report: set[str] = set()

        def new_report(stamp: dt.datetime | None, line_no: int) -> None:
            nonlocal ts, basis, report, prev_ts, interval, seen_in_report
            report += 1
            seen_in_report = set()
            if stamp is None:
                base, b = file_time(ctx)
                stamp, basis = base, b
            else:
                basis = "capture"
            if ts is not None and stamp > ts:
                interval = (stamp - ts).total_seconds()
            prev_ts, ts = ts, stamp

        for line_no, text in ledger.lines:
            if not text.strip():
                mode = None
                continue
            if text.startswith("Linux "):
                ledger.skip(line_no, "banner")
                continue
            stamp = parse_stamp(text, ctx.tz)
            if stamp is not None:
                new_report(stamp, line_no)
                ledger.skip(line_no, "snapshot_stamp")
                continue
            if text.startswith("avg-cpu:"):
                if ts is None or "cpu" in seen_in_report:
                    new_report(None, line_no)
                seen_in_report.add("cpu")
                cpu_cols = [_col(c) for c in text.split()[1:]]
                mode = "cpu"
                ledger.skip(line_no, "header")
                continue
            if self._dev_header.match(text):
                if ts is None or "dev" in seen_in_report:
                    new_report(None, line_no)
                seen_in_report.add("dev")
                cols = [_col(c) for c in text.split()[1:]]
                mode = "dev"
                ledger.skip(line_no, "header")
                continue
            parts = text.split()
            if mode == "cpu" and len(parts) == len(cpu_cols) and ts is not None:
                if report == 1:
                    ledger.skip(line_no, "since_boot")
                    continue
                try:
                    vals = [float(p.replace(",", ".")) for p in parts]
                except ValueError:
                    ledger.reject(line_no, "avg-cpu values are not numbers")
                    continue
                for c, v in zip(cpu_cols, vals):
                    ledger.metric(line_no, ts, f"cpu_{c}", v, basis=basis, job="iostat")
                continue
            if mode == "dev" and len(parts) == len(cols) + 1 and ts is not None:
                if report == 1:
                    ledger.skip(line_no, "since_boot")
                    continue
                dev = parts[0]
                try:
                    vals = [float(p.replace(",", ".")) for p in parts[1:]]
                except ValueError:
                    ledger.reject(line_no, f"device {dev}: values are not numbers")
                    continue
                row = dict(zip(cols, vals))
                for c, v in row.items():
                    ledger.metric(line_no, ts, f"iostat_{c}", v, {"device": dev}, basis=basis, job="iostat")
                busy = row.get("util_pct", 0) > UTIL_MIN and row.get("aqu_sz", 0) > QUEUE_MIN
                span = sat.get(dev)
                if busy:
                    if span is None:
                        sat[dev] = [ts, ts, line_no, row.get("util_pct"), row.get("aqu_sz")]
                    else:
                        span[1] = ts
                        span[3] = max(span[3], row.get("util_pct"))
                        span[4] = max(span[4], row.get("aqu_sz"))
                elif span is not None:
                    self._saturation(ledger, dev, span, ts)
                    del sat[dev]
                continue
            ledger.reject(line_no, "not an iostat header, stamp, CPU or device line")
        for dev, span in sat.items():
            self._saturation(ledger, dev, span, span[1] + dt.timedelta(seconds=interval or 1))

    @staticmethod
    def _saturation(ledger: Ledger, dev: str, span: list, end: dt.datetime) -> None:
        start, _last, line_no, util, q = span
        ledger.event(line_no, start, "disk_saturation", end_ts=end, source="iostat", subject=dev, value=util,
                     detail=f"%util up to {util:.1f}, queue up to {q:.1f} (thresholds {UTIL_MIN:.0f}% and {QUEUE_MIN:.0f})")


class Vmstat(Capture):
    name = "vmstat"
    family = "host"
    description = "procps `vmstat [-t] [interval]`: run queue, memory, swap, io, system, cpu; -t adds the time"
    example = " 2  0      0 23264640  15184 1200672    0    0     4     0  364  147 49  3 49  0  0 2026-11-28 13:00:40"
    _groups = re.compile(r"^procs -+")

    def looks_like(self, lines: list[str]) -> float:
        return 0.9 if any(self._groups.match(ln) for ln in lines[:5]) else 0.0

    def parse_lines(self, ctx: Context, ledger: Ledger) -> None:
        cols: list[str] = []
        zone = None
        first_data = True
        base_ts, basis = None, None
        n = 0
        interval = float(ctx.options.get("interval", 1))
        for line_no, text in ledger.lines:
            if not text.strip():
                continue
            if self._groups.match(text):
                ledger.skip(line_no, "header")
                continue
            parts = text.split()
            if parts and parts[0] == "r" and "free" in parts:
                cols = [c for c in parts if c not in ("UTC",)]
                if len(parts) > 17 and not parts[-1].isdigit():
                    zone = parts[-1]
                    cols = parts[:-1]
                ledger.skip(line_no, "header")
                continue
            if not cols:
                ledger.reject(line_no, "vmstat data before its header")
                continue
            nums = parts[: len(cols)]
            rest = parts[len(cols):]
            try:
                vals = [float(p) for p in nums]
            except ValueError:
                ledger.reject(line_no, "vmstat values are not numbers")
                continue
            if len(vals) != len(cols):
                ledger.reject(line_no, f"expected {len(cols)} columns, found {len(parts)}")
                continue
            if first_data:
                first_data = False
                ledger.skip(line_no, "since_boot")
                continue
            if rest:
                tz = zone if zone and zone not in ("UTC",) else ctx.tz
                if zone and zone != "UTC":
                    try:
                        import zoneinfo

                        zoneinfo.ZoneInfo(zone)
                    except Exception:
                        tz = ctx.tz
                ts = parse_stamp(" ".join(rest), tz if zone != "UTC" else "UTC")
                if ts is None:
                    ledger.reject(line_no, "unreadable vmstat timestamp")
                    continue
                b = "capture"
            else:
                if base_ts is None:
                    base_ts, basis = file_time(ctx)
                    ctx.note(f"vmstat without -t: times are {basis} + sample number × {interval:g} s (--interval)")
                n += 1
                ts, b = base_ts + dt.timedelta(seconds=interval * n), basis
            for c, v in zip(cols, vals):
                ledger.metric(line_no, ts, f"vmstat_{c}", v, basis=b, job="vmstat")


FORMATS = [Iostat(), Vmstat()]
