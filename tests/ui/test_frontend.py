"""The explorer's front-end logic (static/logic.mjs, api.mjs) under node's own test
runner, so ``./engram test`` covers it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _node() -> str:
    found = shutil.which("node")
    if found:
        return found
    if os.geteuid() == 0:  # CI runs as root: install Debian's node rather than skip
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "nodejs"], check=True, env=env)
        found = shutil.which("node")
        assert found, "installing nodejs gave no node binary"
        return found
    pytest.skip("node (18 or newer) is not installed and this user cannot install it:"
                " run `apt-get install nodejs` as root")


def test_front_end_logic_passes_node_test() -> None:
    proc = subprocess.run([_node(), "--test", "tests/ui/js/"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout and "# pass 0" not in proc.stdout, proc.stdout[-2000:]
