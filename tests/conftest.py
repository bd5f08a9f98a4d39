from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "data" / "fixtures"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def pg_lab(tmp_path_factory):
    """A real PostgreSQL 15 run (tests/lab/postgres.py): (folder of its logs and snapshots, the lab's truth)."""
    from tests.lab import postgres

    if not postgres.available():
        pytest.skip("PostgreSQL 15 binaries not found (.ci/install installs the postgresql package)")
    out = tmp_path_factory.mktemp("pglab")
    return out, postgres.capture(out)
