"""Reflection queries across memory tiers: archival memories are reached by
default (``contrasting_with`` one, similarity over them as generator and as
filter), ``tiers("warm")`` leaves them out (as of the query's seq), the plan
says which; and ``VectorProjection.vector_of`` finds a version's vector in
whichever tier holds it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from engramdb import InvalidQuery, Memory
from engramdb.cognition.tiers import ARCHIVAL, LONG_TERM
from engramdb.events import now_us
from engramdb.recall.embed import HashingEmbedder

from ._clock import DAY, FakeClock


@dataclass
class World:
    mem: Memory
    ids: dict[str, str]
    before: int  # the seq just before consolidation archived the unimportant ones


@pytest.fixture
def world() -> Iterator[World]:
    clock = FakeClock(now_us())
    mem = Memory.open(":memory:", embedder=HashingEmbedder(dim=64), clock=clock)
    specs = {  # importance 0: archived by consolidation; 1: stays warm
        "old_fail": ("deploy failed on staging: the migration timed out", "ops", 0.0),
        "old_ok": ("deploy on staging succeeded once the migration ran first", "ops", 0.0),
        "ok": ("deploy on staging succeeded after raising the migration timeout", "ops", 1.0),
        "lunch": ("team lunch is pizza on friday", "people", 1.0),
    }
    ids = {key: mem.remember(text, domain=domain, attrs={"importance": imp}).id
           for key, (text, domain, imp) in specs.items()}
    for key, outcome in (("old_fail", "failure"), ("old_ok", "success"), ("ok", "success")):
        mem.record_outcome(ids[key], outcome)
    before = mem.seq
    clock.now += 30 * DAY
    mem.consolidate()
    assert mem.tier(ids["old_fail"]) == mem.tier(ids["old_ok"]) == ARCHIVAL
    assert mem.tier(ids["ok"]) == mem.tier(ids["lunch"]) == LONG_TERM
    yield World(mem, ids, before)
    mem.close()


def found(world: World, results: list) -> list[str]:
    by_id = {v: k for k, v in world.ids.items()}
    return [by_id[r.id] for r in results]


def exact_cosine(a: str, b: str) -> float:
    emb = HashingEmbedder(dim=64)
    va, vb = (np.asarray(v, np.float32) for v in emb.embed([a, b]))
    return float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb)))


def test_contrasting_with_an_archival_memory(world: World) -> None:
    q = world.mem.query().contrasting_with(world.ids["old_fail"], min_score=0.05)
    assert set(found(world, q.run())) == {"ok", "old_ok"}
    assert found(world, q.tiers("warm").run()) == ["ok"]


def test_similar_to_reaches_archival_memories_unless_warm_only(world: World) -> None:
    q = world.mem.query().similar_to("deploy failed on staging: the migration timed out")
    everywhere = found(world, q.run())
    assert everywhere[0] == "old_fail" and "old_ok" in everywhere
    warm = found(world, q.tiers("warm").run())
    assert "old_fail" not in warm and "old_ok" not in warm and "ok" in warm
    # a scan (no similarity) too: archival memories keep their node state
    assert set(found(world, world.mem.query().in_domain("ops").run())) == {
        "old_fail", "old_ok", "ok"}
    assert found(world, world.mem.query().in_domain("ops").tiers("warm").run()) == ["ok"]


def test_similarity_as_a_filter_scores_archival_candidates(world: World) -> None:
    text = "deploy failed on staging: the migration timed out"
    results = world.mem.query().in_domain("ops").similar_to(text, min_score=0.5).run()
    assert found(world, results)[0] == "old_fail"
    # the dequantized int8 vector: close to the float32 cosine (1.0 here)
    assert results[0].similarity == pytest.approx(1.0, abs=2e-2)
    by_name = dict(zip(found(world, results), results, strict=True))
    assert set(by_name) == {"old_fail", "old_ok", "ok"}  # cosines ~0.67: all clear 0.5
    archived = exact_cosine(text, "deploy on staging succeeded once the migration ran first")
    assert by_name["old_ok"].similarity == pytest.approx(archived, abs=2e-2)
    warm = exact_cosine(text, "deploy on staging succeeded after raising the migration timeout")
    assert by_name["ok"].similarity == pytest.approx(warm, abs=1e-5)  # float32, exact


def test_warm_only_is_judged_as_of_the_query_seq(world: World) -> None:
    q = world.mem.query().in_domain("ops").tiers("warm")
    assert set(found(world, q.as_of(world.before).run())) == {"old_fail", "old_ok", "ok"}
    text = "deploy failed on staging: the migration timed out"
    then = world.mem.query().similar_to(text).tiers("warm").as_of(world.before).run()
    assert found(world, then)[0] == "old_fail"


def test_the_plan_names_the_tiers(world: World) -> None:
    plan = world.mem.query().similar_to("deploy").explain()
    assert plan.tiers == "all" and "archival" in plan.steps[0].source
    assert "over all tiers" in str(plan) and ("tiers", "filter") not in plan.ops()
    warm = world.mem.query().similar_to("deploy").tiers("warm").explain()
    assert warm.tiers == "warm" and ("tiers", "filter") in warm.ops()
    assert "archival" not in warm.steps[0].source


@pytest.mark.parametrize("build", [
    lambda q: q.tiers("auto"),
    lambda q: q.tiers("cold"),
    lambda q: q.tiers(None),
    lambda q: q.tiers("warm").tiers("all"),
])
def test_bad_tiers_are_refused(world: World, build) -> None:
    with pytest.raises(InvalidQuery):
        build(world.mem.query())


# -- VectorProjection.vector_of ------------------------------------------------


def test_vector_of_finds_a_version_in_either_tier() -> None:
    clock = FakeClock(now_us())
    with Memory.open(":memory:", embedder=HashingEmbedder(dim=64), clock=clock) as mem:
        vectors = mem._vectors
        assert vectors is not None
        a = mem.remember("the lighthouse keeper painted the door blue",
                         attrs={"importance": 0.0}).id
        b = mem.remember("deploys need the staging database migrated first",
                         attrs={"importance": 1.0}).id
        first_b = mem.seq
        stored = {m: vectors.index.get(vectors.docs.current[m]) for m in (a, b)}
        assert all(np.array_equal(vectors.vector_of(m), stored[m]) for m in (a, b))
        mem.update(b, text="deploys need the production database migrated first")
        assert np.array_equal(vectors.vector_of(b, first_b), stored[b])  # an older version
        assert not np.array_equal(vectors.vector_of(b), stored[b])
        clock.now += 30 * DAY
        mem.consolidate()
        assert mem.tier(a) == ARCHIVAL
        assert vectors.index.get(vectors.docs.current[a]) is None  # it left the warm index
        pending = vectors.vector_of(a)  # still queued for the cold store
        assert pending is not None and np.allclose(pending, stored[a], atol=1e-2)
        mem.recall("lighthouse", tiers="all")  # a read of the cold store flushes the queue
        assert np.array_equal(vectors.vector_of(a), pending)
        assert vectors.vector_of(a, 0) is None  # no version then
        mem.forget(a)
        assert vectors.vector_of(a) is None and vectors.vector_of("no-such-memory") is None
