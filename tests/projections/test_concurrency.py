"""Readers never wait for the writer and always see whole commits; group commit batches.

The writer commits in a pattern whose invariants hold only for complete
commits; reader threads read at the published head the whole time and check
them. To make "the writer is mid-commit" a wide window rather than a lucky
instant, the domain projection stalls once or twice per commit, half applied,
while readers keep reading.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engramdb import Memory
from engramdb.events import NO_STREAM, NODE_CREATED, NODE_UPDATED, Draft, new_id

K = 5  # memories per batch
WRITE_SECONDS = 2.0
READERS = 3


@pytest.fixture
def mem(tmp_path: Path) -> Iterator[Memory]:
    m = Memory.open(tmp_path / "concurrent.engram", embedder=None)
    yield m
    m.close()


class Progress:
    """Commit counters, both moved while the store holds its commit lock: ``started``
    when the log transaction begins, ``finished`` once every projection has applied
    the commit and the new head is published (the store's subscriber callback)."""

    def __init__(self) -> None:
        self.started = 0
        self.finished = 0
        self.done = False

    def watch(self, mem: Memory, monkeypatch: pytest.MonkeyPatch) -> None:
        log = mem.store.log
        append_groups = log.append_groups

        def counted(groups: Any) -> Any:
            self.started += 1
            return append_groups(groups)

        monkeypatch.setattr(log, "append_groups", counted)
        mem.store.subscribe(self._finished)

    def _finished(self, events: Any) -> None:
        self.finished += 1


def writer(mem: Memory, progress: Progress, counter: str, mover: str,
           errors: list[BaseException], commits: list[int]) -> None:
    """Commit ``batch`` i: K memories tagged ``batch=i`` in domain ``batch``, in one
    commit; odd commits also bump the counter node to i and move the mover node
    to ``left``/``right`` (alternating) in the same commit."""
    try:
        deadline = time.monotonic() + WRITE_SECONDS
        i = 0
        while time.monotonic() < deadline:
            items = [{"text": f"batch {i} item {j}", "domain": "batch", "attrs": {"batch": i}}
                     for j in range(K)]
            if i % 2 == 0:
                mem.remember_many(items)
            else:
                drafts = [
                    Draft(type=NODE_UPDATED, stream=counter, payload={"attrs": {"n": i}}),
                    Draft(type=NODE_UPDATED, stream=mover,
                          payload={"domain": "left" if i % 4 == 1 else "right"}),
                ]
                drafts += [
                    Draft(type=NODE_CREATED, stream=new_id(), expected_version=NO_STREAM,
                          payload={k: item[k] for k in ("text", "domain", "attrs")})
                    for item in items
                ]
                mem.store.append(drafts)
            i += 1
            commits[0] = i
    except BaseException as exc:  # pragma: no cover - reported by the test
        errors.append(exc)
    finally:
        progress.done = True


def check_view(mem: Memory, counter: str, mover: str) -> int:
    """One consistent read at the published head; returns the batches it saw."""
    view = mem.as_of(mem.seq)
    members = view.in_domain("batch")
    by_batch: dict[int, list[str]] = defaultdict(list)
    for node in members:
        by_batch[node.attrs["batch"]].append(node.id)
        assert view.get(node.id).attrs == node.attrs  # every id seen resolves in the view
    batches = sorted(by_batch)
    # whole commits only, and commits are visible in order: 0..m, K each
    assert batches == list(range(len(batches))), batches
    assert all(len(ids) == K for ids in by_batch.values()), Counter(
        {b: len(ids) for b, ids in by_batch.items()})
    sizes = view.domains()
    assert sizes.get("batch", 0) == K * len(batches), (sizes, len(batches))

    last_odd = max((b for b in batches if b % 2), default=None)
    n = view.get(counter).attrs.get("n")
    assert n == last_odd, (n, batches)
    side = "home" if last_odd is None else ("left" if last_odd % 4 == 1 else "right")
    assert view.get(mover).domain == side
    for domain in ("home", "left", "right"):
        inside = [x.id for x in view.in_domain(domain)]
        assert inside == ([mover] if domain == side else []), (domain, inside, side)
        assert sizes.get(domain, 0) == (1 if domain == side else 0)
    return len(batches)


def test_readers_see_whole_commits_and_never_wait(
    mem: Memory, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = mem.remember("counter", attrs={}).id
    mover = mem.remember("mover", domain="home").id

    domains = mem.store.projection("domains")
    apply_event = domains.process

    def slow_process(event: Any) -> None:
        # a slow projection: every commit (K or more events) stalls at least once,
        # half applied, while holding the commit lock
        if event.seq % K == 0:
            time.sleep(0.001)
        apply_event(event)

    monkeypatch.setattr(domains, "process", slow_process)

    progress = Progress()
    progress.watch(mem, monkeypatch)
    commits = [0]
    errors: list[BaseException] = []
    reads = [0] * READERS
    during = [0] * READERS  # reads that began and ended while one commit held the lock
    seen = [0] * READERS

    def reader(k: int) -> None:
        try:
            while not progress.done:
                started, finished = progress.started, progress.finished
                seen[k] = max(seen[k], check_view(mem, counter, mover))
                if (progress.started, progress.finished) == (started, finished) and (
                    started > finished
                ):
                    during[k] += 1
                reads[k] += 1
                time.sleep(0)  # let the writer have the GIL now and then
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(READERS)]
    threads.append(
        threading.Thread(target=writer, args=(mem, progress, counter, mover, errors, commits))
    )
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors, errors[0]
    assert commits[0] >= 4 and progress.finished == progress.started == commits[0]
    assert all(r > 0 for r in reads), reads
    # readers completed reads while a commit was in flight: they did not wait for it
    assert sum(during) > 0, (reads, during)
    assert max(seen) > 0
    assert check_view(mem, counter, mover) == commits[0]  # and the end state is whole


@pytest.mark.parametrize("where", ["memory", "sqlite"])
def test_group_commit_batches_concurrent_appends(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads_n, per_thread = 8, 25
    path = ":memory:" if where == "memory" else tmp_path / "group.engram"
    mem = Memory.open(path, embedder=None)
    try:
        log = mem.store.log
        commit_groups = log.append_groups
        transactions: list[int] = []

        def counted(groups: Any) -> Any:  # one call = one log transaction
            transactions.append(len(groups))
            time.sleep(0.002)  # a slow disk: appends arriving meanwhile queue up
            return commit_groups(groups)

        monkeypatch.setattr(log, "append_groups", counted)

        barrier = threading.Barrier(threads_n)
        results: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
        errors: list[BaseException] = []

        def append(k: int) -> None:
            try:
                barrier.wait()
                for j in range(per_thread):
                    node = mem.remember(f"thread {k} event {j}", attrs={"k": k, "j": j})
                    results[k].append((node.seq, node.id, node.text))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=append, args=(k,)) for k in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert not errors, errors[0]
        total = threads_n * per_thread
        seqs = sorted(seq for rows in results.values() for seq, _, _ in rows)
        assert seqs == list(range(1, total + 1))  # every append succeeded; seqs are dense
        assert mem.seq == total
        events = list(log.read())
        assert [e.seq for e in events] == seqs
        by_id = {e.stream: e for e in events}
        for k in range(threads_n):
            rows = results[k]
            assert len(rows) == per_thread
            assert [s for s, _, _ in rows] == sorted(s for s, _, _ in rows)  # in call order
            for j, (seq, node_id, text) in enumerate(rows):
                assert text == f"thread {k} event {j}"
                assert by_id[node_id].seq == seq
                assert mem.get(node_id).attrs == {"k": k, "j": j}
        # fewer transactions than appends: concurrent appends shared commits
        assert sum(transactions) == total
        assert len(transactions) < total, len(transactions)
        assert max(transactions) > 1
    finally:
        mem.close()
