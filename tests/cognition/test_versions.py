"""``Node.version`` counts what a user sees change: 1 for a new memory, one more per
update, whatever ``vector.stored`` events share the memory's stream (a re-embedding
is no change). ``update(expected_version=...)`` checks that number and still lets the
log refuse a write that raced it. Node snapshots of earlier formats are replayed."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import msgspec
import pytest

from engramdb import ConcurrencyConflict, InvalidInput, Memory
from engramdb.recall.embed import HashingEmbedder
from engramdb.store.snapshots import SnapshotFiles


def stream_version(mem: Memory, node_id: str) -> int:
    return mem.store.log.read_stream(node_id)[-1].version


def test_a_new_memory_is_version_1_and_each_update_adds_one() -> None:
    with Memory.open(":memory:", embedder=HashingEmbedder(dim=64)) as mem:
        node = mem.remember("Maya lives in Berlin")
        assert node.version == 1 and stream_version(mem, node.id) == 2  # + vector.stored
        updated = mem.update(node.id, text="Maya lives in Lisbon", expected_version=1)
        assert updated.version == mem.get(node.id).version == 2
        assert updated.stream_version == stream_version(mem, node.id) == 4
        with pytest.raises(ConcurrencyConflict):
            mem.update(node.id, text="stale", expected_version=1)
        assert mem.get(node.id).text == "Maya lives in Lisbon"
        assert mem.as_of(node.seq).get(node.id).version == 1
        [a, b] = mem.remember_many(["alpha beta", "gamma delta"])
        assert [a.version, b.version] == [1, 1]
        for bad in (True, "1", -5, 1.0):
            with pytest.raises(InvalidInput):
                mem.update(a.id, text="x", expected_version=bad)  # type: ignore[arg-type]
        assert mem.get(a.id).text == "alpha beta"


def test_a_reembedding_changes_no_version() -> None:
    with Memory.open(":memory:", embedder=HashingEmbedder(dim=64)) as mem:
        a = mem.remember("alpha beta")
        mem.reembed(HashingEmbedder(dim=32))  # vector.stored of the new model, same stream
        fresh = mem.get(a.id)
        assert fresh.version == a.version == 1 and fresh.stream_version == 3
        assert fresh.seq == a.seq  # seq still names the event that set the content
        mem.update(a.id, text="alpha beta gamma", expected_version=a.version)  # not stale
        assert mem.provenance(a.id, "text").seq == mem.get(a.id).seq


def test_racing_updates_with_one_expected_version_land_exactly_once() -> None:
    with Memory.open(":memory:", embedder=HashingEmbedder(dim=64)) as mem:
        node = mem.remember("counter 0")
        outcomes: list[str] = []
        start = threading.Barrier(8)

        def writer(i: int) -> None:
            start.wait()
            try:
                mem.update(node.id, text=f"counter by {i}", expected_version=1)
                outcomes.append("ok")
            except ConcurrencyConflict:
                outcomes.append("conflict")

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes) == ["conflict"] * 7 + ["ok"]
        assert mem.get(node.id).version == 2
        assert [e.type for e in mem.history(node.id)].count("node.updated") == 1


def test_a_node_snapshot_of_the_previous_format_is_replayed(tmp_path: Path) -> None:
    path = tmp_path / "old.engram"
    with Memory.open(path, embedder=HashingEmbedder(dim=64)) as mem:
        node = mem.remember("Acme ships in May")
        store = mem.store
        # what the previous release wrote: format 3, versions counting vector events
        legacy = {
            i: [{**msgspec.to_builtins(v), "version": v.stream_version}
                for v in store.projection("nodes").versions(i)]  # type: ignore[attr-defined]
            for i in store.projection("nodes").ids()  # type: ignore[attr-defined]
        }
        for versions in legacy.values():
            for v in versions:
                del v["stream_version"]
        ident, epoch, head = store.store_id, store.epoch, store.head
        chain = store.log.chain_at(head)
    body = msgspec.msgpack.encode({"type": "nodes/3", "versions": legacy})
    SnapshotFiles(os.fspath(path) + ".snapshots", store_id=ident).write(
        "nodes", seq=head, epoch=epoch, body=body, chain=chain)
    with Memory.open(path, embedder=HashingEmbedder(dim=64)) as mem:
        assert "nodes" not in mem.store.restored  # the old format is rebuilt from the log
        again = mem.get(node.id)
        assert again.version == 1
        mem.update(node.id, text="Acme ships in June", expected_version=1)
        assert mem.check().ok  # the rejected snapshot was removed before the first write
    with Memory.open(path, embedder=HashingEmbedder(dim=64)) as mem:  # format 3 restores
        assert "nodes" in mem.store.restored
        assert mem.get(node.id).version == 2
        assert mem.get(node.id).stream_version == stream_version(mem, node.id) == 4
        assert mem.check().ok
