"""The runnable examples in docs/examples/ run, as a user would start them."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "docs" / "examples"


@pytest.mark.parametrize(("script", "expect"), [
    ("langgraph_store.py", "where do I live? -> I live in Berlin"),
    ("openai_agents_tools.py", "recall ->"),
])
def test_example_runs(script: str, expect: str, tmp_path: pathlib.Path) -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLES / script)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OPENAI_API_KEY": ""})
    assert proc.returncode == 0, proc.stderr
    assert expect in proc.stdout, proc.stdout
