"""The README's example runs, and its set-up commands are the ones CI uses."""

from __future__ import annotations

import pathlib
import re

import pytest

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


def runnable_blocks() -> list[str]:
    """Every python block, except those right after a ``<!-- not run ... -->`` note."""
    found = re.findall(r"(<!-- not run[^>]*-->\n)?```python\n(.*?)```", README, flags=re.S)
    return [code for note, code in found if not note]


def test_every_python_example_runs(tmp_path: pathlib.Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = runnable_blocks()
    assert len(blocks) >= len(python_blocks()) - 1  # at most one illustration is exempt
    monkeypatch.chdir(tmp_path)  # examples that open "x.engram" write here
    for index, block in enumerate(blocks):
        try:
            exec(compile(block, f"README.md python block {index + 1}", "exec"), {})
        except Exception as exc:  # name the block that failed
            raise AssertionError(
                f"README python block {index + 1} failed: {exc!r}\n{block}"
            ) from exc
