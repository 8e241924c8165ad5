"""Contexts recall across tiers as Memory.recall does: archival memories on
request and by the automatic fallback, tiers judged as of the context's
read_seq, staged writes always searched."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engramdb import InvalidQuery, Memory
from engramdb.cognition.tiers import ARCHIVAL, TierPolicy
from engramdb.events import now_us
from engramdb.recall.embed import HashingEmbedder

from ._clock import DAY, FakeClock

QUERY = "lighthouse keeper painted door"


@pytest.fixture
def mem() -> Iterator[Memory]:
    m = Memory.open(":memory:", embedder=HashingEmbedder(dim=64), clock=FakeClock(now_us()))
    yield m
    m.close()


def _seed(mem: Memory) -> str:
    """Three memories; the returned one is archived by the next consolidation."""
    cold = mem.remember("the lighthouse keeper painted the door blue",
                        attrs={"importance": 0.0}).id
    mem.remember("deploys need the staging database migrated first", attrs={"importance": 1.0})
    mem.remember("lunch on friday is at the noodle bar", attrs={"importance": 0.5})
    return cold


def _consolidate_later(mem: Memory, cold: str) -> None:
    mem._cog.clock.now += 30 * DAY  # type: ignore[attr-defined]
    mem.consolidate()
    assert mem.tier(cold) == ARCHIVAL


def _archive_one(mem: Memory) -> str:
    cold = _seed(mem)
    _consolidate_later(mem, cold)
    return cold


def ids(hits: list) -> list[str]:
    return [h.id for h in hits]


def test_context_recall_reaches_archival_as_memory_recall_does(mem: Memory) -> None:
    cold = _archive_one(mem)
    ctx = mem.context("late")
    assert cold not in ids(ctx.recall(QUERY, tiers="warm"))
    assert ids(ctx.recall(QUERY, tiers="all"))[0] == cold
    assert ids(ctx.recall(QUERY, include_archival=True))[0] == cold
    mem.tier_policy = TierPolicy(fallback_floor=0.99)  # no warm hit clears it: fall back
    assert ids(ctx.recall(QUERY, k=1)) == ids(mem.recall(QUERY, k=1)) == [cold]
    assert cold not in ids(ctx.recall(QUERY, k=1, tiers="warm"))
    mem.tier_policy = TierPolicy(fallback_floor=-1.0)  # every warm hit counts: no fallback
    assert cold not in ids(ctx.recall(QUERY, k=2))


def test_tiers_are_judged_as_of_read_seq(mem: Memory) -> None:
    cold = _seed(mem)
    early = mem.context("early")  # opened while the memory was still warm
    _consolidate_later(mem, cold)
    assert ids(early.recall(QUERY, tiers="warm"))[0] == cold  # warm at read_seq
    assert ids(early.recall(QUERY))[0] == cold
    late = mem.context("late")
    assert cold not in ids(late.recall(QUERY, tiers="warm"))
    early.rebase()  # moved to the present: archived now
    assert cold not in ids(early.recall(QUERY, tiers="warm"))


def test_staged_writes_are_searched_in_every_mode(mem: Memory) -> None:
    cold = _archive_one(mem)
    ctx = mem.context("drafts")
    draft = ctx.remember("lighthouse keeper: the door needs a second coat of paint").id
    for kw in ({"tiers": "warm"}, {"tiers": "all"}, {}):
        assert draft in ids(ctx.recall(QUERY, **kw))
    assert cold in ids(ctx.recall(QUERY, tiers="all"))


def test_bad_tiers_change_nothing(mem: Memory) -> None:
    mem.remember("something")
    ctx = mem.context("c")
    head = mem.seq
    with pytest.raises(InvalidQuery):
        ctx.recall("something", tiers="cold")
    with pytest.raises(InvalidQuery):
        ctx.recall("something", include_archival="yes")  # type: ignore[arg-type]
    assert mem.seq == head
