"""Analyses: pure functions over the case's tables (an ibis backend from `workbench.engine.connect`).

One module per question: latency, talkers, correlation, domain, weekly, timeline. Each takes a table or
backend and a frozen parameter object and returns an ibis expression, small polars frames or Altair charts.
"""

from .params import Thresholds, Window, case_window

__all__ = ["Thresholds", "Window", "case_window"]
