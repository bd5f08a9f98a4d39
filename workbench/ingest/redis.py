"""Redis captures: `redis-cli INFO` snapshots, `MONITOR` streams and `SLOWLOG GET` output.

INFO fields become `redis_<field>` samples (keyspace hits/misses, evictions, clients, memory, per-db keys).
MONITOR lines become `redis_commands{cmd, prefix}` per second, plus `redis_cache_fills{prefix}`: a read of a
key followed within a few seconds by a write of the same key, which is how the registry's blob-descriptor
cache fills after a miss (INFO counts a SISMEMBER on an existing set as a hit, so INFO alone undercounts).
SLOWLOG entries (redis-cli's plain and terminal forms) become `redis_slowlog` events with their duration.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter, defaultdict

from .base import Context
from .capture import Capture, Ledger, snapshots

READS = {"get", "hget", "hmget", "hgetall", "sismember", "smembers", "exists", "mget", "hexists", "type"}
WRITES = {"set", "hset", "hmset", "sadd", "setex", "expire", "mset", "hsetnx"}
FILL_WINDOW_S = 5.0


def key_prefix(key: str) -> str:
    """repository::library/app::blobs -> repository::*::blobs; blobs::sha256:… -> blobs::*."""
    parts = key.split("::")
    if len(parts) >= 3:
        return parts[0] + "::*::" + parts[-1]
    if len(parts) == 2:
        return parts[0] + "::*"
    return re.sub(r"[0-9a-f]{16,}|\d+", "*", key)


class RedisInfo(Capture):
    name = "redis-info"
    family = "cache"
    description = "`redis-cli INFO` output (# Section headers, field:value lines), one or more snapshots"
    example = "keyspace_misses:3"
    _kv = re.compile(r"^([a-z_0-9]+):(.*)$")

    def looks_like(self, lines: list[str]) -> float:
        heads = sum(1 for ln in lines[:300] if ln in ("# Server", "# Clients", "# Memory", "# Stats", "# Keyspace"))
        return 0.95 if heads >= 2 else 0.0

    def parse_lines(self, ctx: Context, ledger: Ledger) -> None:
        for ts, basis, lines in snapshots(ctx, ledger):
            for line_no, text in lines:
                t = text.strip()
                if not t:
                    continue
                if t.startswith("#"):
                    ledger.skip(line_no, "section")
                    continue
                m = self._kv.match(t)
                if not m:
                    ledger.reject(line_no, "not a field:value INFO line")
                    continue
                k, v = m.groups()
                if re.match(r"^db\d+$", k):  # db0:keys=1,expires=0,avg_ttl=0
                    for kk, vv in re.findall(r"(\w+)=(\d+)", v):
                        ledger.metric(line_no, ts, f"redis_db_{kk}", float(vv), {"db": k}, basis=basis, job="redis")
                    continue
                try:
                    value = float(v)
                except ValueError:
                    ledger.skip(line_no, "text_field")  # versions, paths, modes: not a series
                    continue
                ledger.metric(line_no, ts, f"redis_{k}", value, basis=basis, job="redis")


class RedisMonitor(Capture):
    name = "redis-monitor"
    family = "cache"
    description = "`redis-cli MONITOR` stream: commands per second by key prefix, and cache fills after misses"
    example = '1795870859.888643 [0 127.0.0.1:47316] "hget" "blobs::sha256:bbbb" "mediatype"'
    _line = re.compile(r'^(\d{9,10}\.\d+) \[(\d+) ([^\]]*)\] "([^"]*)"(?: "((?:[^"\\]|\\.)*)")?')

    def looks_like(self, lines: list[str]) -> float:
        good = sum(1 for ln in lines if self._line.match(ln))
        return good / len(lines) if lines else 0.0

    def parse_lines(self, ctx: Context, ledger: Ledger) -> None:
        per_sec: Counter = Counter()
        fills: Counter = Counter()
        reads: Counter = Counter()
        last_read: dict[str, float] = {}
        first_line: dict[int, int] = {}
        for line_no, text in ledger.lines:
            if not text.strip():
                continue
            if text.strip() == "OK":
                ledger.skip(line_no, "monitor_ok")
                continue
            m = self._line.match(text)
            if not m:
                ledger.reject(line_no, "not a MONITOR line")
                continue
            t, _db, _client, cmd, key = m.groups()
            ts = float(t)
            sec = int(ts)
            cmd = cmd.lower()
            prefix = key_prefix(key) if key is not None else "-"
            per_sec[(sec, cmd, prefix)] += 1
            first_line.setdefault(sec, line_no)
            ledger.used(line_no)
            if key is None:
                continue
            if cmd in READS:
                reads[(sec, prefix)] += 1
                last_read[key] = ts
            elif cmd in WRITES and key in last_read and ts - last_read[key] <= FILL_WINDOW_S:
                fills[(sec, prefix)] += 1
                del last_read[key]
        for (sec, cmd, prefix), n in sorted(per_sec.items()):
            when = dt.datetime.fromtimestamp(sec, dt.timezone.utc)
            ledger.metric(first_line[sec], when, "redis_commands", n, {"cmd": cmd, "prefix": prefix}, job="redis")
        for (sec, prefix), n in sorted(reads.items()):
            when = dt.datetime.fromtimestamp(sec, dt.timezone.utc)
            ledger.metric(first_line[sec], when, "redis_cache_reads", n, {"prefix": prefix}, job="redis")
        for (sec, prefix), n in sorted(fills.items()):
            when = dt.datetime.fromtimestamp(sec, dt.timezone.utc)
            ledger.metric(first_line[sec], when, "redis_cache_fills", n, {"prefix": prefix}, job="redis")


class RedisSlowlog(Capture):
    name = "redis-slowlog"
    family = "cache"
    description = "`redis-cli SLOWLOG GET [n]` (plain output or the terminal's nested `1) 1) (integer)` form)"
    example = "1) 1) (integer) 1\n   2) (integer) 1795870859\n   3) (integer) 7\n   4) 1) \"get\" …"
    _tty = re.compile(r"^\s*(?:\d+\)\s+)+(?:\(integer\) (-?\d+)|\"((?:[^\"\\]|\\.)*)\"|(\(empty.*\)))\s*$")
    _addr = re.compile(r"^(?:\d+\.\d+\.\d+\.\d+|\[[0-9a-f:]+\]|[0-9a-f:]+):\d+$")

    def looks_like(self, lines: list[str]) -> float:
        if lines and self._tty.match(lines[0]) and lines[0].lstrip().startswith("1) 1)"):
            return 0.9
        # plain: id, unix time, microseconds, then the command
        if len(lines) >= 4 and all(x.strip().isdigit() for x in lines[:3]) and re.match(r"^1\d{9}$", lines[1].strip()):
            return 0.8
        return 0.0

    def parse_lines(self, ctx: Context, ledger: Ledger) -> None:
        items: list[tuple[int, str, int]] = []  # (line_no, value, depth)
        for line_no, text in ledger.lines:
            m = self._tty.match(text)
            if m:
                depth = len(re.findall(r"\d+\)", text.split("(integer)")[0].split('"')[0]))
                items.append((line_no, m.group(1) if m.group(1) is not None else (m.group(2) or ""), depth))
            else:
                items.append((line_no, text.strip(), 0))
        i = 0
        n = len(items)
        while i < n:
            line_no, v, _ = items[i]
            if not v:
                i += 1
                continue
            if i + 2 < n and v.isdigit() and re.match(r"^1\d{9}$", items[i + 1][1]) and items[i + 2][1].isdigit():
                entry_id, when, micros = v, int(items[i + 1][1]), int(items[i + 2][1])
                j = i + 3
                args = []
                while j < n and not self._addr.match(items[j][1]):
                    if j + 2 < n and items[j][1].isdigit() and re.match(r"^1\d{9}$", items[j + 1][1]):
                        break  # redis < 4 entries have no client fields
                    args.append(items[j][1])
                    j += 1
                end = j
                if j < n and self._addr.match(items[j][1]):
                    end = j + 1
                    if end < n and not (items[end][1].isdigit() and end + 1 < n and re.match(r"^1\d{9}$", items[end + 1][1])):
                        end += 1  # client name (often empty)
                for k in range(i, min(end, n)):
                    ledger.used(items[k][0])
                ledger.event(line_no, dt.datetime.fromtimestamp(when, dt.timezone.utc), "redis_slowlog",
                             source="redis", subject=" ".join(args[:2])[:200], value=micros / 1e6,
                             detail=f"slowlog id {entry_id}: {' '.join(args)[:500]}")
                i = end
                continue
            ledger.reject(line_no, "not part of a SLOWLOG entry")
            i += 1


FORMATS = [RedisInfo(), RedisMonitor(), RedisSlowlog()]
