"""Hand-made incidents across several tables, each shaped after a field note in DESIGN.md, for the verdict.

One hour of traffic seen by nginx and by the registry behind it (one proxy row per registry row), with an
incident from minute 25 to 35. Small and seeded, so the expected verdict is plain.
"""

from __future__ import annotations

import datetime as dt
import random

T0 = dt.datetime(2026, 11, 23, 6, 0, tzinfo=dt.UTC)
INC = (25, 35)
KINDS = ("quiet", "restart", "stall", "throttle", "locks", "flood", "proxy")
EXPECTED = {"quiet": "inconclusive", "restart": "registry_process", "stall": "registry_process",
            "throttle": "blob_storage", "locks": "metadata_database", "flood": "client",
            "proxy": "proxy_tls"}
#: Request logs for the host-evidence tests: what the requests show when the host is the cause. Alone they
#: are not a verdict (see test_host_evidence.py).
HOST_KINDS = ("disk", "tls")


def _at(minute: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=minute * 60)


def incident(kind: str, per_min: int = 30, seed: int = 3) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    req: list[dict] = []
    events: list[dict] = []
    locks: list[dict] = []
    logs: list[dict] = []
    metrics: list[dict] = []
    storage_s = [0.0, 0.0]  # running _sum and _count of the storage-action histogram
    for m in range(60):
        inside = INC[0] <= m < INC[1]
        n = per_min * (3 if kind == "flood" and inside else 1)
        for i in range(n):
            ts = _at(m + (i + rng.random()) / n * 0.999)
            route = rng.choice(["manifest", "manifest", "blob", "blob", "tags"])
            dur = (0.02 if route != "blob" else 0.05) * rng.lognormvariate(0, 0.4)
            storage = dur * 0.5
            ip = f"10.0.0.{rng.randint(1, 60)}"
            status, reg_logged, proxy_wait = 200, True, 0.0
            if inside and kind == "flood" and i >= per_min:
                ip, route = "198.51.100.7", "manifest"
            if inside and kind == "flood":
                dur, storage = dur * 3, dur * 3 * 0.9
            if inside and kind == "locks" and route == "manifest":
                dur *= 15
            if inside and kind == "throttle":
                dur, storage = dur * 8, dur * 8 * 0.95
                status = 504 if rng.random() < 0.2 else 200
            if inside and kind == "disk":  # the storage path's disk saturated: registry time spent in storage
                dur, storage = dur * 6, dur * 6 * 0.95
            if inside and kind == "tls":  # the proxy's CPU taken: nginx slow, the registry behind it not
                proxy_wait = 0.3 * rng.lognormvariate(0, 0.3)
            if inside and kind == "restart" and 28 <= m < 31:
                status, reg_logged, dur = 502, False, 0.001
            if inside and kind == "proxy" and rng.random() < 0.3:
                status, reg_logged = 502, False  # nginx could not reach the registry: it saw nothing
            if inside and kind == "stall" and 28 <= m < 32:
                status, reg_logged, dur = 504, False, 60.0
            common = {"ts": ts, "method": "GET", "route": route, "repository": f"team{i % 4}/app",
                      "remote_ip": ip, "user_agent": "containerd/v1.7.13", "client": "containerd"}
            req.append({**common, "layer": "nginx", "status": status, "duration_s": dur + 0.001 + proxy_wait,
                        "upstream_duration_s": dur if status != 502 else None, "bytes_out": 1500})
            if reg_logged:
                req.append({**common, "layer": "registry", "status": 200, "duration_s": dur,
                            "storage_duration_s": storage, "bytes_out": 1500})
        if not (kind == "stall" and 28 <= m < 32) and not (kind == "restart" and 28 <= m < 31):
            for s in range(4):  # a storage-action histogram scraped every 15 s: 100 actions a minute
                slow = 6.0 if inside and kind in ("throttle", "flood") else 1.0
                storage_s[0] += 25 * 0.01 * slow
                storage_s[1] += 25
                for name, v in (("_sum", storage_s[0]), ("_count", storage_s[1])):
                    metrics.append({"ts": _at(m + s / 4), "metric": "registry_storage_action_seconds" + name,
                                    "value": v, "instance": "registry:5001", "job": "registry",
                                    "labels": [("action", "GetContent"), ("driver", "s3aws")]})
    if kind == "restart":
        events.append({"ts": _at(28.5), "kind": "restart", "source": "kubelet", "instance": "registry-0"})
    if kind == "throttle":
        for k in range(12):
            logs.append({"ts": _at(26 + k * 0.7), "layer": "registry", "level": "error", "kind": "storage_error",
                         "message": "s3aws: SlowDown: Please reduce your request rate.", "error_code": "SlowDown"})
    if kind == "locks":
        events.append({"ts": _at(24), "end_ts": _at(36), "kind": "gc_run", "source": "registry garbage-collect",
                       "instance": "registry-0", "marked": 120, "deleted": 80})
        for k in range(20):
            locks.append({"ts": _at(25.5 + k * 0.45), "event": "acquired" if k % 2 else "waiting", "pid": 4000 + k,
                          "lock_mode": "ShareLock", "relation": "manifests", "wait_ms": 1000.0 + 50 * k})
    return {"requests": req, "events": events, "db_lock_waits": locks, "log_events": logs,
            "metric_samples": metrics}


def incident_window() -> tuple[dt.datetime, dt.datetime]:
    return _at(INC[0]), _at(INC[1])
