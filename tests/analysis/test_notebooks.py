"""Every notebook in notebooks/: thin (a literal `parameters` cell, no def or class), committed without
outputs, and executed by papermill against a generated case, handing its results to the appendix."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from workbench.synth import Scenario, preset

from .cases import generated_case, make_case
from .truth import expectations

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PARAMETERS = {"case_path": "cases/demo/case", "incident_id": "demo", "start": "", "end": "", "tz": "UTC",
              "engine": "duckdb", "manifest_slo_ms": 200, "push_mb_s": 500, "backend_share": 0.8, "appendix_dir": ""}


def test_there_are_notebooks():
    names = {p.name for p in NOTEBOOKS}
    assert {"02-latency.ipynb", "03-top-talkers.ipynb", "04-gc-and-locks.ipynb", "05-database-locks.ipynb",
            "06-failure-domain.ipynb", "07-weekly-review.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_thin_and_clean(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    first = code[0]
    assert "parameters" in first.metadata.get("tags", [])
    values = {}
    for stmt in ast.parse(first.source).body:
        assert isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant), ast.dump(stmt)
        values[stmt.targets[0].id] = stmt.value.value
    assert values == PARAMETERS
    for c in code:
        assert not c.outputs and c.execution_count is None, f"{path.name}: committed with outputs"
        for node in ast.walk(ast.parse(c.source)):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)), path.name
    assert any(c.cell_type == "markdown" for c in nb.cells)
    assert nb.metadata["kernelspec"]["name"] == "python3"


#: The generated incident each notebook runs on: the one whose injection it is about (a GC run's slow
#: manifests for the latency notebook, a flooding client for the top talkers), a quiet one otherwise.
CASES = {"02-latency.ipynb": preset("monday_gc", seed=7, requests=20_000),
         "03-top-talkers.ipynb": preset("abusive_client", seed=7, requests=20_000)}


@pytest.fixture(scope="module")
def incident_cases(tmp_path_factory):
    made: dict[str, tuple[Path, Path]] = {}

    def get(notebook: str) -> tuple[Path, Path]:
        sc = CASES.get(notebook, Scenario(seed=7))
        if sc.name not in made:
            made[sc.name] = generated_case(tmp_path_factory.mktemp(f"nb-{sc.name}"), sc)
        return made[sc.name]
    return get


@pytest.fixture(scope="module")
def empty_case(tmp_path_factory):
    return make_case(tmp_path_factory.mktemp("nb-empty") / "case", {"requests": []})


def _run(path: Path, case: Path, out: Path, monkeypatch) -> Path:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    appendix = out / "appendix"
    pm.execute_notebook(str(path), str(out / path.name), kernel_name="python3", cwd=str(ROOT), progress_bar=False,
                        parameters={"case_path": str(case), "incident_id": "test", "appendix_dir": str(appendix)})
    return appendix


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_an_incident(path, incident_cases, tmp_path, monkeypatch):
    case, truth = incident_cases(path.name)
    appendix = _run(path, case, tmp_path, monkeypatch)
    findings = {p.stem: json.loads(p.read_text())["text"] for p in (appendix / "findings").glob("*.json")}
    tables = {p.stem for p in (appendix / "tables").glob("*.parquet")}
    assert findings and tables, path.name
    exp = expectations(truth)
    if path.name.startswith("03-"):
        assert findings["top_talker"].startswith(exp.top_ip)
    if path.name.startswith("06-"):
        assert f"**{exp.verdict}**" in findings["failure_domain"]
    if path.name.startswith("02-"):
        assert "slow on manifest" in findings["latency_windows"]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_an_empty_case(path, empty_case, tmp_path, monkeypatch):
    appendix = _run(path, empty_case, tmp_path, monkeypatch)
    if path.name.startswith("06-"):
        text = json.loads((appendix / "findings" / "failure_domain.json").read_text())["text"]
        assert "**inconclusive**" in text
