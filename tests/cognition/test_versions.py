"""``Node.version`` is the stream version ``update(expected_version=...)`` checks,
also when ``vector.stored`` events share the memory's stream; stores whose node
snapshots were written before versions counted vector events still open right."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from engramdb import ConcurrencyConflict, Memory
from engramdb.recall.embed import HashingEmbedder
from engramdb.store.snapshots import SnapshotFiles


def stream_version(mem: Memory, node_id: str) -> int:
    return mem.store.log.read_stream(node_id)[-1].version


def test_optimistic_update_right_after_remember_with_an_embedder() -> None:
    with Memory.open(":memory:", embedder=HashingEmbedder(dim=64)) as mem:
        node = mem.remember("Maya lives in Berlin")
        assert node.version == stream_version(mem, node.id) == 2  # created + vector.stored
        updated = mem.update(node.id, text="Maya lives in Lisbon", expected_version=node.version)
        assert updated.version == stream_version(mem, node.id) == 4
        assert mem.get(node.id).version == updated.version
        with pytest.raises(ConcurrencyConflict):
            mem.update(node.id, text="stale", expected_version=node.version)
        assert mem.get(node.id).text == "Maya lives in Lisbon"


def test_version_counts_vectors_of_remember_many_and_a_reembedding() -> None:
    with Memory.open(":memory:", embedder=HashingEmbedder(dim=64)) as mem:
        [a, b] = mem.remember_many(["alpha beta", "gamma delta"])
        assert [a.version, b.version] == [2, 2]
        mem.reembed(HashingEmbedder(dim=32))  # vector.stored of the new model, same streams
        fresh = mem.get(a.id)
        assert fresh.version == stream_version(mem, a.id) == 3
        assert fresh.seq == a.seq  # seq still names the event that set the content
        with pytest.raises(ConcurrencyConflict):
            mem.update(a.id, text="stale", expected_version=a.version)
        mem.update(a.id, text="alpha beta gamma", expected_version=fresh.version)
        assert mem.provenance(a.id, "text").seq == mem.get(a.id).seq


def test_a_node_snapshot_of_the_previous_format_is_replayed(tmp_path: Path) -> None:
    path = tmp_path / "old.engram"
    with Memory.open(path, embedder=HashingEmbedder(dim=64)) as mem:
        node = mem.remember("Acme ships in May")
        store = mem.store
        # what the previous release wrote: a bare map, versions not counting vectors
        legacy = {
            i: [msgspec.structs.replace(v, version=store.log.get(v.seq).version)
                for v in store.projection("nodes").versions(i)]  # type: ignore[attr-defined]
            for i in store.projection("nodes").ids()  # type: ignore[attr-defined]
        }
        assert legacy[node.id][-1].version == 1
        ident, epoch, head = store.store_id, store.epoch, store.head
    SnapshotFiles(os.fspath(path) + ".snapshots", store_id=ident).write(
        "nodes", seq=head, epoch=epoch, body=msgspec.msgpack.encode(legacy))
    with Memory.open(path, embedder=HashingEmbedder(dim=64)) as mem:
        assert "nodes" not in mem.store.restored  # the old format is rebuilt from the log
        again = mem.get(node.id)
        assert again.version == stream_version(mem, node.id) == 2
        mem.update(node.id, text="Acme ships in June", expected_version=again.version)
        # until close rewrites it, check() names the stale file (and only it)
        assert [f.subject for f in mem.check().findings if not f.ok] == ["nodes.snap"]
    with Memory.open(path, embedder=HashingEmbedder(dim=64)) as mem:  # format 2 restores
        assert "nodes" in mem.store.restored
        assert mem.get(node.id).version == stream_version(mem, node.id) == 4
        assert mem.check().ok
