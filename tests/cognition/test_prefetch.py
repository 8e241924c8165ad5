"""Prefetch into the working tier: learned sequences beat an LRU baseline on a
deterministic trace, graph neighbours are warmed, agents and namespaces are
kept apart, stale versions never count as hits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engramdb import Memory
from engramdb.errors import InvalidInput
from engramdb.recall.embed import HashingEmbedder


@pytest.fixture
def mem() -> Iterator[Memory]:
    m = Memory.open(":memory:", embedder=HashingEmbedder(dim=32))
    yield m
    m.close()


def _replay(mem: Memory, trace: list[str], agent: str | None = "planner") -> None:
    for node_id in trace:
        mem.get(node_id, agent=agent)


def _cycle(mem: Memory, n: int = 10) -> list[str]:
    return [n.id for n in mem.remember_many([f"step {i} of the runbook" for i in range(n)])]


def test_off_by_default(mem: Memory) -> None:
    ids = _cycle(mem, 3)
    _replay(mem, ids * 2)
    stats = mem.prefetch_stats()
    assert stats.accesses == 0 and mem.working("planner") == []


def test_learned_sequence_beats_the_lru_baseline(mem: Memory) -> None:
    ids = _cycle(mem)
    trace = ids * 6  # each memory comes back after 9 others: an LRU of 4 never keeps it
    mem.configure_working(size=4, prefetch=False)
    _replay(mem, trace)
    base = mem.prefetch_stats()
    assert (base.accesses, base.hits, base.prefetched) == (60, 0, 0)

    mem.configure_working(size=4, prefetch=True, top_n=2, neighbours=False)
    other = mem.namespaced("default")  # same store: same (reset) prefetcher
    other._prefetch.clear()
    _replay(other, trace)
    stats = other.prefetch_stats("planner")
    assert stats.hits + stats.misses == stats.accesses == 60
    # the first pass teaches the transitions (the wrap-around one at the second
    # pass's first read); every later read was predicted
    assert stats.hits == 49 and stats.prefetch_hits == 49
    assert stats.hit_rate > base.hit_rate
    assert stats.enabled and not base.enabled


def test_graph_neighbours_are_warmed(mem: Memory) -> None:
    a, b, c = _cycle(mem, 3)
    mem.relate(a, "mentions", c)
    mem.configure_working(size=8, top_n=2)
    mem.get(a, agent="x")
    assert c in [n.id for n in mem.working("x")]  # never read, warmed as a's neighbour
    mem.get(c, agent="x")
    stats = mem.prefetch_stats("x")
    assert (stats.hits, stats.prefetch_hits, stats.misses) == (1, 1, 1)
    assert b not in [n.id for n in mem.working("x")]


def test_agents_learn_separately(mem: Memory) -> None:
    ids = _cycle(mem, 6)
    mem.configure_working(size=2, top_n=1, neighbours=False)
    _replay(mem, ids * 3, agent="a")
    _replay(mem, ids, agent="b")  # b's first pass: nothing learned for b yet
    assert mem.prefetch_stats("b").hits == 0
    assert mem.prefetch_stats("a").hits == 18 - 6 - 1
    total = mem.prefetch_stats()
    assert total.accesses == 24 and total.hits == 11
    assert [n.id for n in mem.working("b")][0] == ids[-1]


def test_namespaces_stay_apart(mem: Memory) -> None:
    other = mem.namespaced("other")
    mine = _cycle(mem, 4)
    theirs = _cycle(other, 4)
    mem.configure_working(size=4, top_n=2)
    mem.relate(mine[0], "mentions", mine[1])
    _replay(mem, mine * 2, agent="a")
    _replay(other, theirs, agent="a")
    assert other.prefetch_stats("a").hits == 0  # what "a" learned in default stays there
    assert {n.namespace for n in other.working("a")} == {"other"}
    assert {n.namespace for n in mem.working("a")} == {"default"}
    assert mem.prefetch_stats("a").accesses == 8


def test_a_changed_memory_is_not_a_stale_hit(mem: Memory) -> None:
    a, b = _cycle(mem, 2)
    mem.configure_working(size=4)
    mem.get(a, agent="x")
    mem.get(b, agent="x")
    mem.update(a, text="step 0, revised")
    node = mem.get(a, agent="x")
    assert node.text == "step 0, revised"
    stats = mem.prefetch_stats("x")
    assert (stats.accesses, stats.hits) == (3, 0)
    mem.get(a, agent="x")
    assert mem.prefetch_stats("x").hits == 1
    assert mem.working("x")[0].text == "step 0, revised"


def test_bad_settings_are_refused(mem: Memory) -> None:
    for kwargs in ({"top_n": 0}, {"size": 0}, {"top_n": 5, "size": 4}, {"size": True}):
        with pytest.raises(InvalidInput):
            mem.configure_working(**kwargs)  # type: ignore[arg-type]
    assert not mem._prefetch.settings.enabled  # unchanged


# -- recall hits feed the working tier ------------------------------------------

_TEXTS = ["the lighthouse keeper painted the door blue",
          "deploys need the staging database migrated first",
          "lunch on friday is at the noodle bar",
          "the quarterly report is due on monday",
          "the cat sleeps on the warm windowsill"]


def test_recall_hits_enter_the_agents_working_tier(mem: Memory) -> None:
    mem.remember_many(_TEXTS)
    mem.recall("lighthouse keeper door", agent="planner")  # off: nothing kept
    assert mem.working("planner") == []
    mem.configure_working(size=8, top_n=2, neighbours=False)
    hits = mem.recall("lighthouse keeper painted door", k=4, agent="planner")
    assert hits[0].text == _TEXTS[0]
    working = [n.id for n in mem.working("planner")]
    assert working == [hits[0].id, hits[1].id]  # the top hit most recent; up to top_n
    assert mem.working("other") == [] and mem.working(None) == []
    assert mem.prefetch_stats("planner").accesses == 0  # a recall is not a read
    mem.get(hits[0].id, agent="planner")
    assert mem.prefetch_stats("planner").hits == 1  # the recalled node is a ready hit


def test_recall_top_hit_joins_the_access_sequence(mem: Memory) -> None:
    _, deploy, lunch, report, cat = (r.id for r in mem.remember_many(_TEXTS))
    mem.configure_working(size=2, top_n=1, neighbours=False)
    for agent, who in (("p", "p"), ("q", None)):  # q's recalls name no agent
        mem.recall("lighthouse keeper painted door", agent=who)
        mem.get(deploy, agent=agent)  # after the recall of lighthouse, deploy is read
        mem.get(lunch, agent=agent)
        mem.get(cat, agent=agent)  # deploy has left the working set (size 2)
        assert deploy not in [n.id for n in mem.working(agent)]
        mem.recall("lighthouse keeper painted door", agent=who)
    assert deploy in [n.id for n in mem.working("p")]  # predicted from the recalled top hit
    assert deploy not in [n.id for n in mem.working("q")]
    mem.get(deploy, agent="p")
    assert mem.prefetch_stats("p").prefetch_hits == 1
    # an as-of recall returns past versions: it feeds nothing
    before = [n.id for n in mem.working("p")]
    mem.recall("quarterly report monday", agent="p", as_of=mem.seq)
    assert [n.id for n in mem.working("p")] == before and report not in before


def test_recall_refuses_a_bad_agent(mem: Memory) -> None:
    mem.remember("something")
    mem.configure_working()
    with pytest.raises(InvalidInput):
        mem.recall("something", agent=7)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):  # reads refuse a wrong-typed agent too
        mem.working(7)  # type: ignore[arg-type]
    assert mem.working() == [] and mem.prefetch_stats().accesses == 0
