"""Scoping people know (issue 11 items 2, 3; issue 9 item 14): user_id / agent_id /
run_id on every write and as filters, recall filters (equality, in, ranges,
created before/after, min_score), list with stable cursor pages, stats per tier,
domain and user, forgetting by filter and dropping a namespace."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engramdb import InvalidInput, InvalidNamespace, InvalidQuery, Memory
from engramdb.recall.embed import HashingEmbedder


@pytest.fixture
def mem() -> Iterator[Memory]:
    m = Memory.open(":memory:", embedder=HashingEmbedder(dim=64))
    yield m
    m.close()


def _people(mem: Memory) -> dict[str, str]:
    ids = {}
    for i, (who, user, age, when) in enumerate([
        ("Maya likes green tea", "maya@example.com", 31, "2026-01-05"),
        ("Maya likes long walks", "maya@example.com", 31, "2026-02-05"),
        ("Bob likes black coffee", "bob", 52, "2026-03-05"),
        ("Carol likes jasmine tea", "carol", 18, "2026-04-05T10:00:00+00:00"),
    ]):
        ids[who] = mem.remember(who, user_id=user, agent_id=f"agent-{i % 2}", run_id=f"run-{i}",
                                attrs={"age": age, "when": when}, domain="prefs").id
    return ids


def texts(nodes: list) -> list[str]:
    return sorted(n.text for n in nodes)


def test_every_write_keeps_its_scope_and_old_names_are_aliases(mem: Memory) -> None:
    a = mem.remember("one", user_id="u1", agent_id="planner", run_id="r1")
    assert (a.user_id, a.agent_id, a.run_id) == ("u1", "planner", "r1")
    b = mem.remember("two", agent="planner", session="r1")  # the older keyword names
    assert (b.agent_id, b.run_id) == ("planner", "r1")
    assert mem.provenance(a.id, "text").session == "r1"  # run_id is meta.session
    with pytest.raises(InvalidInput):
        mem.remember("three", agent="x", agent_id="y")
    many = mem.remember_many([{"text": "m1", "user_id": "u2", "run_id": "r2"}, "m2"])
    assert (many[0].user_id, many[0].run_id, many[1].user_id) == ("u2", "r2", None)
    turns = mem.ingest_conversation([{"speaker": "a", "text": "hi"}], run_id="r3", user_id="u3")
    assert (turns[0].user_id, turns[0].run_id, turns[0].attrs["session"]) == ("u3", "r3", "r3")
    updated = mem.update(a.id, text="one!", user_id="u9")
    assert updated.user_id == "u1"  # the memory keeps the scope it was created in
    with mem.context("c", agent="ctx-agent") as ctx:
        staged = ctx.remember("in a context", user_id="u4", run_id="r4")
        assert (staged.user_id, staged.run_id, staged.agent_id) == ("u4", "r4", "ctx-agent")
        ctx.commit()
    assert mem.list(user_id="u4")[0].text == "in a context"
    with pytest.raises(InvalidInput):
        mem.remember("bad", user_id=5)  # type: ignore[arg-type]


def test_scope_survives_reopen_and_replay(tmp_path: Path) -> None:
    path = tmp_path / "s.engram"
    with Memory.open(path, embedder=None) as m:
        node = m.remember("x", user_id="u1", agent_id="a1", run_id="r1")
    with Memory.open(path, embedder=None) as m:
        assert m.store.restored.get("nodes") is not None
        got = m.get(node.id)
        assert (got.user_id, got.agent_id, got.run_id) == ("u1", "a1", "r1")
        assert m.check().ok


def test_recall_filters_keep_the_top_k_exact(mem: Memory) -> None:
    ids = _people(mem)
    for i in range(30):  # many better matches outside the filter
        mem.remember(f"tea tea tea tea {i}", user_id="noise")
    hits = mem.recall("tea", k=2, user_id="carol")
    assert [h.id for h in hits] == [ids["Carol likes jasmine tea"]]
    both = mem.recall("tea", k=5, user_id=["maya@example.com", "carol"])
    assert {h.node.user_id for h in both} == {"maya@example.com", "carol"}
    assert {h.node.agent_id for h in mem.recall("likes", agent_id="agent-1")} == {"agent-1"}
    assert [h.node.run_id for h in mem.recall("likes", run_id="run-2")] == ["run-2"]
    old = mem.recall("likes", filters={"attrs.age": {"gte": 30, "lt": 52}})
    assert texts([h.node for h in old]) == ["Maya likes green tea", "Maya likes long walks"]
    dated = mem.recall("likes", filters={"attrs.when": {"gte": "2026-03-01"}})
    assert texts([h.node for h in dated]) == ["Bob likes black coffee", "Carol likes jasmine tea"]
    inside = mem.recall("likes", filters={"user_id": {"in": ["bob"]}, "attrs.age": {"ne": 0}})
    assert texts([h.node for h in inside]) == ["Bob likes black coffee"]


def test_recall_created_before_after_and_min_score(mem: Memory) -> None:
    ids = _people(mem)
    cut = mem.get(ids["Bob likes black coffee"]).created_at
    after = mem.recall("likes", created_after=cut, k=10)
    assert {h.id for h in after} <= {ids["Bob likes black coffee"], ids["Carol likes jasmine tea"]}
    assert ids["Bob likes black coffee"] in {h.id for h in after}
    before = mem.recall("likes", created_before=cut, k=10)
    assert ids["Bob likes black coffee"] not in {h.id for h in before} and before
    hits = mem.recall("tea", k=10)
    floor = hits[0].score
    assert [h.id for h in mem.recall("tea", k=10, min_score=floor)] == [hits[0].id]
    assert mem.recall("tea", k=10, min_score=floor + 1) == []


@pytest.mark.parametrize("bad", [
    {"filters": {"attrs.age": {"between": 3}}},
    {"filters": {"attrs.age": {}}},
    {"filters": {"user": "x"}},
    {"filters": {"created_at": {"gte": "not a time"}}},
    {"filters": {"user_id": "a"}, "user_id": "b"},
    {"min_score": "high"},
    {"created_after": "yesterday"},
])
def test_bad_filters_are_clear_errors(mem: Memory, bad: dict) -> None:
    _people(mem)
    with pytest.raises(InvalidQuery):
        mem.recall("tea", **bad)
    with pytest.raises(InvalidQuery):
        mem.list(**{k: v for k, v in bad.items() if k != "min_score"} or {"limit": 0})


def test_list_pages_newest_first_stable_at_one_seq(mem: Memory) -> None:
    made = [mem.remember(f"note {i}", user_id="u" if i % 2 else "v").id for i in range(7)]
    page = mem.list(limit=3)
    assert [n.id for n in page] == made[::-1][:3]
    mem.remember("written while paging", user_id="u")
    mem.forget(made[2])  # forgetting is retroactive: it vanishes from every view
    seen = [n.id for n in page]
    while page.cursor is not None:
        page = mem.list(limit=3, cursor=page.cursor)
        seen += [n.id for n in page]
    assert seen == [i for i in made[::-1] if i != made[2]]
    oldest = mem.list(order="oldest", user_id="u", limit=2)
    assert [n.id for n in oldest] == [made[1], made[3]]
    rest = mem.list(order="oldest", user_id="u", limit=2, cursor=oldest.cursor)
    assert [n.text for n in rest] == ["note 5", "written while paging"]
    assert rest.cursor is None
    with pytest.raises(InvalidQuery):  # a cursor is for the filters it was made with
        mem.list(order="oldest", user_id="v", cursor=oldest.cursor)
    with pytest.raises(InvalidQuery):
        mem.list(cursor="garbage!")
    assert mem.namespaced("other").list() == []
    with pytest.raises(InvalidQuery):
        mem.namespaced("other").list(order="oldest", user_id="u", cursor=oldest.cursor)


def test_list_current_hides_superseded_and_as_of_reads_the_past(mem: Memory) -> None:
    old = mem.remember("Maya lives in Berlin", user_id="maya")
    before = mem.seq
    new = mem.remember("Maya lives in Lisbon", user_id="maya", supersedes=old.id)
    assert {n.id for n in mem.list(user_id="maya")} == {old.id, new.id}
    assert [n.id for n in mem.list(user_id="maya", current=True)] == [new.id]
    assert [n.id for n in mem.list(as_of=before)] == [old.id]


def test_stats_count_per_tier_domain_and_user(mem: Memory) -> None:
    _people(mem)
    mem.remember("no user here")
    stats = mem.stats()
    assert stats["memories"] == 5
    assert stats["by_user"] == {"maya@example.com": 2, "bob": 1, "carol": 1, "null": 1}
    assert stats["by_domain"] == {"prefs": 4, "null": 1}
    assert sum(stats["by_tier"].values()) == 5
    assert mem.as_of(1).stats()["memories"] == 1


def test_namespaces_take_emails_and_uuids_but_not_separators() -> None:
    with Memory.open(":memory:", embedder=None) as m:
        for ns in ("maya+work@example.com", "4b2c8c3e-9d3c-4a8e-b9b5-0c1d2e3f4a5b"):
            view = m.namespaced(ns)
            node = view.remember("tenant data")
            assert view.get(node.id).namespace == ns
            assert m.namespaced("default").list() == []
        for bad in ("a|b", "a/b", "a b", "@lead", ""):
            with pytest.raises(InvalidNamespace):
                m.namespaced(bad)


def test_forget_where_takes_a_filter_and_refuses_none(mem: Memory) -> None:
    ids = _people(mem)
    other = mem.namespaced("other")
    theirs = other.remember("Bob likes black coffee", user_id="bob")
    head = mem.seq
    with pytest.raises(InvalidInput):
        mem.forget_where()
    with pytest.raises(InvalidInput):
        mem.forget_where(filters={})
    assert mem.seq == head
    assert mem.forget_where(user_id="bob", dry_run=True) == [ids["Bob likes black coffee"]]
    assert mem.seq == head
    assert mem.forget_where(user_id="bob") == [ids["Bob likes black coffee"]]
    assert other.get(theirs.id).text == "Bob likes black coffee"  # the tenant boundary holds
    assert set(mem.forget_where(filters={"attrs.age": 31})) == {
        ids["Maya likes green tea"], ids["Maya likes long walks"]}
    assert mem.forget_where(run_id="run-3") == [ids["Carol likes jasmine tea"]]
    assert mem.list() == [] and mem.forget_where(agent_id="agent-0") == []


def test_forget_where_reopens_what_survivors_superseded(mem: Memory) -> None:
    a = mem.remember("Maya lives in Berlin", name="Maya", user_id="keep")
    b = mem.remember("Maya lives in Porto", name="Maya", user_id="x", supersedes=a.id)
    mem.remember("Maya lives in Faro", name="Maya", user_id="x", supersedes=b.id)
    mem.forget_where(user_id="x")
    assert mem.find("Maya").id == a.id
    assert mem.get(a.id).valid_to is None
    assert [h.id for h in mem.recall("Maya lives")] == [a.id]


def test_drop_namespace_needs_its_name_and_leaves_others(mem: Memory) -> None:
    _people(mem)
    other = mem.namespaced("other")
    kept = other.remember("other tenant")
    with pytest.raises(InvalidInput):
        mem.drop_namespace("other")
    mem.context("plan").remember("staged")
    assert len(mem.drop_namespace("default", dry_run=True)) == 4
    assert len(mem.drop_namespace("default")) == 4
    assert mem.list() == [] and mem.stats()["memories"] == 0 and mem.contexts() == []
    assert other.get(kept.id).text == "other tenant"


def test_erased_subject_and_dropped_namespace_leave_no_bytes(tmp_path: Path) -> None:
    """Raw-bytes scan: after forget_where / drop_namespace + compact, no file of the
    store (db, WAL, snapshots) holds the content, attributes or vectors."""
    path = tmp_path / "e.engram"
    with Memory.open(path, embedder=HashingEmbedder(dim=32)) as mem:
        keep = mem.remember("KEEP-TEXT-11 stays", user_id="kept")
        gone = mem.remember("ERASE-TEXT-22 goes", user_id="subject-1", attrs={"pin": "ERASE-PIN-3"})
        mem.relate(keep.id, "knows", gone.id, attrs={"note": "ERASE-EDGE-4"})
        drop = mem.namespaced("tenant-b")
        dropped = drop.remember("DROP-TEXT-55 goes", attrs={"pin": "DROP-PIN-6"})
        drop.record_outcome(dropped.id, "success", goal="DROP-GOAL-7")
        drop.context("plan").remember("DROP-STAGED-8")
        vectors = [e.payload.vector for e in mem.store.log.read()
                   if e.type == "vector.stored" and e.stream in (gone.id, dropped.id)]
        assert len(vectors) == 2
        mem.snapshot()
        files = mem.files()
        blob = b"".join(Path(f).read_bytes() for f in files if Path(f).is_file())
        assert all(v in blob for v in vectors) and b"DROP-STAGED-8" in blob
        assert mem.forget_where(user_id="subject-1") == [gone.id]
        assert drop.drop_namespace("tenant-b") == [dropped.id]
        mem.compact()
        files = mem.files()
    blob = b"".join(Path(f).read_bytes() for f in files if Path(f).is_file())
    for marker in (b"ERASE-", b"DROP-", *vectors):
        assert marker not in blob, marker
    assert b"KEEP-TEXT-11" in blob
    with Memory.open(path, embedder=HashingEmbedder(dim=32)) as mem:
        assert mem.get(keep.id).text.startswith("KEEP")
        assert mem.namespaced("tenant-b").list() == []
        assert mem.check().ok
