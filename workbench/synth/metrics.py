"""The registry's /metrics, scraped every `scrape_interval_s`: counts gathered per scrape interval while the
requests stream by, then written as one text-exposition file per scrape (`metrics-<instance>-<UTC stamp>.prom`).

Series as distribution 2.8 exposes them (names, labels, buckets as in a real scrape), plus the Go and process
collectors' series the analyses read. Counters restart from zero when the process restarts; no file is written
while the process is down or stalled (the scrape failed).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .model import ACTIONS, CODES, HANDLERS, HM, NS, ROUTE_HM, Windows, within_any

HTTP_LE = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60]
STORAGE_LE = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]


def _le(v: float) -> str:
    return f"{v:g}"


def _num(v: float) -> str:
    """A sample value as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it: 116312, 0.0038, 2.5796608e+07."""
    v = float(v)
    if v == 0:
        return "0"
    exp = int(np.floor(np.log10(abs(v))))
    if -4 <= exp < 6:
        return np.format_float_positional(v, unique=True, trim="-")
    return np.format_float_scientific(v, unique=True, trim="-", exp_digits=2)


class MetricsAccumulator:
    def __init__(self, win: Windows, interval_s: int):
        self.win = win
        self.step = interval_s * NS
        self.nbins = int(np.ceil((win.t1 - win.t0) / self.step)) + 1
        self.req = np.zeros((self.nbins, len(HM), len(CODES)), np.int64)
        self.hist = np.zeros((self.nbins, len(HM), len(HTTP_LE) + 1), np.int64)
        self.hsum = np.zeros((self.nbins, len(HM)))
        self.st = np.zeros((self.nbins, len(ACTIONS), len(STORAGE_LE) + 1), np.int64)
        self.ssum = np.zeros((self.nbins, len(ACTIONS)))

    def _bin(self, t: np.ndarray) -> np.ndarray:
        return np.clip((t - self.win.t0) // self.step, 0, self.nbins - 1)

    def add(self, sim: dict[str, np.ndarray]) -> None:
        keep = sim["has_reg"]
        t_done = (sim["arrival"] + sim["reg_ns"])[keep]
        b = self._bin(t_done)
        hm = ROUTE_HM[sim["route"][keep]]
        code = np.searchsorted(CODES, sim["status"][keep])
        dur = sim["reg_ns"][keep] / NS
        np.add.at(self.req, (b, hm, code), 1)
        np.add.at(self.hist, (b, hm, np.searchsorted(HTTP_LE, dur, side="left")), 1)
        np.add.at(self.hsum, (b, hm), dur)
        ok_ops = keep[sim["op_req"]]
        ob = self._bin((sim["arrival"] + sim["reg_ns"])[sim["op_req"][ok_ops]])
        act = sim["op_action"][ok_ops]
        os_ = sim["op_s"][ok_ops]
        np.add.at(self.st, (ob, act, np.searchsorted(STORAGE_LE, os_, side="left")), 1)
        np.add.at(self.ssum, (ob, act), os_)

    def write(self, out: Path, instance: str, starts: list[int], gaps: np.ndarray, rss: Callable[[int], float],
              concat: bool = False) -> list[str]:
        """One file per scrape; `starts` are process start times (ns): counters count from the last one; no scrape
        in `gaps` (process down or stalled). `concat`: one file `scrapes-<instance>.prom`, each scrape after a
        `# scrape at <UTC>` line, as a `while sleep 15; do echo "# scrape at …"; curl …; done` loop writes it."""
        out.mkdir(parents=True, exist_ok=True)
        joined = open(out / f"scrapes-{instance}.prom", "w") if concat else None
        cum = [np.cumsum(a, axis=0) for a in (self.req, self.hist, self.hsum, self.st, self.ssum)]
        names = []
        offset = int(0.21 * NS)
        for k in range(1, self.nbins):
            t = self.win.t0 + k * self.step + offset
            if t >= self.win.t1:
                break
            if within_any(np.array([t]), gaps)[0]:
                continue
            start = max(s for s in starts if s <= t)
            base = int((start - self.win.t0) // self.step) if start > self.win.t0 else 0
            sl = [c[k - 1] - (c[base - 1] if base > 0 else 0) for c in cum]
            stamp = dt.datetime.fromtimestamp(t // NS, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            name = f"metrics-{instance}-{stamp}.prom"
            if joined is not None:
                joined.write(f"# scrape at {dt.datetime.fromtimestamp(t // NS, dt.UTC):%Y-%m-%dT%H:%M:%SZ}\n")
                joined.write(_exposition(sl, t, start, rss(t)))
            else:
                (out / name).write_text(_exposition(sl, t, start, rss(t)))
            names.append(name)
        if joined is not None:
            joined.close()
        return names


def _exposition(sl, t: int, start: int, rss: float) -> str:
    req, hist, hsum, st, ssum = sl
    up_s = (t - start) / NS
    total = int(req.sum())
    heap = 0.45 * rss
    lines = [
        "# HELP go_goroutines Number of goroutines that currently exist.", "# TYPE go_goroutines gauge",
        f"go_goroutines {38 + total % 7}",
        "# HELP go_info Information about the Go environment.", "# TYPE go_info gauge", 'go_info{version="go1.19.8"} 1',
        "# HELP go_memstats_alloc_bytes Number of bytes allocated and still in use.",
        "# TYPE go_memstats_alloc_bytes gauge", f"go_memstats_alloc_bytes {_num(heap)}",
        "# HELP go_memstats_heap_alloc_bytes Number of heap bytes allocated and still in use.",
        "# TYPE go_memstats_heap_alloc_bytes gauge", f"go_memstats_heap_alloc_bytes {_num(heap)}",
        "# HELP go_memstats_heap_inuse_bytes Number of heap bytes that are in use.",
        "# TYPE go_memstats_heap_inuse_bytes gauge", f"go_memstats_heap_inuse_bytes {_num(heap * 1.15)}",
        "# HELP go_memstats_sys_bytes Number of bytes obtained from system.",
        "# TYPE go_memstats_sys_bytes gauge", f"go_memstats_sys_bytes {_num(rss * 1.1)}",
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
        "# TYPE process_cpu_seconds_total counter", f"process_cpu_seconds_total {_num(round(up_s * 0.02 + total * 4e-4, 2))}",
        "# HELP process_open_fds Number of open file descriptors.", "# TYPE process_open_fds gauge",
        f"process_open_fds {24 + total % 11}",
        "# HELP process_resident_memory_bytes Resident memory size in bytes.",
        "# TYPE process_resident_memory_bytes gauge", f"process_resident_memory_bytes {_num(float(int(rss)))}",
        "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.",
        "# TYPE process_start_time_seconds gauge", f"process_start_time_seconds {_num(round(start / NS, 2))}",
        "# HELP registry_http_request_duration_seconds The HTTP request latencies in seconds.",
        "# TYPE registry_http_request_duration_seconds histogram",
    ]
    for j, (h, m) in enumerate(HM):
        n = int(hist[j].sum())
        if not n:
            continue
        acc = np.cumsum(hist[j])
        for i, le in enumerate(HTTP_LE):
            lines.append(f'registry_http_request_duration_seconds_bucket{{handler="{h}",method="{m}",le="{_le(le)}"}} {acc[i]}')
        lines.append(f'registry_http_request_duration_seconds_bucket{{handler="{h}",method="{m}",le="+Inf"}} {n}')
        lines.append(f'registry_http_request_duration_seconds_sum{{handler="{h}",method="{m}"}} {_num(hsum[j])}')
        lines.append(f'registry_http_request_duration_seconds_count{{handler="{h}",method="{m}"}} {n}')
    lines += ["# HELP registry_http_requests_total Total number of HTTP requests made.",
              "# TYPE registry_http_requests_total counter"]
    for ci, code in enumerate(CODES):
        for j, (h, m) in enumerate(HM):
            if req[j, ci]:
                lines.append(f'registry_http_requests_total{{code="{code}",handler="{h}",method="{m}"}} {req[j, ci]}')
    lines += ["# HELP registry_storage_action_seconds The number of seconds that the storage action takes",
              "# TYPE registry_storage_action_seconds histogram"]
    for a, action in enumerate(ACTIONS):
        n = int(st[a].sum())
        if not n:
            continue
        acc = np.cumsum(st[a])
        lab = f'action="{action}",driver="s3aws"'
        for i, le in enumerate(STORAGE_LE):
            lines.append(f'registry_storage_action_seconds_bucket{{{lab},le="{_le(le)}"}} {acc[i]}')
        lines.append(f'registry_storage_action_seconds_bucket{{{lab},le="+Inf"}} {n}')
        lines.append(f"registry_storage_action_seconds_sum{{{lab}}} {_num(ssum[a])}")
        lines.append(f"registry_storage_action_seconds_count{{{lab}}} {n}")
    return "\n".join(lines) + "\n"


__all__ = ["HANDLERS", "MetricsAccumulator"]
