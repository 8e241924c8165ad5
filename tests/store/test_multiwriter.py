"""Several processes on one SQLite store (issue 10 items 1, 2 and 4; issue 9 item 11).

* Followers: every open store (read-only too) applies what other processes commit,
  and a forget committed elsewhere masks the content here once applied.
* Several writers: a write catches up under SQLite's write lock and plans again when
  another process wrote since its plan, so duplicates, superseded slots, expected
  versions and forgotten memories see every process's writes.
* ``min_seq``: reads wait (bounded) for a seq, else ``seq_not_applied``.
* The ways a second writer used to get in (a symlink, a hard link, a deleted
  ``.lock``) end in correct data and clear errors.
* Real subprocesses: three writers and a read-only follower; every acknowledged
  write is seen by every process, and every read they made was a consistent state.

Most of these fail on old main, where a second writer got ``StoreLocked`` and a
read-only open stayed at the seq it opened at.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engramdb import Memory
from engramdb.adapters.http import create_app
from engramdb.errors import (
    ConcurrencyConflict,
    InvalidQuery,
    InvalidStorePath,
    NotFound,
    NotYetApplied,
    StoreLocked,
)
from engramdb.events import NODE_UPDATED

DEADLINE = 60.0  # seconds anything may take before the test gives up (never a speed assert)


def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait for ``predicate`` (bounded: a follower that never follows fails)."""
    end = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.005)


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "shared.engram")


@pytest.fixture
def opened() -> Iterator[Callable[..., Memory]]:
    mems: list[Memory] = []

    def make(path: str, **kw: Any) -> Memory:
        mem = Memory.open(path, embedder=None, **kw)
        mems.append(mem)
        return mem

    yield make
    for mem in reversed(mems):
        mem.close()


def stale(mem: Memory) -> Memory:
    """Stop ``mem`` following, so it stays behind until a write (or min_seq) of its own."""
    mem.store._stop_following()
    assert not mem.store.following
    return mem


# -- followers ------------------------------------------------------------------------


def test_every_open_follows_another_writer(path: str, opened: Callable[..., Memory]) -> None:
    a = opened(path)
    b, ro = opened(path), opened(path, read_only=True)
    assert b.store.following and ro.store.following
    x = a.remember("Maya lives in Lisbon", domain="people")
    for mem in (b, ro):
        until(lambda mem=mem: mem.seq >= x.seq, "the follower applied the write")
        assert mem.get(x.id).text == "Maya lives in Lisbon"
        assert [h.id for h in mem.recall("Lisbon")] == [x.id]
    # a forget committed in one process masks the content in the others
    gone = b.forget(x.id)
    for mem in (a, ro):
        until(lambda mem=mem: mem.seq >= gone.seq, "the forget was applied")
        with pytest.raises(NotFound):
            mem.get(x.id)
        assert mem.recall("Lisbon") == []
        assert list(mem.list()) == []


def test_a_follower_checks_the_chain_of_what_it_applies(
        path: str, opened: Callable[..., Memory]) -> None:
    a, b = opened(path), stale(opened(path))
    x = a.remember("first")
    assert b.wait_for(x.seq) == x.seq  # through log.read: chain-checked, like every read
    assert b.check().ok


# -- several writers -------------------------------------------------------------------


def test_a_duplicate_written_elsewhere_is_found_under_the_lock(
        path: str, opened: Callable[..., Memory]) -> None:
    a, b = opened(path), stale(opened(path))
    x = a.remember("Maya lives in Lisbon")
    y = b.remember("Maya lives in Lisbon")  # planned at b's old head: no duplicate seen yet
    assert (y.created, y.id) == (False, x.id)
    assert [n.id for n in b.list()] == [x.id]


def test_a_slot_superseded_elsewhere_is_superseded_again(
        path: str, opened: Callable[..., Memory]) -> None:
    slot = {"subject": "maya", "predicate": "lives_in"}
    a, b = opened(path), stale(opened(path))
    x = a.remember("Maya lives in Lisbon", attrs=slot)
    y = b.remember("Maya lives in Porto", attrs=slot)
    assert y.created and y.superseded == (x.id,)
    assert [n.text for n in b.list(current=True)] == ["Maya lives in Porto"]


def test_an_update_of_a_memory_forgotten_elsewhere_is_refused(
        path: str, opened: Callable[..., Memory]) -> None:
    a, b = opened(path), opened(path)
    x = a.remember("to be forgotten")
    b.wait_for(x.seq)
    stale(b)
    a.forget(x.id)
    with pytest.raises(NotFound):
        b.update(x.id, text="changed after the forget")
    assert NODE_UPDATED not in {e.type for e in b.store.log.read()}


def test_a_stale_expected_version_conflicts_across_processes(
        path: str, opened: Callable[..., Memory]) -> None:
    a, b = opened(path), opened(path)
    x = a.remember("v1")
    b.wait_for(x.seq)
    stale(b)
    a.update(x.id, text="v2 by a", expected_version=1)
    with pytest.raises(ConcurrencyConflict):
        b.update(x.id, text="v2 by b", expected_version=1)
    assert b.get(x.id).text == "v2 by a"


def test_edges_and_seqs_interleave_between_writers(
        path: str, opened: Callable[..., Memory]) -> None:
    a, b = opened(path), opened(path)
    x = a.remember("Maya")
    y = b.remember("Omar")
    edge = a.relate(x.id, "knows", y.id)  # a catches up under the lock: Omar exists
    assert edge.dst == y.id
    seqs = [e.seq for e in a.store.log.read()]
    assert seqs == list(range(1, len(seqs) + 1))
    assert a.check().ok and b.check().ok


def test_compaction_needs_the_store_to_itself(
        path: str, opened: Callable[..., Memory]) -> None:
    a, b = opened(path), opened(path)
    x = a.remember("secret")
    a.forget(x.id)
    with pytest.raises(StoreLocked) as info:
        a.compact()
    assert info.value.code == "store_locked" and "compact needs" in info.value.message
    b.close()
    assert a.compact() >= 1


# -- min_seq ---------------------------------------------------------------------------


def test_min_seq_waits_for_another_processs_write(
        path: str, opened: Callable[..., Memory]) -> None:
    a, b = opened(path), stale(opened(path))
    x = a.remember("Maya lives in Lisbon")
    with pytest.raises(NotFound):
        b.get(x.id)  # behind, and not following
    assert b.get(x.id, min_seq=x.seq).text == "Maya lives in Lisbon"
    y = a.remember("Omar lives in Porto")
    assert [h.id for h in b.recall("Porto", min_seq=y.seq)] == [y.id]
    z = a.remember("Ana lives in Faro")
    assert z.id in {n.id for n in b.list(min_seq=z.seq)}


def test_min_seq_not_applied_in_time_is_a_clear_error(
        path: str, opened: Callable[..., Memory]) -> None:
    a, b = opened(path), stale(opened(path))
    x = a.remember("x")
    with b.store._commit_lock, pytest.raises(NotYetApplied) as info:  # b cannot apply now
        b.wait_for(x.seq, timeout=0.1)
    assert info.value.code == "seq_not_applied" and info.value.status == 504
    assert info.value.details == {"min_seq": x.seq, "seq": 0}
    with pytest.raises(InvalidQuery) as past:
        b.get(x.id, min_seq=x.seq + 1000)  # no write answered with it
    assert past.value.details["head"] == x.seq
    with pytest.raises(InvalidQuery):
        b.wait_for(-1)


def test_min_seq_over_http(path: str, opened: Callable[..., Memory],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = opened(path), stale(opened(path))
    with TestClient(create_app(b, tokens=None)) as client:
        base = "/v1/namespaces/default/memories"
        x = a.remember("by header")
        assert client.get(f"{base}/{x.id}").status_code == 404  # b is behind
        got = client.get(f"{base}/{x.id}", headers={"X-Engram-Min-Seq": str(x.seq)})
        assert got.status_code == 200 and got.json()["text"] == "by header"
        y = a.remember("by query")
        got = client.get(f"{base}/{y.id}", params={"min_seq": y.seq})
        assert got.status_code == 200 and got.json()["text"] == "by query"
        past = client.get(base, params={"min_seq": y.seq + 99})
        assert past.status_code == 422 and past.json()["error"]["code"] == "invalid_query"
        z = a.remember("late")
        monkeypatch.setattr(Memory, "min_seq_timeout", 0.1)
        with b.store._commit_lock:
            late = client.get(f"{base}/{z.id}", headers={"X-Engram-Min-Seq": str(z.seq)})
        assert late.status_code == 504
        error = late.json()["error"]
        assert error["code"] == "seq_not_applied"
        assert error["details"] == {"min_seq": z.seq, "seq": y.seq}
        bad = client.get(base, headers={"X-Engram-Min-Seq": "soon"})
        assert bad.status_code == 422


# -- a second writer through a symlink, a hard link, a deleted lock (issue 9 item 11) ---


def test_a_writer_through_a_symlink_shares_the_store(
        tmp_path: Path, opened: Callable[..., Memory]) -> None:
    real = tmp_path / "real.engram"
    link = tmp_path / "link.engram"
    a = opened(str(real))
    link.symlink_to(real)
    b = opened(str(link))
    xs = [a.remember(f"a {i}") for i in range(5)]
    ys = [b.remember(f"b {i}") for i in range(5)]
    for mem in (a, b):
        mem.wait_for(ys[-1].seq)
        assert {n.text for n in mem.list()} == {x.text for x in xs + ys}
    # one write-ahead log: nothing named after the link
    assert not (tmp_path / "link.engram-wal").exists()
    assert a.check().ok


def test_a_writer_through_a_hard_link_is_refused_clearly(
        tmp_path: Path, opened: Callable[..., Memory]) -> None:
    real = tmp_path / "real.engram"
    a = opened(str(real))
    x = a.remember("kept")
    os.link(real, tmp_path / "hard.engram")
    with pytest.raises(InvalidStorePath) as info:
        Memory.open(str(tmp_path / "hard.engram"), embedder=None)
    assert info.value.code == "invalid_store_path" and "hard links" in info.value.message
    assert not (tmp_path / "hard.engram-wal").exists()
    y = a.remember("still writing")
    assert [n.id for n in a.list(order="oldest")] == [x.id, y.id]


def test_a_deleted_lock_file_changes_nothing(
        path: str, opened: Callable[..., Memory]) -> None:
    a = opened(path)
    a.remember("one")
    for leftover in Path(path).parent.glob("*.lock"):
        leftover.unlink()  # an older version's lock file, or anyone's
    b = opened(path)
    b.remember("two")
    a.remember("three")
    for mem in (a, b):
        until(lambda mem=mem: mem.seq >= 3, "both see every write")
        assert sorted(n.text for n in mem.list()) == ["one", "three", "two"]
    assert a.check().ok


# -- real processes --------------------------------------------------------------------

PROCESS = textwrap.dedent(
    """
    import json, os, random, sys, time
    from engramdb import Memory
    from engramdb.errors import NotFound

    path, role, seed, ops, folder = sys.argv[1], sys.argv[2], int(sys.argv[3]), \\
        int(sys.argv[4]), sys.argv[5]
    mem = Memory.open(path, embedder=None, read_only=role == "follower")

    def say(obj):
        os.write(1, (json.dumps(obj) + "\\n").encode())

    def consistent():
        # one read at one seq equals the log folded up to that seq
        page = mem.list(limit=1000)
        live = {}
        for e in mem.store.log.read(upto=page.seq):
            if e.type == "node.created":
                live[e.stream] = e.payload.text
            elif e.type == "node.updated" and e.stream in live and e.payload.text:
                live[e.stream] = e.payload.text
            elif e.type == "node.forgotten":
                live.pop(e.stream, None)
        seen = {n.id: n.text for n in page}
        assert seen == live, (page.seq, sorted(set(seen) ^ set(live)))
        return page.seq

    checks = 0
    rng = random.Random(seed)
    mine = []
    say({"op": "open", "pid": os.getpid()})
    if role == "writer":
        for n in range(ops):
            r = rng.random()
            if not mine or r < 0.6:
                text = f"{seed} memory {n}"
                node = mem.remember(text)
                mine.append(node.id)
                say({"op": "remember", "id": node.id, "seq": node.seq, "text": text})
            elif r < 0.85:
                node_id = rng.choice(mine)
                text = f"{seed} update {n}"
                node = mem.update(node_id, text=text)
                say({"op": "update", "id": node_id, "seq": node.seq, "text": text})
            else:
                node_id = mine.pop(rng.randrange(len(mine)))
                event = mem.forget(node_id)
                say({"op": "forget", "id": node_id, "seq": event.seq})
            if n % 10 == 0:
                consistent()
                checks += 1
    else:
        while not os.path.exists(os.path.join(folder, "go")):
            consistent()
            checks += 1
            time.sleep(0.01)
    say({"op": "done"})
    while not os.path.exists(os.path.join(folder, "go")):
        time.sleep(0.01)
    acks = json.load(open(os.path.join(folder, "acks.json")))
    mem.wait_for(max(a["seq"] for a in acks), timeout=60)
    consistent()
    view = {n.id: n.text for n in mem.list(limit=1000)}
    say({"op": "view", "view": view, "seq": mem.seq, "checks": checks + 1})
    mem.close()
    """
)


@pytest.mark.slow
def test_three_writer_processes_and_a_follower_see_every_write(tmp_path: Path) -> None:
    path = tmp_path / "shared.engram"
    Memory.open(str(path), embedder=None).close()  # the follower opens read-only
    script = tmp_path / "proc.py"
    script.write_text(PROCESS)
    roles = [("writer", 1), ("writer", 2), ("writer", 3), ("follower", 4)]
    procs = [subprocess.Popen([sys.executable, str(script), str(path), role, str(seed), "60",
                               str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for role, seed in roles]
    lines: list[list[dict[str, Any]]] = [[] for _ in procs]

    def pump(i: int) -> None:
        out = procs[i].stdout
        assert out is not None
        for raw in out:
            lines[i].append(json.loads(raw))

    pumps = [threading.Thread(target=pump, args=(i,), daemon=True) for i in range(len(procs))]
    for t in pumps:
        t.start()
    try:
        until(lambda: all(any(x["op"] == "done" for x in ln) for ln in lines[:3])
              or any(p.poll() not in (None, 0) for p in procs), "the writers finish")
        acks = [x for ln in lines[:3] for x in ln if x["op"] in ("remember", "update", "forget")]
        (tmp_path / "acks.json").write_text(json.dumps(acks))
        (tmp_path / "go").touch()
        for p in procs:
            p.wait(timeout=DEADLINE)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for t in pumps:
        t.join(timeout=DEADLINE)
    errors = []
    for p in procs:
        assert p.stdout is not None and p.stderr is not None
        errors.append(p.stderr.read().decode()[-3000:])
        p.stdout.close()
        p.stderr.close()
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    # the expected state from the acknowledgements alone, in seq order
    expected: dict[str, str] = {}
    for ack in sorted(acks, key=lambda a: a["seq"]):
        if ack["op"] == "forget":
            expected.pop(ack["id"])
        else:
            expected[ack["id"]] = ack["text"]
    seqs = [a["seq"] for a in acks]
    assert len(set(seqs)) == len(seqs)  # no two acknowledged writes share a seq
    views = [next(x for x in ln if x["op"] == "view") for ln in lines]
    for i, view in enumerate(views):
        assert view["view"] == expected, (roles[i], errors[i])
        assert view["checks"] >= 1
    with Memory.open(str(path), embedder=None, read_only=True) as mem:
        assert mem.check().ok
        assert {n.id: n.text for n in mem.list(limit=1000)} == expected
