"""Reading a generator's ground_truth.json into what the analysis tests check.

The one place that knows the truth file's shape. It reads the explicit fields when the file has them
(`windows`: [{kind, start, end}], `top_talker`: {ip, user_agent}, `verdict` or `failure_domain`) and
derives them from the older fields (`abusive`, `slow_manifest_window`) otherwise.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path


def _t(s: str) -> dt.datetime:
    v = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return v if v.tzinfo else v.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Span:
    kind: str
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True)
class Expect:
    slow: list[Span] = field(default_factory=list)  # windows where latency (or 5xx) should stand out
    clients: list[Span] = field(default_factory=list)  # windows where one client should dominate
    top_ip: str | None = None
    top_user_agent: str | None = None
    verdict: str = "inconclusive"


def expectations(path: str | Path) -> Expect:
    truth = json.loads(Path(path).read_text())
    slow: list[Span] = []
    clients: list[Span] = []
    for w in truth.get("windows") or []:
        span = Span(w["kind"], _t(w["start"]), _t(w["end"]))
        (clients if w["kind"] in ("abusive_client", "client") else slow).append(span)
    explicit = bool(truth.get("windows"))  # the older fields repeat what `windows` says: read them only without it
    if not explicit and truth.get("slow_manifest_window"):
        s, e = truth["slow_manifest_window"]
        slow.append(Span("slow_manifest", _t(s), _t(e)))
    ab = truth.get("abusive") or truth.get("top_talker")
    if not explicit and ab and ab.get("window"):
        clients.append(Span("abusive_client", _t(ab["window"][0]), _t(ab["window"][1])))
    verdict = truth.get("verdict") or truth.get("failure_domain")
    if verdict == "none":  # nothing injected: the verdict must not name a domain
        verdict = "inconclusive"
    if verdict is None:
        overlap = any(c.start < s.end and s.start < c.end for c in clients for s in slow)
        verdict = "client" if overlap else "inconclusive"
    return Expect(slow=slow, clients=clients, top_ip=(ab or {}).get("ip"),
                  top_user_agent=(ab or {}).get("user_agent"), verdict=verdict)
