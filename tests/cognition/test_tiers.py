"""Tiers: consolidation moves (events with reasons, one commit, idempotent),
archival memories out of warm recall but reachable on request and by the
automatic fallback, as-of across a move, restart and replay equality."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engramdb import Memory
from engramdb.cognition.tiers import (
    ARCHIVAL,
    LONG_TERM,
    SHORT_TERM,
    TierPolicy,
    TiersProjection,
)
from engramdb.errors import InvalidInput, InvalidQuery
from engramdb.events import now_us
from engramdb.events.types import TIER_CHANGED
from engramdb.recall.embed import HashingEmbedder

from ._clock import DAY, FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(now_us())


@pytest.fixture
def mem(clock: FakeClock) -> Iterator[Memory]:
    m = Memory.open(":memory:", embedder=HashingEmbedder(dim=64), clock=clock, record_reads=True)
    yield m
    m.close()


def _seed(mem: Memory) -> tuple[str, str, str]:
    """A forgettable memory, an important one, and one in between."""
    cold = mem.remember("the lighthouse keeper painted the door blue",
                        attrs={"importance": 0.0})
    hot = mem.remember("deploys need the staging database migrated first",
                       attrs={"importance": 1.0})
    mid = mem.remember("lunch on friday is at the noodle bar", attrs={"importance": 0.5})
    return cold.id, hot.id, mid.id


def _tier_events(mem: Memory) -> list:
    return [e for e in mem.store.log.read(upto=mem.seq) if e.type == TIER_CHANGED]


def test_moves_are_events_with_reasons_in_one_commit(mem: Memory, clock: FakeClock) -> None:
    cold, hot, _mid = _seed(mem)
    head = mem.seq
    clock.now += 30 * DAY
    report = mem.consolidate()
    events = _tier_events(mem)
    assert len(events) == report.moved == 3
    assert [e.seq for e in events] == list(range(head + 1, head + 4))  # contiguous, nothing else
    assert report.seq == mem.seq == head + 3
    by_id = {e.payload.memory_id: e.payload for e in events}
    assert by_id[cold].to_tier == ARCHIVAL and "archive_below" in by_id[cold].reason
    assert by_id[cold].salience == 0.0
    assert by_id[hot].to_tier == LONG_TERM and "short_term_days" in by_id[hot].reason
    assert all(p.from_tier == SHORT_TERM for p in by_id.values())
    assert all(e.meta.source == "consolidation" for e in events)
    assert report.counts == {SHORT_TERM: 0, LONG_TERM: 2, ARCHIVAL: 1}
    assert mem.tier(cold) == ARCHIVAL and mem.tier(hot) == LONG_TERM


def test_consolidation_is_idempotent(mem: Memory, clock: FakeClock) -> None:
    _seed(mem)
    clock.now += 30 * DAY
    assert mem.consolidate().moved == 3
    head = mem.seq
    again = mem.consolidate()
    assert again.moves == [] and again.seq is None and mem.seq == head


def test_young_memories_stay_short_term(mem: Memory) -> None:
    _seed(mem)
    report = mem.consolidate()  # the clock has not moved: everything is young
    assert report.moves == [] and report.counts[SHORT_TERM] == 3


def test_salient_archival_memory_comes_back(mem: Memory, clock: FakeClock) -> None:
    cold, _, _ = _seed(mem)
    clock.now += 30 * DAY
    mem.consolidate()
    assert mem.tier(cold) == ARCHIVAL
    for _ in range(40):  # read often, lately: frequency and recency lift its salience
        mem.get(cold)
    mem.record_outcome(cold, "success")
    mem.flush_accesses()
    assert mem.salience(cold) >= mem.tier_policy.restore_above
    report = mem.consolidate()
    [move] = report.moves
    assert (move.memory_id, move.from_tier, move.to_tier) == (cold, ARCHIVAL, LONG_TERM)
    assert "restore_above" in move.reason
    assert [h.id for h in mem.recall("lighthouse keeper door", tiers="warm")][:1] == [cold]


def test_archival_leaves_warm_recall_but_is_found_on_request(mem: Memory, clock: FakeClock) -> None:
    cold, _, _ = _seed(mem)
    query = "lighthouse keeper painted door"
    assert cold in [h.id for h in mem.recall(query, tiers="warm")]
    clock.now += 30 * DAY
    mem.consolidate()
    assert cold not in [h.id for h in mem.recall(query, tiers="warm")]
    assert [h.id for h in mem.recall(query, tiers="all")][0] == cold
    assert [h.id for h in mem.recall(query, include_archival=True)][0] == cold
    assert mem.get(cold).text.startswith("the lighthouse")  # node state stays


def test_automatic_fallback_when_warm_tiers_come_up_short(mem: Memory, clock: FakeClock) -> None:
    cold, _, _ = _seed(mem)
    clock.now += 30 * DAY
    mem.consolidate()
    query = "lighthouse keeper painted door"
    mem.tier_policy = TierPolicy(fallback_floor=-1.0)  # any hit counts: a pure count
    # 2 warm memories: k=2 is satisfied by the warm tiers, k=3 is not
    assert cold not in [h.id for h in mem.recall(query, k=2)]
    assert cold in [h.id for h in mem.recall(query, k=3)]
    # a floor no warm hit clears sends even k=1 to the archival tier
    mem.tier_policy = TierPolicy(fallback_floor=0.99)
    assert [h.id for h in mem.recall(query, k=1)] == [cold]
    assert cold not in [h.id for h in mem.recall(query, k=1, tiers="warm")]


def test_as_of_across_a_move(mem: Memory, clock: FakeClock) -> None:
    cold, _, _ = _seed(mem)
    before = mem.seq
    clock.now += 30 * DAY
    mem.consolidate()
    after = mem.seq
    mem.update(cold, text="the lighthouse keeper painted the door red")
    query = "lighthouse keeper painted door"
    # as of before the move it was warm: warm recall then finds its old version
    hits = mem.recall(query, tiers="warm", as_of=before)
    assert hits[0].id == cold and hits[0].text.endswith("blue")
    assert mem.tier(cold, as_of=before) == SHORT_TERM
    assert mem.tier(cold, as_of=after) == ARCHIVAL
    assert cold not in [h.id for h in mem.recall(query, tiers="warm", as_of=after)]
    # an update keeps it archival, in the cold indexes, at its new version
    assert cold not in [h.id for h in mem.recall(query, tiers="warm")]
    assert mem.recall(query, tiers="all")[0].text.endswith("red")
    assert mem.as_of(before).get(cold).text.endswith("blue")
    assert [e.type for e in mem.history(cold) if e.type.startswith("node.")] == [
        "node.created", "node.updated"]  # tier moves live in their own stream


def test_forgetting_an_archival_memory_removes_it_everywhere(mem: Memory, clock: FakeClock) -> None:
    cold, _, _ = _seed(mem)
    clock.now += 30 * DAY
    mem.consolidate()
    mem.forget(cold)
    assert cold not in [h.id for h in mem.recall("lighthouse keeper", tiers="all")]
    assert mem.tier_counts()[ARCHIVAL] == 0
    assert mem.check().ok


def test_bad_arguments_change_nothing(mem: Memory) -> None:
    mem.remember("something")
    head = mem.seq
    with pytest.raises(InvalidQuery):
        mem.recall("something", tiers="cold")
    with pytest.raises(InvalidQuery):
        mem.recall("something", include_archival="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        TierPolicy(archive_below=0.5, restore_above=0.1)
    with pytest.raises(InvalidInput):
        mem.tier_policy = "eager"  # type: ignore[assignment]
    with pytest.raises(InvalidInput):
        mem.start_consolidation(0)
    assert mem.seq == head


def _search_all(mem: Memory, query: str) -> list[tuple[str, float]]:
    return [(h.id, round(h.score, 4)) for h in mem.recall(query, tiers="all", k=5)]


def test_restart_and_replay_equality(tmp_path: Path, clock: FakeClock) -> None:
    path = str(tmp_path / "tiers.engram")
    emb = HashingEmbedder(dim=64)
    with Memory.open(path, embedder=emb, clock=clock) as mem:
        ids = [mem.remember(f"note {i} about topic {i % 4}",
                            attrs={"importance": 0.0 if i % 3 else 1.0}).id for i in range(12)]
        clock.now += 30 * DAY
        mem.consolidate()
        mem.update(ids[1], text="note 1 rewritten while archival")
        live = mem.store.projection("tiers").state()  # type: ignore[attr-defined]
        fresh = TiersProjection()
        for event in mem.store.log.read(upto=mem.seq):
            fresh.process(event)
        assert fresh.state() == live  # incremental == full replay
        expected = {q: _search_all(mem, q) for q in ("topic 1", "note rewritten", "topic 0")}
        warm = [h.id for h in mem.recall("topic 1", tiers="warm", k=12)]
        counts = mem.tier_counts()
        assert counts[ARCHIVAL] == 8
    with Memory.open(path, embedder=emb, clock=clock) as mem:
        assert set(mem.store.restored) >= {"tiers", "text", "vectors"}  # from snapshots
        assert mem.store.projection("tiers").state() == live  # type: ignore[attr-defined]
        assert {q: _search_all(mem, q) for q in expected} == expected
        assert [h.id for h in mem.recall("topic 1", tiers="warm", k=12)] == warm
        assert mem.tier_counts() == counts
        assert mem.check().ok
        assert mem.consolidate().moves == []  # still idempotent after a restart


def test_scheduled_consolidation(clock: FakeClock) -> None:
    clock.now += 30 * DAY
    with Memory.open(":memory:", embedder=HashingEmbedder(dim=64), clock=clock) as mem:
        other = mem.namespaced("other")
        cold = other.remember("forgettable", attrs={"importance": 0.0})
        clock.now += 30 * DAY
        done = threading.Event()
        mem.store.subscribe(lambda events: done.set()
                            if any(e.type == TIER_CHANGED for e in events) else None)
        scheduler = mem.start_consolidation(0.01, all_namespaces=True)
        assert done.wait(30), "the scheduler never consolidated"
        while scheduler.runs == 0 and scheduler.errors == 0:
            time.sleep(0.01)
        mem.stop_consolidation()
        assert not scheduler.running and scheduler.errors == 0
        assert other.tier(cold.id) == ARCHIVAL


def test_readme_tiers_example_runs() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
              if "mem.consolidate(" in b]
    assert blocks, "README has no tiers example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


# -- random sequences: incremental == full replay == restore(snapshot) + tail ------

_OPS = st.lists(
    st.tuples(st.sampled_from(["remember", "update", "forget", "move", "recall", "mark"]),
              st.integers(0, 7), st.sampled_from([SHORT_TERM, LONG_TERM, ARCHIVAL])),
    min_size=1, max_size=40,
)


def _state(proj: object) -> bytes:
    """Snapshot bytes, or the text index's fingerprint (its bytes depend on term order)."""
    fingerprint = getattr(proj, "fingerprint", None)
    return fingerprint() if fingerprint else proj.snapshot()  # type: ignore[attr-defined]


def _snapshots(mem: Memory) -> dict[str, bytes]:
    return {name: mem.store.projection(name).snapshot()  # type: ignore[misc]
            for name in ("tiers", "text", "vectors")}


@settings(max_examples=40, deadline=None)
@given(ops=_OPS)
def test_random_moves_replay_and_restore_alike(ops: list[tuple[str, int, str]]) -> None:
    _run_ops(ops)


def test_cold_writes_flushed_between_moves_replay_alike() -> None:
    """Archive two, read (flush), restore one, archive it again: the cold store's
    rows land in another order than in a replay, which flushes once at the end."""
    _run_ops([("remember", 0, ARCHIVAL), ("remember", 1, ARCHIVAL), ("mark", 0, ARCHIVAL),
              ("move", 0, ARCHIVAL), ("move", 1, ARCHIVAL), ("recall", 0, ARCHIVAL),
              ("move", 0, LONG_TERM), ("move", 0, ARCHIVAL), ("recall", 1, ARCHIVAL)])


def _run_ops(ops: list[tuple[str, int, str]]) -> None:
    from engramdb.cognition.tiers import TierMove, move_drafts
    from engramdb.events import Meta
    from engramdb.recall.projections import TextProjection, VectorProjection

    emb = HashingEmbedder(dim=16)
    with Memory.open(":memory:", embedder=emb) as mem:
        ids: list[str] = []
        mark: tuple[int, dict[str, bytes]] | None = None
        for op, n, tier in ops:
            live = [i for i in ids if mem.exists(i)]
            if op == "remember" or not live:
                ids.append(mem.remember(f"memory {len(ids)} about topic {n}").id)
                continue
            target = live[n % len(live)]
            if op == "update":
                mem.update(target, text=f"memory rewritten about topic {n}")
            elif op == "forget":
                mem.forget(target)
            elif op == "move":
                move = TierMove(target, mem.tier(target), tier, "test", 0.0)
                mem._append(move_drafts(mem.namespace, [move], Meta()))
            elif op == "recall":  # a read flushes the cold vector writes at a random time
                mem.recall(f"topic {n}", tiers="all")
            elif op == "mark":
                mark = (mem.seq, _snapshots(mem))
        assert mem.check().ok  # live == a full replay into fresh projections
        if mark is not None:
            seq, snaps = mark
            fresh = {"tiers": TiersProjection(), "text": TextProjection(),
                     "vectors": VectorProjection(emb.model_id, emb.dim)}
            for name, proj in fresh.items():
                proj.restore(snaps[name])
            for event in mem.store.log.read(after=seq, upto=mem.seq):
                for proj in fresh.values():
                    proj.process(event)
            live = {name: _state(mem.store.projection(name)) for name in fresh}
            assert {name: _state(p) for name, p in fresh.items()} == live
            fresh["vectors"].close()
