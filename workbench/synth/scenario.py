"""What a generated incident holds: a `Scenario` of typed injections, and named presets.

Times inside a scenario are offsets in minutes from `Scenario.start` (UTC); every injection is optional and
they combine freely. `preset(name, **overrides)` gives the named ones (`PRESETS`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields, replace
from typing import Literal

from ..errors import WorkbenchError

UTC = dt.UTC


@dataclass(frozen=True)
class GCRun:
    """`registry garbage-collect` holding metadata-table locks in PostgreSQL: manifest requests that arrive
    while a lock is held wait for it (manifest p99 up), waits over `deadlock_timeout` are logged."""

    at_min: float = 30.0
    minutes: float = 20.0
    hold_s: tuple[float, float] = (6.0, 25.0)  # each lock hold lasts this long (uniform)
    gap_s: tuple[float, float] = (15.0, 60.0)  # between holds
    blobs_deleted: int = 240
    manifests_deleted: int = 12
    blobs_marked: int = 3_500
    holder_pid: int = 31_337
    pool_pids: int = 16  # registry's connection pool: the backends that wait


@dataclass(frozen=True)
class Throttle:
    """Object storage answers 503 SlowDown; the S3 client retries quietly, a few requests end in a 500,
    nginx gives up (504) on requests the registry later logs as 200."""

    at_min: float = 40.0
    minutes: float = 25.0
    retries_per_action: float = 0.9  # mean SlowDown answers per storage action (Poisson)
    backoff_s: float = 0.35  # median wait per retry (log-normal, heavy tail)
    max_retries: int = 6  # past this the driver gives up: the request fails with 500


@dataclass(frozen=True)
class Abuse:
    """One client floods manifest requests, retrying what fails."""

    at_min: float = 60.0
    minutes: float = 20.0
    requests: int = 40_000  # logical requests; retries come on top and are counted in the truth
    ip: str = "203.0.113.66"
    user_agent: str = "python-requests/2.31.0"
    missing_share: float = 0.3  # asks for tags that do not exist (404) and retries them
    retries: int = 2


@dataclass(frozen=True)
class Outage:
    """The proxy in front fails: `stopped` (registry down: nginx 502, no registry lines, scrape gap),
    `stalled` (SIGSTOP: nginx 504 after proxy_read_timeout, registry silent), or `proxy` (nginx answers 502
    to a share of requests while the registry is healthy)."""

    at_min: float = 80.0
    minutes: float = 6.0
    kind: Literal["stopped", "stalled", "proxy"] = "stopped"
    proxy_share: float = 0.35


@dataclass(frozen=True)
class OOMKill:
    """The kernel OOM-kills the registry: memory ramps up before, the registry is down for `down_s`,
    restarts (new pid, new instance id, counters reset)."""

    at_min: float = 100.0
    down_s: float = 45.0
    ramp_min: float = 20.0
    pid: int = 4242
    new_pid: int = 4391
    limit_bytes: int = 1 << 30


@dataclass(frozen=True)
class Scenario:
    start: dt.datetime = dt.datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # a Monday
    minutes: float = 120.0
    requests: int = 20_000  # ordinary traffic over the span (floods come on top)
    seed: int = 7
    registry_format: Literal["json", "text"] = "json"
    # the registry's own combined access lines (stdout), interleaved with its app log (stderr) as a container's
    # log holds them; off, the file is what `registry serve … 2> registry.log` keeps
    registry_access_log: bool = False
    instance: str = "registry-0"
    scrape_interval_s: int = 15
    scrape_layout: Literal["files", "concat"] = "files"  # a file per scrape, or one file of marked scrapes
    chunk_rows: int = 50_000
    gc: GCRun | None = None
    throttle: Throttle | None = None
    abuse: Abuse | None = None
    outage: Outage | None = None
    oom: OOMKill | None = None
    name: str = "custom"

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise WorkbenchError("Scenario.start needs a time zone (use UTC)")
        if self.minutes <= 0 or self.requests < 0:
            raise WorkbenchError("Scenario needs minutes > 0 and requests >= 0")
        for inj in (self.gc, self.throttle, self.abuse, self.outage):
            if inj is not None and not (0 <= inj.at_min and inj.at_min + inj.minutes <= self.minutes):
                raise WorkbenchError(f"{type(inj).__name__} window {inj.at_min}+{inj.minutes} min lies outside "
                                     f"the scenario's {self.minutes} min")
        if self.oom is not None and not (0 <= self.oom.at_min < self.minutes):
            raise WorkbenchError("OOMKill.at_min lies outside the scenario")

    def at(self, minutes: float) -> dt.datetime:
        return self.start + dt.timedelta(minutes=minutes)


def _two_hours(**kw) -> Scenario:
    return Scenario(minutes=120, requests=60_000, **kw)


PRESETS = {
    "monday_gc": lambda: _two_hours(name="monday_gc", gc=GCRun()),
    "s3_throttle": lambda: _two_hours(name="s3_throttle", throttle=Throttle()),
    "abusive_client": lambda: _two_hours(name="abusive_client", abuse=Abuse()),
    "proxy_502": lambda: _two_hours(name="proxy_502", outage=Outage()),
    "oom_restart": lambda: _two_hours(name="oom_restart", oom=OOMKill()),
    "quiet_week": lambda: Scenario(name="quiet_week", start=dt.datetime(2026, 11, 16, tzinfo=UTC), minutes=7 * 1440,
                                   requests=400_000, scrape_interval_s=300, registry_format="text"),
    # a Monday morning where several things go wrong one after another
    "demo": lambda: Scenario(name="demo", minutes=150, registry_access_log=True, requests=150_000, gc=GCRun(at_min=25, minutes=20),
                             abuse=Abuse(at_min=60, minutes=20, requests=30_000),
                             throttle=Throttle(at_min=90, minutes=20), oom=OOMKill(at_min=130)),
}


def preset(name: str, **overrides) -> Scenario:
    """A named scenario (see PRESETS), with any Scenario field overridden."""
    if name not in PRESETS:
        raise WorkbenchError(f"no scenario preset {name!r}; choose one of {', '.join(sorted(PRESETS))}")
    sc = PRESETS[name]()
    known = {f.name for f in fields(Scenario)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise WorkbenchError(f"unknown Scenario field(s) {', '.join(bad)}")
    return replace(sc, **overrides)


__all__ = ["Abuse", "GCRun", "OOMKill", "Outage", "PRESETS", "Scenario", "Throttle", "preset"]
