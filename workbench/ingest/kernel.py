"""Kernel messages into `events`: OOM kills, one `oom_kill` per `Killed process` line, with what the rest of
the OOM report says about it (who invoked the killer, the constraint and memory cgroup from `oom-kill:`, the
victim's row of the task table, whether the oom_reaper reaped it).

Forms read (the kernel's own text, mm/oom_kill.c): `Out of memory: Killed process 4242 (registry)
total-vm:…kB, anon-rss:…kB, file-rss:…kB, shmem-rss:…kB, UID:0 pgtables:…kB oom_score_adj:0`,
`Memory cgroup out of memory: Killed process …`, older `Killed process 4242 (registry) total-vm:…` after
`Out of memory: Kill process 4242 (registry) score 900 or sacrifice child`, `oom-kill:constraint=…,task=…,pid=…,uid=…`,
the task table (`Tasks state (memory values in pages):` and its header, values in pages), and
`oom_reaper: reaped process …`. Line prefixes: `dmesg` (`[12345.678901] `, seconds since boot), `dmesg -T`
(`[Sat Nov 28 06:29:38 2026] `, local time, read in --tz), `dmesg --time-format iso`, `journalctl -k` and
kern.log (the syslog wrapper removes `Nov 28 06:29:38 host kernel: `; journald JSON likewise).

Seconds since boot need the boot time: `--at` is taken as the boot time (time_basis `boot_at`); without it the
boot time is estimated as the file's modification time less the last uptime in the file (`boot_estimate`), and
the summary says so. anon-rss in the task table is in pages; `page_kb` (default 4) converts it.
Other kernel lines are counted as skipped (`kernel_other`).
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

import pyarrow as pa

from .base import Context, Format, ParseResult
from .rows import Events, whole_lines

_MONO = re.compile(r"^\[\s*(\d+\.\d+)\]\s?(.*)$")
_HUMAN = re.compile(r"^\[([A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4})\]\s?(.*)$")
_ISO = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[,.]\d+)?(?:[+-]\d\d:?\d\d|Z)?)\s(.*)$")
_HOST_KERNEL = re.compile(r"^\S+ kernel: (?:\[\s*\d+\.\d+\]\s?)?")  # journalctl -o short-monotonic

KILLED = re.compile(
    r"^(?:(?P<why>[^:]*out of memory[^:]*): )?Killed process (?P<pid>\d+) \((?P<comm>.*?)\) "
    r"total-vm:(?P<vm>\d+)kB, anon-rss:(?P<anon>\d+)kB, file-rss:(?P<file>\d+)kB"
    r"(?:, shmem-rss:(?P<shmem>\d+)kB)?(?:,? UID:(?P<uid>\d+))?(?: pgtables:(?P<pgt>\d+)kB)?"
    r"(?: oom_score_adj:(?P<adj>-?\d+))?", re.IGNORECASE)
INVOKED = re.compile(r"^(?P<comm>.+?) invoked oom-killer: (?P<rest>.*)$")
OOM_KILL = re.compile(r"^oom-kill:(?P<kv>.*)$")
TABLE_TITLE = re.compile(r"^(?:\[ pid \]|Tasks state \(memory values in pages\):)")
TABLE_HEAD = re.compile(r"^\[\s*pid\s*\]\s+(?P<cols>.*)$")
TABLE_ROW = re.compile(r"^\[\s*(?P<pid>\d+)\]\s+(?P<vals>.*)$")
REAPED = re.compile(r"^oom_reaper: reaped process (?P<pid>\d+) \((?P<comm>.*?)\), now anon-rss:(?P<anon>\d+)kB")
OLD_KILL = re.compile(r"^(?:.*: )?Kill process (?P<pid>\d+) \((?P<comm>.*?)\) score (?P<score>\d+)")


def split_prefix(text: str, tz: str) -> tuple[str, dt.datetime | None, float | None] | None:
    """(message, wall time or None, seconds since boot or None); None when the line has no kernel-log prefix.

    A line without a prefix (the wrapper already took it off) is returned whole with no time."""
    t = text.rstrip()
    m = _MONO.match(t)
    if m:
        return _HOST_KERNEL.sub("", m.group(2)), None, float(m.group(1))
    m = _HUMAN.match(t)
    if m:
        try:
            when = dt.datetime.strptime(re.sub(" +", " ", m.group(1)), "%a %b %d %H:%M:%S %Y")
        except ValueError:
            return None
        return m.group(2), when.replace(tzinfo=zoneinfo.ZoneInfo(tz)).astimezone(dt.UTC), None
    m = _ISO.match(t)
    if m:
        raw = m.group(1).replace(",", ".")
        raw = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", raw)
        try:
            when = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=zoneinfo.ZoneInfo(tz))
        return _HOST_KERNEL.sub("", m.group(2)), when.astimezone(dt.UTC), None
    return None


class KernelOOM(Format):
    name = "kernel-oom"
    family = "kernel"
    tables = ("events",)
    description = ("Kernel log with OOM kills: dmesg (uptime, -T or --time-format iso), journalctl -k, "
                   "kern.log; the task table's pages and the Killed line's kB")
    example = ("[81234.567890] Memory cgroup out of memory: Killed process 4242 (registry) total-vm:1566740kB, "
               "anon-rss:1048576kB, file-rss:10240kB, shmem-rss:0kB, UID:0 pgtables:2344kB oom_score_adj:936")

    def sniff(self, lines: list[str]) -> float:
        if not lines:
            return 0.0
        msgs = [split_prefix(ln, "UTC") for ln in lines]
        texts = [m[0] if m else ln.strip() for m, ln in zip(msgs, lines, strict=True)]
        if not any(KILLED.match(t) or INVOKED.match(t) or OOM_KILL.match(t) for t in texts):
            return 0.0
        with_prefix = sum(1 for m in msgs if m is not None)
        # no prefix at all: the lines came out of a wrapper (journalctl -k, kern.log) that carried the time
        return with_prefix / len(lines) if with_prefix else 0.8

    def parse(self, ctx: Context, block: pa.Table, final: bool) -> ParseResult:
        if not final:
            return ParseResult(held_back=block.num_rows)
        out = Events()
        page_kb = float(ctx.options.get("page_kb", 4))
        rows = whole_lines(block)
        parsed = []
        for no, text, wrap_ts, wrap_host in rows:
            if not text.strip():
                out.skip("blank")
                continue
            sp = split_prefix(text, ctx.tz)
            if sp is None:
                if wrap_ts is None:
                    out.rejects.append((no, "no kernel log prefix ([uptime], [date] or ISO time)", text))
                    continue
                sp = (text.strip(), None, None)
            parsed.append((no, text, wrap_ts, wrap_host, *sp))
        monos = [p[6] for p in parsed if p[6] is not None]
        boot, basis_mono = None, None
        if monos:
            if ctx.at is not None:
                boot, basis_mono = ctx.at.astimezone(dt.UTC), "boot_at"
                ctx.note("kernel uptimes counted from --at as the boot time")
            else:
                mtime = ctx.file_mtime or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
                boot, basis_mono = mtime - dt.timedelta(seconds=max(monos)), "boot_estimate"
                ctx.note("kernel uptimes counted from an estimated boot time (file time less the last uptime); "
                         "pass --at BOOT_TIME for exact times")
        report: dict = {}
        for no, text, wrap_ts, wrap_host, msg, wall, mono in parsed:
            if wrap_ts is not None:
                when, basis = wrap_ts, "log"
            elif wall is not None:
                when, basis = wall, "log"
            elif mono is not None and boot is not None:
                when, basis = boot + dt.timedelta(seconds=mono), basis_mono
            else:
                when, basis = None, None
            m = INVOKED.match(msg)
            if m:
                report = {"invoked_by": m.group("comm"), "invoked": m.group("rest"), "table": {}}
                out.used += 1
                continue
            if TABLE_TITLE.match(msg) and not TABLE_HEAD.match(msg):
                out.used += 1
                continue
            m = TABLE_HEAD.match(msg)
            if m:
                report.setdefault("table", {})
                report["cols"] = m.group("cols").split()
                out.used += 1
                continue
            m = TABLE_ROW.match(msg)
            if m and "cols" in report:
                vals = m.group("vals").split(None, len(report["cols"]) - 1)
                report["table"][int(m.group("pid"))] = dict(zip(report["cols"], vals, strict=False))
                out.used += 1
                continue
            m = OOM_KILL.match(msg)
            if m:
                kv = dict(p.split("=", 1) if "=" in p else (p, "true") for p in m.group("kv").split(","))
                report["oom_kill"] = kv
                out.used += 1
                continue
            m = OLD_KILL.match(msg)
            if m:
                report["score"] = int(m.group("score"))
                out.used += 1
                continue
            m = REAPED.match(msg)
            if m:
                out.used += 1
                for r in reversed(out.rows):
                    if r["kind"] == "oom_kill" and r["detail"]["pid"] == int(m.group("pid")):
                        r["detail"].update(reaped=True, anon_rss_kb_after_reap=int(m.group("anon")))
                        break
                continue
            m = KILLED.match(msg)
            if m:
                if when is None:
                    out.rejects.append((no, "OOM kill line without a time", text))
                    continue
                pid = int(m.group("pid"))
                detail = {"pid": pid, "total_vm_kb": int(m.group("vm")), "anon_rss_kb": int(m.group("anon")),
                          "file_rss_kb": int(m.group("file")),
                          "shmem_rss_kb": int(m.group("shmem")) if m.group("shmem") else None,
                          "uid": int(m.group("uid")) if m.group("uid") else None,
                          "pgtables_kb": int(m.group("pgt")) if m.group("pgt") else None,
                          "oom_score_adj": int(m.group("adj")) if m.group("adj") else None,
                          "scope": "cgroup" if "cgroup" in (m.group("why") or "").lower() else
                          ("system" if m.group("why") else None)}
                kv = report.get("oom_kill", {})
                if kv:
                    detail.update(constraint=kv.get("constraint"), oom_memcg=kv.get("oom_memcg"),
                                  task_memcg=kv.get("task_memcg"))
                if report.get("invoked_by"):
                    detail["invoked_by"] = report["invoked_by"]
                row = report.get("table", {}).get(pid)
                if row:
                    detail["task_table_pages"] = row
                    rss = row.get("rss_anon") or row.get("rss")
                    if rss and rss.isdigit():
                        detail["task_table_rss_kb"] = int(rss) * page_kb
                if "score" in report:
                    detail["score"] = report["score"]
                out.add(ctx, ts=when, kind="oom_kill", source="kernel", line_no=no, time_basis=basis,
                        instance=ctx.instance or wrap_host,
                        subject=m.group("comm"), value=int(m.group("anon")), detail=detail)
                out.used += 1
                report = {}
                continue
            if "Killed process" in msg:
                out.rejects.append((no, "a Killed process line in a form not understood", text))
                continue
            out.skip("kernel_other")
        return out.result()


FORMATS: list[Format] = [KernelOOM()]
