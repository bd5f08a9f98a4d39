"""Crash safety, full disk and concurrency of the case store, with real processes and real signals."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench import Case
from workbench.synth import Scenario, generate

ROOT = Path(__file__).resolve().parent.parent
N_FILES = 6
LINES = 12_000


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("inputs")
    files = []
    for i in range(N_FILES):
        generate(d / f"g{i}", Scenario(requests=LINES, seed=100 + i))
        files.append(d / f"g{i}" / "registry.json.log")
    return files


def _cmd(case: Path, files: list[Path]) -> list[str]:
    return [sys.executable, "-m", "workbench", "ingest", str(case), *map(str, files), "--json"]


def _per_file(case: Path) -> dict[str, tuple]:
    con = Case(case).connect()
    rows = con.sql(
        "SELECT source_file, count(*), count(DISTINCT line_no), sum(line_no), min(ts), max(ts) "
        "FROM requests GROUP BY 1 ORDER BY 1"
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def _run(args, **kw):
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, **kw)


def test_kill_9_at_many_points_then_rerun(tmp_path, inputs):
    ref_case = tmp_path / "ref"
    t0 = time.monotonic()
    done = _run(_cmd(ref_case, inputs))
    duration = time.monotonic() - t0
    assert done.returncode == 0, done.stderr
    reference = _per_file(ref_case)
    assert len(reference) == N_FILES and all(v[0] == LINES for v in reference.values())

    points = 20
    survived = 0
    partial_seen = 0
    for k in range(points):
        case = tmp_path / f"kill{k}"
        proc = subprocess.Popen(_cmd(case, inputs), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.4 + duration * k / points)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        if (case / "case.duckdb").exists():
            state = _per_file(case)
            # a file is there entirely or not at all; no duplicate line
            for src, (n, distinct, *_rest) in state.items():
                assert n == distinct == LINES, (k, src, n, distinct)
                assert state[src] == reference[src]
            if 0 < len(state) < N_FILES:
                partial_seen += 1
        rerun = _run(_cmd(case, inputs))
        assert rerun.returncode == 0, rerun.stderr
        assert _per_file(case) == reference
        survived += 1
    assert survived == points
    # the kills really landed in the middle of multi-file ingests
    assert partial_seen >= 3


def test_full_disk_leaves_case_as_it_was(tmp_path, inputs):
    case = tmp_path / "case"
    assert _run(_cmd(case, inputs[:1])).returncode == 0
    before = _per_file(case)
    # a file-size limit makes the next Parquet write fail like a full disk
    limited = _run(["bash", "-c", "ulimit -f 100; exec " + " ".join(_cmd(case, inputs[1:3]))])
    assert limited.returncode == 2
    lines = [ln for ln in limited.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "out of space" in lines[0] and "case is as it was" in lines[0]
    assert "Traceback" not in limited.stderr
    assert _per_file(case) == before
    assert _run(_cmd(case, inputs[1:3])).returncode == 0
    assert len(_per_file(case)) == 3


def test_two_ingests_at_once_and_a_reader(tmp_path, inputs):
    case = tmp_path / "case"
    a = subprocess.Popen(_cmd(case, inputs[:3]), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    b = subprocess.Popen(_cmd(case, inputs[3:]), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = set()
    deadline = time.monotonic() + 120
    while (a.poll() is None or b.poll() is None) and time.monotonic() < deadline:
        if (case / "case.duckdb").exists():
            try:
                counts = _per_file(case)
            except Exception as exc:  # a reader must never fail because an ingest is running
                pytest.fail(f"reader failed during ingest: {exc}")
            # every file seen is complete: readers see whole ingests, never half of one
            assert all(v[0] == LINES for v in counts.values())
            seen.add(len(counts))
        time.sleep(0.05)
    out_a, err_a = a.communicate(timeout=60)
    out_b, err_b = b.communicate(timeout=60)
    assert a.returncode == 0, err_a
    assert b.returncode == 0, err_b
    assert "lock" not in (err_a + err_b).lower()
    final = _per_file(case)
    assert len(final) == N_FILES and all(v[0] == LINES for v in final.values())
    assert len(seen) >= 2  # the reader saw the case grow while ingests ran


def test_busy_case_fails_clearly_when_asked_not_to_wait(tmp_path, inputs):
    case = tmp_path / "case"
    a = subprocess.Popen(_cmd(case, inputs), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.8)
        b = _run(_cmd(case, inputs[:1]) + ["--wait", "0"])
        if a.poll() is None:
            assert b.returncode == 2
            assert b.stderr.strip().startswith("error:") and "another ingest is writing this case" in b.stderr
    finally:
        a.wait(timeout=120)


def test_case_path_with_quotes_and_semicolons(tmp_path, fixtures):
    from workbench import ingest

    odd = tmp_path / "it's; DROP TABLE requests; --" / ".." / "case 'x'"
    ingest(odd, [fixtures / "registry" / "distribution-json.log"])
    con = Case(odd).connect()
    assert con.sql("SELECT count(*) FROM requests").fetchall()[0][0] == 5
    assert Case(odd).path.is_dir() and Case(odd).path.name == "case 'x'"


def test_a_catalog_being_created_is_never_seen_half_made(tmp_path, inputs):
    """A new case's case.duckdb appears only once its tables exist; what a killed creation left is removed."""
    case = tmp_path / "case"
    case.mkdir()
    (case / ".case.duckdb.4242.new").write_bytes(b"half a catalog")
    (case / ".case.duckdb.4242.new.wal").write_bytes(b"")
    assert _run(_cmd(case, inputs[:1])).returncode == 0
    assert sorted(p.name for p in case.iterdir() if p.name.startswith(".case.duckdb")) == []
    assert len(_per_file(case)) == 1
