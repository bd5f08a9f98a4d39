import pyarrow.parquet as pq

from workbench import Case, ingest


def test_registry_json_fixture(tmp_path, fixtures):
    summary = ingest(tmp_path / "case", [fixtures / "registry" / "distribution-json.log"]).to_dict()
    f = summary["files"][0]
    assert f["format"] == "registry-json"
    assert f["balanced"] and f["lines"] == 11
    assert f["rows"] == {"requests": 5, "log_events": 3}
    assert f["rejects"] == 2 and f["skipped"] == {"blank": 1}
    con = Case(tmp_path / "case").connect()
    rows = con.sql(
        "SELECT layer, route, repository, reference, status, duration_s, remote_ip, client, error_code "
        "FROM requests ORDER BY line_no"
    ).fetchall()
    assert rows[0][:2] == ("registry", "base") and abs(rows[0][5] - 0.00085) < 1e-12
    assert rows[1][0] == "registry-access" and rows[1][6] == "127.0.0.2"
    assert rows[2][1:5] == ("manifest", "library/app", "missing", 404) and rows[2][8] == "MANIFEST_UNKNOWN"
    assert rows[3][1] == "blob_upload" and abs(rows[3][5] - 111.900179248) < 1e-9 and rows[3][7] == "docker"
    kinds = dict(con.sql("SELECT message, kind FROM log_events").fetchall())
    assert kinds["error resolving upstream: s3aws: SlowDown: Please reduce your request rate."] == "storage_error"
    rej = con.sql("SELECT line_no, reason FROM rejects ORDER BY line_no").fetchall()
    assert [r[0] for r in rej] == [10, 11]


def test_same_file_twice_adds_nothing(tmp_path, fixtures):
    src = fixtures / "registry" / "distribution-json.log"
    ingest(tmp_path / "case", [src])
    again = ingest(tmp_path / "case", [src]).to_dict()
    assert again["files"][0]["status"] == "already ingested"
    con = Case(tmp_path / "case").connect()
    assert con.sql("SELECT count(*) FROM requests").fetchall()[0][0] == 5


def test_parquet_layout_is_utc_microseconds_and_sorted(tmp_path, fixtures):
    ingest(tmp_path / "case", [fixtures / "registry" / "distribution-json.log"])
    files = sorted((tmp_path / "case" / "parquet" / "requests").rglob("*.parquet"))
    assert files and all(f.parent.name.startswith("date=") for f in files)
    for f in files:
        t = pq.read_table(f)
        assert str(t.schema.field("ts").type) == "timestamp[us, tz=UTC]"
        assert "date" not in t.column_names
        ts = t.column("ts").to_pylist()
        assert ts == sorted(ts)
        assert pq.ParquetFile(f).metadata.row_group(0).column(0).compression == "ZSTD"


def test_identical_scrapes_with_different_times_in_their_names_both_count(tmp_path, fixtures):
    body = (fixtures / "prometheus" / "metrics-20261128T125850Z.prom").read_bytes()
    a = tmp_path / "metrics-reg1-20261128T130000Z.prom"
    b = tmp_path / "metrics-reg1-20261128T130015Z.prom"
    a.write_bytes(body)
    b.write_bytes(body)
    d = ingest(tmp_path / "case", [a, b]).to_dict()
    assert [f["status"] for f in d["files"]] == ["ingested", "ingested"]
    again = ingest(tmp_path / "case", [b]).to_dict()
    assert again["files"][0]["status"] == "already ingested"
    con = Case(tmp_path / "case").connect()
    assert con.sql("SELECT count(DISTINCT ts) FROM metric_samples").fetchall()[0][0] == 2


def test_text_line_inside_a_json_registry_log_is_read(tmp_path, fixtures):
    # the real JSON-formatted registry writes its debug-server line in logrus text at some starts
    d = ingest(tmp_path / "case", [fixtures / "lab" / "registry-json.log"]).to_dict()["files"][0]
    assert d["format"] == "registry-json" and d["rejects"] == 0 and d["balanced"]
    con = Case(tmp_path / "case").connect()
    msg = con.sql("SELECT message FROM log_events WHERE line_no = 1").fetchall()
    assert msg and msg[0][0].startswith("debug server listening")
