"""Salience: batched access events, decay over an injected clock, explainable
components, penalties, recall's optional salience signal, restart equality."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from engramdb import Memory, NotFound
from engramdb.cognition import AccessBuffer, AccessStats, SalienceSettings
from engramdb.events import now_us
from engramdb.events.types import MEMORY_ACCESSED
from engramdb.recall.embed import HashingEmbedder
from engramdb.recall.engine import RecallWeights

from ._clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(now_us())


@pytest.fixture
def mem(clock: FakeClock) -> Iterator[Memory]:
    m = Memory.open(":memory:", embedder=HashingEmbedder(dim=64), clock=clock, record_reads=True)
    yield m
    m.close()


def access_events(mem: Memory) -> list:
    return [e for e in mem.store.log.read() if e.type == MEMORY_ACCESSED]


@pytest.mark.parametrize("reads", [1, 255, 256, 257, 1000])
def test_reads_are_logged_in_batches(mem: Memory, reads: int) -> None:
    node = mem.remember("a memory read often")
    for _ in range(reads):
        mem.get(node.id)
    mem.flush_accesses()
    events = access_events(mem)
    assert len(events) == math.ceil(reads / 256)
    assert sum(len(e.payload.accesses) for e in events) == reads
    assert mem.explain_salience(node.id).accesses == reads


def test_nothing_is_written_per_read_until_a_batch_fills(mem: Memory) -> None:
    node = mem.remember("x")
    head = mem.seq
    for _ in range(255):
        mem.get(node.id)
    assert mem.seq == head  # no write yet
    mem.get(node.id)
    assert mem.seq == head + 1


def test_old_waiting_reads_are_flushed_by_time(mem: Memory, clock: FakeClock) -> None:
    node = mem.remember("x")
    mem.get(node.id)
    clock.advance(1 / 86_400 * 31)  # 31 s later: the next read flushes both
    mem.get(node.id)
    assert [len(e.payload.accesses) for e in access_events(mem)] == [2]


def test_recall_hits_count_as_reads_and_close_flushes(tmp_path: Path) -> None:
    path = tmp_path / "s.engram"
    with Memory.open(path, embedder=HashingEmbedder(dim=64), record_reads=True) as mem:
        a = mem.remember("deploy checklist for staging")
        mem.remember("unrelated lunch menu")
        hits = mem.recall("staging deploy", k=1)
        assert [h.id for h in hits] == [a.id]
    with Memory.open(path, embedder=HashingEmbedder(dim=64)) as again:
        assert [e.payload.accesses[0][0] for e in access_events(again)] == [a.id]
        assert again.explain_salience(a.id).accesses == 1



def test_short_lived_namespaced_facades_share_the_buffer(tmp_path: Path) -> None:
    path = tmp_path / "s.engram"
    with Memory.open(path, embedder=None, record_reads=True) as mem:
        node = mem.namespaced("team").remember("x")
        for _ in range(10):
            mem.namespaced("team").get(node.id)  # each call a new facade, never closed
    with Memory.open(path, embedder=None) as again:
        [event] = access_events(again)
        assert event.namespace == "team" and len(event.payload.accesses) == 10
        assert again.namespaced("team").explain_salience(node.id).accesses == 10

def test_read_only_stores_do_not_record(tmp_path: Path) -> None:
    path = tmp_path / "s.engram"
    with Memory.open(path, embedder=None) as mem:
        node = mem.remember("x")
    with Memory.open(path, embedder=None, read_only=True, record_reads=True) as ro:
        head = ro.seq
        for _ in range(300):
            ro.get(node.id)
    with Memory.open(path, embedder=None) as again:
        assert again.seq == head and access_events(again) == []


def test_reads_are_not_recorded_by_default() -> None:
    with Memory.open(":memory:", embedder=None) as mem:
        node = mem.remember("x")
        head = mem.seq
        for _ in range(300):
            mem.get(node.id)
        mem.flush_accesses()
        assert mem.seq == head and mem.explain_salience(node.id).accesses == 0


def test_buffer_counts_dropped_batches() -> None:
    def fail(batch: list[tuple[str, int]]) -> None:
        raise RuntimeError("disk full")

    buf = AccessBuffer(fail, batch=2)
    buf.add(["a", "b", "c"], 1)
    assert buf.dropped == 3 and len(buf) == 0 and buf.events == 0


def test_decay_halves_per_half_life(mem: Memory, clock: FakeClock) -> None:
    node = mem.remember("decision: use postgres", kind="decision")
    fresh = mem.explain_salience(node.id)
    assert fresh.decay == pytest.approx(1.0, abs=1e-3)
    clock.advance(30)
    month = mem.explain_salience(node.id)
    assert month.decay == pytest.approx(0.5, rel=1e-3)
    assert month.score == pytest.approx(fresh.score / 2, rel=1e-3)
    clock.advance(30)
    assert mem.salience(node.id) == pytest.approx(fresh.score / 4, rel=1e-3)
    mem.get(node.id)  # a read refreshes it
    mem.flush_accesses()
    assert mem.explain_salience(node.id).decay == pytest.approx(1.0)


def test_explanation_components_multiply_to_the_score(mem: Memory, clock: FakeClock) -> None:
    a = mem.remember("lesson: pin dependencies", kind="lesson", attrs={"importance": 0.9})
    b = mem.remember("lesson: unpinned deps broke CI")
    mem.relate(b.id, "contradicts", a.id)
    for _ in range(5):
        mem.get(a.id)
    mem.flush_accesses()
    mem.record_outcome(a.id, "success")
    clock.advance(10)
    x = mem.explain_salience(a.id)
    assert x.importance == 0.9 and x.importance_source == "given"
    assert x.accesses == 5 and x.frequency == pytest.approx(1 - 2 ** (-5 / 8))
    assert x.contradicted and not x.superseded and x.penalty == 0.5
    assert x.outcomes == 1 and x.outcome_factor == pytest.approx(1.1)
    assert x.decay == pytest.approx(2 ** (-10 / 30), rel=1e-4)
    assert x.score == pytest.approx(x.base * x.decay * x.penalty * x.outcome_factor)
    assert x.base == pytest.approx(0.6 * 0.9 + 0.4 * x.frequency)
    assert "decay" in x.formula and mem.salience(a.id) == pytest.approx(x.score)


def test_derived_importance_from_kind_and_edges(mem: Memory) -> None:
    turn = mem.remember("hi", kind="turn")
    decision = mem.remember("we chose rust", kind="decision")
    assert mem.explain_salience(turn.id).importance == pytest.approx(0.3)
    assert mem.explain_salience(decision.id).importance == pytest.approx(0.7)
    for i in range(6):
        other = mem.remember(f"linked {i}")
        mem.relate(decision.id, "about", other.id)
    x = mem.explain_salience(decision.id)
    assert x.importance == pytest.approx(0.9) and x.importance_source == "derived"
    bad = mem.remember("importance out of range", attrs={"importance": 7})
    assert mem.explain_salience(bad.id).importance_source == "derived"


def test_superseded_memories_lose_salience(mem: Memory) -> None:
    old = mem.remember("Standup at 9")
    before = mem.salience(old.id)
    mem.remember("Standup at 10", supersedes=old.id)
    x = mem.explain_salience(old.id)
    assert x.superseded and x.penalty == 0.25
    assert x.score == pytest.approx(before * 0.25, rel=1e-3)


def test_unknown_and_forgotten_memories_have_no_salience(mem: Memory) -> None:
    node = mem.remember("x")
    mem.get(node.id)
    mem.flush_accesses()
    mem.forget(node.id)
    with pytest.raises(NotFound):
        mem.salience(node.id)
    with pytest.raises(NotFound):
        mem.explain_salience("nope")
    assert mem.store.projection("accesses").get(node.id) == (0, None)  # type: ignore[attr-defined]


def test_settings_are_validated_and_used(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        SalienceSettings(half_life_days=0)
    m = Memory(Memory.open(":memory:", embedder=None).store, clock=clock,
               salience=SalienceSettings(half_life_days=1))
    node = m.remember("x")
    clock.advance(1)
    assert m.explain_salience(node.id).decay == pytest.approx(0.5, rel=1e-3)


def test_recall_salience_signal_is_optional_and_explained(clock: FakeClock) -> None:
    weights = RecallWeights(salience=1.0)
    m = Memory.open(":memory:", embedder=HashingEmbedder(dim=64), clock=clock)
    quiet = m.remember("the deploy runbook lives in the wiki", attrs={"importance": 0.1})
    loud = m.remember("the deploy runbook lives in the repo", attrs={"importance": 1.0})
    plain = m.recall("deploy runbook", k=2)
    assert all("salience" not in h.signals for h in plain)  # off by default
    boosted = Memory(m.store, owner=False, embedder=m._embedder, weights=weights, clock=clock)
    hits = boosted.recall("deploy runbook", k=2)
    assert hits[0].id == loud.id and hits[0].signals["salience"]["score"] == pytest.approx(1.0)
    assert hits[1].id == quiet.id and hits[1].signals["salience"]["score"] < 1.0
    m.close()


def access_state(mem: Memory) -> dict:
    proj = mem.store.projection("accesses")
    assert isinstance(proj, AccessStats)
    return proj.state()


def test_access_projection_survives_restart_and_equals_replay(tmp_path: Path) -> None:
    path = tmp_path / "s.engram"
    with Memory.open(path, embedder=None, record_reads=True) as mem:
        nodes = [mem.remember(f"memory {i}") for i in range(5)]
        for i, n in enumerate(nodes):
            for _ in range(i * 100):
                mem.get(n.id)
        mem.forget(nodes[1].id)
        mem.flush_accesses()
        live = access_state(mem)
        mem.store.rebuild()
        assert access_state(mem) == live
    with Memory.open(path, embedder=None) as again:
        assert again.store.restored.get("accesses") == again.seq
        assert access_state(again) == live
        assert again.explain_salience(nodes[4].id).accesses == 400
