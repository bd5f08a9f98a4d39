"""Seeded incident generator: realistic multi-source incidents in the real formats, with a ground-truth file."""

from .generate import generate
from .scenario import PRESETS, Abuse, GCRun, OOMKill, Outage, Scenario, Throttle, preset

__all__ = ["PRESETS", "Abuse", "GCRun", "OOMKill", "Outage", "Scenario", "Throttle", "generate", "preset"]
