import pyarrow.parquet as pq

from workbench import Case, ingest
from workbench.compact import compact
from workbench.synth import Scenario, generate


def _snapshot(con):
    return con.sql(
        "SELECT count(*), count(DISTINCT (source_file, line_no)), sum(line_no), min(ts), max(ts), "
        "round(sum(duration_s), 6), count(DISTINCT date) FROM requests"
    ).fetchall()[0]


def test_compaction_keeps_rows_and_makes_big_sorted_files(tmp_path):
    files = []
    for i in range(5):
        generate(tmp_path / f"in{i}", Scenario(requests=3000, seed=i))
        files.append(tmp_path / f"in{i}" / "registry.json.log")
    case = tmp_path / "case"
    ingest(case, files)
    before = _snapshot(Case(case).connect())
    n_before = len(list((case / "parquet" / "requests").rglob("*.parquet")))
    s = compact(case)
    after_files = sorted((case / "parquet" / "requests").rglob("*.parquet"))
    assert n_before >= 5 and len(after_files) == 1 and s.files_before > s.files_after  # one or more per input
    assert _snapshot(Case(case).connect()) == before
    t = pq.read_table(after_files[0])
    assert str(t.schema.field("ts").type) == "timestamp[us, tz=UTC]" and "date" not in t.column_names
    ts = t.column("ts").to_pylist()
    assert ts == sorted(ts)
    # ingest stays idempotent after compaction
    again = ingest(case, files[:1]).to_dict()
    assert again["files"][0]["status"] == "already ingested"
    assert _snapshot(Case(case).connect()) == before
