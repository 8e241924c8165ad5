"""The README's example runs, and its set-up commands are the ones CI uses."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_quick_start_runs() -> None:
    blocks = python_blocks()
    assert blocks, "README has no python example"
    quick = blocks[0]
    assert len([ln for ln in quick.splitlines() if ln.strip()]) <= 12
    exec(compile(quick, "README.md", "exec"), {})


def test_first_commands_are_demo_and_test() -> None:
    first_bash = re.search(r"```bash\n(.*?)```", README, flags=re.S)
    assert first_bash is not None
    commands = [ln.split("#")[0].strip() for ln in first_bash.group(1).splitlines() if ln.strip()]
    assert commands == ["./engram demo", "./engram test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./engram test" in ci
