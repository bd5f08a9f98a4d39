"""Every notebook opened in a real JupyterLab, run from the Run menu in Chromium, on a real case.

Screenshots are kept in test-artifacts/browser/ for a person to look at.
"""

import re
import shutil
from pathlib import Path

import nbformat
import pytest

from workbench import ingest
from workbench.synth import Scenario, generate

from .jupyterlab import CHROMIUM, CHROMIUM_ARGS, have_browser, jupyterlab, run_notebook_in_lab, shutdown_kernels

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
ARTIFACTS = ROOT / "test-artifacts" / "browser"

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not have_browser(), reason="Debian chromium not installed")]


def _calls(nb, name: str) -> int:
    """publish.<name>( calls that always run (at the start of a line, not under an `if`)."""
    return sum(len(re.findall(rf"^publish\.{name}\(", c.source, re.M)) for c in nb.cells if c.cell_type == "code")


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory):
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    root = tmp_path_factory.mktemp("lab")
    raw = root / "raw"
    generate(raw, Scenario(requests=5000))
    case = root / "case"
    ingest(case, sorted(p for p in raw.iterdir() if p.suffix in (".log", ".prom", ".txt", ".csv")))
    for src in NOTEBOOKS:
        nb = parameterize_notebook(load_notebook_node(str(src)), {"case_path": str(case)})
        nbformat.write(nb, root / src.name)
    return root


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/NN-*.ipynb are missing"


@pytest.fixture(scope="module")
def browser_page(lab_root):
    from playwright.sync_api import sync_playwright

    with jupyterlab(lab_root) as (base, token), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        # nothing may leave the machine: any request not to the lab itself is refused and remembered
        outside: list[str] = []

        def guard(route):
            url = route.request.url
            if url.startswith(base) or url.startswith("data:") or url.startswith("blob:"):
                return route.continue_()
            outside.append(url)
            return route.abort()

        context.route("**/*", guard)
        yield context, base, token, outside
        context.close()
        browser.close()


@pytest.mark.parametrize("notebook", [p.name for p in NOTEBOOKS])
def test_notebook_runs_in_jupyterlab(browser_page, lab_root, notebook):
    context, base, token, outside = browser_page
    page = context.new_page()  # a page per notebook: leaving a notebook with unsaved outputs asks to confirm
    nb = nbformat.read(lab_root / notebook, as_version=4)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = str(ARTIFACTS / (Path(notebook).stem + ".png"))
    try:
        result = run_notebook_in_lab(page, base, token, notebook)
    finally:
        page.screenshot(path=shot, full_page=True)  # kept for a person to look at, failed or not
        page.close(run_before_unload=False)
        shutdown_kernels(base, token)
    assert result["tracebacks"] == 0 and not result["errors"], result
    assert result["code_cells"] == sum(1 for c in nb.cells if c.cell_type == "code")
    assert result["svg_charts"] >= _calls(nb, "chart"), result
    assert result["tables"] >= _calls(nb, "table"), result
    assert not outside, f"the page tried to reach {outside[:3]}"
    shutil.rmtree(lab_root / ".ipynb_checkpoints", ignore_errors=True)
