"""Every ``engram`` command (sub-apps included) has help text and a section in
docs/cli.md; every ``ENGRAM_*`` variable the code reads is listed in docs/config.md.

Adding a command or an environment variable without documenting it fails here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from engramdb.adapters.cli import app

ROOT = Path(__file__).resolve().parents[1]
CLI_DOC = (ROOT / "docs" / "cli.md").read_text()
CONFIG_DOC = (ROOT / "docs" / "config.md").read_text()


def walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(name path, click command) for every group and command under ``command``."""
    if path:
        yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from walk(sub, (*path, name))


COMMANDS = list(walk(typer.main.get_command(app)))
NAMES = [" ".join(path) for path, _ in COMMANDS]


def test_the_walk_sees_nested_commands() -> None:
    assert {"recall", "ingest", "check", "bench", "bench core"} <= set(NAMES)
    assert len(NAMES) >= 20


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=NAMES)
def test_command_has_help_and_docs(path: tuple[str, ...], command: Any) -> None:
    name = " ".join(path)
    assert (command.help or "").strip(), f"`engram {name}` has no help text"
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output
    assert f"`engram {name}`" in CLI_DOC, f"`engram {name}` is missing from docs/cli.md"


def test_docs_name_no_command_that_does_not_exist() -> None:
    documented = set(re.findall(r"^#+ `engram ([a-z -]+)`", CLI_DOC, flags=re.MULTILINE))
    assert documented, "docs/cli.md has no `engram ...` headings"
    assert documented <= set(NAMES), documented - set(NAMES)


def env_vars() -> set[str]:
    found: set[str] = set()
    for path in [*(ROOT / "src" / "engramdb").rglob("*.py"), ROOT / "engram"]:
        found.update(re.findall(r"\bENGRAM_[A-Z_]+\b", path.read_text()))
    return found


def test_every_environment_variable_is_documented() -> None:
    names = env_vars()
    assert {"ENGRAM_STORE", "ENGRAM_NAMESPACE"} <= names
    missing = sorted(n for n in names if f"`{n}`" not in CONFIG_DOC)
    assert not missing, f"add these to docs/config.md: {missing}"
