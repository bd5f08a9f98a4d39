"""End-to-end: everything the registry lab left, ingested into one case with `workbench.ingest`."""

from __future__ import annotations

import re

import pytest

from workbench import Case, ingest


@pytest.fixture(scope="session")
def lab_case(registry_lab, tmp_path_factory):
    """(case, {file name: file summary}): each instance's files ingested with that instance's name."""
    case = Case(tmp_path_factory.mktemp("lab-case") / "case")
    files: dict[str, list] = {}
    for f in sorted(p for p in registry_lab.out.rglob("*") if p.is_file()):
        m = re.search(r"(?:registry|nginx|gc|metrics)-(json|text)\b", f.name)
        files.setdefault(m.group(1) if m else "", []).append(f)
    summaries = {}
    for inst, paths in files.items():
        s = ingest(case, paths, instance=inst or None)
        summaries.update({f.source_file.rsplit("/", 1)[-1]: f for f in s.files})
    return case, summaries


@pytest.fixture(scope="session")
def lab_con(lab_case):
    con = lab_case[0].connect()
    yield con
    con.close()
