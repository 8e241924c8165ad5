"""Compaction while the store's own follower and readers run in other threads.

Compaction's purge used to close every thread's read connection; a thread in the
middle of a statement on one then crashed the whole process (SIGSEGV). Run in a
child process so that a crash fails this test instead of the test run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent("""
    import sys, threading
    from engramdb import Memory
    stop = threading.Event()
    with Memory.open(sys.argv[1], embedder=None) as mem:
        ids = [mem.remember(f"note {i}").id for i in range(50)]
        def read():
            while not stop.is_set():
                mem.store.log.refresh()
                mem.history(ids[0])
        readers = [threading.Thread(target=read) for _ in range(3)]
        for t in readers:
            t.start()
        try:
            for i in range(15):
                mem.forget(ids[i + 1])
                mem.compact()
        finally:
            stop.set()
            for t in readers:
                t.join()
    print("ok")
""")


def test_compact_while_other_threads_read_does_not_crash(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "s.engram")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "ok"
