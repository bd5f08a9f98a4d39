"""Any text fed to any format or wrapper yields rows + rejects + skips (+ held back) that add up, and never raises."""

from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.case import new_connection
from workbench.ingest import derive
from workbench.ingest.base import Context
from workbench.ingest.catalog import FORMATS
from workbench.ingest.wrappers import WRAPPERS, as_block

FIX = Path(__file__).resolve().parents[2] / "data" / "fixtures"
SAMPLES = [ln for p in sorted(FIX.rglob("*.log")) for ln in p.read_text(errors="replace").splitlines()][:400]

line = st.one_of(
    st.text(max_size=200),
    st.sampled_from(SAMPLES),
    st.builds(lambda s, i, j: s[:i] + s[j:], st.sampled_from(SAMPLES), st.integers(0, 400), st.integers(0, 400)),
    st.sampled_from(["", " ", "{}", "[]", "null", '{"time":1}', 'time="x" level=info msg=', "\x00", "\ufffd",
                     "2026-11-28T06:29:38Z stdout P ", '{"log":"x"}', "Nov 28 06:29:38 h p[1]: "]),
)
lines = st.lists(line.map(lambda s: s.replace("\n", " ").replace("\r", " ")), max_size=25)


def _block(texts: list[str]) -> pa.Table:
    return as_block(pa.table({"line_no": pa.array(range(1, len(texts) + 1), pa.int64()),
                              "text": pa.array(texts, pa.string())}))


def _ctx() -> Context:
    con = new_connection()
    derive.install(con)
    return Context(con=con, source_file="prop.log")


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=lines, final=st.booleans())
def test_format_accounts_for_every_line(fmt, texts, final):
    ctx = _ctx()
    res = fmt.parse(ctx, _block(texts), final)
    assert res.used_lines + res.n_rejects + sum(res.skipped.values()) + res.held_back == len(texts)
    # a row needs at least one line behind it, and used lines give rows (one each, or several lines one row
    # for multi-line records such as a GC run, or one line several rows such as an iostat device line)
    assert (sum(t.num_rows for t in res.tables.values()) > 0) == (res.used_lines > 0)


@pytest.mark.parametrize("wrapper", WRAPPERS, ids=[w.name for w in WRAPPERS])
@settings(max_examples=40, deadline=None)
@given(texts=lines, final=st.booleans())
def test_wrapper_accounts_for_every_line(wrapper, texts, final):
    res = wrapper().unwrap(_ctx(), _block(texts), final)
    assert res.lines.num_rows + res.rejects.num_rows + sum(res.skipped.values()) + res.held_back == len(texts)


@settings(max_examples=30, deadline=None)
@given(texts=lines)
def test_ingest_any_file_balances(tmp_path_factory, texts):
    from workbench.ingest.pipeline import ingest

    d = tmp_path_factory.mktemp("p")
    (d / "in.log").write_text("\n".join(texts))
    s = ingest(d / "case", [d / "in.log"]).to_dict()
    f = s["files"][0]
    assert f["status"] in ("ingested", "error")
    if f["status"] == "ingested":
        assert f["balanced"]
