"""Namespace shards: a process opened with ``namespaces=`` or ``shard=`` builds
projections for its share only, refuses the others with a stable error, and
keeps its snapshots apart from a full view's."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from engramdb import Memory
from engramdb.adapters.http import create_app
from engramdb.errors import InvalidInput, NamespaceNotServed, error_info
from engramdb.recall.embed import HashingEmbedder
from engramdb.store.shards import Shard, shard_of


def fill(path: Path, names: list[str]) -> dict[str, str]:
    with Memory.open(path, embedder=HashingEmbedder(dim=32)) as mem:
        return {ns: mem.namespaced(ns).remember(f"the {ns} team ships rockets").id
                for ns in names}


def test_shard_of_is_stable_and_covers_every_part() -> None:
    # pinned: a router in another language computes the same (sha256, first 8 bytes)
    assert [shard_of(ns, 4) for ns in ("a", "b", "c", "default")] == [3, 3, 3, 2]
    assert shard_of("a", 4) == 1 + int.from_bytes(
        bytes.fromhex("ca978112ca1bbdca"), "big") % 4
    parts = {shard_of(f"tenant-{i}", 4) for i in range(200)}
    assert parts == {1, 2, 3, 4}


def test_parse_refuses_nonsense() -> None:
    assert Shard.parse(None, None) is None and Shard.parse(None, "1/1") is None
    for bad in ("0/4", "5/4", "1/0", "x/4", "1-4", ""):
        with pytest.raises(InvalidInput, match="K/N"):
            Shard.parse(None, bad)
    with pytest.raises(InvalidInput):
        Shard.parse(",", None)


def test_a_namespace_shard_builds_only_its_namespaces(tmp_path: Path) -> None:
    path = tmp_path / "s.engram"
    ids = fill(path, ["a", "b", "c"])
    with Memory.open(path, embedder=HashingEmbedder(dim=32), namespaces="a,b") as mem:
        nodes = mem.store.projection("nodes")
        head = mem.seq
        assert nodes.get(ids["a"], head) is not None  # type: ignore[attr-defined]
        assert nodes.get(ids["c"], head) is None  # type: ignore[attr-defined]
        a = mem.namespaced("a")
        assert [h.id for h in a.recall("rockets")] == [ids["a"]]
        with pytest.raises(NamespaceNotServed) as refused:
            mem.namespaced("c")
        info = error_info(refused.value)
        assert (info["code"], info["status"]) == ("namespace_not_served", 421)
        assert info["details"]["shard"] == "namespaces a, b"
        with pytest.raises(NamespaceNotServed):  # the root facade's namespace is not served
            mem.remember("lost")
        assert mem.seq == head  # nothing was written
        # the share's snapshots live apart from a full view's
        assert mem.store.snapshots is not None
        assert mem.store.snapshots.directory.startswith(str(path) + ".snapshots" + "/ns-")
    with pytest.raises(NamespaceNotServed):
        Memory.open(path, embedder=None, namespace="c", namespaces=["a"])


def test_hash_shards_partition_the_namespaces(tmp_path: Path) -> None:
    path = tmp_path / "s.engram"
    names = [f"t{i}" for i in range(12)]
    ids = fill(path, names)
    seen: dict[str, int] = {}
    for part in (1, 2, 3):
        with Memory.open(path, embedder=None, shard=f"{part}/3") as mem:
            nodes = mem.store.projection("nodes")
            for ns, node_id in ids.items():
                if nodes.get(node_id, mem.seq) is not None:  # type: ignore[attr-defined]
                    seen[ns] = part
                    assert mem.namespaced(ns).get(node_id).text.startswith("the ")
                else:
                    with pytest.raises(NamespaceNotServed):
                        mem.namespaced(ns)
    assert seen == {ns: shard_of(ns, 3) for ns in names}  # each in exactly its own part


def test_http_answers_421_for_another_shards_namespace(tmp_path: Path) -> None:
    path = tmp_path / "s.engram"
    fill(path, ["a", "b"])
    with Memory.open(path, embedder=None, namespaces=["a"]) as mem:
        app = create_app(mem, tokens=None)
        with TestClient(app, raise_server_exceptions=False) as client:
            ok = client.post("/v1/namespaces/a/memories", json={"text": "fine"})
            assert ok.status_code == 201, ok.text
            r = client.post("/v1/namespaces/b/memories", json={"text": "elsewhere"})
            assert r.status_code == 421, r.text
            assert "namespace_not_served" in r.text
