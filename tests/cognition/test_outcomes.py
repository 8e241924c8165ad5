"""Outcomes recorded against memories: validation, by memory and by goal, as-of,
forgetting and compaction, restart equality."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engramdb import InvalidInput, Memory, NotFound, ReadOnly
from engramdb.cognition import Outcomes
from engramdb.events.types import OUTCOME_RECORDED
from engramdb.recall.embed import HashingEmbedder


@pytest.fixture
def mem() -> Iterator[Memory]:
    m = Memory.open(":memory:", embedder=HashingEmbedder(dim=64))
    yield m
    m.close()


def test_record_and_read_outcomes(mem: Memory) -> None:
    plan = mem.remember("Roll back by redeploying the previous tag")
    first = mem.record_outcome(plan.id, "failure", goal="ship v2", agent="ops-bot")
    second = mem.record_outcome(plan.id, "success", goal="ship v2", score=0.8)
    third = mem.record_outcome(plan.id, "success", goal="Fix CI")
    assert (first.outcome, first.goal, first.score, first.agent) == (
        "failure", "ship v2", None, "ops-bot")
    assert second.score == 0.8 and third.seq > second.seq > first.seq
    assert [o.outcome for o in mem.outcomes(plan.id)] == ["failure", "success", "success"]
    assert [o.goal for o in mem.outcomes(plan.id, goal="SHIP V2")] == ["ship v2", "ship v2"]
    proj = mem.store.projection("outcomes")
    assert isinstance(proj, Outcomes)
    assert proj.for_goal("default", "fix ci") == [plan.id]
    assert proj.latest(plan.id, mem.seq, goal="ship v2") == "success"
    assert proj.latest(plan.id, first.seq, goal="ship v2") == "failure"


def test_outcome_does_not_bump_the_memory_version() -> None:
    # (without an embedder: a vector.stored event shares the memory's stream)
    with Memory.open(":memory:", embedder=None) as mem:
        node = mem.remember("x")
        mem.record_outcome(node.id, "success")
        updated = mem.update(node.id, text="y", expected_version=node.version)
        assert updated.version == node.version + 1


def test_outcomes_as_of(mem: Memory) -> None:
    node = mem.remember("x")
    mem.record_outcome(node.id, "failure")
    before = mem.seq
    mem.record_outcome(node.id, "success")
    proj = mem.store.projection("outcomes")
    assert isinstance(proj, Outcomes)
    assert [o.outcome for o in proj.of(node.id, before)] == ["failure"]


@pytest.mark.parametrize("kwargs", [
    {"outcome": ""}, {"outcome": "  "}, {"outcome": 3}, {"outcome": "x" * 300},
    {"outcome": "ok", "goal": ""}, {"outcome": "ok", "goal": 5},
    {"outcome": "ok", "score": float("nan")}, {"outcome": "ok", "score": True},
    {"outcome": "ok", "score": "high"}, {"outcome": "ok", "agent": 7},
])
def test_bad_outcomes_write_nothing(mem: Memory, kwargs: dict) -> None:
    node = mem.remember("x")
    head = mem.seq
    outcome = kwargs.pop("outcome")
    with pytest.raises(InvalidInput):
        mem.record_outcome(node.id, outcome, **kwargs)
    assert mem.seq == head


def test_unknown_or_forgotten_memory(mem: Memory) -> None:
    with pytest.raises(NotFound):
        mem.record_outcome("nope", "success")
    node = mem.remember("x")
    mem.forget(node.id)
    with pytest.raises(NotFound):
        mem.record_outcome(node.id, "success")
    with pytest.raises(NotFound):
        mem.outcomes(node.id)


def test_forget_hides_outcomes_and_compact_erases_them(tmp_path: Path) -> None:
    path = tmp_path / "s.engram"
    with Memory.open(path, embedder=None) as mem:
        node = mem.remember("secret plan")
        keep = mem.remember("public plan")
        mem.record_outcome(node.id, "success", goal="classified goal")
        mem.record_outcome(keep.id, "success", goal="open goal")
        mem.forget(node.id)
        proj = mem.store.projection("outcomes")
        assert proj.for_goal("default", "classified goal") == []  # type: ignore[attr-defined]
        mem.compact()
        types = [e.type for e in mem.store.log.read()]
        assert types.count(OUTCOME_RECORDED) == 1
    for f in tmp_path.iterdir():
        if f.is_file():
            assert b"classified goal" not in f.read_bytes()


def test_read_only_store_rejects_outcomes(tmp_path: Path) -> None:
    path = tmp_path / "s.engram"
    with Memory.open(path, embedder=None) as mem:
        node = mem.remember("x")
    with Memory.open(path, embedder=None, read_only=True) as ro, pytest.raises(ReadOnly):
        ro.record_outcome(node.id, "success")


def test_outcomes_projection_incremental_equals_replay_and_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "s.engram"
    with Memory.open(path, embedder=None) as mem:
        nodes = [mem.remember(f"plan {i}") for i in range(4)]
        for i, n in enumerate(nodes):
            mem.record_outcome(n.id, "success" if i % 2 else "failure", goal=f"g{i % 2}",
                               score=i / 4)
        mem.forget(nodes[0].id)
        mem.record_outcome(nodes[1].id, "partial")
        proj = mem.store.projection("outcomes")
        live = proj.state()  # type: ignore[attr-defined]
        mem.store.rebuild()
        assert proj.state() == live  # type: ignore[attr-defined]
        assert mem.check().ok
    with Memory.open(path, embedder=None) as again:
        assert again.store.restored.get("outcomes") == again.seq
        assert again.store.projection("outcomes").state() == live  # type: ignore[attr-defined]
