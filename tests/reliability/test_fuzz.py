"""Fuzzing every parser with mutated real-format lines: no exception escapes, and the ledger always adds up.

Seed lines come from the committed fixtures (real captures), grouped by the format each fixture is detected
as. Hypothesis mutates them (truncation, bit flips, binary garbage, invalid UTF-8, NUL bytes, CRLF, lines
of other formats mixed in, shuffled and duplicated lines, timestamps far in the past or future) with a fixed
seed; each case is ingested with the format forced and with detection. A file may be refused as a whole
with one clear error (e.g. "none of the first lines look like …"), never with a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from workbench import ingest
from workbench.case import new_connection
from workbench.ingest import derive
from workbench.ingest.base import Context
from workbench.ingest.catalog import detect
from workbench.ingest.source import LineReader, compression_of

FIXTURES = Path(__file__).resolve().parents[2] / "data" / "fixtures"
EXAMPLES = 300
CASES_RUN: list[int] = []


def _seed_lines() -> dict[str, list[str]]:
    by_format: dict[str, list[str]] = {}
    con = new_connection()
    derive.install(con)
    for path in sorted(FIXTURES.rglob("*")):
        if not path.is_file() or compression_of(path):
            continue
        head = LineReader(path, None).head()
        try:
            wrappers, fmt = detect(Context(con=con, source_file=str(path)), head)
        except Exception:
            continue
        if wrappers or fmt.name == "empty":
            continue
        lines = path.read_text(errors="replace").splitlines()[:40]
        by_format.setdefault(fmt.name, []).extend(lines)
    return by_format


SEEDS = _seed_lines()
FORMATS = sorted(SEEDS)


def _far_time(line: str, year: str) -> str:
    return re.sub(r"\b(19|20)\d\d-", f"{year}-", line, count=1)


@st.composite
def mutated_file(draw):
    fmt = draw(st.sampled_from(FORMATS))
    lines = list(SEEDS[fmt])
    k = draw(st.integers(1, min(len(lines), 25)))
    start = draw(st.integers(0, len(lines) - k))
    chosen = lines[start : start + k]
    ops = draw(st.lists(st.sampled_from(
        ["truncate", "bitflip", "garbage", "nul", "invalid_utf8", "crlf", "other_format", "shuffle",
         "duplicate", "far_past", "far_future", "blank", "long_line"]), max_size=4))
    data = [ln.encode() for ln in chosen]
    for op in ops:
        i = draw(st.integers(0, len(data) - 1)) if data else 0
        if op == "truncate" and data:
            data[i] = data[i][: draw(st.integers(0, max(0, len(data[i]) - 1)))]
        elif op == "bitflip" and data and data[i]:
            j = draw(st.integers(0, len(data[i]) - 1))
            data[i] = data[i][:j] + bytes([data[i][j] ^ (1 << draw(st.integers(0, 7)))]) + data[i][j + 1 :]
        elif op == "garbage":
            data.insert(i, draw(st.binary(min_size=1, max_size=200)).replace(b"\n", b" "))
        elif op == "nul" and data:
            data[i] = data[i] + b"\x00\x00" + data[i][:5]
        elif op == "invalid_utf8" and data:
            data[i] = data[i][:10] + b"\xff\xfe\xc3\x28" + data[i][10:]
        elif op == "crlf":
            data = [d + b"\r" for d in data]
        elif op == "other_format":
            other = draw(st.sampled_from(FORMATS))
            data.insert(i, draw(st.sampled_from(SEEDS[other])).encode())
        elif op == "shuffle":
            data = draw(st.permutations(data))
        elif op == "duplicate" and data:
            data.insert(i, data[i])
        elif op == "far_past" and data:
            data[i] = _far_time(data[i].decode(errors="replace"), "0001").encode()
        elif op == "far_future" and data:
            data[i] = _far_time(data[i].decode(errors="replace"), "9999").encode()
        elif op == "blank":
            data.insert(i, b"   ")
        elif op == "long_line":
            data.insert(i, b"x" * 100_000)
    return fmt, b"\n".join(data) + draw(st.sampled_from([b"", b"\n"]))


def _check(tmp_path: Path, body: bytes, fmt: str | None) -> None:
    tmp_path.mkdir(parents=True, exist_ok=True)
    src = tmp_path / "input.log"
    src.write_bytes(body)
    summary = ingest(tmp_path / "case", [src], format=fmt).to_dict()
    f = summary["files"][0]
    if f["status"] == "error":
        assert f["error"] and "\n" not in f["error"]
        return
    assert f["balanced"], f
    n_lines = body.count(b"\n") + (0 if body.endswith(b"\n") or not body else 1)
    assert f["lines"] == n_lines, (f["lines"], n_lines)


@seed(20261128)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(case=mutated_file(), forced=st.booleans())
def test_mutated_real_lines_never_break_a_parser(tmp_path_factory, case, forced):
    fmt, body = case
    _check(tmp_path_factory.mktemp("fz"), body, fmt if forced else None)
    CASES_RUN.append(1)


def test_fuzz_ran_every_format():
    # the generated cases above cover each seed format; this reports the count the note quotes
    assert len(FORMATS) >= 10, FORMATS
    assert len(CASES_RUN) in (0, EXAMPLES)  # 0 when run alone


def test_ten_megabyte_line_becomes_a_clipped_reject(tmp_path):
    seed_line = SEEDS["registry-json"][2]
    body = (seed_line + "\n" + "{" + "x" * (10 * 1024 * 1024) + "\n" + seed_line + "\n").encode()
    src = tmp_path / "big.log"
    src.write_bytes(body)
    d = ingest(tmp_path / "case", [src]).to_dict()["files"][0]
    assert d["balanced"] and d["lines"] == 3 and d["rejects"] == 1
    from workbench import Case

    raw = Case(tmp_path / "case").connect().sql("SELECT length(raw), raw LIKE '%[line was 10485761 characters]' FROM rejects").fetchall()
    assert raw[0][0] < 70_000 and raw[0][1]


@pytest.mark.parametrize("fmt", FORMATS)
def test_pure_binary_garbage_per_format(tmp_path, fmt):
    import random

    rnd = random.Random(fmt)
    body = bytes(rnd.getrandbits(8) for _ in range(5000))
    _check(tmp_path, body, fmt)
    _check(tmp_path / "auto", body, None)
