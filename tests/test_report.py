"""The report path: every notebook in notebooks/ run by papermill over a generated case, the appendix it
exports (self-contained, rendered in headless Chromium with the network blocked, byte-identical on a rerun,
redacted), and the errors a user sees for bad parameters and failing cells."""

import ast
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import polars as pl
import pytest
FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from workbench import ingest
from workbench.errors import ParameterError, ReportError
from workbench.export.report import default_notebooks_dir, discover, parse_assignments, run_report
from workbench.export.weekly import run_weekly, week_bounds
from workbench.synth import Scenario, generate, preset

ROOT = Path(__file__).resolve().parent.parent
CORPUS = json.loads((FIXTURES.parent / "secrets" / "corpus.json").read_text())


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    # an incident (a client flood), so every chart the notebooks draw has something in it
    generate(root / "raw", preset("abusive_client", requests=4000, seed=5))
    ingest(root / "case", [root / "raw" / "registry.json.log"])
    return root / "case"


@pytest.fixture(scope="module")
def two_reports(case, tmp_path_factory):
    """The real notebooks, run twice over the same case into two folders."""
    outs = []
    for name in ("a", "b"):
        out = tmp_path_factory.mktemp("appendix") / name
        index = run_report(case, out=out, params={"incident_id": "INC-7"})
        assert index == out / "index.html"
        outs.append(out)
    return outs


def tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def notebook(path: Path, *cells: str, params: str = 'case_path = ""\nappendix_dir = ""') -> Path:
    nb = new_notebook(cells=[new_code_cell(params, metadata={"tags": ["parameters"]}),
                             new_markdown_cell("# A test notebook"), *(new_code_cell(c) for c in cells)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


# ---- the notebooks themselves -----------------------------------------------------------------------

@pytest.mark.parametrize("nb_path", discover(), ids=lambda p: p.name)
def test_notebook_is_thin_clean_and_parametrised(nb_path):
    nb = nbformat.read(nb_path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")  # a title in Markdown may come before it
    assert "parameters" in first.metadata.get("tags", []), "the first code cell is the parameters cell"
    for stmt in ast.parse(first.source).body:
        assert isinstance(stmt, ast.Assign), f"parameters cell holds assignments only: {ast.unparse(stmt)}"
        ast.literal_eval(stmt.value)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, "committed without outputs"
            for node in ast.walk(ast.parse(cell.source)):
                assert not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)), "no def/class"


def test_every_notebook_ran_and_the_appendix_holds_its_parts(two_reports, case):
    out = two_reports[0]
    names = [p.stem for p in discover()]
    assert sorted(p.stem for p in (out / "notebooks").glob("*.ipynb")) == names
    for stem in names:
        nb = nbformat.read(out / "notebooks" / f"{stem}.ipynb", as_version=4)
        assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code" and c.source.strip())
        assert not any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    for t in (out / "tables").glob("*.parquet"):
        if pl.read_parquet(t).width:  # a table with no columns is an empty CSV file
            assert pl.read_csv(t.with_suffix(".csv"), infer_schema=False).height == pl.read_parquet(t).height
    ledger = pl.read_csv(out / "tables" / "ingest_ledger.csv")
    n = sum(1 for _ in open(case.parent / "raw" / "registry.json.log"))  # ordinary traffic plus the flood
    assert n > 4000 and ledger["lines"].to_list() == [n] and ledger["rows"].to_list() == [n]
    assert (out / "images" / "requests_per_minute.svg").read_text().startswith("<svg")
    html = (out / "index.html").read_text()
    assert "Post-mortem appendix: INC-7" in html
    assert html.index('id="impact"') < html.index('id="timeline"') < html.index('id="evidence"') \
        < html.index('id="contributing"')
    assert f"{n:,} requests" in html[html.index('id="impact"'):html.index('id="timeline"')]
    assert "2026-11-23 06:00" in html  # stamped with incident time
    dd = pl.read_csv(out / "data-dictionary.csv")
    assert {"requests", "rejects"} <= set(dd["table"]) and "duration_s" in set(dd["column"])
    md = (out / "appendix.md").read_text()
    assert "![" in md and "(images/requests_per_minute.svg)" in md and "## Impact" in md


def test_two_reports_of_one_case_are_byte_identical(two_reports):
    a, b = (tree(d) for d in two_reports)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []


class Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [(tag, k, v) for k, v in attrs if k in ("src", "href", "xlink:href", "action", "data", "poster")]


def test_appendix_references_no_remote_url(two_reports):
    html = (two_reports[0] / "index.html").read_text()
    p = Refs()
    p.feed(html)
    remote = [r for r in p.refs if re.match(r"(?i)\s*(https?:)?//", r[2] or "")]
    assert remote == []
    assert "script" not in p.tags and "link" not in p.tags and "iframe" not in p.tags
    assert not re.search(r"(?i)@import|url\(\s*['\"]?(https?:)?//", html)


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]


@pytest.mark.browser
def test_appendix_renders_every_chart_in_chromium_offline(two_reports):
    from playwright.sync_api import sync_playwright

    out = two_reports[0]
    n_charts = len(list((out / "images").glob("*.svg")))
    assert n_charts >= 1
    attempted = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()

            def gate(route):
                url = route.request.url
                if url.startswith("file://"):
                    route.continue_()
                else:
                    attempted.append(url)
                    route.abort()

            page.route("**/*", gate)
            page.on("request", lambda r: None if r.url.startswith("file://") else attempted.append(r.url))
            page.goto((out / "index.html").as_uri(), wait_until="load")
            marks = page.evaluate("""() => [...document.querySelectorAll('figure.chart')].map(f => {
                const svg = f.querySelector('svg');
                const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
                return {marks: svg ? svg.querySelectorAll('.role-mark path, .role-mark rect, .role-mark line, '
                                                           + '.role-mark text, .role-mark circle').length : 0,
                        w: box.width, h: box.height};
            })""")
            title = page.title()
        finally:
            browser.close()
    assert attempted == []
    assert title.startswith("Post-mortem appendix")
    assert len(marks) == n_charts
    small = [m for m in marks if not (m["marks"] > 0 and m["w"] > 100 and m["h"] > 50)]
    assert not small, (small, len(marks))


# ---- parameters and failures ------------------------------------------------------------------------

def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_unknown_parameter_fails_with_a_clear_message_before_running(case, tmp_path):
    r = run_cli("report", str(case), "--out", str(tmp_path / "out"), "-p", "manifest_slo=250")
    assert r.returncode == 2
    assert "no notebook declares a parameter named 'manifest_slo'" in r.stderr
    assert "manifest_slo_ms" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


def test_mistyped_parameter_fails(case, tmp_path):
    r = run_cli("report", str(case), "--out", str(tmp_path / "out"), "-p", "manifest_slo_ms=fast")
    assert r.returncode == 2 and "manifest_slo_ms = 200" in r.stderr and "int" in r.stderr
    with pytest.raises(ParameterError, match="NAME=VALUE"):
        parse_assignments(["oops"])
    with pytest.raises(ParameterError, match="not an ISO time"):
        run_report(case, start="monday", out=tmp_path / "o")


def test_failing_notebook_names_the_cell_and_keeps_the_executed_notebook(case, tmp_path):
    nbs = tmp_path / "nbs"
    notebook(nbs / "01-ok.ipynb", "x = 1")
    notebook(nbs / "02-broken.ipynb", "ratio = 1", "ratio = ratio / 0", "never = True")
    with pytest.raises(ReportError) as ei:
        run_report(case, out=tmp_path / "out", notebooks_dir=nbs)
    msg = str(ei.value)
    assert "02-broken.ipynb" in msg and "ratio = ratio / 0" in msg and "ZeroDivisionError" in msg
    assert "cell 4 (In [4]: ratio = ratio / 0)" in msg  # parameters, title, ratio = 1, then this one
    kept = tmp_path / "out.failed" / "02-broken.ipynb"
    assert str(kept) in msg
    nb = nbformat.read(kept, as_version=4)
    assert any(o.get("ename") == "ZeroDivisionError" for c in nb.cells for o in c.get("outputs", []))
    assert not (tmp_path / "out").exists()


# ---- redaction end to end ---------------------------------------------------------------------------

def test_no_secret_reaches_any_exported_file(case, tmp_path):
    lines = [c["line"] for c in CORPUS] + ["top talker 203.0.113.66 with 900 requests"]
    nbs = tmp_path / "nbs"
    notebook(
        nbs / "01-leaky.ipynb",
        "import polars as pl\nimport altair as alt\nfrom workbench.export import publish",
        f"lines = {lines!r}\nprint(lines)\nlines",
        "df = pl.DataFrame({'line': lines, 'remote_ip': ['203.0.113.66'] * len(lines), 'n': list(range(len(lines)))})\n"
        "publish.table(df, 'leaky_lines', 'lines with secrets: ' + lines[0], appendix_dir)",
        "publish.chart(alt.Chart(df.head(5)).mark_bar().encode(y='line:N', x='n:Q'), 'leaky_chart', lines[5], appendix_dir)",
        "publish.finding(' '.join(lines), 'leaky_finding', section='evidence:client', appendix_dir=appendix_dir)",
        "raise_here = lines[-1]",
    )
    out = tmp_path / "out"
    run_report(case, out=out, notebooks_dir=nbs, ip_key="test-key")
    files = tree(out)
    assert {"tables/leaky_lines.csv", "tables/leaky_lines.parquet", "images/leaky_chart.svg", "index.html",
            "appendix.md", "notebooks/01-leaky.ipynb", "charts/leaky_chart.vl.json"} <= files.keys()
    for item in CORPUS:
        secret = item["secret"].encode()
        leaks = [name for name, data in files.items() if secret in data]
        if not leaks:  # Parquet pages are compressed: read the table back too
            leaks = [n for n in files if n.endswith(".parquet") and item["secret"] in str(pl.read_parquet(out / n).rows())]
        assert leaks == [], f"{item['kind']} leaked into {leaks}"
    assert not [n for n, d in files.items() if b"203.0.113.66" in d]
    table = pl.read_parquet(out / "tables" / "leaky_lines.parquet")
    pseudonym = table["remote_ip"][0]
    assert pseudonym.startswith("ip-") and table["remote_ip"].n_unique() == 1
    assert pseudonym in (out / "index.html").read_text() and "IP addresses pseudonymised" in files["index.html"].decode()
    html = files["index.html"].decode()
    assert "<h3>client</h3>" in html  # filed under its failure domain


# ---- weekly ------------------------------------------------------------------------------------------

def test_week_bounds():
    s, e = week_bounds("2026-W48")
    assert (s.isoformat(), e.isoformat()) == ("2026-11-23T00:00:00+00:00", "2026-11-30T00:00:00+00:00")
    s, _ = week_bounds("2026-W48", "Europe/Berlin")
    assert s.isoformat() == "2026-11-22T23:00:00+00:00"
    with pytest.raises(ParameterError):
        week_bounds("2026-48")
    with pytest.raises(ParameterError):
        week_bounds("2026-W54")


def test_weekly_appends_the_week_and_keeps_earlier_reports(tmp_path):
    raw = tmp_path / "raw"
    generate(raw, Scenario(requests=500, seed=9))
    nbs = tmp_path / "nbs"
    notebook(nbs / "01-weekly-review.ipynb",
             "from workbench import Case\nfrom workbench.export import publish",
             "n = Case(case_path).connect().sql(f\"SELECT count(*) FROM requests WHERE ts >= '{start}' AND ts < '{end}'\")"
             ".fetchall()[0][0]",
             "publish.finding(f'{week}: {n} requests from {start} to {end}', 'week', 'impact', appendix_dir)",
             params='case_path = ""\nstart = ""\nend = ""\nweek = ""\nappendix_dir = ""')
    notebook(nbs / "02-other.ipynb", "assert False, 'only the weekly notebook runs'")
    case = tmp_path / "case"
    w48 = run_weekly(case, "2026-W48", inputs=[raw / "registry.json.log"], notebooks_dir=nbs)
    w47 = run_weekly(case, "2026-W47", notebooks_dir=nbs)
    assert w48 == case / "reports" / "2026-W48" / "index.html" and w48.exists() and w47.exists()
    assert "2026-W48: 500 requests from 2026-11-23T00:00:00Z to 2026-11-30T00:00:00Z" in w48.read_text()
    assert "2026-W47: 0 requests" in w47.read_text()
    index = (case / "reports" / "index.html").read_text()
    assert index.index("2026-W48") < index.index("2026-W47")


def test_default_notebooks_are_the_repository_notebooks():
    assert default_notebooks_dir() == ROOT / "notebooks"
    assert discover()[0].name == "01-overview.ipynb"
