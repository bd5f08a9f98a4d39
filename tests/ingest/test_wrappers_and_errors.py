"""Wrappers (CRI, docker json-file, journald, syslog), compression, damage, empty files, and the error paths."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import Case, ingest
from workbench.errors import BadLine, InputError

ROOT = Path(__file__).resolve().parents[2]


def _one(tmp_path, path, **kw):
    f = ingest(tmp_path / "case", [path], **kw).to_dict()["files"][0]
    assert f["balanced"], f
    return f


@pytest.mark.parametrize(
    "name, fmt, wrappers, skipped",
    [
        ("cri-registry-json.log", "registry-json", ["cri"], {"cri:partial_joined": 3}),
        ("docker-json-registry-text.log", "registry-text", ["docker-json"], {"docker-json:partial_joined": 2}),
        ("journald-json-registry-text.log", "registry-text", ["journald-json"], {}),
        ("journald-cat-registry-text.log", "registry-text", [], {}),
        ("syslog5424-registry-text.log", "registry-text", ["syslog"], {}),
        ("syslog-iso-registry-json.log", "registry-json", ["syslog"], {}),
        ("registry-json.log.gz", "registry-json", [], {}),
        ("registry-text.log.zst", "registry-text", [], {}),
    ],
)
def test_wrapped_real_lines_give_the_same_rows(tmp_path, fixtures, name, fmt, wrappers, skipped):
    f = _one(tmp_path, fixtures / "wrapped" / name)
    assert (f["format"], f["wrappers"], f["skipped"]) == (fmt, wrappers, skipped)
    # the first 12 captured lines: 4 startup events, 4 app completions, 4 access lines
    assert f["rows"] == {"requests": 8, "log_events": 4} and f["rejects"] == 0
    con = Case(tmp_path / "case").connect()
    # the joined pieces are the whole line again: its request is read in full
    ua = con.sql("SELECT count(*) FROM requests WHERE client = 'skopeo' AND status = 404 AND layer = 'registry' "
                 "AND error_code = 'BLOB_UNKNOWN' AND repository = 'team/sub/app'").fetchall()[0][0]
    assert ua == 2
    if wrappers == ["journald-json"]:
        inst = con.sql("SELECT DISTINCT instance FROM requests WHERE layer = 'registry-access'").fetchall()
        assert inst == [("node1",)]


def test_truncated_gzip_keeps_rows_and_reports_damage(tmp_path, fixtures):
    f = _one(tmp_path, fixtures / "wrapped" / "registry-json-truncated.log.gz")
    assert "truncated" in f["damage"]
    assert f["rows"] == {"requests": 4, "log_events": 4}
    assert f["rejects"] == 1  # the line cut by the damage


def test_empty_and_blank_files(tmp_path, fixtures):
    f = _one(tmp_path, fixtures / "wrapped" / "empty.log")
    assert f["lines"] == 0 and f["rows"] == {} and f["format"] == "empty"
    f = ingest(tmp_path / "case2", [fixtures / "wrapped" / "blank-lines.log"]).to_dict()["files"][0]
    assert f["lines"] == 4 and f["skipped"] == {"blank": 4} and f["balanced"]


def test_wrong_format_is_one_clear_error(tmp_path, fixtures):
    s = ingest(tmp_path / "case", [fixtures / "registry" / "zot.log"], format="registry-text").to_dict()
    f = s["files"][0]
    assert f["status"] == "error" and f["rejects"] == 0
    assert "look like registry-text" in f["error"] and "zot.log" in f["error"]
    with pytest.raises(InputError, match="unknown format 'nope'"):
        ingest(tmp_path / "case", [fixtures / "registry" / "zot.log"], format="nope")


def test_on_bad_line_raise_names_file_and_line(tmp_path, fixtures):
    path = fixtures / "registry" / "zot.log"
    with pytest.raises(BadLine) as exc:
        ingest(tmp_path / "case", [path], on_bad_line="raise")
    assert exc.value.line_no == 6 and f"{path}:6:" in str(exc.value)
    assert "no readable time" in str(exc.value)


ONE_LINE_ONE_ROW = {"registry-json", "registry-text", "gitlab-registry", "zot", "harbor", "nginx-combined",
                    "nginx-json", "haproxy-http"}


def test_one_folder_of_every_format_reconciles_via_cli(tmp_path, fixtures):
    out = subprocess.run(
        [sys.executable, "-m", "workbench", "ingest", str(tmp_path / "case"), str(fixtures), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    d = json.loads(out.stdout)
    t = d["totals"]
    assert t["errors"] == 0, [f["error"] for f in d["files"] if f["error"]]
    for f in d["files"]:
        assert f["lines"] == f["used_lines"] + f["rejects"] + f["skipped_total"], f
        if f["format"] in ONE_LINE_ONE_ROW:
            assert f["rows_total"] == f["used_lines"], f  # every request-log row comes from one line
    assert t["lines"] == t["used_lines"] + t["rejects"] + t["skipped"] and t["balanced"]
    formats = {f["format"] for f in d["files"]}
    assert {"registry-json", "registry-text", "gitlab-registry", "zot", "harbor", "empty"} <= formats
    wrappers = {w for f in d["files"] for w in f["wrappers"]}
    assert {"cri", "docker-json", "journald-json", "syslog"} <= wrappers
    con = Case(tmp_path / "case").connect()
    n_req = con.sql("SELECT count(*) FROM requests").fetchall()[0][0]
    n_ev = con.sql("SELECT count(*) FROM log_events").fetchall()[0][0]
    n_rej = con.sql("SELECT count(*) FROM rejects").fetchall()[0][0]
    from workbench import schema

    n_all = sum(con.sql(f'SELECT count(*) FROM "{tb}"').fetchall()[0][0] for tb in schema.TABLES if tb != "rejects")
    assert n_req > 0 and n_ev > 0 and n_all == t["rows"] and n_rej == t["rejects"]


def test_cri_partial_line_joined_across_block_boundary(fixtures):
    import pyarrow as pa

    from workbench.case import new_connection
    from workbench.ingest.base import Context
    from workbench.ingest.wrappers import CRI, as_block

    texts = (fixtures / "wrapped" / "cri-registry-json.log").read_text().splitlines()
    cut = next(i for i, t in enumerate(texts) if " P " in t[:40]) + 1  # block ends right after a P piece
    ctx = Context(con=new_connection(), source_file="cri")

    def block(lo, hi):
        return as_block(pa.table({"line_no": pa.array(range(lo + 1, hi + 1), pa.int64()),
                                  "text": pa.array(texts[lo:hi], pa.string())}))

    first = CRI().unwrap(ctx, block(0, cut), final=False)
    assert first.held_back >= 1 and first.rejects.num_rows == 0
    carry = block(cut - first.held_back, cut)
    second = CRI().unwrap(ctx, pa.concat_tables([carry, block(cut, len(texts))]), final=True)
    whole = first.lines.column("text").to_pylist() + second.lines.column("text").to_pylist()
    assert len(whole) == 12
    assert whole == (fixtures / "registry" / "real" / "distribution-2.8.2-json.log").read_text().splitlines()[:12]
