from __future__ import annotations

import pytest

from workbench.engine import connect
from workbench.synth import Scenario

from .cases import generated_case, make_case
from .handmade import KINDS, incident

#: Generator scenarios the tests run on: (name, scenario). Each one's ground_truth.json says what to find.
SCENARIOS = {
    "abusive_and_slow": Scenario(seed=7),
    "slow_only": Scenario(seed=11, abusive_client=False),
    "abusive_only": Scenario(seed=13, slow_window=None),
    "quiet": Scenario(seed=17, abusive_client=False, slow_window=None),
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
