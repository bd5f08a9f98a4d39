"""The evidence around the requests: PostgreSQL logs and lock snapshots, GC output, kernel OOM lines and the
registry's own start-up lines. Small files, written in Python from the scenario's windows.

Shapes as PostgreSQL 15 writes them with `log_line_prefix = '%m [%p] %q%u@%d '`, `log_lock_waits = on`,
`deadlock_timeout = 1s` and `log_timezone = 'CET'` (captured from a real server on loopback); snapshots as
`psql --csv` prints the pg_locks ⋈ pg_stat_activity query in a CET session (booleans t/f, arrays {…}).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zoneinfo
from pathlib import Path

import numpy as np

from .model import NS, Catalogue
from .render import go_quote, json_str, logrus_value
from .scenario import Scenario

CET = zoneinfo.ZoneInfo("CET")
UTC = dt.UTC
DB_OID, MANIFESTS_OID, BLOBS_OID = 16384, 16385, 16391
DB_USER = "registry@registry"
READ_SQL = "SELECT id, media_type, digest, payload FROM manifests WHERE repository_id = $1 AND digest = $2"
WRITE_SQL = "UPDATE manifests SET last_pulled_at = now() WHERE id = $1"
GC_SQL = "LOCK TABLE manifests IN ACCESS EXCLUSIVE MODE"
GC_IDLE_SQL = "SELECT digest FROM blobs WHERE id > $1 ORDER BY id LIMIT 1000"


def _utc(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns // NS, UTC).replace(microsecond=(ns % NS) // 1000)


def pg_prefix(ns: int, pid: int, user: bool = True) -> str:
    t = _utc(ns).astimezone(CET)
    return f"{t.strftime('%Y-%m-%d %H:%M:%S')}.{t.microsecond // 1000:03d} {t.tzname()} [{pid}] " + \
        (f"{DB_USER} " if user else "")


def _char(sql: str) -> int:
    return sql.index("manifests") + 1


def lock_waits(sc: Scenario, holds: np.ndarray, rng: np.random.Generator) -> list[dict]:
    """Backends of the registry's pool that wait for each GC lock hold (only waits past 1 s are logged)."""
    gc = sc.gc
    if gc is None:
        return []
    pool = [int(p) for p in 20_000 + np.sort(rng.choice(9_000, gc.pool_pids, replace=False))]
    waits = []
    for h0, h1 in holds:
        span = (h1 - h0) / NS
        if span <= 1.2:
            continue
        k = min(len(pool), max(1, rng.poisson(span * 0.8)))
        starts = np.sort(rng.uniform(h0, h1 - 1.05 * NS, k).astype(np.int64))
        pids = rng.choice(pool, k, replace=False)
        for s, p in zip(starts, pids, strict=True):
            write = rng.random() < 0.25
            waits.append({"pid": int(p), "start": int(s), "end": int(h1) + int(rng.integers(50_000, 900_000)),
                          "mode": "RowExclusiveLock" if write else "AccessShareLock",
                          "sql": WRITE_SQL if write else READ_SQL, "hold": (int(h0), int(h1))})
    return waits


def postgres_log(path: Path, sc: Scenario, t0: int, t1: int, waits: list[dict]) -> int:
    """The server's stderr log: checkpoints every 5 min and the lock waits. Returns lines written."""
    recs: list[tuple[int, int, str]] = []
    ck = 0
    t = t0 - t0 % (300 * NS) + 300 * NS
    while t < t1:
        pre = pg_prefix(t, 58, user=False)
        end = t + int((2.5 + (ck % 7) * 0.3) * NS)
        bufs = 120 + (ck * 37) % 900
        recs.append((t, 0, pre + "LOG:  checkpoint starting: time"))
        recs.append((end, 0, pg_prefix(end, 58, user=False)
                     + f"LOG:  checkpoint complete: wrote {bufs} buffers ({bufs / 163.84:.1f}%); 0 WAL file(s) added, "
                     f"0 removed, 1 recycled; write={(end - t) / NS - 0.1:.3f} s, sync=0.004 s, "
                     f"total={(end - t) / NS:.3f} s; sync files=31, longest=0.002 s, average=0.001 s; "
                     f"distance={bufs * 8} kB, estimate={bufs * 9} kB"))
        t += 300 * NS
        ck += 1
    for w in waits:
        queue = ", ".join(str(o["pid"]) for o in waits if o["hold"] == w["hold"] and o["start"] <= w["start"] + NS)
        logged = w["start"] + NS + int((w["pid"] % 997) * 1000)
        pre = pg_prefix(logged, w["pid"])
        char = _char(w["sql"])
        holder = sc.gc.holder_pid
        recs.append((logged, 1, pre + f"LOG:  process {w['pid']} still waiting for {w['mode']} on relation "
                     f"{MANIFESTS_OID} of database {DB_OID} after {(logged - w['start']) / 1e6:.3f} ms at "
                     f"character {char}"))
        recs.append((logged, 2, pre + f"DETAIL:  Process holding the lock: {holder}. Wait queue: {queue}."))
        recs.append((logged, 3, pre + f"STATEMENT:  {w['sql']}"))
        pre = pg_prefix(w["end"], w["pid"])
        recs.append((w["end"], 1, pre + f"LOG:  process {w['pid']} acquired {w['mode']} on relation {MANIFESTS_OID} "
                     f"of database {DB_OID} after {(w['end'] - w['start']) / 1e6:.3f} ms at character {char}"))
        recs.append((w["end"], 2, pre + f"STATEMENT:  {w['sql']}"))
    recs.sort(key=lambda r: (r[0], r[1]))
    path.write_text("".join(r[2] + "\n" for r in recs))
    return len(recs)


def _psql_ts(ns: int) -> str:
    t = _utc(ns).astimezone(CET)
    off = int(t.utcoffset().total_seconds() // 3600)
    return f"{t.strftime('%Y-%m-%d %H:%M:%S')}.{t.microsecond:06d}{off:+03d}"


def lock_snapshots(path: Path, sc: Scenario, holds: np.ndarray, waits: list[dict], every_s: int = 30) -> list[str]:
    """pg_locks ⋈ pg_stat_activity every `every_s` from 2 min before the GC to 2 min after, `psql --csv`."""
    gc = sc.gc
    g0 = int((sc.at(gc.at_min)).timestamp() * NS)
    g1 = int((sc.at(gc.at_min + gc.minutes)).timestamp() * NS)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["snapshot_ts", "pid", "locktype", "mode", "granted", "relation", "blocking_pids", "state",
                "wait_event_type", "wait_event", "xact_start", "query_start", "query"])
    times = []
    t = g0 - 120 * NS + 7_300_000
    while t < g1 + 120 * NS:
        snap = _psql_ts(t)
        times.append(_utc(t).isoformat())
        rows = []
        if g0 <= t < g1:
            i = np.searchsorted(holds[:, 0], t, side="right") - 1
            holding = i >= 0 and t < holds[i, 1]
            xs = _psql_ts(g0)
            if holding:
                qs = _psql_ts(int(holds[i, 0]))
                act = ["active", "", "", xs, qs, GC_SQL]
                rows += [[snap, gc.holder_pid, "relation", "AccessExclusiveLock", "t", "manifests", "{}", *act],
                         [snap, gc.holder_pid, "virtualxid", "ExclusiveLock", "t", "", "{}", *act],
                         [snap, gc.holder_pid, "transactionid", "ExclusiveLock", "t", "", "{}", *act]]
                for wt in sorted((x for x in waits if x["start"] <= t < x["end"]), key=lambda x: x["pid"]):
                    act = ["active", "Lock", "relation", _psql_ts(wt["start"]), _psql_ts(wt["start"]), wt["sql"]]
                    rows += [[snap, wt["pid"], "relation", wt["mode"], "f", "manifests", f"{{{gc.holder_pid}}}", *act],
                             [snap, wt["pid"], "virtualxid", "ExclusiveLock", "t", "", f"{{{gc.holder_pid}}}", *act]]
            else:
                act = ["active", "IO", "DataFileRead", xs, _psql_ts(t - 40_000_000), GC_IDLE_SQL]
                rows += [[snap, gc.holder_pid, "relation", "AccessShareLock", "t", "blobs", "{}", *act],
                         [snap, gc.holder_pid, "virtualxid", "ExclusiveLock", "t", "", "{}", *act]]
        rows.sort(key=lambda r: (r[1], r[2], r[3]))
        w.writerows(rows)
        t += every_s * NS
    path.write_text(buf.getvalue())
    return times


def gc_output(path: Path, sc: Scenario, cat: Catalogue, rng: np.random.Generator, fmt: str) -> dict:
    """`registry garbage-collect --delete-untagged config.yml`: marking on stdout (no times), deletions as logrus
    lines spread over the run's sweep phase."""
    gc = sc.gc
    g0 = int(sc.at(gc.at_min).timestamp() * NS)
    g1 = int(sc.at(gc.at_min + gc.minutes).timestamp() * NS)
    lines = []
    marked_blobs = 0
    n_repos = len(cat.repos)
    per_repo = max(1, gc.blobs_marked // n_repos)
    elig_manifests = [d for d in cat.manifest_digests[-gc.manifests_deleted:]] if gc.manifests_deleted else []
    for r, repo in enumerate(cat.repos):
        lines.append(repo)
        md = cat.manifest_digests[r % (len(cat.manifest_digests) - gc.manifests_deleted)]
        lines.append(f"{repo}: marking manifest sha256:{md} ")
        for b in rng.choice(len(cat.blob_digests) - gc.blobs_deleted, per_repo, replace=False):
            lines.append(f"{repo}: marking blob sha256:{cat.blob_digests[b]}")
            marked_blobs += 1
    for d in elig_manifests:
        lines.append(f"manifest eligible for deletion: sha256:{d}")
    doomed = cat.blob_digests[-gc.blobs_deleted:] if gc.blobs_deleted else []
    lines.append("")
    lines.append(f"{marked_blobs} blobs marked, {len(doomed)} blobs and {len(elig_manifests)} manifests eligible "
                 "for deletion")
    lines += [f"blob eligible for deletion: sha256:{d}" for d in doomed]
    sweep0 = g0 + (g1 - g0) // 3
    times = np.sort(rng.integers(sweep0, g1 - NS, max(1, len(doomed))))[:len(doomed)]
    instance = _uuid(rng)
    for t, d in zip(times, doomed, strict=True):
        msg = f"Deleting blob: /docker/registry/v2/blobs/sha256/{d[:2]}/{d}"
        stamp = _rfc3339(int(t))
        if fmt == "json":
            lines.append(f'{{"go.version":"go1.19.8","instance.id":"{instance}","level":"info","msg":{json_str(msg)},'
                         f'"time":"{stamp}"}}')
        else:
            lines.append(f'time="{stamp}" level=info msg={go_quote(msg)} go.version=go1.19.8 instance.id={instance}')
    path.write_text("\n".join(lines) + "\n")
    return {"blobs_marked": marked_blobs, "blobs_deleted": len(doomed), "manifests_deleted": len(elig_manifests),
            "first_delete": _utc(int(times[0])).isoformat() if len(doomed) else None,
            "last_delete": _utc(int(times[-1])).isoformat() if len(doomed) else None}


def _uuid(rng: np.random.Generator) -> str:
    h = rng.bytes(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:32]}"


def _rfc3339(ns: int) -> str:
    frac = f"{ns % NS:09d}".rstrip("0")
    return _utc(ns).strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def startup_lines(ns: int, fmt: str, rng: np.random.Generator) -> list[tuple[int, str]]:
    """What distribution 2.8.2 logs when it starts (captured from the Debian package's registry)."""
    inst = _uuid(rng)
    ctx = {"go.version": "go1.19.8", "instance.id": inst, "service": "registry", "version": "2.8.2+ds1"}
    msgs = [("warning", "No HTTP secret provided - generated random secret. This may cause problems with uploads if "
             "multiple registries are behind a load-balancer. To provide a shared secret, fill in http.secret in "
             "the configuration file or set the REGISTRY_HTTP_SECRET environment variable.", True),
            ("info", "redis not configured", True), ("info", "providing prometheus metrics on /metrics", False),
            ("info", "listening on [::]:5000", True), ("info", "debug server listening :5001", False),
            ("info", "Starting upload purge in 3m0s", True)]
    out = []
    for i, (level, msg, with_ctx) in enumerate(msgs):
        t = ns + i * 137_000 + int(rng.integers(0, 90_000))
        fields = ctx if with_ctx else {}
        out.append((t, event_line(t, level, msg, fields, fmt)))
    return out


def event_line(ns: int, level: str, msg: str, fields: dict[str, str], fmt: str) -> str:
    if fmt == "json":
        items = {**fields, "level": level, "msg": msg, "time": _rfc3339(ns)}
        return "{" + ",".join(f"{json_str(k)}:{json_str(v)}" for k, v in sorted(items.items())) + "}"
    rest = "".join(f" {k}={logrus_value(v)}" for k, v in sorted(fields.items()))
    return f'time="{_rfc3339(ns)}" level={level} msg={go_quote(msg)}{rest}'


def dmesg(path: Path, sc: Scenario, kill_ns: int, boot_ns: int) -> dict:
    """The kernel's OOM report for the registry's memory cgroup, `dmesg` style (seconds since boot)."""
    oom = sc.oom

    def up(ns: int) -> str:
        s = (ns - boot_ns) / NS
        return f"[{s:12.6f}]"

    pages = oom.limit_bytes // 4096
    lines = [
        (kill_ns - 7_200 * NS, "eth0: renamed from veth3a1c9e2"),
        (kill_ns - 7_200 * NS + 2_000_000, "IPv6: ADDRCONF(NETDEV_CHANGE): eth0: link becomes ready"),
        (kill_ns - 4_000_000, "registry invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=936"),
        (kill_ns - 3_990_000, f"CPU: 1 PID: {oom.pid} Comm: registry Not tainted 6.1.0-27-amd64 #1  Debian 6.1.115-1"),
        (kill_ns - 3_980_000, f"memory: usage {oom.limit_bytes // 1024}kB, limit {oom.limit_bytes // 1024}kB, "
                              "failcnt 212"),
        (kill_ns - 3_900_000, "Tasks state (memory values in pages):"),
        (kill_ns - 3_899_000, "[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name"),
        (kill_ns - 3_898_000, f"[{oom.pid - 42:7d}]     0 {oom.pid - 42:5d}      255        1    28672        0"
                              "          -998 pause"),
        (kill_ns - 3_897_000, f"[{oom.pid:7d}]     0 {oom.pid:5d}   {pages + 126_000:6d}   {pages:6d}    2400256"
                              "        0           936 registry"),
        (kill_ns - 3_800_000, "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=cri-containerd-9f8e.scope,"
                              "mems_allowed=0,oom_memcg=/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-"
                              "pod1b2c.slice,task_memcg=/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-"
                              f"pod1b2c.slice/cri-containerd-9f8e.scope,task=registry,pid={oom.pid},uid=0"),
        (kill_ns, f"Memory cgroup out of memory: Killed process {oom.pid} (registry) total-vm:"
                  f"{(pages + 126_000) * 4}kB, anon-rss:{oom.limit_bytes // 1024}kB, file-rss:10444kB, shmem-rss:0kB, "
                  "UID:0 pgtables:2344kB oom_score_adj:936"),
        (kill_ns + 23_000_000, f"oom_reaper: reaped process {oom.pid} (registry), now anon-rss:0kB, file-rss:0kB, "
                               "shmem-rss:0kB"),
    ]
    path.write_text("".join(f"{up(t)} {msg}\n" for t, msg in lines))
    return {"boot_at": _utc(boot_ns).isoformat()}
