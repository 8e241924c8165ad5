"""Schema evolution: a store written by an older event schema opens and reads correctly.

``tests/fixtures/v0-store.engram`` (regenerate with ``tests/fixtures/make_v0_store.py``)
holds ``node.created`` events at schema 0, whose payload called the text
``content`` and stored ``attrs`` as ``[key, value]`` pairs. Reading it needs an
upcaster from schema 0 to 1, registered on a copy of the default registry, the
pattern ``docs/schema-evolution.md`` describes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from typing import Any

import pytest

from engramdb import Memory
from engramdb.errors import CorruptStore
from engramdb.events import NODE_CREATED, NodeCreated, Registry, default_registry
from engramdb.recall.embed import HashingEmbedder

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "v0-store.engram")


def node_created_v0_to_v1(payload: dict[str, Any]) -> dict[str, Any]:
    """schema 0 -> 1: ``content`` became ``text``; ``attrs`` pairs became an object."""
    out = {k: v for k, v in payload.items() if k not in ("content", "attrs")}
    out["text"] = payload.get("content", "")
    out["attrs"] = dict(payload.get("attrs", []))
    return out


def upcasting_registry() -> Registry:
    registry = default_registry()
    registry.upcaster(NODE_CREATED, 0, node_created_v0_to_v1)
    return registry


def digest(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


@pytest.fixture
def copy(tmp_path) -> str:
    path = str(tmp_path / "old.engram")
    shutil.copyfile(FIXTURE, path)
    return path


def test_the_fixture_is_committed_small_and_old() -> None:
    assert os.path.getsize(FIXTURE) < 32 * 1024
    import sqlite3

    conn = sqlite3.connect(f"file:{FIXTURE}?mode=ro", uri=True)
    try:
        schemas = set(conn.execute(
            "SELECT schema FROM events WHERE type = 'node.created'").fetchall())
    finally:
        conn.close()
    assert schemas == {(0,)}


def test_old_store_reads_every_memory_attribute_and_edge(copy) -> None:
    before = digest(FIXTURE)
    with Memory.open(copy, registry=upcasting_registry(), embedder=HashingEmbedder(dim=64)) as mem:
        alice = mem.get("alice")
        assert (alice.text, alice.name, alice.domain, alice.kind) == (
            "Alice leads the platform team", "Alice", "people", "memory")
        assert alice.attrs == {"role": "lead", "since": 2021}
        acme = mem.get("acme")
        assert (acme.kind, acme.text, acme.attrs) == ("entity", "Acme builds reusable rockets",
                                                      {"hq": "Berlin"})
        billing = mem.get("billing")
        assert billing.text == "Bob maintains the billing and invoicing services"  # v1 update
        assert billing.attrs == {"oncall": True, "tags": ["payments", "legacy"]}
        assert mem.as_of(4).get("billing").text == "Bob maintains the billing service"
        assert mem.get("standup").attrs == {}
        out = {(n.edge.rel, n.node.id, n.edge.attrs["weight"]) for n in mem.neighbors("alice")}
        assert out == {("works_at", "acme", 1), ("runs", "standup", 1)}
        assert mem.find("Acme").id == "acme"
        assert mem.domains() == {"people": 2, "companies": 1, "process": 1}
        first = mem.history("alice")[0]
        assert isinstance(first.payload, NodeCreated) and first.schema == 0
        prov = mem.provenance("alice", "attrs.role")
        assert (prov.seq, prov.agent, prov.source) == (1, "v0-writer", "fixture")
        # recall finds them (BM25 over the upcast text; graph from the old edges)
        assert mem.recall("reusable rockets", k=1)[0].id == "acme"
        assert mem.recall("standup weekday", k=1)[0].id == "standup"
        # new writes land at today's schema beside the old events
        mem.remember("Dana joined the platform team", domain="people", attrs={"role": "dev"})
    with Memory.open(copy, registry=upcasting_registry(), embedder=HashingEmbedder(dim=64)) as mem:
        assert len(mem.in_domain("people")) == 3
        # the old store had no vectors: build them by replay, then dense recall finds them
        report = mem.reembed(HashingEmbedder(dim=32))
        assert report.embedded == 5
        hit = mem.recall("Alice leads the platform team", k=1, signals=("vector",))[0]
        assert hit.id == "alice"
    assert digest(FIXTURE) == before  # the committed fixture is never written


def test_without_the_upcaster_the_old_store_fails_loudly(copy) -> None:
    with pytest.raises(CorruptStore, match=r"no upcaster for node\.created from schema 0"):
        Memory.open(copy, embedder=None)
    with Memory.open(copy, registry=upcasting_registry(), embedder=None) as mem:
        assert mem.get("alice").text == "Alice leads the platform team"  # the copy is intact
