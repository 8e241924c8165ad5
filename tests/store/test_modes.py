"""Store files are owner-only (issue 9 item 4): every file 0600, directories 0700,
whatever the umask (the token file already was)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from engramdb import Memory


@pytest.fixture(params=[0o022, 0o000, 0o077])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_every_store_file_is_owner_only(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "s.engram"
    mem = Memory.open(path, embedder=None)
    try:
        a = mem.remember("private to its owner")
        mem.forget(a.id)
        mem.remember("another")
        mem.snapshot()
        mem.compact()
        live = [Path(f) for f in mem.files()]
        names = {p.name for p in live}
        assert {"s.engram", "s.engram-wal", "s.engram-shm", "s.engram.head"} <= names, names
        snapdir = Path(str(path) + ".snapshots")
        assert any(p.parent == snapdir for p in live)
        assert not Path(str(path) + ".lock").exists()  # the open lock is on the file itself
        for f in live:
            assert _mode(f) == 0o600, (f.name, oct(_mode(f)), oct(umask))
        assert _mode(snapdir) == 0o700, oct(_mode(snapdir))
        pytest.importorskip("pyarrow")
        out = tmp_path / "export.parquet"
        mem.export_events(out)
        assert _mode(out) == 0o600, oct(_mode(out))
    finally:
        mem.close()
    assert _mode(path) == 0o600
