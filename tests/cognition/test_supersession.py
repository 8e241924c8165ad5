"""Supersession: explicit and by subject/predicate slot; as-of and valid-at before the
change; idempotent re-remember; the facts projection survives restarts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from engramdb import Conflict, InvalidInput, Memory, Node, NotFound
from engramdb.cognition import FactIndex, Remembered
from engramdb.events import EDGE_ADDED, NODE_CREATED, NODE_UPDATED, to_us
from engramdb.recall.embed import HashingEmbedder

from ._clock import FakeClock

LIVES = {"subject": "Maya", "predicate": "lives_in"}


@pytest.fixture
def mem() -> Iterator[Memory]:
    m = Memory.open(":memory:", embedder=HashingEmbedder(dim=64))
    yield m
    m.close()


def texts(hits: list) -> list[str]:
    return [h.text for h in hits]


def event_types(mem: Memory, after: int) -> list[str]:
    return [e.type for e in mem.store.log.read(after=after)]


def test_explicit_supersedes_closes_validity_and_links_in_one_commit(mem: Memory) -> None:
    old = mem.remember("The API key rotates monthly", valid_from="2026-01-01")
    before = mem.seq
    new = mem.remember("The API key rotates weekly", supersedes=old.id, valid_from="2026-06-01")
    assert isinstance(new, Node) and isinstance(new, Remembered)
    assert new.created and new.superseded == (old.id,)
    assert event_types(mem, before) == [NODE_CREATED, "vector.stored", NODE_UPDATED, EDGE_ADDED]
    assert len({e.recorded_at for e in mem.store.log.read(after=before)}) == 1  # one commit
    closed = mem.get(old.id)
    assert closed.valid_to == to_us("2026-06-01") == new.valid_from
    assert closed.text == "The API key rotates monthly"  # only validity changed
    assert [n.node.id for n in mem.neighbors(new.id, rel="supersedes")] == [old.id]


def test_valid_from_defaults_to_now_when_superseding(mem: Memory) -> None:
    clock = FakeClock(to_us("2026-05-01T12:00:00"))
    m = Memory.open(":memory:", embedder=HashingEmbedder(dim=64), clock=clock)
    old = m.remember("Standup is at 9")
    new = m.remember("Standup is at 10", supersedes=old.id)
    assert new.valid_from == clock.now == m.get(old.id).valid_to
    m.close()


def test_recall_prefers_current_fact_and_as_of_before_returns_old(mem: Memory) -> None:
    old = mem.remember("Maya lives in Berlin", attrs=LIVES)
    before = mem.seq
    new = mem.remember("Maya lives in Lisbon", attrs=LIVES)
    assert new.superseded == (old.id,)
    assert texts(mem.recall("where does Maya live", k=5)) == ["Maya lives in Lisbon"]
    assert texts(mem.recall("Maya Berlin", k=5)) == ["Maya lives in Lisbon"]  # old filtered
    assert texts(mem.recall("where does Maya live", k=5, as_of=before)) == ["Maya lives in Berlin"]
    assert mem.as_of(before).get(old.id).valid_to is None
    # the old memory is still readable by id, with its validity closed
    assert mem.get(old.id).valid_to == new.valid_from



def test_as_of_after_the_change_also_prefers_the_current_fact(mem: Memory) -> None:
    mem.remember("Maya lives in Berlin", attrs=LIVES)
    new = mem.remember("Maya lives in Lisbon", attrs=LIVES)
    after = mem.seq
    mem.remember("Maya likes the sea")  # the head moves on: as_of(after) is a past view
    assert texts(mem.recall("where does Maya live", k=5, as_of=after)) == ["Maya lives in Lisbon"]
    # forgetting is retroactive: once the new fact is forgotten, no view has it,
    # so the old one is current again in every view
    mem.forget(new.id)
    assert texts(mem.recall("where does Maya live", k=5, as_of=after)) == ["Maya lives in Berlin"]
    assert "Maya lives in Berlin" in texts(mem.recall("where Maya lives", k=5))

def test_valid_at_before_the_change_returns_the_old_fact(mem: Memory) -> None:
    mem.remember("Deploys happen on Fridays", attrs={"subject": "deploys", "predicate": "day"},
                 valid_from="2026-01-01")
    mem.remember("Deploys happen on Tuesdays", attrs={"subject": "Deploys", "predicate": "DAY"},
                 valid_from="2026-03-15")
    assert texts(mem.recall("when do deploys happen", k=5, valid_at="2026-02-01")) == [
        "Deploys happen on Fridays"]
    assert texts(mem.recall("when do deploys happen", k=5, valid_at="2026-04-01")) == [
        "Deploys happen on Tuesdays"]
    assert texts(mem.recall("when do deploys happen", k=5)) == ["Deploys happen on Tuesdays"]


def test_slot_needs_subject_and_predicate_and_names_do_not_supersede(mem: Memory) -> None:
    a = mem.remember("Maya likes tea", name="Maya")
    b = mem.remember("Maya likes chess", name="Maya")
    c = mem.remember("Maya owns a cat", attrs={"subject": "Maya"})
    d = mem.remember("Maya owns a dog", attrs={"subject": "Maya"})
    assert not (b.superseded or c.superseded or d.superseded)
    assert {h.id for h in mem.recall("Maya", k=10)} == {a.id, b.id, c.id, d.id}
    other = mem.remember("Maya lives in Rome", attrs={"subject": "Maya", "predicate": "lives_in"})
    assert other.superseded == ()  # first in its slot


def test_exact_re_remember_is_idempotent_and_says_so(mem: Memory) -> None:
    first = mem.remember("Lena prefers email", domain="people", attrs={"b": 1, "a": [1, 2]})
    head = mem.seq
    again = mem.remember("Lena prefers email", domain="people", attrs={"a": [1, 2], "b": 1})
    assert again.created is False and again.id == first.id and mem.seq == head
    # anything different is a new memory
    for variant in ({"domain": "work"}, {"kind": "fact"}, {"name": "Lena"},
                    {"attrs": {"b": 2, "a": [1, 2]}}):
        spec = {"domain": "people", "attrs": {"b": 1, "a": [1, 2]}, **variant}
        assert mem.remember("Lena prefers email", **spec).created
    assert mem.remember("Lena prefers e-mail", domain="people").created
    assert mem.namespaced("other").remember("Lena prefers email", domain="people",
                                            attrs={"b": 1, "a": [1, 2]}).created


def test_re_remember_after_forget_or_supersession_creates_again(mem: Memory) -> None:
    a = mem.remember("Office is on floor 3")
    mem.forget(a.id)
    b = mem.remember("Office is on floor 3")
    assert b.created and b.id != a.id
    c = mem.remember("Office is on floor 4", supersedes=b.id)
    again = mem.remember("Office is on floor 3")  # the fact is true again: a new memory
    assert again.created and again.id != b.id
    assert mem.remember("Office is on floor 4").created is False  # c is still current
    assert c.created


def test_update_changes_what_counts_as_a_duplicate(mem: Memory) -> None:
    a = mem.remember("draft one")
    mem.update(a.id, text="draft two")
    assert mem.remember("draft two").created is False
    assert mem.remember("draft one").created


def test_bad_supersedes_writes_nothing(mem: Memory) -> None:
    a = mem.remember("a fact")
    head = mem.seq
    with pytest.raises(NotFound):
        mem.remember("another fact", supersedes="no-such-id")
    with pytest.raises(InvalidInput):
        mem.remember("another fact", supersedes=[a.id, 3])  # type: ignore[list-item]
    with pytest.raises(InvalidInput):
        mem.remember("self", id="x1", supersedes="x1")
    with pytest.raises(NotFound):  # another namespace's memory is not visible
        mem.namespaced("other").remember("b", supersedes=a.id)
    b = mem.remember("b fact")
    with pytest.raises(Conflict):  # identical to a live memory that does not supersede b
        mem.remember("a fact", supersedes=b.id)
    assert mem.seq == head + 2  # only b and its vector were written
    assert mem.get(b.id).valid_to is None


def test_superseding_several_and_chains(mem: Memory) -> None:
    a = mem.remember("Team size is 4")
    b = mem.remember("Team size is four people")
    c = mem.remember("Team size is 5", supersedes=[a.id, b.id])
    assert set(c.superseded) == {a.id, b.id}
    d = mem.remember("Team size is 6", supersedes=c.id)
    assert texts(mem.recall("team size", k=5)) == ["Team size is 6"]
    assert d.superseded == (c.id,)
    # forgetting the newer memory makes the older one current again
    mem.forget(d.id)
    assert texts(mem.recall("team size", k=5)) == ["Team size is 5"]


def test_an_earlier_valid_to_is_kept(mem: Memory) -> None:
    a = mem.remember("Promo runs", valid_from="2026-01-01", valid_to="2026-02-01")
    mem.remember("Promo ended", supersedes=a.id, valid_from="2026-03-01")
    assert mem.get(a.id).valid_to == to_us("2026-02-01")



def test_concurrent_identical_remembers_create_one_memory(mem: Memory) -> None:
    import threading

    barrier = threading.Barrier(8)
    results: list[Remembered] = []

    def go() -> None:
        barrier.wait()
        results.append(mem.remember("the same fact", attrs={"subject": "x", "predicate": "y"}))

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.created for r in results) == 1
    assert len({r.id for r in results}) == 1


def facts_state(mem: Memory) -> dict:
    proj = mem.store.projection("facts")
    assert isinstance(proj, FactIndex)
    return proj.state()


def build_history(mem: Memory) -> None:
    a = mem.remember("Maya lives in Berlin", attrs=LIVES)
    mem.remember("Maya lives in Lisbon", attrs=LIVES)
    b = mem.remember("note", domain="x")
    mem.update(b.id, text="note 2", attrs={"k": 1})
    c = mem.remember("to forget", supersedes=a.id)
    mem.forget(c.id)
    mem.remember("Team size is 4", attrs={"subject": "team", "predicate": "size"})


def test_facts_projection_incremental_equals_replay_and_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "s.engram"
    with Memory.open(path, embedder=None) as mem:
        build_history(mem)
        live = facts_state(mem)
        mem.store.rebuild()
        assert facts_state(mem) == live
    with Memory.open(path, embedder=None) as again:  # restored from the snapshot
        assert again.store.restored.get("facts") == again.seq
        assert facts_state(again) == live
        assert again.remember("Maya lives in Lisbon", attrs=LIVES).created is False
        assert again.remember("Team size is 5", attrs={"subject": "team", "predicate": "size"}
                              ).superseded
    fresh = FactIndex()
    with Memory.open(path, embedder=None, read_only=True) as ro:
        for e in ro.store.log.read():
            fresh.process(e)
        restored = FactIndex()
        restored.restore(ro.store.projection("facts").snapshot())
        assert fresh.state() == restored.state() == facts_state(ro)
        # snapshot + tail of a snapshot restored once more: the same bytes
        assert restored.snapshot() == fresh.snapshot()


def test_facts_snapshot_keeps_the_latest_duplicate_and_checks_out(tmp_path: Path) -> None:
    path = tmp_path / "s.engram"
    with Memory.open(path, embedder=None) as mem:
        a = mem.remember("same words", attrs={"k": [1, {"b": 2, "a": 1}]})
        b = mem.remember("other words", attrs={"k": 2})
        mem.update(b.id, text="same words", attrs={"k": [1, {"a": 1, "b": 2}]})  # a's content
        mem.store.snapshot()
        c = mem.remember("tail words")
    with Memory.open(path, embedder=None) as again:  # snapshot + tail
        assert again.store.restored.get("facts") is not None
        # both a and b carry that content; b changed last, so it is the duplicate
        again_dup = again.remember("same words", attrs={"k": [1, {"a": 1, "b": 2}]})
        assert again_dup.created is False and again_dup.id == b.id != a.id
        assert again.remember("tail words").id == c.id
        report = again.check()
        assert report.ok, report


def test_re_remember_matches_attrs_as_the_log_reads_them_back(tmp_path: Path) -> None:
    # the log stores a datetime as its ISO string and a tuple as a list
    attrs = {"when": datetime(2024, 1, 1, tzinfo=UTC), "xs": (1, 2)}
    with Memory.open(tmp_path / "s.engram", embedder=None) as mem:
        first = mem.remember("dated", attrs=attrs)
        mem.update(first.id, attrs={"n": 1})
        again = mem.remember("dated", attrs={**attrs, "n": 1})
        assert again.created is False and again.id == first.id
        assert mem.remember("dated", attrs={**attrs, "xs": [1, 2], "n": 1}).id == first.id
        assert mem.remember("dated", attrs={**attrs, "n": 2}).created is True


def test_facts_snapshot_of_the_older_format_is_rebuilt_from_the_log(tmp_path: Path) -> None:
    path = tmp_path / "s.engram"
    with Memory.open(path, embedder=None) as mem:
        build_history(mem)
        node = mem.remember("old format", attrs=LIVES).id
        live = facts_state(mem)
    # format 1: memory fields without their keys, and the seq each changed at
    old = msgspec.msgpack.encode({
        "fields": {node: ["default", "memory", "0" * 32, None, None, LIVES]},
        "seqs": {node: 1}, "supersedes": [],
    })
    with Memory.open(path, embedder=None) as mem:
        assert mem.store.restored.get("facts") == mem.seq
        assert mem.store.snapshots is not None
        mem.store.snapshots.write("facts", seq=mem.seq, epoch=mem.store.epoch, body=old,
                                  chain=mem.store.log.chain_at(mem.seq))
    with Memory.open(path, embedder=None) as again:
        assert "facts" not in again.store.restored  # rejected, replayed from the log
        assert again.store.restored.get("nodes") == again.seq
        assert again.store.snapshots is not None
        assert again.store.snapshots.rejected["facts"].startswith("restore failed")
        assert facts_state(again) == live
        assert again.remember("old format", attrs=LIVES).created is False


# -- random histories: incremental == full replay == snapshot + tail -------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from engramdb.cognition import AccessStats, Outcomes  # noqa: E402
from engramdb.projections import NodeState  # noqa: E402

TEXTS = ["alpha", "beta", "gamma", "alpha beta"]
SLOTS = [None, {"subject": "s", "predicate": "p"}, {"subject": "S", "predicate": "q"}]
OPS = st.one_of(
    st.tuples(st.just("remember"), st.integers(0, 3), st.integers(0, 2)),
    st.tuples(st.just("supersede"), st.integers(0, 9), st.integers(0, 3)),
    st.tuples(st.just("update"), st.integers(0, 9), st.integers(0, 3)),
    st.tuples(st.just("forget"), st.integers(0, 9), st.integers(0, 0)),
    st.tuples(st.just("read"), st.integers(0, 9), st.integers(1, 300)),
    st.tuples(st.just("outcome"), st.integers(0, 9), st.integers(0, 3)),
    st.tuples(st.just("relate"), st.integers(0, 9), st.integers(0, 9)),
    st.tuples(st.just("many"), st.integers(0, 80), st.integers(0, 80)),
)
NAMES = ("facts", "outcomes", "accesses", "nodes")


def apply(mem: Memory, ids: list[str], op: tuple[str, int, int]) -> None:
    kind, a, b = op
    pick = ids[a % len(ids)] if ids else None
    try:
        if kind == "remember":
            ids.append(mem.remember(TEXTS[a], attrs=SLOTS[b]).id)
        elif pick is None:
            return
        elif kind == "supersede":
            ids.append(mem.remember(TEXTS[b] + " v2", supersedes=pick).id)
        elif kind == "update":
            mem.update(pick, text=TEXTS[b])
        elif kind == "forget":
            mem.forget(pick)
        elif kind == "read":
            for _ in range(b):
                mem.get(pick)
        elif kind == "outcome":
            mem.record_outcome(pick, ["success", "failure"][b % 2], goal=["g1", None][b // 2])
        elif kind == "relate":
            mem.relate(pick, ["supersedes", "contradicts", "caused"][b % 3], ids[b % len(ids)])
        elif kind == "many":  # a batch of three: texts and slots from the digits of a, b
            items = [{"text": TEXTS[x % 4], "attrs": SLOTS[x % 3] or {}} for x in (a, b, a // 4)]
            ids.extend(r.id for r in mem.remember_many(items))
    except (NotFound, Conflict):
        pass  # forgotten memories, duplicates that do not supersede: nothing written


def state(proj: object) -> object:
    if isinstance(proj, NodeState):
        return {i: proj.versions(i) for i in proj.ids()}
    return proj.state()  # type: ignore[attr-defined]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.lists(OPS, max_size=15), second=st.lists(OPS, max_size=15))
def test_cognition_projections_equal_replay_and_snapshot_plus_tail(first, second) -> None:
    kinds = {"facts": FactIndex, "outcomes": Outcomes, "accesses": AccessStats,
             "nodes": NodeState}
    # vectors on: their events share the memories' streams (node versions count them)
    with Memory.open(":memory:", embedder=HashingEmbedder(dim=8), record_reads=True) as mem:
        ids: list[str] = []
        for op in first:
            apply(mem, ids, op)
        mem.flush_accesses()
        mid = mem.seq
        snaps = {n: mem.store.projection(n).snapshot() for n in NAMES}
        for op in second:
            apply(mem, ids, op)
        mem.flush_accesses()
        events = list(mem.store.log.read())
        for name in NAMES:
            live = mem.store.projection(name)
            fresh, restored = kinds[name](), kinds[name]()
            for e in events:
                fresh.process(e)
            restored.restore(snaps[name])
            for e in events:
                if e.seq > mid:
                    restored.process(e)
            assert state(fresh) == state(live) == state(restored), name
            assert fresh.snapshot() == live.snapshot() == restored.snapshot(), name


# -- forgetting the newer fact reopens the older one (consistently) -------------


def test_forgetting_the_newer_fact_reopens_the_older_ones_validity(mem: Memory) -> None:
    old = mem.remember("Maya lives in Berlin", attrs=LIVES, valid_from="2026-01-01")
    new = mem.remember("Maya lives in Lisbon", attrs=LIVES, valid_from="2026-06-01")
    assert mem.get(old.id).valid_to == new.valid_from
    closed_at = mem.seq
    mem.forget(new.id)
    assert mem.get(old.id).valid_to is None  # current again, and valid with no end
    for when in ("2026-03-01", "2026-08-01"):
        assert texts(mem.recall("where does Maya live", k=5, valid_at=when)) == [
            "Maya lives in Berlin"]
    assert mem.as_of(closed_at).get(old.id).valid_to == new.valid_from  # the past stays
    # and the slot works as before: a new fact supersedes the reopened one
    third = mem.remember("Maya lives in Porto", attrs=LIVES)
    assert third.superseded == (old.id,)


def test_forgetting_restores_an_earlier_end_and_spares_what_is_still_superseded(
    mem: Memory,
) -> None:
    promo = mem.remember("Promo runs", valid_from="2026-01-01", valid_to="2026-09-01")
    ended = mem.remember("Promo stopped early", supersedes=promo.id, valid_from="2026-06-01")
    mem.forget(ended.id)
    assert mem.get(promo.id).valid_to == to_us("2026-09-01")
    a = mem.remember("Team size is 4")
    b = mem.remember("Team size is 5", supersedes=a.id, valid_from="2026-02-01")
    c = mem.remember("Team size is 5 people", supersedes=a.id, valid_from="2026-03-01")
    mem.forget(c.id)
    assert mem.get(a.id).valid_to == b.valid_from  # b still supersedes a: unchanged
    mem.update(b.id, valid_to="2026-12-01")
    d = mem.remember("Team size is 6", supersedes=b.id, valid_from="2026-04-01")
    mem.update(b.id, valid_to="2026-05-01")  # changed since the supersession: left alone
    before = mem.seq
    mem.forget(d.id)
    assert mem.get(b.id).valid_to == to_us("2026-05-01")
    assert event_types(mem, before) == ["node.forgotten"]


# -- remember_many: the rules of remember, in one commit ----------------------


def test_remember_many_dedupes_like_remember(mem: Memory) -> None:
    a = mem.remember("Alpha ships in May")
    head = mem.seq
    got = mem.remember_many(["Alpha ships in May", "Beta ships in June", "Beta ships in June"])
    assert [(r.id, r.created) for r in got] == [
        (a.id, False), (got[1].id, True), (got[1].id, False)]
    assert event_types(mem, head).count(NODE_CREATED) == 1  # only Beta was written
    head = mem.seq
    again = mem.remember_many(["Beta ships in June", {"text": "Alpha ships in May"}])
    assert [r.id for r in again] == [got[1].id, a.id] and not any(r.created for r in again)
    assert mem.seq == head  # all duplicates: nothing written at all


def test_remember_many_supersedes_slots_also_within_the_batch(mem: Memory) -> None:
    berlin = mem.remember("Maya lives in Berlin", attrs=LIVES)
    lisbon, porto, tea = mem.remember_many([
        {"text": "Maya lives in Lisbon", "attrs": LIVES, "valid_from": "2026-03-01"},
        {"text": "Maya lives in Porto", "attrs": LIVES, "valid_from": "2026-05-01"},
        "Maya likes tea",
    ])
    assert lisbon.superseded == (berlin.id,) and porto.superseded == (lisbon.id,)
    assert not tea.superseded
    assert mem.get(berlin.id).valid_to == lisbon.valid_from
    assert mem.get(lisbon.id).valid_to == porto.valid_from == to_us("2026-05-01")
    def lives(**kw: object) -> list[str]:
        return [t for t in texts(mem.recall("where does Maya live", k=5, **kw)) if "lives" in t]

    assert lives() == ["Maya lives in Porto"]
    assert lives(valid_at="2026-04-01") == ["Maya lives in Lisbon"]
    # an item repeating the batch's superseded fact is a new memory, as in remember
    [back] = mem.remember_many([{"text": "Maya lives in Berlin", "attrs": LIVES}])
    assert back.created and back.id != berlin.id and back.superseded == (porto.id,)


ITEMS = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(-2, 8)),
                 max_size=8)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=ITEMS, batch=ITEMS)
def test_remember_many_equals_the_same_remembers_in_a_row(before, batch) -> None:
    def run(many: bool) -> tuple[list[bool], dict]:
        with Memory.open(":memory:", embedder=None, clock=FakeClock(10**15)) as m:
            ids = [m.remember(TEXTS[t], attrs=SLOTS[s]).id for t, s, _ in before]
            specs = [{"text": TEXTS[t], "attrs": SLOTS[s] or {},
                      "valid_from": 10**15 - 9 + 2 * t + s,
                      "supersedes": ids[x] if 0 <= x < len(ids) else None}
                     for t, s, x in batch]
            try:
                got = m.remember_many(specs) if many else [m.remember(**sp) for sp in specs]
            except (NotFound, Conflict) as exc:  # a forgotten/duplicate target: same error
                return [], {"error": type(exc).__name__}
            facts = m.store.projection("facts")
            all_ids = m.store.projection("nodes").ids()  # type: ignore[attr-defined]
            nodes = [m.get(i) for i in all_ids]
            current = sorted(repr((n.text, n.valid_to)) for n in nodes
                             if not facts.is_superseded(n.id))  # type: ignore[attr-defined]
            ends = sorted(repr((n.text, n.valid_from, n.valid_to)) for n in nodes)
            return [r.created for r in got], {"current": current, "ends": ends,
                                              "n": len(facts.state()["keys"])}

    assert run(many=True) == run(many=False)


def test_forget_reopens_a_supersession_written_without_edge_attributes(mem: Memory) -> None:
    """Stores written before supersedes edges recorded what they closed."""
    from engramdb.events import Draft, EdgeAdded, Meta, NodeUpdated, edge_stream

    old = mem.remember("Maya lives in Berlin", valid_from="2026-01-01")
    start = to_us("2026-06-01")
    created = mem._created_draft("Maya lives in Lisbon", meta=Meta(), valid_from=start)
    mem.store.append([  # what the previous release's remember(supersedes=) appended
        created,
        Draft(type=NODE_UPDATED, stream=old.id, namespace="default", payload=NodeUpdated(),
              valid_to=start),
        Draft(type=EDGE_ADDED, stream=edge_stream(created.stream, "supersedes", old.id),
              namespace="default",
              payload=EdgeAdded(src=created.stream, rel="supersedes", dst=old.id)),
    ])
    assert mem.get(old.id).valid_to == start
    mem.forget(created.stream)
    assert mem.get(old.id).valid_to is None


def test_supersedes_edges_record_what_they_closed(mem: Memory) -> None:
    old = mem.remember("Promo runs", valid_from="2026-01-01", valid_to="2026-09-01")
    new = mem.remember("Promo stopped early", supersedes=old.id, valid_from="2026-06-01")
    [edge] = [n.edge for n in mem.neighbors(new.id, rel="supersedes")]
    assert edge.attrs == {"valid_to": new.valid_from, "valid_to_before": to_us("2026-09-01")}
    later = mem.remember("Promo is over", supersedes=old.id, valid_from="2026-12-01")
    [edge] = [n.edge for n in mem.neighbors(later.id, rel="supersedes")]
    assert edge.attrs == {}  # it had ended before: nothing closed, nothing to reopen


def test_forgetting_the_middle_of_a_chain_lets_the_newest_replace_the_oldest(
    mem: Memory,
) -> None:
    berlin = mem.remember("Maya lives in Berlin", attrs=LIVES, valid_from="2026-01-01")
    lisbon = mem.remember("Maya lives in Lisbon", attrs=LIVES, valid_from="2026-03-01")
    porto = mem.remember("Maya lives in Porto", attrs=LIVES, valid_from="2026-05-01")
    mem.forget(lisbon.id)  # as if never said: Porto replaced Berlin
    assert mem.get(berlin.id).valid_to == porto.valid_from
    assert [n.node.id for n in mem.neighbors(porto.id, rel="supersedes")] == [berlin.id]
    assert texts(mem.recall("where does Maya live", k=5)) == ["Maya lives in Porto"]
    assert texts(mem.recall("where does Maya live", k=5, valid_at="2026-04-01")) == [
        "Maya lives in Berlin"]
    mem.forget(porto.id)  # and forgetting that too leaves Berlin, open again
    assert mem.get(berlin.id).valid_to is None
    assert texts(mem.recall("where does Maya live", k=5)) == ["Maya lives in Berlin"]
