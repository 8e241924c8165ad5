"""Hybrid recall through the facade: filters, as-of, forgetting, reopening."""

from __future__ import annotations

from pathlib import Path

import pytest

from engramdb import InvalidQuery, Memory
from engramdb.recall.embed import HashingEmbedder


@pytest.fixture
def mem() -> Memory:
    m = Memory.open(":memory:", embedder=HashingEmbedder(dim=64))
    yield m
    m.close()


def texts(hits: list) -> list[str]:
    return [h.text for h in hits]


def test_recall_finds_by_words_and_explains(mem: Memory) -> None:
    mem.remember("The deploy failed on staging because of a migration", domain="ops")
    mem.remember("Lena loves pottery class", domain="people")
    hits = mem.recall("why did the staging deploy fail", k=2)
    assert hits[0].text.startswith("The deploy failed")
    assert "text" in hits[0].signals and hits[0].signals["text"]["rank"] == 1.0
    assert hits[0].provenance is not None and hits[0].provenance.seq == hits[0].node.seq


def test_domain_and_kind_filters_give_full_top_k(mem: Memory) -> None:
    for i in range(30):
        mem.remember(f"deploy note {i}", domain="ops")
    for i in range(5):
        mem.remember(f"deploy memo {i}", domain="people", kind="fact")
    hits = mem.recall("deploy", k=5, domains=["people"])
    assert len(hits) == 5 and {h.node.domain for h in hits} == {"people"}
    hits = mem.recall("deploy", k=3, filters={"kind": "fact"})
    assert len(hits) == 3 and {h.node.kind for h in hits} == {"fact"}
    with pytest.raises(InvalidQuery):
        mem.recall("deploy", filters={"colour": "red"})


def test_as_of_recall_sees_the_old_text_and_not_the_new(mem: Memory) -> None:
    node = mem.remember("Maya lives in Berlin")
    before = mem.seq
    mem.update(node.id, text="Maya lives in Lisbon")
    assert texts(mem.recall("where does Maya live", k=1)) == ["Maya lives in Lisbon"]
    assert texts(mem.recall("Berlin", k=1, signals=("text",))) == []
    old = mem.recall("where does Maya live", k=1, as_of=before)
    assert texts(old) == ["Maya lives in Berlin"]


def test_valid_at_excludes_facts_no_longer_true(mem: Memory) -> None:
    mem.remember("Deploys happen on Fridays", valid_from="2026-01-01", valid_to="2026-03-15")
    mem.remember("Deploys happen on Tuesdays", valid_from="2026-03-15")
    march = texts(mem.recall("when do deploys happen", k=5, valid_at="2026-03-01"))
    april = texts(mem.recall("when do deploys happen", k=5, valid_at="2026-04-01"))
    assert march == ["Deploys happen on Fridays"]
    assert april == ["Deploys happen on Tuesdays"]


def test_forgotten_memories_are_never_recalled(mem: Memory) -> None:
    keep = mem.remember("the blue notebook is on the shelf")
    gone = mem.remember("the secret code is 4711 blue")
    before = mem.seq
    mem.forget(gone.id)
    assert [h.id for h in mem.recall("blue", k=5)] == [keep.id]
    assert [h.id for h in mem.recall("blue", k=5, as_of=before)] == [keep.id]


def test_conversation_order_lifts_the_answer_after_a_question(mem: Memory) -> None:
    mem.ingest_conversation(
        [
            {"speaker": "Sam", "text": "What instrument do you play?"},
            {"speaker": "Maya", "text": "The cello, since I was eight."},
            {"speaker": "Sam", "text": "Nice weather today."},
        ],
        session="s1",
        at="2026-03-01T10:00:00",
    )
    hits = mem.recall("what instrument does Maya play", k=2)
    assert "The cello" in hits[1].text or "The cello" in hits[0].text
    cello = next(h for h in hits if "cello" in h.text)
    assert "graph" in cello.signals
    assert cello.node.attrs["session"] == "s1" and cello.node.attrs["speaker"] == "Maya"


def test_recall_survives_reopen_from_snapshots(tmp_path: Path) -> None:
    path = tmp_path / "r.engram"
    emb = HashingEmbedder(dim=64)
    with Memory.open(path, embedder=emb) as mem:
        for i in range(20):
            mem.remember(f"memory number {i} about topic {i % 3}")
        expected = [(h.id, round(h.score, 9)) for h in mem.recall("topic 2", k=5)]
    with Memory.open(path, embedder=emb) as mem:
        assert set(mem.store.restored) >= {"text", "vectors"}
        assert [(h.id, round(h.score, 9)) for h in mem.recall("topic 2", k=5)] == expected


def test_bad_queries_are_rejected(mem: Memory) -> None:
    for bad in ("", "   "):
        with pytest.raises(InvalidQuery):
            mem.recall(bad)
    with pytest.raises(InvalidQuery):
        mem.recall("x", k=0)
    with pytest.raises(InvalidQuery):
        mem.recall("x", signals=("telepathy",))


def test_writes_after_restoring_recall_snapshots(tmp_path: Path) -> None:
    """Restored indexes start as read-only views of the snapshot: writing must copy."""
    path = tmp_path / "w.engram"
    emb = HashingEmbedder(dim=64)
    with Memory.open(path, embedder=emb) as mem:
        for i in range(10):
            mem.remember(f"old memory {i} about gardening")
    with Memory.open(path, embedder=emb) as mem:
        assert {"text", "vectors"} <= set(mem.store.restored)
        fresh = mem.remember("new memory about astronomy and telescopes")
        assert mem.recall("telescopes astronomy", k=1)[0].id == fresh.id
        assert mem.recall("telescopes astronomy", k=1, signals=("vector",))[0].id == fresh.id


def test_core_only_store_refuses_recall() -> None:
    with Memory.open(":memory:", recall=False) as mem:
        mem.remember("no index for me")
        assert mem.store.find_projection("text") is None
        with pytest.raises(InvalidQuery):
            mem.recall("index")
