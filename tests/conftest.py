from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "data" / "fixtures"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def registry_lab(tmp_path_factory):
    """The real registry stack (tests/lab/registry.py), run once per session; everything stopped on return.

    Set WORKBENCH_LAB_DIR to keep the lab's output somewhere you can look at it afterwards.
    """
    import os

    from tests.lab.registry import BINARIES, run_lab

    missing = [b for b in BINARIES if not Path(b).exists()]
    if missing:
        msg = f"the registry lab needs {', '.join(missing)} (installed by .ci/install)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    keep = os.environ.get("WORKBENCH_LAB_DIR")
    root = Path(keep) if keep else tmp_path_factory.mktemp("registry-lab")
    if keep and (root / "truth" / "timeline.json").exists():
        import shutil

        shutil.rmtree(root)
    return run_lab(root)


@pytest.fixture(scope="session")
def pg_lab(tmp_path_factory):
    """A real PostgreSQL 15 run (tests/lab/postgres.py): (folder of its logs and snapshots, the lab's truth)."""
    from tests.lab import postgres

    if not postgres.available():
        pytest.skip("PostgreSQL 15 binaries not found (.ci/install installs the postgresql package)")
    out = tmp_path_factory.mktemp("pglab")
    return out, postgres.capture(out)
