"""Readers never wait for writers, and every read is one consistent state."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from engramdb import Memory

K = 5  # memories per commit, all tagged with the commit's batch number
BATCHES = 40


def test_reads_during_writes_see_whole_commits(tmp_path: Path) -> None:
    mem = Memory.open(tmp_path / "c.engram", embedder=None, recall=False)
    stop = threading.Event()
    commits = [0]
    violations: list[str] = []
    reads = [0, 0]

    def writer() -> None:  # a fixed amount of work, so the test does not depend on speed
        for batch in range(1, BATCHES + 1):
            mem.remember_many(
                {"text": f"b{batch}-{i}", "domain": "batches", "attrs": {"batch": batch}}
                for i in range(K)
            )
            commits[0] = batch
            time.sleep(0.001)  # let the readers look between commits
        stop.set()

    def reader(slot: int) -> None:
        while not stop.is_set():
            view = mem.as_of(mem.seq)
            members = view.in_domain("batches")
            sizes = view.domains().get("batches", 0)
            per_batch: dict[int, int] = {}
            for node in members:
                per_batch[node.attrs["batch"]] = per_batch.get(node.attrs["batch"], 0) + 1
                view.get(node.id)  # every id seen in the view resolves in the view
            if any(n != K for n in per_batch.values()):
                violations.append(f"partial batch visible: {per_batch}")
            if sizes != len(members) or len(members) != K * len(per_batch):
                violations.append(f"domain size {sizes} vs {len(members)} members")
            if view.seq != K * len(per_batch):
                violations.append(f"seq {view.seq} but {len(per_batch)} batches visible")
            reads[slot] += 1

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader, args=(i,)) for i in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    stop.set()
    mem.close()
    assert not violations, violations[:5]
    assert commits[0] == BATCHES and min(reads) > 0
    assert all(r > 0 for r in reads), reads


def test_group_commit_batches_concurrent_writers() -> None:
    mem = Memory.open(":memory:", embedder=None, recall=False)
    transactions = [0]
    original = mem.store.log.append_groups

    def counting(groups):  # type: ignore[no-untyped-def]
        transactions[0] += 1
        time.sleep(0.001)  # a slow disk: writers pile up behind the commit lock
        return original(groups)

    mem.store.log.append_groups = counting  # type: ignore[method-assign]
    n_threads, per_thread = 8, 50
    ids: list[list[str]] = [[] for _ in range(n_threads)]

    def write(slot: int) -> None:
        for i in range(per_thread):
            ids[slot].append(mem.remember(f"t{slot}-{i}").id)

    threads = [threading.Thread(target=write, args=(s,)) for s in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = list(mem.store.log.read())
    assert [e.seq for e in events] == list(range(1, n_threads * per_thread + 1))
    for slot in range(n_threads):
        assert [mem.get(i).text for i in ids[slot]] == [f"t{slot}-{i}" for i in range(per_thread)]
    assert transactions[0] < n_threads * per_thread
    mem.close()
