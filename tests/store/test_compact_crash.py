"""Compaction is crash-atomic (issue 9 item 8): a real SIGKILL at every step of
``compact`` leaves a store that opens, passes ``check``, keeps every acknowledged
write, shows no forgotten memory, and compacts cleanly afterwards."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engramdb import Memory

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from engramdb import Memory
    from engramdb.log import SQLiteLog, base
    from engramdb.store import snapshots, store

    path, step = sys.argv[1], sys.argv[2]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def at(owner, name, *, when="before", count=1):
        original = getattr(owner, name)
        seen = [0]

        def hooked(*args, **kw):
            seen[0] += 1
            if when == "before" and seen[0] == count:
                die()
            result = original(*args, **kw)
            if when == "after" and seen[0] == count:
                die()
            return result

        setattr(owner, name, hooked)

    mem = Memory.open(path, embedder=None, snapshot_every=5)
    kept = [mem.remember(f"kept {i}", domain="d").id for i in range(12)]
    gone = [mem.remember(f"secret {i}", domain="d").id for i in range(4)]
    mem.relate(kept[0], "knows", gone[0])
    for g in gone:
        mem.forget(g)
    mem.snapshot()
    print(json.dumps({"kept": kept, "gone": gone}), flush=True)

    if step == "inside-redaction":  # the transaction is open: nothing committed yet
        at(base.EventLog, "plan_redaction", when="after")
    elif step == "after-redaction":  # redaction + chain re-base + epoch committed
        at(base.EventLog, "redact", when="after")
    elif step == "before-snapshot-removal":
        at(snapshots.SnapshotFiles, "remove_all")
    elif step == "before-rebuild":
        at(store.EventStore, "_rebuild_locked")
    elif step == "during-vacuum":
        original = SQLiteLog.purge
        def purge(self):
            self._conn.set_progress_handler(die, 50)
            original(self)
        SQLiteLog.purge = purge
    elif step == "during-checkpoint":
        at(SQLiteLog, "_truncate_wal", count=2)
    elif step == "during-snapshot-rewrite":
        original_write = snapshots.SnapshotFiles.write
        written = [0]
        def write(self, name, **kw):
            written[0] += 1
            if written[0] == 3:  # two new snapshots in place, the third torn
                with open(self.path(name) + ".tmp", "wb") as fh:
                    fh.write(b"ENGSNAP1 torn")
                die()
            return original_write(self, name, **kw)
        snapshots.SnapshotFiles.write = write
    mem.compact()
    print(json.dumps({"compacted": True}), flush=True)
    """
)

STEPS = ["inside-redaction", "after-redaction", "before-snapshot-removal", "before-rebuild",
         "during-vacuum", "during-checkpoint", "during-snapshot-rewrite"]


@pytest.mark.parametrize("step", STEPS)
def test_a_kill_at_every_step_of_compact_leaves_a_sound_store(tmp_path: Path, step: str) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    path = tmp_path / "s.engram"
    done = subprocess.run([sys.executable, str(script), str(path), step], capture_output=True,
                          timeout=120)
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr[-3000:])
    lines = done.stdout.decode().splitlines()
    acked = json.loads(lines[0])
    assert len(lines) == 1, lines  # killed inside compact, before it returned
    with Memory.open(path, embedder=None) as mem:
        report = mem.check()
        assert report.ok, (step, [(f.subject, f.detail) for f in report.problems])
        assert all(mem.exists(i) for i in acked["kept"])
        assert not any(mem.exists(i) for i in acked["gone"])
        mem.compact()  # finishes what the killed one left
        assert mem.check().ok
    data = b"".join(Path(f).read_bytes() for f in _files(path))
    assert b"secret" not in data, step
    with Memory.open(path, embedder=None, read_only=True) as mem:
        assert mem.check().ok


def _files(path: Path) -> list[Path]:
    snaps = Path(str(path) + ".snapshots")
    found = [Path(str(path) + s) for s in ("", "-wal", "-shm") if Path(str(path) + s).exists()]
    return found + (sorted(snaps.iterdir()) if snaps.is_dir() else [])
