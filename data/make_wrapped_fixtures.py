"""Rebuild data/fixtures/wrapped from the real registry captures in data/fixtures/registry/real.

Run from data/fixtures/wrapped: `python ../../make_wrapped_fixtures.py`.
"""

import datetime as dt
import gzip
import json
import re

import zstandard

TEXT = open("../registry/real/distribution-2.8.2-text.log").read().splitlines()[:12]
JSON = open("../registry/real/distribution-2.8.2-json.log").read().splitlines()[:12]


def when(line: str) -> dt.datetime:
    m = re.search(r'"?time"?[=:]"([^"]+)"', line)
    if m:
        return dt.datetime.fromisoformat(m.group(1)[:26].rstrip("Z") + "+00:00")
    m = re.search(r"\[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d) ", line)
    return dt.datetime.strptime(m.group(1), "%d/%b/%Y:%H:%M:%S").replace(tzinfo=dt.timezone.utc)


def stream(line: str) -> str:
    return "stdout" if re.match(r"^\d+\.\d+\.\d+\.\d+ - ", line) else "stderr"


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


# docker json-file: one entry per line; a long line is split into entries without the trailing newline
out = []
longest = max(range(len(TEXT)), key=lambda i: len(TEXT[i]))
for i, ln in enumerate(TEXT):
    t, st = iso(when(ln)), stream(ln)
    pieces = [ln[k:k + 300] for k in range(0, len(ln), 300)] if i == longest else [ln]
    for j, p in enumerate(pieces):
        out.append(json.dumps({"log": p + ("\n" if j == len(pieces) - 1 else ""), "stream": st, "time": t},
                              separators=(",", ":")))
open("docker-json-registry-text.log", "w").write("\n".join(out) + "\n")

# CRI (containerd / CRI-O) carrying the JSON log; one line split into P pieces
out = []
for i, ln in enumerate(JSON):
    t, st = iso(when(ln)), stream(ln)
    pieces = [ln[k:k + 400] for k in range(0, len(ln), 400)] if i in (4, 10) else [ln]
    for j, p in enumerate(pieces):
        out.append(f"{t} {st} {'F' if j == len(pieces) - 1 else 'P'} {p}")
open("cri-registry-json.log", "w").write("\n".join(out) + "\n")

# journalctl -o json (registry run as a systemd unit)
out = []
for k, ln in enumerate(TEXT):
    us = int(when(ln).timestamp() * 1e6)
    out.append(json.dumps({"__CURSOR": f"s=5f1c;i={k + 4000:x};b=9d2e;m={k:x};t={us:x};x=1", "__REALTIME_TIMESTAMP": str(us),
                           "__MONOTONIC_TIMESTAMP": str(81234567 + k), "_BOOT_ID": "9d2e6a0c4b1f4e7a8c3d2b1a0f9e8d7c",
                           "PRIORITY": "6", "_TRANSPORT": "stdout", "_HOSTNAME": "node1", "SYSLOG_IDENTIFIER": "docker-registry",
                           "_COMM": "docker-registry", "_PID": "1203", "MESSAGE": ln}, separators=(",", ":")))
open("journald-json-registry-text.log", "w").write("\n".join(out) + "\n")

# journalctl -o cat: the lines themselves
open("journald-cat-registry-text.log", "w").write("\n".join(TEXT) + "\n")

# syslog: RFC 5424 and ISO (rsyslog RSYSLOG_FileFormat)
r5424 = [f"<30>1 {when(ln).strftime('%Y-%m-%dT%H:%M:%S.%fZ')} node1 docker-registry 1203 - - {ln}" for ln in TEXT]
open("syslog5424-registry-text.log", "w").write("\n".join(r5424) + "\n")
riso = [f"{when(ln).strftime('%Y-%m-%dT%H:%M:%S.%f+00:00')} node1 docker-registry[1203]: {ln}" for ln in JSON]
open("syslog-iso-registry-json.log", "w").write("\n".join(riso) + "\n")

# compressed: gzip, zstd, and a gzip cut short
data = ("\n".join(JSON) + "\n").encode()
open("registry-json.log.gz", "wb").write(gzip.compress(data, mtime=0))
open("registry-text.log.zst", "wb").write(zstandard.ZstdCompressor().compress(("\n".join(TEXT) + "\n").encode()))
big = gzip.compress(data * 4, mtime=0)
open("registry-json-truncated.log.gz", "wb").write(big[: len(big) * 2 // 3])
open("empty.log", "w").write("")
open("blank-lines.log", "w").write("\n   \n\t\n\n")
