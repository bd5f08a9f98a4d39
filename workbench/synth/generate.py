"""Generate registry request logs for an incident, vectorised with numpy and streamed to disk in chunks.

Writes the registry's logrus JSON log and the nginx combined access log in front of it, plus
`ground_truth.json` describing what was injected.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

UAS = [
    ("docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.1.0-18-amd64 os/linux arch/amd64 UpstreamClient(Docker-Client/24.0.7 \\(linux\\))", 0.35),
    ("containerd/v1.7.13", 0.30),
    ("cri-o/1.28.1 go/go1.20.10 os/linux arch/amd64", 0.10),
    ("skopeo/1.9.3", 0.08),
    ("buildkit/v0.12.5", 0.07),
    ("kaniko/v1.20.0", 0.05),
    ("crane/v0.19.0 go-containerregistry/v0.19.0", 0.05),
]
ROUTES = [("manifest", "GET", 0.35), ("manifest", "HEAD", 0.20), ("blob", "GET", 0.35), ("blob_upload", "PUT", 0.05),
          ("tags", "GET", 0.03), ("base", "GET", 0.02)]
REPOS = [f"team{i}/service{j}" for i in range(8) for j in range(6)]


@dataclass
class Scenario:
    """What to inject. Times are offsets in minutes from the start of the window."""

    start: dt.datetime = dt.datetime(2026, 11, 23, 6, 0, tzinfo=dt.timezone.utc)  # a Monday
    minutes: int = 120
    requests: int = 20_000
    seed: int = 7
    abusive_client: bool = True
    abusive_ip: str = "203.0.113.66"
    abusive_ua: str = "python-requests/2.31.0"
    abusive_window: tuple[int, int] = (40, 70)
    abusive_share: float = 0.45
    slow_window: tuple[int, int] | None = (50, 65)
    extra: dict = field(default_factory=dict)


def _digest(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.array(["sha256:" + "".join(rng.choice(list("0123456789abcdef"), 64)) for _ in range(n)])


def generate(out: str | Path, scenario: Scenario | None = None) -> dict:
    """Write the incident's files under `out`; returns the ground truth (also written to ground_truth.json)."""
    sc = scenario or Scenario()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(sc.seed)
    n = sc.requests
    span_s = sc.minutes * 60
    t = np.sort(rng.uniform(0, span_s, n))
    route_idx = rng.choice(len(ROUTES), n, p=[r[2] for r in ROUTES])
    ua_idx = rng.choice(len(UAS), n, p=[u[1] for u in UAS])
    ips = np.array([f"10.{rng.integers(0, 4)}.{rng.integers(0, 250)}.{rng.integers(1, 250)}" for _ in range(300)])
    ip = ips[rng.integers(0, len(ips), n)]
    ua = np.array([u[0] for u in UAS])[ua_idx]
    repo = np.array(REPOS)[rng.integers(0, len(REPOS), n)]
    abusive = np.zeros(n, bool)
    if sc.abusive_client:
        a0, a1 = (x * 60 for x in sc.abusive_window)
        inwin = (t >= a0) & (t < a1)
        abusive = inwin & (rng.uniform(size=n) < sc.abusive_share)
        ip = np.where(abusive, sc.abusive_ip, ip)
        ua = np.where(abusive, sc.abusive_ua, ua)
        route_idx = np.where(abusive, 0, route_idx)
    route = np.array([r[0] for r in ROUTES])[route_idx]
    method = np.array([r[1] for r in ROUTES])[route_idx]
    base_ms = np.where(route == "blob", 40.0, np.where(route == "blob_upload", 900.0, 25.0))
    dur = base_ms * rng.lognormal(0, 0.6, n) / 1000.0
    if sc.slow_window:
        s0, s1 = (x * 60 for x in sc.slow_window)
        slow = (t >= s0) & (t < s1) & (route == "manifest")
        dur = np.where(slow, dur * 12, dur)
    status = np.where(rng.uniform(size=n) < 0.01, 404, np.where(method == "PUT", 201, 200))
    size = np.where(route == "blob", rng.integers(1_000, 50_000_000, n), np.where(route == "manifest", 1_500, 0))
    digests = _digest(rng, 64)
    ref = np.where(route == "blob", digests[rng.integers(0, 64, n)], np.array(["latest", "v1", "v2"])[rng.integers(0, 3, n)])
    ts = [sc.start + dt.timedelta(seconds=float(x)) for x in t]
    with open(out / "registry.json.log", "w") as reg, open(out / "nginx-access.log", "w") as ngx:
        for i in range(n):
            path = {
                "manifest": f"/v2/{repo[i]}/manifests/{ref[i]}",
                "blob": f"/v2/{repo[i]}/blobs/{ref[i]}",
                "blob_upload": f"/v2/{repo[i]}/blobs/uploads/{i:08x}-0000-4000-8000-000000000000",
                "tags": f"/v2/{repo[i]}/tags/list",
                "base": "/v2/",
            }[route[i]]
            stamp = ts[i]
            rec = {
                "http.request.id": f"{i:08x}-1b7d-4c5e-8f2a-9d0b3e4a5c6d",
                "http.request.method": method[i],
                "http.request.remoteaddr": f"{ip[i]}:{40000 + i % 20000}",
                "http.request.uri": path,
                "http.request.useragent": ua[i].replace("\\(", "(").replace("\\)", ")"),
                "http.response.duration": f"{dur[i] * 1000:.6f}ms",
                "http.response.status": int(status[i]),
                "http.response.written": int(size[i]),
                "level": "info" if status[i] < 400 else "warning",
                "msg": "response completed" if status[i] < 400 else "response completed with error",
                "time": stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "vars.name": repo[i],
            }
            if status[i] == 404:
                rec.update({"err.code": "manifest unknown", "err.message": "manifest unknown",
                            "err.detail": f"unknown tag={ref[i]}"})
            reg.write(json.dumps(rec, sort_keys=True) + "\n")
            ngx.write(
                f'{ip[i]} - - [{stamp.strftime("%d/%b/%Y:%H:%M:%S +0000")}] "{method[i]} {path} HTTP/1.1" '
                f'{status[i]} {size[i]} "-" "{ua[i]}" {dur[i] + 0.001:.3f} {dur[i]:.3f}\n'
            )
    truth = {
        "scenario": {k: (str(v) if isinstance(v, dt.datetime) else v) for k, v in asdict(sc).items()},
        "requests": n,
        "abusive": {"ip": sc.abusive_ip, "user_agent": sc.abusive_ua, "requests": int(abusive.sum()),
                    "window": [(sc.start + dt.timedelta(minutes=m)).isoformat() for m in sc.abusive_window]}
        if sc.abusive_client else None,
        "slow_manifest_window": [(sc.start + dt.timedelta(minutes=m)).isoformat() for m in sc.slow_window]
        if sc.slow_window else None,
    }
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=2, sort_keys=True))
    return truth
