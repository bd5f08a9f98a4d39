"""Socket and TCP counters: `ss -s`, `ss -tan` / `netstat -tan` state counts, `netstat -s` and `nstat` counters.

Each snapshot (split at timestamp lines, see capture.py) becomes samples: `tcp_sockets{state, port}` per local
port for the listening side and totals per state, `ss_summary_*`, and `netstat_<Section>_<counter>` /
`nstat_<Counter>` counters (listen overflows, dropped SYNs, SYN cookies sent …). A full accept queue shows as
ListenOverflows / ListenDrops and SYN cookies, rarely as SYN-RECV.
"""

from __future__ import annotations

import re
from collections import Counter

from .base import Context
from .capture import Capture, Ledger, snapshots, unstamped

_STATES = {
    "ESTAB": "ESTABLISHED", "ESTABLISHED": "ESTABLISHED", "SYN-SENT": "SYN-SENT", "SYN_SENT": "SYN-SENT",
    "SYN-RECV": "SYN-RECV", "SYN_RECV": "SYN-RECV", "FIN-WAIT-1": "FIN-WAIT-1", "FIN_WAIT1": "FIN-WAIT-1",
    "FIN-WAIT-2": "FIN-WAIT-2", "FIN_WAIT2": "FIN-WAIT-2", "TIME-WAIT": "TIME-WAIT", "TIME_WAIT": "TIME-WAIT",
    "CLOSE": "CLOSE", "UNCONN": "CLOSE", "CLOSE-WAIT": "CLOSE-WAIT", "CLOSE_WAIT": "CLOSE-WAIT",
    "LAST-ACK": "LAST-ACK", "LAST_ACK": "LAST-ACK", "LISTEN": "LISTEN", "CLOSING": "CLOSING",
}


def _port(addr: str) -> str:
    return addr.rsplit(":", 1)[-1] if ":" in addr else ""


class SocketTable(Capture):
    name = "ss-tan"
    family = "host"
    description = "`ss -tan` or `netstat -tan` socket tables: counts per TCP state and local port, per snapshot"
    example = "ESTAB  0      0          127.0.0.1:5000      127.0.0.1:41234"
    _ss_head = re.compile(r"^(Netid\s+)?State\s+Recv-Q\s+Send-Q\s+Local Address:Port")
    _ns_head = re.compile(r"^Proto\s+Recv-Q\s+Send-Q\s+Local Address\s+Foreign Address\s+State")

    def looks_like(self, lines: list[str]) -> float:
        if any(self._ss_head.match(ln) or self._ns_head.match(ln) for ln in lines[:50]):
            return 0.9
        return 0.0

    def parse_lines(self, ctx: Context, ledger: Ledger) -> None:
        ports = {p.strip() for p in str(ctx.options.get("ports", "")).split(",") if p.strip()}
        for ts, basis, lines in snapshots(ctx, ledger):
            per_state: Counter = Counter()
            per_port: Counter = Counter()
            first_line = None
            listening: set[str] = set()
            rows = []
            for line_no, text in lines:
                if not text.strip():
                    continue
                if self._ss_head.match(text) or self._ns_head.match(text) or text.startswith("Active Internet"):
                    ledger.skip(line_no, "header")
                    continue
                parts = text.split()
                if parts and parts[0] in ("tcp", "tcp6", "udp", "udp6") and len(parts) >= 6:  # netstat -tan
                    state, local, peer = parts[5], parts[3], parts[4]
                elif parts and parts[0] in ("tcp", "udp") and len(parts) >= 6:  # ss -an with Netid
                    state, local, peer = parts[1], parts[4], parts[5]
                elif len(parts) >= 5:
                    state, local, peer = parts[0], parts[3], parts[4]
                else:
                    ledger.reject(line_no, "not a socket line")
                    continue
                st = _STATES.get(state.upper())
                if st is None:
                    ledger.reject(line_no, f"unknown TCP state {state!r}")
                    continue
                rows.append((line_no, st, local, peer))
                if st == "LISTEN":
                    listening.add(_port(local))
            for line_no, st, local, peer in rows:
                ledger.used(line_no)
                first_line = first_line or line_no
                per_state[st] += 1
                lp, pp = _port(local), _port(peer)
                # count per server port: the local port when we listen on it, else the peer's (client side)
                port = lp if lp in listening or lp in ports else (pp if pp in ports else lp)
                if st != "LISTEN" and (port in listening or port in ports):
                    per_port[(st, port)] += 1
            if first_line is None:
                continue
            for st, n in sorted(per_state.items()):
                ledger.metric(first_line, ts, "tcp_sockets", n, {"state": st}, basis=basis, job="ss")
            for (st, port), n in sorted(per_port.items()):
                ledger.metric(first_line, ts, "tcp_sockets_by_port", n, {"state": st, "port": port},
                              basis=basis, job="ss")


class SsSummary(Capture):
    name = "ss-summary"
    family = "host"
    description = "`ss -s` summaries: total sockets, TCP established/closed/orphaned/timewait, per transport"
    example = "TCP:   6 (estab 2, closed 0, orphaned 0, timewait 3)"
    _tcp = re.compile(r"^TCP:\s+(\d+)\s+\((.*)\)")

    def looks_like(self, lines: list[str]) -> float:
        return 0.9 if any(ln.startswith("Total:") for ln in lines[:5]) and any(self._tcp.match(ln) for ln in lines[:8]) else 0.0

    def parse_lines(self, ctx: Context, ledger: Ledger) -> None:
        for ts, basis, lines in snapshots(ctx, ledger):
            for line_no, text in lines:
                if not text.strip():
                    continue
                m = self._tcp.match(text)
                if text.startswith("Total:"):
                    nums = re.findall(r"\d+", text)
                    ledger.metric(line_no, ts, "ss_sockets_total", float(nums[0]), basis=basis, job="ss")
                elif m:
                    ledger.metric(line_no, ts, "ss_tcp_total", float(m.group(1)), basis=basis, job="ss")
                    for k, v in re.findall(r"([a-z]+) (\d+)", m.group(2)):
                        ledger.metric(line_no, ts, f"ss_tcp_{k}", float(v), basis=basis, job="ss")
                elif text.startswith("Transport"):
                    ledger.skip(line_no, "header")
                elif re.match(r"^[A-Z0-9]+\s+\d+\s+\d+\s+\d+\s*$", text):
                    name, total, ip4, ip6 = text.split()
                    ledger.metric(line_no, ts, "ss_transport_total", float(total), {"transport": name},
                                  basis=basis, job="ss")
                else:
                    ledger.reject(line_no, "not an ss -s line")


class NetstatCounters(Capture):
    name = "netstat-s"
    family = "host"
    description = "`netstat -s` protocol statistics (Tcp:, TcpExt: … sections) as counters per snapshot"
    example = "    1234 times the listen queue of a socket overflowed"
    _section = re.compile(r"^([A-Za-z0-9]+):\s*$")
    # the sentences that matter for accept-queue trouble, as netstat words them
    _known = [
        (re.compile(r"^(\d+) times the listen queue of a socket overflowed"), "ListenOverflows"),
        (re.compile(r"^(\d+) SYNs to LISTEN sockets (?:dropped|ignored)"), "ListenDrops"),
        (re.compile(r"^(\d+) SYN cookies sent"), "SyncookiesSent"),
        (re.compile(r"^(\d+) SYN cookies received"), "SyncookiesRecv"),
        (re.compile(r"^(\d+) invalid SYN cookies received"), "SyncookiesFailed"),
        (re.compile(r"^(\d+) segments retransmitted"), "RetransSegs"),
        (re.compile(r"^(\d+) resets sent"), "OutRsts"),
        (re.compile(r"^(\d+) connection resets received"), "EstabResets"),
        (re.compile(r"^(\d+) failed connection attempts"), "AttemptFails"),
        (re.compile(r"^(\d+) active connection openings"), "ActiveOpens"),
        (re.compile(r"^(\d+) passive connection openings"), "PassiveOpens"),
    ]

    def looks_like(self, lines: list[str]) -> float:
        secs = sum(1 for ln in lines[:200] if ln in ("Ip:", "Tcp:", "TcpExt:", "Udp:", "IpExt:", "Icmp:"))
        return 0.9 if secs >= 2 else 0.0

    def parse_lines(self, ctx: Context, ledger: Ledger) -> None:
        for ts, basis, lines in snapshots(ctx, ledger):
            section = ""
            for line_no, text in lines:
                if not text.strip():
                    continue
                m = self._section.match(text)
                if m:
                    section = m.group(1)
                    ledger.skip(line_no, "section")
                    continue
                t = text.strip()
                name = None
                value = None
                for rx, counter in self._known:
                    mm = rx.match(t)
                    if mm:
                        name, value = counter, float(mm.group(1))
                        break
                if name is None:
                    mm = re.match(r"^([A-Za-z][A-Za-z0-9]*):\s+(\d+)$", t)  # "OutTransmits: 19109"
                    if mm:
                        name, value = mm.group(1), float(mm.group(2))
                if name is None:
                    mm = re.match(r"^(\d+)\s+(.+)$", t) or re.match(r"^(.+?):?\s+(\d+)$", t)
                    if mm:
                        a, b = mm.groups()
                        num, words = (a, b) if a.isdigit() else (b, a)
                        name = re.sub(r"[^A-Za-z0-9]+", "_", words).strip("_")
                        value = float(num)
                if name is None:
                    ledger.skip(line_no, "heading")  # "ICMP input histogram:" and similar
                    continue
                ledger.metric(line_no, ts, f"netstat_{section}_{name}", value, basis=basis, job="netstat")


class Nstat(Capture):
    name = "nstat"
    family = "host"
    description = "`nstat [-a]` kernel SNMP counters (#kernel, then `Name value rate` lines)"
    example = "TcpExtListenOverflows           12                 0.0"
    _line = re.compile(r"^([A-Za-z][A-Za-z0-9]*)\s+(\d+)\s+([\d.]+)\s*$")

    def looks_like(self, lines: list[str]) -> float:
        lines = unstamped(lines)
        if lines and lines[0].startswith("#kernel"):
            return 0.95
        good = sum(1 for ln in lines if self._line.match(ln))
        return 0.6 * good / len(lines) if lines else 0.0

    def parse_lines(self, ctx: Context, ledger: Ledger) -> None:
        for ts, basis, lines in snapshots(ctx, ledger):
            for line_no, text in lines:
                if not text.strip():
                    continue
                if text.startswith("#"):
                    ledger.skip(line_no, "header")
                    continue
                m = self._line.match(text)
                if not m:
                    ledger.reject(line_no, "not a `Name value rate` nstat line")
                    continue
                ledger.metric(line_no, ts, f"nstat_{m.group(1)}", float(m.group(2)), basis=basis, job="nstat")


FORMATS = [SocketTable(), SsSummary(), NetstatCounters(), Nstat()]
