"""Failure-domain verdicts on hand-made incidents shaped after the field notes, with every table and with
the requests alone; and the verdict on every generator scenario against its ground truth."""

from __future__ import annotations

import polars as pl
import pytest

from workbench.analysis.domain import DOMAINS, DomainParams, failure_domain
from workbench.analysis.params import case_window
from workbench.engine import connect

from .cases import make_case
from .handmade import EXPECTED, KINDS, incident, incident_window
from .truth import expectations

#: With the requests alone the proxy log cannot tell a throttle from a stall, nor locks from throttling:
#: those must stay inconclusive rather than guess.
REQUESTS_ONLY = {"quiet": "inconclusive", "restart": "registry_process", "stall": "registry_process",
                 "throttle": "inconclusive", "locks": "inconclusive", "flood": "client", "proxy": "proxy_tls"}


def _verdict(con):
    return failure_domain(con, DomainParams(window=case_window(con)))


@pytest.mark.parametrize("kind", KINDS)
def test_verdict_with_every_table(handmade, kind):
    v = _verdict(handmade[kind])
    assert v.verdict == EXPECTED[kind], (v.reason, v.evidence)
    if v.verdict != "inconclusive":
        mine = v.evidence.filter(pl.col("domain") == v.verdict)
        assert mine["points"].sum() >= 2 and mine.height >= 1
        s, e = incident_window()
        assert v.incident.start >= s and v.incident.end <= e  # the incident found lies in the injected one
    else:
        assert v.incident is None  # quiet: nothing stands out


@pytest.mark.parametrize("kind", KINDS)
def test_verdict_with_requests_only(tmp_path, kind):
    con = connect(make_case(tmp_path / "case", {"requests": incident(kind)["requests"]}))
    v = _verdict(con)
    assert v.tables == ("requests",)
    assert v.verdict == REQUESTS_ONLY[kind], (v.reason, v.evidence)


def test_flood_with_slow_storage_is_not_blamed_on_storage(handmade):
    v = _verdict(handmade["flood"])
    row = v.evidence.filter(pl.col("signal") == "storage share of request time").row(0, named=True)
    assert row["incident"] > 0.8 and row["points"] == 0  # storage time is up, and it does not count
    assert v.verdict == "client"


def test_stall_is_told_from_throttle_by_the_registry_gap(handmade):
    stall, throttle = _verdict(handmade["stall"]), _verdict(handmade["throttle"])
    assert "proxy 504s while the registry logged nothing" in stall.evidence["signal"].to_list()
    assert "proxy 504s with the registry logging" in throttle.evidence["signal"].to_list()


def test_scores_cover_every_domain(handmade):
    v = _verdict(handmade["locks"])
    assert sorted(v.scores["domain"].to_list()) == sorted(DOMAINS)


def test_generated_verdict_matches_ground_truth(scenario_case):
    con, truth, name = scenario_case
    v = _verdict(con)
    assert v.verdict == expectations(truth).verdict, (name, v.reason, v.evidence)


def test_throttle_without_storage_errors_in_the_log(tmp_path):
    """The S3 client retries SlowDown quietly: with no storage_error line, storage time in the requests and in
    the registry's metrics still names the storage; the same rise under a client flood does not."""
    tables = incident("throttle")
    tables["log_events"] = []
    v = _verdict(connect(make_case(tmp_path / "throttle", tables)))
    assert v.verdict == "blob_storage", v.evidence
    sig = v.evidence.filter(pl.col("signal") == "storage action time in the registry's metrics").row(0, named=True)
    assert sig["incident"] == pytest.approx(0.06) and sig["baseline"] == pytest.approx(0.01) and sig["points"] == 1
    flood = _verdict(connect(make_case(tmp_path / "flood", incident("flood"))))
    assert flood.evidence.filter(pl.col("domain") == "blob_storage")["points"].sum() == 0
