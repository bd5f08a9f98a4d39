"""Seeded incident generator: realistic multi-source incidents in the real formats, with a ground-truth file."""

from .generate import Scenario, generate

__all__ = ["Scenario", "generate"]
