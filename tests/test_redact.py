from pathlib import Path
import json

import polars as pl
import pytest
FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
from hypothesis import given
from hypothesis import strategies as st

from workbench.export.redact import KEY_ENV, MARK, Redactor

CORPUS = json.loads((FIXTURES.parent / "secrets" / "corpus.json").read_text())


@pytest.mark.parametrize("item", CORPUS, ids=[c["kind"] for c in CORPUS])
def test_every_secret_pattern_is_redacted_and_its_name_kept(item):
    out = Redactor().text(item["line"])
    assert item["secret"] not in out
    assert MARK in out


def test_ordinary_registry_text_is_left_alone():
    text = ('GET /v2/team1/service1/manifests/sha256:3f1c2b9a8d7e6f5a at 2026-11-23T06:29:38Z from 10.1.2.3 '
            'docker/24.0.7 go/go1.20.10 took 12.5ms; tags=latest')
    assert Redactor().text(text) == text


def test_ip_pseudonyms_are_keyed_and_consistent(monkeypatch):
    a, b = Redactor.from_key("k1"), Redactor.from_key("k2")
    assert a.text("203.0.113.66") == a.text("from 203.0.113.66:41234").split()[1].split(":")[0]
    assert a.text("203.0.113.66") != b.text("203.0.113.66")
    assert a.text("203.0.113.66").startswith("ip-") and "203.0.113.66" not in a.text("x 203.0.113.66 y")
    assert a.text("2001:db8::5") == a.text("2001:0db8:0:0:0:0:0:5")  # one address, one pseudonym
    monkeypatch.setenv(KEY_ENV, "k1")
    assert Redactor.from_key().text("203.0.113.66") == a.text("203.0.113.66")
    monkeypatch.delenv(KEY_ENV)
    assert Redactor.from_key().text("203.0.113.66") == "203.0.113.66"


def test_frame_redacts_strings_inside_lists_and_keeps_other_types():
    df = pl.DataFrame({"ip": ["203.0.113.66", None], "n": [1, 2], "urls": [[CORPUS[0]["line"]], []]})
    out = Redactor.from_key("k").frame(df)
    assert out.schema == df.schema and out["n"].to_list() == [1, 2]
    assert out["ip"][0].startswith("ip-") and out["ip"][1] is None
    assert CORPUS[0]["secret"] not in out["urls"][0][0]


@given(st.text(max_size=300))
def test_redaction_never_raises_and_is_idempotent(s):
    r = Redactor.from_key("k")
    once = r.text(s)
    assert r.text(once) == once
