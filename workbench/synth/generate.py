"""Generate an incident: requests streamed in chunks through the traffic model into the registry and nginx logs,
the metrics scrapes, PostgreSQL, GC and kernel evidence, and `ground_truth.json`.

Files written under `out`:
- `registry.json.log` or `registry.log` (logrus text): the registry container's output
- `nginx-access.log`, `metrics/metrics-<instance>-<stamp>.prom` (or one `metrics/scrapes-<instance>.prom`)
- `postgresql-<date>.log`, `pg_locks.csv` (with a GC run), `gc-<stamp>.txt` (with a GC run)
- `dmesg.txt` (with an OOM kill), `ground_truth.json`

Memory stays flat in the request count: a chunk of `chunk_rows` requests is generated, written and dropped;
what is kept across chunks is per scrape interval (metrics) or per injected event.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path

import numpy as np

from . import evidence
from .logs import access_lines, chunk_frame, nginx_lines, registry_lines, slowdown_detail, with_uri
from .metrics import MetricsAccumulator
from .model import NS, ROUTES, UAS, Catalogue, Windows, minute_weights, simulate, within
from .render import SortedSink
from .scenario import Scenario

UTC = dt.UTC


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns // NS, UTC).replace(microsecond=(ns % NS) // 1000).isoformat()


def _chunks(total: np.ndarray, size: int):
    """(m0, m1) minute ranges holding about `size` requests each."""
    cum = np.cumsum(total)
    m0 = 0
    while m0 < len(total):
        base = cum[m0 - 1] if m0 else 0
        m1 = int(np.searchsorted(cum, base + size, side="left")) + 1
        m1 = min(max(m1, m0 + 1), len(total))
        yield m0, m1
        m0 = m1


def _arrivals(rng, t0: int, m0: int, counts: np.ndarray, t_end: int) -> np.ndarray:
    ms = np.repeat(np.arange(m0, m0 + len(counts)), counts)
    t = t0 + ms * 60 * NS + (rng.random(len(ms)) * 60 * NS).astype(np.int64)
    return np.minimum(t, t_end - 1)


def generate(out: str | Path, scenario: Scenario | None = None) -> dict:
    """Write the incident's files under `out`; returns the ground truth (also written to ground_truth.json)."""
    sc = scenario or Scenario()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(sc.seed)
    cat = Catalogue.draw(rng)
    win = Windows.of(sc, rng)
    slowdown = slowdown_detail(rng)
    weights = minute_weights(sc, rng)
    counts = rng.multinomial(sc.requests, weights / weights.sum())
    nmin = len(counts)
    acounts = np.zeros(nmin, np.int64)
    if sc.abuse is not None:
        a0, a1 = int(sc.abuse.at_min), int(np.ceil(sc.abuse.at_min + sc.abuse.minutes))
        acounts[a0:a1] = rng.multinomial(sc.abuse.requests, np.full(a1 - a0, 1 / (a1 - a0)))
    reg_name = "registry.json.log" if sc.registry_format == "json" else "registry.log"
    reg = SortedSink(out / reg_name)
    ngx = SortedSink(out / "nginx-access.log")
    acc = MetricsAccumulator(win, sc.scrape_interval_s)
    restarts = [int(e) for _, e in win.down]
    for r in restarts:
        lines = evidence.startup_lines(r, sc.registry_format, rng)
        reg.push(np.array([t for t, _ in lines]), _series([s for _, s in lines]), win.t0)
    tally = dict.fromkeys(("requests", "registry_lines", "abusive", "abusive_retries", "slowdown_503s",
                           "registry_500s", "nginx_502s", "nginx_504s", "nginx_504_registry_200",
                           "throttle_nginx_504s", "lock_delayed", "storage_error_events"), 0)
    abuse_ip = sc.abuse.ip if sc.abuse else "-"
    abuse_ua = sc.abuse.user_agent if sc.abuse else "-"
    ua_p = np.array([p for _, p in UAS])
    route_p = np.array([r[3] for r in ROUTES])
    for m0, m1 in _chunks(counts + acounts, sc.chunk_rows):
        boundary = min(win.t0 + m1 * 60 * NS, win.t1)
        n = int(counts[m0:m1].sum())
        arrival = _arrivals(rng, win.t0, m0, counts[m0:m1], win.t1)
        route = rng.choice(len(ROUTES), n, p=route_p / route_p.sum())
        ip_idx = rng.choice(len(cat.ips), n, p=cat.ip_p)
        ua_idx = rng.choice(len(UAS), n, p=ua_p / ua_p.sum())
        repo_idx = rng.choice(len(cat.repos), n, p=cat.repo_p)
        missing = np.zeros(n, bool)
        abusive = np.zeros(n, bool)
        na = int(acounts[m0:m1].sum())
        if na:
            ab = sc.abuse
            a_arr = _arrivals(rng, win.t0, m0, acounts[m0:m1], win.t1)
            a_arr = a_arr[within(a_arr, win.abuse)] if len(a_arr) else a_arr
            a_route = np.where(rng.random(len(a_arr)) < 0.5, 0, 2)
            a_miss = rng.random(len(a_arr)) < ab.missing_share
            a_repo = rng.choice(len(cat.repos), len(a_arr), p=cat.repo_p)
            # a failed request is retried `retries` times, each after a short back-off
            rep = np.where(a_miss, 1 + ab.retries, 1)
            k = np.arange(rep.sum()) - np.repeat(np.cumsum(rep) - rep, rep)
            a_arr = np.repeat(a_arr, rep) + (k * rng.uniform(0.2, 1.0, rep.sum()) * NS).astype(np.int64)
            a_arr = np.minimum(a_arr, win.t1 - 1)
            a_route, a_miss, a_repo = np.repeat(a_route, rep), np.repeat(a_miss, rep), np.repeat(a_repo, rep)
            tally["abusive_retries"] += int((k > 0).sum())
            arrival = np.concatenate([arrival, a_arr])
            route = np.concatenate([route, a_route])
            ip_idx = np.concatenate([ip_idx, np.full(len(a_arr), len(cat.ips))])
            ua_idx = np.concatenate([ua_idx, np.full(len(a_arr), len(UAS))])
            repo_idx = np.concatenate([repo_idx, a_repo])
            missing = np.concatenate([missing, a_miss])
            abusive = np.concatenate([abusive, np.ones(len(a_arr), bool)])
        order = np.argsort(arrival, kind="stable")
        arrival, route, ip_idx, ua_idx, repo_idx, missing, abusive = (
            a[order] for a in (arrival, route, ip_idx, ua_idx, repo_idx, missing, abusive))
        sim = simulate(sc, cat, win, rng, arrival, abusive, route, missing)
        acc.add(sim)
        df = with_uri(chunk_frame(sim, ip_idx, ua_idx, repo_idx, cat, rng, abuse_ip), cat)
        logged = df.filter(df["has_reg"])
        reg_lines = registry_lines(logged, cat, slowdown, sc.registry_format, abuse_ua)
        t_reg = logged["t_reg"].to_numpy()
        if sc.registry_access_log:
            acc_lines = access_lines(logged, cat, abuse_ua)
            reg_lines = reg_lines.append(acc_lines)
            t_reg = np.concatenate([t_reg, t_reg + 1])
        fail_blob = logged.filter((logged["status"] == 500) & (logged["kind"] == "digest") & (logged["route"] != 1))
        if fail_blob.height:
            ev = [evidence.event_line(int(r["t_reg"]) - 1, "error",
                                      f"Error serving blob from local storage: {slowdown[r['sd']]}",
                                      {"go.version": "go1.19.8", "http.request.host": cat.host,
                                       "http.request.id": r["rid"], "http.request.method": r["method"],
                                       "http.request.remoteaddr": r["ip"], "http.request.uri": r["uri"],
                                       "http.request.useragent": (UAS[r["ua"]][0] if r["ua"] < len(UAS) else abuse_ua),
                                       "vars.digest": r["reference"], "vars.name": r["repo"]}, sc.registry_format)
                  for r in fail_blob.iter_rows(named=True)]
            reg_lines = reg_lines.append(_series(ev))
            t_reg = np.concatenate([t_reg, fail_blob["t_reg"].to_numpy() - 1])
            tally["storage_error_events"] += len(ev)
        reg.push(t_reg, reg_lines, boundary)
        ngx.push(df["t_ngx"].to_numpy(), nginx_lines(df, abuse_ua), boundary)
        has, st, ns_ = sim["has_reg"], sim["status"], sim["ngx_status"]
        tally["requests"] += len(arrival)
        tally["registry_lines"] += int(has.sum())
        tally["abusive"] += int(abusive.sum())
        tally["slowdown_503s"] += int(sim["op_retries"].sum())
        tally["registry_500s"] += int((has & (st == 500)).sum())
        tally["nginx_502s"] += int((ns_ == 502).sum())
        tally["nginx_504s"] += int((ns_ == 504).sum())
        tally["nginx_504_registry_200"] += int(((ns_ == 504) & has & (st == 200)).sum())
        tally["throttle_nginx_504s"] += int(((ns_ == 504) & within(arrival, win.throttle)).sum())
        tally["lock_delayed"] += int((sim["lock_ns"] > 0).sum())
        del df, logged, sim, reg_lines
    reg.close()
    ngx.close()
    files = {reg_name: reg.lines, "nginx-access.log": ngx.lines}
    truth = _evidence_and_truth(sc, cat, win, rng, out, acc, restarts, tally, files)
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True) + "\n")
    return truth


def _series(lines: list[str]):
    import polars as pl
    return pl.Series(lines, dtype=pl.String)


def _rss(sc: Scenario, win: Windows):
    base = 96e6
    kill = int(sc.at(sc.oom.at_min).timestamp() * NS) if sc.oom else None

    def rss(t: int) -> float:
        v = base + 14e6 * np.sin((t - win.t0) / (3600 * NS)) ** 2
        if kill is not None and kill - sc.oom.ramp_min * 60 * NS <= t < kill:
            frac = 1 - (kill - t) / (sc.oom.ramp_min * 60 * NS)
            v = v + frac * (0.97 * sc.oom.limit_bytes - v)
        return float(int(v) // 4096 * 4096)
    return rss


def _evidence_and_truth(sc, cat, win, rng, out, acc, restarts, tally, files) -> dict:
    gaps = [tuple(d) for d in win.down]
    if sc.outage is not None and sc.outage.kind == "stalled":
        gaps.append(win.outage)
    gaps_arr = np.array(sorted(gaps), dtype=np.int64).reshape(-1, 2)
    starts = [win.t0 - 3 * 86_400 * NS] + restarts
    scrapes = acc.write(out / "metrics", sc.instance, starts, gaps_arr, _rss(sc, win),
                        concat=sc.scrape_layout == "concat")
    files["metrics/"] = len(scrapes)
    windows = []
    truth: dict = {
        "name": sc.name, "seed": sc.seed,
        "scenario": json.loads(json.dumps(dataclasses.asdict(sc), default=str)),
        "span": [_iso(win.t0), _iso(win.t1)],
        "counts": tally, "files": files,
        "metrics": {"instance": sc.instance, "interval_s": sc.scrape_interval_s, "scrapes": len(scrapes),
                    "gaps": [[_iso(a), _iso(b)] for a, b in gaps_arr],
                    "process_starts": [_iso(s) for s in starts]},
        "top_talker": None, "abusive": None, "gc": None, "postgres": None, "throttle": None, "outage": None,
        "oom": None,
    }
    pg_day = sc.start.astimezone(evidence.CET).strftime("%Y-%m-%d")
    waits = evidence.lock_waits(sc, win.holds, rng)
    if sc.gc is not None:
        g0, g1 = (int(sc.at(m).timestamp() * NS) for m in (sc.gc.at_min, sc.gc.at_min + sc.gc.minutes))
        stamp = dt.datetime.fromtimestamp(g0 // NS, UTC).strftime("%Y%m%dT%H%M%SZ")
        gc_file = f"gc-{stamp}.txt"
        gc = evidence.gc_output(out / gc_file, sc, cat, rng, sc.registry_format)
        os.utime(out / gc_file, (g1 / NS, g1 / NS))
        snaps = evidence.lock_snapshots(out / "pg_locks.csv", sc, win.holds, waits)
        truth["gc"] = {"runs": [{"start": _iso(g0), "end": _iso(g1), **gc}], "file": gc_file,
                       "lock_holds": [[_iso(a), _iso(b)] for a, b in win.holds]}
        truth["postgres"] = {
            "holder_pid": sc.gc.holder_pid, "waiter_pids": sorted({w["pid"] for w in waits}),
            "lock_waits_logged": len(waits), "relation_oid": evidence.MANIFESTS_OID, "relation": "manifests",
            "database_oid": evidence.DB_OID, "log_timezone": "CET", "log_line_prefix": "%m [%p] %q%u@%d ",
            "first_wait": _iso(min(w["start"] for w in waits)) if waits else None,
            "last_acquired": _iso(max(w["end"] for w in waits)) if waits else None,
            "snapshots": {"file": "pg_locks.csv", "count": len(snaps), "times_utc": snaps},
            "max_wait_ms": round(max((w["end"] - w["start"]) / 1e6 for w in waits), 3) if waits else None,
        }
        windows.append({"kind": "gc_locks", "start": _iso(g0), "end": _iso(g1), "verdict": "metadata_database",
                        "route": "manifest"})
    files[f"postgresql-{pg_day}.log"] = evidence.postgres_log(out / f"postgresql-{pg_day}.log", sc, win.t0, win.t1,
                                                              waits)
    if sc.throttle is not None:
        a, b = win.throttle
        truth["throttle"] = {"start": _iso(a), "end": _iso(b), "driver": "s3aws", "error": "SlowDown",
                             "slowdown_503s": tally["slowdown_503s"], "registry_500s": tally["registry_500s"],
                             "nginx_504s": tally["throttle_nginx_504s"],
                             "nginx_504_registry_200": tally["nginx_504_registry_200"],
                             "storage_error_events": tally["storage_error_events"]}
        windows.append({"kind": "s3_throttle", "start": _iso(a), "end": _iso(b), "verdict": "blob_storage"})
    if sc.abuse is not None:
        a, b = win.abuse
        talker = {"ip": sc.abuse.ip, "user_agent": sc.abuse.user_agent, "count": tally["abusive"],
                  "requests": tally["abusive"], "retries": tally["abusive_retries"], "window": [_iso(a), _iso(b)]}
        truth["top_talker"] = talker
        truth["abusive"] = talker
        windows.append({"kind": "abusive_client", "start": _iso(a), "end": _iso(b), "verdict": "client"})
    if sc.outage is not None:
        a, b = win.outage
        verdict = "proxy_tls" if sc.outage.kind == "proxy" else "registry_process"
        truth["outage"] = {"kind": sc.outage.kind, "start": _iso(a), "end": _iso(b),
                           "nginx_502s": tally["nginx_502s"], "nginx_504s": tally["nginx_504s"]}
        windows.append({"kind": f"proxy_{sc.outage.kind}", "start": _iso(a), "end": _iso(b), "verdict": verdict})
    if sc.oom is not None:
        kill = int(sc.at(sc.oom.at_min).timestamp() * NS)
        back = kill + int(sc.oom.down_s * NS)
        boot = win.t0 - 3 * 86_400 * NS - 4_000 * NS
        k = evidence.dmesg(out / "dmesg.txt", sc, kill, boot)
        os.utime(out / "dmesg.txt", ((kill + 23_000_000) / NS, (kill + 23_000_000) / NS))
        files["dmesg.txt"] = 12
        truth["oom"] = {"time": _iso(kill), "pid": sc.oom.pid, "new_pid": sc.oom.new_pid, "restart": _iso(back),
                        "process": "registry", "limit_bytes": sc.oom.limit_bytes, **k}
        windows.append({"kind": "oom_restart", "start": _iso(kill), "end": _iso(back), "verdict": "registry_process"})
    windows.sort(key=lambda w: w["start"])
    truth["windows"] = windows
    # the verdict of the whole case: the injection alone, or none on a quiet one; mixed cases list each window's
    truth["failure_domain"] = windows[0]["verdict"] if len(windows) == 1 else ("none" if not windows else "mixed")
    truth["verdict"] = truth["failure_domain"]
    return truth
