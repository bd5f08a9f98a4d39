"""What the lab knows independently of any log: counts from its own client-side record of every request."""

from __future__ import annotations

from collections import Counter

from .registry import CLIENTS, LabRun

#: who logs which requests: nginx logs everything; the registry never sees nginx's 502s (it was down) nor the
#: TLS probes nginx answers itself; the registry's app log leaves out the 405s of a read-only registry (its
#: combined access log keeps them).
SEEN_BY = {
    "nginx": lambda r: True,
    "registry-access": lambda r: r["status"] != 502 and r["method"] != "-",
    "registry": lambda r: r["status"] not in (502, 405) and r["method"] != "-",
}


def client_of_ip() -> dict[str, str]:
    return {src: name for name, (src, _, _) in CLIENTS.items()}


def requests_seen(run: LabRun, layer: str, instance: str | None = None) -> list[dict]:
    keep = SEEN_BY[layer]
    return [r for r in run.requests if keep(r) and (instance is None or r["instance"] == instance)]


def counts(run: LabRun, layer: str) -> Counter:
    """(client, instance, status) -> requests the lab made that this layer should have logged."""
    return Counter((r["client"], r["instance"], r["status"]) for r in requests_seen(run, layer))


def totals_by_client(run: LabRun, layer: str, field: str | None = None, skip_head: bool = False) -> dict[str, int]:
    """client -> number of requests (field None) or sum of a byte field, over what this layer logs."""
    out: Counter = Counter()
    for r in requests_seen(run, layer):
        if skip_head and r["method"] == "HEAD":
            continue
        out[r["client"]] += 1 if field is None else r[field]
    return dict(out)


def top(totals: dict[str, int]) -> tuple[str, int]:
    """The largest entry, with a tie-breaker on the name; the lab is built so that there is a clear winner."""
    return sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def expected_garbage(run: LabRun) -> set[str]:
    """Blobs that nothing references after the victim's manifest is deleted: its manifest, config and layers,
    and the blob docker uploaded without ever pushing a manifest for it."""
    victim = run.timeline["images"]["victim"]
    return {victim["manifest"], victim["config"], *(d for d, _ in victim["layers"])}


def orphan(run: LabRun, instance: str) -> str:
    return run.timeline["orphans"][instance]
