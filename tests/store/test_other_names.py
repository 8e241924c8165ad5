"""A second writer through another name for the store (issue 9 item 11): a symlink,
a hard link, or the same path after ``<store>.lock`` was deleted.

Whatever the locking model lets it do (refuse it, or let both write), the end
is correct data and clear errors: every write either process acknowledged is in
the store exactly as acknowledged, ``check`` passes, and a write that fails says
why with its own code, never SQLite's raw text as a 500 ``engram_error``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from engramdb import EngramError, Memory

SECOND = textwrap.dedent(
    """
    import json, sys
    from engramdb import Memory
    from engramdb.errors import EngramError

    try:
        with Memory.open(sys.argv[1], embedder=None) as mem:
            for i in range(5):
                node = mem.remember(f"second {i}")
                print(json.dumps({"id": node.id, "text": node.text}), flush=True)
    except EngramError as exc:
        print(json.dumps({"code": exc.code, "message": str(exc)}), flush=True)
    """
)

#: the codes a refused or failed write may carry here (anything but the catch-all)
CLEAR = {"store_locked", "version_conflict", "read_only", "invalid_store_path"}


def _symlink(path: Path) -> Path:
    other = path.with_name("link.engram")
    other.symlink_to(path)
    return other


def _hard_link(path: Path) -> Path:
    other = path.with_name("hard.engram")
    os.link(path, other)
    return other


def _deleted_lock(path: Path) -> Path:
    Path(str(path) + ".lock").unlink(missing_ok=True)
    return path


@pytest.mark.parametrize("other_name", [_symlink, _hard_link, _deleted_lock],
                         ids=["symlink", "hard link", "deleted lock"])
def test_a_second_writer_by_another_name_ends_in_correct_data_and_clear_errors(
    tmp_path: Path, other_name: Callable[[Path], Path],
) -> None:
    path = tmp_path / "s.engram"
    acked: dict[str, str] = {}
    failures: list[str] = []
    mem = Memory.open(path, embedder=None)
    try:
        first = mem.remember("first 0")
        acked[first.id] = first.text
        script = tmp_path / "second.py"
        script.write_text(SECOND)
        done = subprocess.run([sys.executable, str(script), str(other_name(path))],
                              capture_output=True, text=True, timeout=120)
        for line in done.stdout.splitlines():
            out = json.loads(line)
            if "code" in out:
                failures.append(f"{out['code']}: {out.get('message', '')}")
            else:
                acked[out["id"]] = out["text"]
        assert done.returncode == 0, done.stderr[-2000:]
        for i in range(1, 4):  # the first writer carries on after the second one
            try:
                node = mem.remember(f"first {i}")
            except EngramError as exc:
                failures.append(f"{exc.code}: {exc}")
            else:
                acked[node.id] = node.text
    finally:
        mem.close()
    assert {f.split(":")[0] for f in failures} <= CLEAR, failures
    with Memory.open(path, embedder=None, read_only=True) as again:
        assert {i: again.get(i).text for i in acked} == acked  # nothing acknowledged lost
        report = again.check()
        assert report.ok, report
