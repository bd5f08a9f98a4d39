import datetime as dt

import pytest

from workbench import Case, ingest
from workbench.analysis import overview
from workbench.errors import ParameterError
from workbench.synth import Scenario, generate

UTC = dt.UTC


@pytest.fixture(scope="module")
def con(tmp_path_factory):
    root = tmp_path_factory.mktemp("overview")
    generate(root / "raw", Scenario(requests=3000, seed=3))
    good = (root / "raw" / "registry.json.log").read_text().splitlines()
    broken = root / "raw" / "broken.json.log"
    broken.write_text("\n".join(good[:8] + ['{"level":"info","msg":"response completed","time":"not a time"}',
                                            "{truncated"]) + "\n")
    ingest(root / "case", [root / "raw" / "registry.json.log", broken])
    c = Case(root / "case").connect()
    yield c
    c.close()


def test_ledger_accounts_for_every_line(con):
    led = overview.ingest_ledger(con)
    assert led["file"].to_list() == sorted(led["file"].to_list())
    by = {f.rsplit("/", 1)[1]: r for f, r in zip(led["file"], led.iter_rows(named=True), strict=True)}
    assert by["registry.json.log"]["lines"] == 3000 and by["registry.json.log"]["rows"] == 3000
    assert by["broken.json.log"]["lines"] == 10 and by["broken.json.log"]["rejects"] == 2
    assert led["balanced"].all()


def test_spans_and_per_minute_match_the_generated_window(con):
    spans = {r["table"]: r for r in overview.table_spans(con).iter_rows(named=True)}
    assert spans["requests"]["rows"] == 3008 and spans["rejects"]["rows"] == 2
    assert spans["requests"]["first_ts"].astimezone(UTC) >= dt.datetime(2026, 11, 23, 6, tzinfo=UTC)
    assert spans["requests"]["last_ts"].astimezone(UTC) < dt.datetime(2026, 11, 23, 8, tzinfo=UTC)
    s, e = overview.window(con, "2026-11-23T06:30:00Z", "2026-11-23T07:00:00Z")
    m = overview.per_minute(con, s, e)
    assert m.height == 30 and m["errors_5xx"].sum() == 0
    direct = con.sql("SELECT count(*) FROM requests WHERE ts >= $s AND ts < $e", params={"s": s, "e": e}).fetchall()
    assert m["requests"].sum() == direct[0][0]
    text = overview.summary_text(overview.ingest_ledger(con), overview.table_spans(con), m, s, e)
    assert f"{direct[0][0]:,} requests" in text and "2 rejected line(s)" in text


def test_top_reject_reasons_point_at_the_first_bad_line(con):
    top = overview.top_reject_reasons(con)
    assert top["rejects"].sum() == 2
    assert all(f.split(":")[0].endswith("broken.json.log") for f in top["first_seen"])
    assert {int(f.rsplit(":", 1)[1]) for f in top["first_seen"]} <= {9, 10}


def test_window_parameters(con):
    s, e = overview.window(con, "2026-11-23T07:00:00", "", tz="Europe/Berlin")
    assert s == dt.datetime(2026, 11, 23, 6, tzinfo=UTC)
    with pytest.raises(ParameterError, match="not an ISO time"):
        overview.window(con, "yesterday", "")
    with pytest.raises(ParameterError, match="must be after"):
        overview.window(con, "2026-11-23T07:00:00Z", "2026-11-23T06:00:00Z")
