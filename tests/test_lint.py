"""The tree passes ``ruff check`` with the rules chosen in pyproject.toml.

ruff is a dev dependency (``pip install -e .[dev]``), so this test always runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_passes() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "src", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"ruff check failed:\n{proc.stdout}{proc.stderr}"


def test_ruff_uses_the_project_rules() -> None:
    # guards against the [tool.ruff.lint] table being dropped, leaving only ruff's defaults
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--show-settings", "src/engramdb/errors.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    for rule in ("line-too-long (E501)", "zip-without-explicit-strict (B905)", "print (T201)"):
        assert rule in proc.stdout, f"{rule} is not enabled:\n{proc.stdout[:2000]}"
