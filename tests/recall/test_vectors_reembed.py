"""Re-embedding by replay: build a new model's vectors beside the old, switch atomically."""

from __future__ import annotations

import threading

import pytest

from engramdb import Memory
from engramdb.errors import Conflict, InvalidInput, InvalidQuery
from engramdb.events import VECTOR_STORED
from engramdb.events.types import VECTORS_ACTIVATED
from engramdb.recall.embed import HashingEmbedder

OLD = HashingEmbedder(dim=64)
NEW = HashingEmbedder(dim=32)

FACTS = [
    ("Alice leads the platform team", "people"),
    ("Bob maintains the billing service", "people"),
    ("The staging cluster runs in Frankfurt", "infra"),
    ("Deploys happen every Tuesday afternoon", "process"),
    ("Coffee machine on floor three is broken", "office"),
    ("Carol wrote the incident runbook", "people"),
]


def vector_top(mem: Memory, query: str) -> tuple[str, str]:
    """The best vector-only hit's text and the model that answered."""
    hits = mem.recall(query, k=1, signals=("vector",))
    assert hits and "vector" in hits[0].signals
    assert mem._vectors is not None
    return hits[0].text, mem._vectors.model


def vectors_of(mem: Memory, model: str) -> dict[str, int]:
    """stream -> number of vector.stored events of ``model`` in the log."""
    out: dict[str, int] = {}
    for e in mem.store.log.read():
        if e.type == VECTOR_STORED and e.payload.model == model:
            out[e.stream] = out.get(e.stream, 0) + 1
    return out


@pytest.fixture
def store(tmp_path):
    path = str(tmp_path / "agent.engram")
    with Memory.open(path, embedder=OLD) as mem:
        nodes = [mem.remember(text, domain=domain) for text, domain in FACTS]
        mem.update(nodes[1].id, text="Bob maintains the billing and invoicing service")
        mem.forget(nodes[4].id)
    return path, [n.id for n in nodes]


def test_recall_before_during_and_after_the_switch(store) -> None:
    path, ids = store
    seen: list[tuple[str, str]] = []
    with Memory.open(path, embedder=OLD) as mem:
        assert vector_top(mem, "who leads the platform team") == (FACTS[0][0], OLD.model_id)

        def during(done: int, total: int) -> None:
            seen.append(vector_top(mem, "who leads the platform team"))
            if len(seen) == 1:  # a write while the new model is being built
                mem.remember("Dave runs the Frankfurt data centre", domain="infra")

        report = mem.reembed(NEW, batch=2, progress=during)
        assert seen and all(s == (FACTS[0][0], OLD.model_id) for s in seen)  # old answered
        assert vector_top(mem, "who leads the platform team") == (FACTS[0][0], NEW.model_id)
        assert vector_top(mem, "Dave runs the data centre")[0].startswith("Dave")
        assert report.model == NEW.model_id and report.previous == OLD.model_id
        assert report.embedded == 5 and report.reused == 0  # 5 live memories (one forgotten)
        new_vectors = vectors_of(mem, NEW.model_id)
        assert ids[4] not in new_vectors  # forgotten: never re-embedded
        assert len(new_vectors) == 6  # 5 re-embedded + Dave (embedded by both models on write)
        activations = [e for e in mem.store.log.read() if e.type == VECTORS_ACTIVATED]
        assert [a.payload.model for a in activations] == [NEW.model_id]
        assert activations[0].seq == report.activated_seq
        # the updated memory got a vector of its *current* text
        bob = mem.recall("billing and invoicing", k=1, signals=("vector",))[0]
        assert bob.id == ids[1]


def test_restart_picks_the_new_model_and_never_re_embeds(store) -> None:
    path, _ = store

    def stored(mem: Memory) -> int:
        return sum(1 for e in mem.store.log.read() if e.type == VECTOR_STORED)

    with Memory.open(path, embedder=OLD) as mem:
        mem.reembed(NEW)
        count = stored(mem)
        assert mem.check().ok  # the switched projection equals a fresh replay of the log
    for _ in range(2):  # full replay, then from the snapshot written at close
        with Memory.open(path, embedder=NEW) as mem:
            assert stored(mem) == count  # opening embeds nothing
            assert vector_top(mem, "staging cluster Frankfurt") == (FACTS[2][0], NEW.model_id)
            erin = mem.remember("Erin owns the search service", domain="people")
            count += 1  # one vector: only the active model embeds now
            assert erin.id in vectors_of(mem, NEW.model_id)
            assert erin.id not in vectors_of(mem, OLD.model_id)
    with Memory.open(path, embedder=NEW) as mem:
        assert mem.store.restored.get("vectors")
    with pytest.raises(Conflict):
        Memory.open(path, embedder=OLD)
    with Memory.open(path, embedder=None) as mem:  # text-only recall still opens
        assert mem.recall("staging cluster", k=1)[0].text == FACTS[2][0]


def test_namespaced_facades_switch_together_and_readers_never_straddle(tmp_path) -> None:
    mem = Memory.open(str(tmp_path / "s.engram"), embedder=OLD)
    other = mem.namespaced("team-b")
    mem.remember_many([text for text, _ in FACTS] * 5)
    other.remember("Team B keeps its notes in the wiki")
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                mem.recall("platform team", k=3, signals=("vector",))
                other.recall("notes wiki", k=1, signals=("vector",))
            except BaseException as exc:  # a query vector against the other model's index
                errors.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        mem.reembed(NEW, batch=3)
    finally:
        stop.set()
        thread.join()
    assert errors == []
    assert other._vectors is not None and other._vectors.model == NEW.model_id
    assert other.recall("notes wiki", k=1, signals=("vector",))[0].text.startswith("Team B")
    mem.close()


def test_interrupted_reembed_reuses_logged_vectors_and_bad_input_changes_nothing(
    store, monkeypatch
) -> None:
    path, _ = store
    with Memory.open(path, embedder=OLD) as mem:
        before = len(list(mem.store.log.read()))
        with pytest.raises(InvalidInput):
            mem.reembed(OLD)  # already active
        with pytest.raises(InvalidInput):
            mem.reembed(NEW, batch=0)
        assert len(list(mem.store.log.read())) == before

        def boom(done: int, total: int) -> None:
            raise RuntimeError("interrupted")

        with pytest.raises(RuntimeError):
            mem.reembed(NEW, batch=2, progress=boom)  # one batch of 2 logged, then stops
        assert mem._vectors is not None and mem._vectors.model == OLD.model_id
        assert len(vectors_of(mem, NEW.model_id)) == 2
        report = mem.reembed(NEW, batch=2)
        assert report.reused == 2 and report.embedded == 3
        assert mem._vectors.model == NEW.model_id


def test_reembed_needs_an_embedder(tmp_path) -> None:
    with Memory.open(str(tmp_path / "t.engram"), embedder=None) as mem:
        mem.remember("text only")
        with pytest.raises(InvalidQuery):
            mem.reembed(NEW)
