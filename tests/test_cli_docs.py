"""Every command has help text and a place in the README (as sqlite-utils checks its docs)."""

import re
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from workbench.cli import app

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
COMMANDS = sorted(get_command(app).commands)


def test_there_are_commands():
    assert {"demo", "ingest", "report", "weekly", "query", "formats"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_command_has_help_and_readme_entry(name):
    cmd = get_command(app).commands[name]
    assert cmd.help and len(cmd.help.strip()) > 20, f"{name} needs a help text"
    for p in cmd.params:
        if p.param_type_name == "option":
            assert p.help, f"{name} {p.opts[0]} needs a help text"
    result = CliRunner().invoke(app, [name, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output
    assert re.search(rf"`workbench {name}\b", README), f"README.md does not show `workbench {name}`"
