"""Host captures over the hand-made hour (handmade.T0, incident minutes 25–35), written the way the real tools
write them when an SRE loops them on the registry's machines:

- `iostat -x -t 60` (sysstat 12.6, the columns and `11/23/26 06:00:00` stamps it prints here; the first
  report is the average since boot);
- `while sleep 30; do date -Is; curl -sk -o /dev/null -w '…' https://…; done` (curl 7.88 key=value line);
- `while sleep 60; do date -Is; ss -tan; done` and `…; nstat -a; …` (iproute2 6.1);
- `while sleep 60; do date -Is; redis-cli INFO; done` (redis 7.0, its CRLF lines) and `redis-cli MONITOR`.

Each function takes what changes in the incident, so a test can make the host busy, or busy all hour
(no change), or quiet. The shapes are copied from the captures of tests/ingest/test_host_captures.py and
data/fixtures/host/.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

from .handmade import INC, T0

FIXTURES = Path(__file__).resolve().parents[2] / "data" / "fixtures" / "host"
IOSTAT_DEV = ("Device            r/s     rkB/s   rrqm/s  %rrqm r_await rareq-sz     w/s     wkB/s   wrqm/s  %wrqm "
              "w_await wareq-sz     d/s     dkB/s   drqm/s  %drqm d_await dareq-sz     f/s f_await  aqu-sz  %util")
CURL_W = ("time_namelookup={nl:.6f} time_connect={c:.6f} time_appconnect={a:.6f} time_pretransfer={pt:.6f} "
          "time_starttransfer={st:.6f} time_total={t:.6f} http_code=200")


def _at(minute: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=minute * 60)


def _inside(minute: float, busy: str) -> bool:
    """busy: "incident" (minutes 25–35), "always" or "never"."""
    return busy == "always" or (busy == "incident" and INC[0] <= minute < INC[1])


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def iostat(path: Path, busy: str = "incident", seed: int = 5) -> Path:
    rng = random.Random(seed)
    out = ["Linux 6.18.44-fc-v657 (registry-0) \t11/23/26 \t_x86_64_\t(2 CPU)", ""]
    for m in range(-1, 61):  # a report a minute; the one before 06:00 is the since-boot average
        hot = _inside(m - 0.5, busy)  # a report covers the minute before its stamp
        rs = rng.uniform(820, 930) if hot else rng.uniform(2, 6)
        r_await = rng.uniform(80, 110) if hot else rng.uniform(0.2, 0.6)
        aqu = rng.uniform(14, 23) if hot else rng.uniform(0.01, 0.1)
        util = rng.uniform(97, 99.9) if hot else rng.uniform(0.2, 4)
        iowait = rng.uniform(35, 45) if hot else rng.uniform(0.1, 0.8)
        out += [f"{_at(m):%m/%d/%y %H:%M:%S}", "avg-cpu:  %user   %nice %system %iowait  %steal   %idle",
                f"{3.1:15.2f}{0:8.2f}{2.2:8.2f}{iowait:8.2f}{0:8.2f}{94.7 - iowait:8.2f}", "", IOSTAT_DEV,
                f"vda{rs:15.2f}{rs * 128:10.2f}{0:9.2f}{0:7.2f}{r_await:8.2f}{128:9.2f}{2:8.2f}{30:10.2f}"
                f"{0:9.2f}{0:7.2f}{1.2:8.2f}{15:9.2f}{0:8.2f}{0:10.2f}{0:9.2f}{0:7.2f}{0:8.2f}{0:9.2f}"
                f"{0:8.2f}{0:8.2f}{aqu:8.2f}{util:7.2f}", "", ""]
    return _write(path, out)


def curl_timings(path: Path, busy: str = "incident", seed: int = 6) -> Path:
    """A probe every 30 s; in a pile-up the TLS handshake waits on the proxy (time_appconnect − time_connect)."""
    rng = random.Random(seed)
    out = []
    for k in range(120):
        m = k / 2
        nl = rng.uniform(0.00001, 0.0001)
        c = nl + rng.uniform(0.0001, 0.0003)
        a = c + (rng.uniform(0.8, 1.6) if _inside(m, busy) else rng.uniform(0.0025, 0.0035))
        pt = a + 0.0001
        st = pt + rng.uniform(0.004, 0.02)
        out += [_at(m).isoformat(timespec="seconds"), CURL_W.format(nl=nl, c=c, a=a, pt=pt, st=st, t=st + 0.00005)]
    return _write(path, out)


def ss_tan(path: Path, busy: str = "incident", seed: int = 7) -> Path:
    """`ss -tan` on the proxy (443) a minute apart: established clients, and half-open ones in a pile-up."""
    rng = random.Random(seed)
    out = []
    for m in range(61):
        out += [_at(m).isoformat(timespec="seconds"), "State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess",
                "LISTEN 0      511          0.0.0.0:443       0.0.0.0:*          ",
                "LISTEN 0      4096       127.0.0.1:5000      0.0.0.0:*          "]
        peers = rng.sample(range(2, 250), 40 if _inside(m, busy) else 6)
        for i, p in enumerate(peers):
            state = "SYN-RECV" if _inside(m, busy) and i < 30 else "ESTAB"
            out.append(f"{state:<6} 0      0           10.0.0.5:443    10.0.1.{p}:{40000 + 7 * p + m}       ")
        out.append(f"TIME-WAIT 0      0         127.0.0.1:5000    127.0.0.1:{50000 + m}       ")
    return _write(path, out)


def nstat(path: Path, busy: str = "incident", seed: int = 8) -> Path:
    """`nstat -a` a minute apart: listen overflows and drops grow while the accept queue is full. Like nstat,
    it leaves out the counters that are still 0."""
    rng = random.Random(seed)
    overflows, opens = 0, 120_000
    out = []
    for m in range(61):
        if _inside(m - 0.5, busy):
            overflows += rng.randint(150, 300)
        opens += rng.randint(1700, 1900)
        out += [_at(m).isoformat(timespec="seconds"), "#kernel"]
        for name, v in (("TcpActiveOpens", 309), ("TcpPassiveOpens", opens), ("TcpAttemptFails", 9),
                        ("TcpExtListenOverflows", overflows), ("TcpExtListenDrops", overflows),
                        ("TcpExtTW", 292 + 30 * m)):
            if v:
                out.append(f"{name:<32}{v:<19}0.0")
    return _write(path, out)


def redis_info(path: Path, busy: str = "incident", seed: int = 9) -> Path:
    """`redis-cli INFO` a minute apart (the fixture's real output, counters moved on): in a miss storm the
    keyspace misses climb."""
    rng = random.Random(seed)
    template = (FIXTURES / "info.txt").read_bytes().decode()
    hits, misses = 50_000, 1_000
    out = []
    for m in range(61):
        if _inside(m - 0.5, busy):
            hits, misses = hits + rng.randint(300, 400), misses + rng.randint(900, 1100)
        else:
            hits, misses = hits + rng.randint(1100, 1300), misses + rng.randint(20, 40)
        text = template
        for key, v in (("keyspace_hits", hits), ("keyspace_misses", misses),
                       ("server_time_usec", int(_at(m).timestamp() * 1e6)), ("uptime_in_seconds", 86_400 + 60 * m)):
            text = "\n".join(f"{key}:{v}\r" if ln.startswith(key + ":") else ln for ln in text.split("\n"))
        out.append(_at(m).isoformat(timespec="seconds") + "\n" + text)
    path.write_text("".join(out))
    return path


def redis_monitor(path: Path, busy: str = "incident", seed: int = 10) -> Path:
    """`redis-cli MONITOR` of the registry's blob-descriptor cache: a lookup every 2 s; a miss is followed by
    the registry filling the key."""
    rng = random.Random(seed)
    out = ["OK"]
    for k in range(1800):
        m = k / 30
        ts = _at(m).timestamp() + rng.uniform(0, 1.5)
        client = f"127.0.0.1:{47300 + k % 40}"
        digest = f"{rng.getrandbits(256):064x}"
        miss = rng.random() < (0.7 if _inside(m, busy) else 0.05)
        if k % 3:
            key, args = f"blobs::sha256:{digest}", '"mediatype"'
            out.append(f'{ts:.6f} [0 {client}] "hget" "{key}" {args}')
            if miss:
                out.append(f'{ts + 0.004:.6f} [0 {client}] "hset" "{key}" "mediatype" "application/vnd.oci.image.layer.v1.tar+gzip"')
        else:
            key = f"repository::team{k % 4}/app::blobs"
            out.append(f'{ts:.6f} [0 {client}] "sismember" "{key}" "sha256:{digest}"')
            if miss:
                out.append(f'{ts + 0.003:.6f} [0 {client}] "sadd" "{key}" "sha256:{digest}"')
    return _write(path, out)
