"""TLS and client timing captures: `curl -w` timing lines and `openssl s_client [-reconnect]` transcripts.

curl: `time_connect=… time_appconnect=…` key=value lines or `-w '%{json}'` objects become `curl_<var>_seconds`
samples (time_appconnect - time_connect is the TLS handshake; it is also written as `tls_handshake_seconds`).
s_client: each connection's New/Reused session, protocol, cipher and handshake bytes become samples
(`tls_session_reused`, `tls_handshake_bytes_read`/`written`); verify errors become events.
"""

from __future__ import annotations

import json
import re

from .base import Context
from .capture import Capture, Ledger, parse_stamp, snapshots, unstamped

_KV = re.compile(r"(\w+)=(\S+)")
_CURL_VARS = ("time_namelookup", "time_connect", "time_appconnect", "time_pretransfer", "time_redirect",
              "time_starttransfer", "time_total")


class CurlTiming(Capture):
    name = "curl-timing"
    family = "tls"
    description = "`curl -w` timings: key=value lines (time_connect=… time_appconnect=…) or `-w '%{json}'`"
    example = "time_namelookup=0.000106 time_connect=0.000220 time_appconnect=0.003202 time_starttransfer=0.003380 time_total=0.003423 http_code=200"

    def looks_like(self, lines: list[str]) -> float:
        lines = unstamped(lines)
        good = sum(1 for ln in lines if "time_connect" in ln and "time_total" in ln)
        return good / len(lines) * 0.95 if lines else 0.0

    def parse_lines(self, ctx: Context, ledger: Ledger) -> None:
        for ts, basis, lines in snapshots(ctx, ledger):
            for line_no, text in lines:
                t = text.strip()
                if not t:
                    continue
                vals: dict[str, str] = {}
                if t.startswith("{"):
                    try:
                        obj = json.loads(t)
                        vals = {k: str(v) for k, v in obj.items() if isinstance(v, (int, float, str))}
                    except ValueError:
                        ledger.reject(line_no, "curl %{json} line is not valid JSON")
                        continue
                else:
                    vals = dict(_KV.findall(t))
                if "time_total" not in vals:
                    ledger.reject(line_no, "no time_total in this curl -w line")
                    continue
                when = ts
                for key in ("ts", "time", "date", "timestamp"):
                    if key in vals and parse_stamp(vals[key], ctx.tz):
                        when, basis = parse_stamp(vals[key], ctx.tz), "capture"
                labels = {k: vals[k] for k in ("url", "url_effective", "remote_ip", "http_code", "http_version")
                          if k in vals}
                try:
                    nums = {k: float(vals[k]) for k in _CURL_VARS if k in vals}
                except ValueError:
                    ledger.reject(line_no, "a curl time is not a number")
                    continue
                for k, v in nums.items():
                    ledger.metric(line_no, when, f"curl_{k}_seconds", v, labels, basis=basis, job="curl")
                if "time_appconnect" in nums and "time_connect" in nums and nums["time_appconnect"] > 0:
                    ledger.metric(line_no, when, "tls_handshake_seconds",
                                  nums["time_appconnect"] - nums["time_connect"], labels, basis=basis, job="curl")


class SClient(Capture):
    name = "openssl-s_client"
    family = "tls"
    description = "`openssl s_client -connect HOST:PORT [-reconnect]` transcripts: sessions, resumption, handshake bytes"
    example = "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384"
    _conn = re.compile(r"^CONNECTED\(")
    _newre = re.compile(r"^(New|Reused), (\S+), Cipher is (\S+)")
    _bytes = re.compile(r"^SSL handshake has read (\d+) bytes and written (\d+) bytes")
    _verify = re.compile(r"^\s*Verify return code: (\d+) \((.*)\)")
    _real = re.compile(r"^real\s+(?:(\d+)m)?([\d.]+)s$")

    def looks_like(self, lines: list[str]) -> float:
        return 0.9 if any(self._conn.match(ln) for ln in lines[:20]) and any("Cipher" in ln for ln in lines) else 0.0

    def parse_lines(self, ctx: Context, ledger: Ledger) -> None:
        for ts, basis, lines in snapshots(ctx, ledger):
            n_conn = 0
            for line_no, text in lines:
                if not text.strip():
                    continue
                if self._conn.match(text):
                    n_conn += 1
                    ledger.metric(line_no, ts, "tls_connections", 1, {"connection": str(n_conn)}, basis=basis,
                                  job="s_client")
                    continue
                m = self._newre.match(text)
                if m:
                    ledger.metric(line_no, ts, "tls_session_reused", 1.0 if m.group(1) == "Reused" else 0.0,
                                  {"protocol": m.group(2), "cipher": m.group(3), "connection": str(n_conn)},
                                  basis=basis, job="s_client")
                    continue
                m = self._bytes.match(text)
                if m:
                    lab = {"connection": str(n_conn)}
                    ledger.metric(line_no, ts, "tls_handshake_bytes_read", float(m.group(1)), lab, basis=basis,
                                  job="s_client")
                    ledger.metric(line_no, ts, "tls_handshake_bytes_written", float(m.group(2)), lab, basis=basis,
                                  job="s_client")
                    continue
                m = self._verify.match(text)
                if m:
                    if m.group(1) != "0":
                        ledger.event(line_no, ts, "tls_verify_error", source="s_client", subject=m.group(2),
                                     value=float(m.group(1)), basis=basis)
                    else:
                        ledger.skip(line_no, "transcript")
                    continue
                m = self._real.match(text.strip())
                if m:  # `time openssl s_client …`
                    secs = float(m.group(1) or 0) * 60 + float(m.group(2))
                    ledger.metric(line_no, ts, "tls_s_client_wall_seconds", secs, basis=basis, job="s_client")
                    continue
                ledger.skip(line_no, "transcript")  # certificates, session details, banners


FORMATS = [CurlTiming(), SClient()]
