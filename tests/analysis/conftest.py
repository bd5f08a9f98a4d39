from __future__ import annotations

import pytest

from workbench.engine import connect
from workbench.synth import Scenario, preset

from .cases import generated_case, make_case
from .handmade import KINDS, incident

#: Generator scenarios the tests run on: (name, scenario). Each one's ground_truth.json says what to find.
SCENARIOS = {
    "abusive_client": preset("abusive_client", seed=13, requests=20_000),
    "monday_gc": preset("monday_gc", seed=11, requests=20_000),
    "s3_throttle": preset("s3_throttle", seed=19, requests=20_000),
    "quiet": Scenario(seed=17, requests=20_000),
}


@pytest.fixture(scope="session", params=sorted(SCENARIOS))
def scenario_case(request, tmp_path_factory):
    """(backend, ground_truth.json path, name) for each generator scenario."""
    root = tmp_path_factory.mktemp(request.param)
    case, truth = generated_case(root, SCENARIOS[request.param])
    return connect(case), truth, request.param


@pytest.fixture(scope="session")
def handmade(tmp_path_factory):
    """kind -> backend over a hand-made multi-table incident (see handmade.py)."""
    out = {}
    for kind in KINDS:
        path = make_case(tmp_path_factory.mktemp(f"hand-{kind}") / "case", incident(kind))
        out[kind] = connect(path)
    return out

