"""Contexts: a private overlay over shared memory (``Memory.context``)."""

from __future__ import annotations

import base64
import pathlib
import re
import shutil
from typing import Any

import pytest

from engramdb import Memory
from engramdb.cognition.staging import ContextsProjection
from engramdb.errors import ConcurrencyConflict, Conflict, InvalidInput, NotFound, ReadOnly
from engramdb.events import REDACTED
from engramdb.recall.embed import HashingEmbedder

ROOT = pathlib.Path(__file__).resolve().parents[2]


def open_mem(path: str = ":memory:", **kw: Any) -> Memory:
    return Memory.open(path, embedder=HashingEmbedder(dim=64), **kw)


@pytest.fixture
def mem() -> Any:
    m = open_mem()
    yield m
    m.close()


def seed(mem: Memory) -> dict[str, str]:
    acme = mem.remember("Acme builds rockets in Texas", domain="companies", name="Acme")
    alice = mem.remember("Alice leads the platform team", domain="people", name="Alice")
    mem.relate(alice.id, "works_at", acme.id)
    return {"acme": acme.id, "alice": alice.id}


def visible(mem: Memory) -> dict[str, Any]:
    """Everything a shared reader can see, in comparable form."""
    nodes = {}
    for node_id in mem._nodes.ids():
        if mem.exists(node_id):
            n = mem.get(node_id)
            nodes[node_id] = (n.text, n.name, n.domain, n.kind, n.attrs, n.valid_from, n.valid_to)
    edges = sorted(
        (nb.edge.src, nb.edge.rel, nb.edge.dst, str(nb.edge.attrs))
        for node_id in nodes for nb in mem.neighbors(node_id)
    )
    hits = [(h.id, round(h.score, 9)) for h in mem.recall("rockets team launch", k=20,
                                                          signals=("vector", "text", "graph"))]
    return {"nodes": nodes, "edges": edges, "domains": mem.domains(), "recall": hits,
            "bridges": sorted((b.src, b.rel, b.dst) for b in mem.bridges())}


# -- isolation -------------------------------------------------------------------


def test_other_readers_see_nothing_until_commit(mem: Memory) -> None:
    ids = seed(mem)
    other = mem.namespaced("default")  # another handle on the same store
    rival = mem.context("rival")
    before = visible(mem)
    ctx = mem.context("agent-7", agent="planner")
    note = ctx.remember("Launch may slip to Q3", domain="plans", name="Slip")
    ctx.update(ids["acme"], text="Acme builds rockets and satellites")
    ctx.relate(note.id, "about", ids["acme"])
    ctx.forget(ids["alice"])

    for reader in (mem, other):
        assert visible(reader) == before
        with pytest.raises(NotFound):
            reader.get(note.id)
        assert reader.get(ids["alice"]).text == "Alice leads the platform team"
        with pytest.raises(NotFound):
            reader.find("Slip")
        assert all(h.id != note.id for h in reader.recall("slip launch"))
        with pytest.raises(NotFound):  # not even the context's own stream shows it
            reader.history(ctx.stream)
    assert not rival.exists(note.id)
    assert rival.get(ids["acme"]).text == "Acme builds rockets in Texas"
    assert rival.exists(ids["alice"])

    published = ctx.commit()
    assert [e.type for e in published] == [
        "node.created", "vector.stored", "node.updated", "vector.stored", "edge.added",
        "node.forgotten",
    ]
    for reader in (mem, other):
        assert reader.get(note.id).text == "Launch may slip to Q3"
        assert reader.get(ids["acme"]).text == "Acme builds rockets and satellites"
        assert not reader.exists(ids["alice"])
        assert [nb.node.id for nb in reader.neighbors(note.id)] == [ids["acme"]]
        assert reader.recall("slip launch", k=1)[0].id == note.id
    # snapshot isolation: a context opened before the commit still reads as of its
    # opening -- except that forgetting is retroactive in every view
    assert not rival.exists(note.id)
    assert rival.get(ids["acme"]).text == "Acme builds rockets in Texas"
    assert not rival.exists(ids["alice"])
    assert mem.context("late").get(note.id).domain == "plans"


def test_other_namespaces_never_see_a_context(mem: Memory) -> None:
    seed(mem)
    elsewhere = mem.namespaced("team-b")
    ctx = mem.context("agent-7")
    note = ctx.remember("private plan for Acme")
    same_name = elsewhere.context("agent-7")
    assert not same_name.exists(note.id)
    assert [c.name for c in mem.contexts()] == ["agent-7"]
    assert elsewhere.contexts() == []
    ctx.commit()
    assert not elsewhere.exists(note.id)
    assert elsewhere.recall("private plan acme") == []
    assert mem.exists(note.id)


# -- read your writes ------------------------------------------------------------


def test_reads_see_shared_plus_local_writes(mem: Memory) -> None:
    ids = seed(mem)
    ctx = mem.context("agent-7", agent="planner")
    note = ctx.remember("Launch may slip to Q3", domain="plans", name="Slip",
                        attrs={"confidence": 0.4})
    assert ctx.get(note.id).attrs == {"confidence": 0.4}
    assert ctx.find("slip").id == note.id
    assert ctx.find("Acme").id == ids["acme"]
    ctx.update(ids["acme"], domain="aerospace", attrs={"risk": "high"})
    ctx.relate(note.id, "about", ids["acme"], attrs={"why": "supplier"})
    assert ctx.get(ids["acme"]).attrs == {"risk": "high"}
    assert ctx.domains() == {"aerospace": 1, "people": 1, "plans": 1}
    assert [n.id for n in ctx.in_domain("aerospace")] == [ids["acme"]]
    assert ctx.in_domain("companies") == []
    into_acme = {nb.node.id for nb in ctx.neighbors(ids["acme"], direction="in")}
    assert into_acme == {ids["alice"], note.id}
    assert {(b.src_domain, b.dst_domain) for b in ctx.bridges()} == {
        ("people", "aerospace"), ("plans", "aerospace")}
    # recall merges local memories into the shared results
    hits = ctx.recall("when will the launch slip", k=3)
    assert hits[0].id == note.id and "text" in hits[0].signals
    assert hits[0].provenance is not None and hits[0].provenance.agent == "planner"
    assert ctx.recall("rockets Texas", k=1)[0].id == ids["acme"]
    assert ctx.recall("slip", domains="plans", signals=("vector",))[0].id == note.id
    # provenance and history name the local events
    prov = ctx.provenance(ids["acme"], "attrs.risk")
    assert prov.agent == "planner" and prov.value == "high"
    assert ctx.provenance(ids["acme"], "text").value == "Acme builds rockets in Texas"
    assert [e.type for e in ctx.history(ids["acme"])] == [
        "node.created", "vector.stored", "node.updated"]
    assert [e.type for e in ctx.changes()] == [
        "node.created", "vector.stored", "node.updated", "edge.added"]
    # forgetting locally hides the node and its edges here, and masks its content
    ctx.forget(note.id)
    assert not ctx.exists(note.id)
    assert {nb.node.id for nb in ctx.neighbors(ids["acme"], direction="in")} == {ids["alice"]}
    assert all(h.id != note.id for h in ctx.recall("launch slip"))
    assert {e.type for e in ctx.history(note.id)} == {REDACTED, "node.forgotten"}
    ctx.unrelate(ids["alice"], "works_at", ids["acme"])
    assert ctx.neighbors(ids["alice"]) == []
    assert [nb.node.id for nb in mem.neighbors(ids["alice"])] == [ids["acme"]]


# -- commit: atomic, optimistic per stream ----------------------------------------


def test_conflicting_commit_publishes_nothing_and_stays_open(mem: Memory) -> None:
    a = mem.remember("first memory about rockets")
    b = mem.remember("second memory about engines")
    c = mem.remember("third memory about fuel")
    ctx = mem.context("agent-7")
    for node in (a, b, c):
        ctx.update(node.id, attrs={"seen": True})
    mem.update(b.id, text="second memory, changed by someone else")
    head, before = mem.seq, visible(mem)
    with pytest.raises(ConcurrencyConflict) as info:
        ctx.commit()
    assert info.value.details["streams"] == [b.id]
    assert b.id in str(info.value)
    assert mem.seq == head and visible(mem) == before  # all or nothing
    assert ctx.closed is None and [i.name for i in mem.contexts()] == ["agent-7"]
    assert ctx.conflicts() == [b.id]
    # rebase: read the present, keep the local writes on top, then commit
    ctx.rebase()
    assert ctx.get(b.id).text == "second memory, changed by someone else"
    assert ctx.get(b.id).attrs == {"seen": True}
    ctx.commit()
    assert all(mem.get(n.id).attrs == {"seen": True} for n in (a, b, c))
    assert mem.get(b.id).text == "second memory, changed by someone else"
    assert mem.contexts() == []


def test_first_commit_wins(mem: Memory) -> None:
    ids = seed(mem)
    one, two = mem.context("one"), mem.context("two")
    one.update(ids["acme"], attrs={"by": "one"})
    two.update(ids["acme"], attrs={"by": "two"})
    two.update(ids["alice"], attrs={"by": "two"})
    one.commit()
    head, before = mem.seq, visible(mem)
    with pytest.raises(ConcurrencyConflict) as info:
        two.commit()
    assert info.value.details["streams"] == [ids["acme"]]
    assert mem.seq == head and visible(mem) == before
    assert mem.get(ids["acme"]).attrs == {"by": "one"}
    assert mem.get(ids["alice"]).attrs == {}
    two.discard()
    assert mem.get(ids["alice"]).attrs == {}


def test_disjoint_contexts_both_commit(mem: Memory) -> None:
    ids = seed(mem)
    one, two = mem.context("one"), mem.context("two")
    one.update(ids["acme"], attrs={"by": "one"})
    two.update(ids["alice"], attrs={"by": "two"})
    one.commit()
    two.commit()
    assert mem.get(ids["acme"]).attrs == {"by": "one"}
    assert mem.get(ids["alice"]).attrs == {"by": "two"}


def test_taken_id_conflicts_at_once_and_at_commit(mem: Memory) -> None:
    mem.remember("taken", id="fixed-id")
    ctx = mem.context("agent-7")
    head = mem.seq
    with pytest.raises(ConcurrencyConflict):
        ctx.remember("mine", id="fixed-id")
    assert mem.seq == head
    ctx.remember("mine", id="new-id")
    mem.remember("someone else's", id="new-id")
    with pytest.raises(ConcurrencyConflict):
        ctx.commit()
    ctx.rebase()  # a creation cannot be rebased over someone else's memory
    with pytest.raises(ConcurrencyConflict):
        ctx.commit()
    assert mem.get("new-id").text == "someone else's"


# -- discard, the with block, closed contexts ------------------------------------


def test_discard_is_as_if_nothing_happened(mem: Memory) -> None:
    ids = seed(mem)
    head, before = mem.seq, visible(mem)
    ctx = mem.context("agent-7")
    note = ctx.remember("an idea to drop", domain="plans")
    ctx.update(ids["acme"], text="Acme is bankrupt")
    ctx.relate(note.id, "about", ids["alice"])
    ctx.forget(ids["alice"])
    ctx.discard()
    assert visible(mem) == before
    added = list(mem.store.log.read(after=head))
    assert {e.type.split(".")[0] for e in added} == {"context"}
    assert {e.stream for e in added} == {ctx.stream}
    assert added[-1].type == "context.discarded"
    assert mem.contexts() == []
    with pytest.raises(Conflict):
        ctx.get(ids["acme"])
    with pytest.raises(Conflict):
        ctx.remember("too late")


def test_with_block_discards_on_error_and_keeps_open_otherwise(mem: Memory) -> None:
    with mem.context("kept") as ctx:
        kept = ctx.remember("kept for later")
    assert [c.name for c in mem.contexts()] == ["kept"]
    assert mem.context("kept").get(kept.id).text == "kept for later"
    with pytest.raises(RuntimeError), mem.context("failed") as ctx:  # noqa: PT012 - the body is the point
        ctx.remember("half-done work")
        raise RuntimeError("the agent crashed")
    assert ctx.closed == "discarded"
    assert [c.name for c in mem.contexts()] == ["kept"]
    reopened = mem.context("failed")
    assert reopened.changes() == []


def test_a_read_only_context_leaves_no_trace(mem: Memory) -> None:
    ids = seed(mem)
    head = mem.seq
    ctx = mem.context("reader")
    assert ctx.get(ids["acme"]).name == "Acme"
    ctx.commit()
    mem.context("reader2").discard()
    assert mem.seq == head


def test_bad_input_changes_nothing(mem: Memory) -> None:
    ids = seed(mem)
    ctx = mem.context("agent-7")
    head = mem.seq
    with pytest.raises(InvalidInput):
        ctx.remember(123)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        ctx.update(ids["acme"], text=5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        ctx.relate(ids["acme"], "", ids["alice"])
    with pytest.raises(NotFound):
        ctx.update("nope", text="x")
    with pytest.raises(NotFound):
        ctx.unrelate(ids["acme"], "works_at", ids["alice"])
    for bad in ("", "x" * 101, "has space", 7):
        with pytest.raises(InvalidInput):
            mem.context(bad)  # type: ignore[arg-type]
    assert mem.seq == head and ctx.changes() == []


def test_a_failed_write_leaves_the_overlay_as_it_was(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "agent.engram")
    with open_mem(path) as mem:
        ids = seed(mem)
        ctx = mem.context("agent-7")
        note = ctx.remember("staged before")
        ctx.relate(note.id, "about", ids["acme"])
    with open_mem(path, read_only=True) as reader:
        ctx = reader.context("agent-7")
        before = [(nb.edge.rel, nb.node.id) for nb in ctx.neighbors(ids["alice"])]
        with pytest.raises(ReadOnly):
            ctx.relate(ids["alice"], "works_at", ids["acme"])  # an existing edge's stream
        assert [(nb.edge.rel, nb.node.id) for nb in ctx.neighbors(ids["alice"])] == before
        assert len(ctx.changes()) == 3


def test_two_handles_on_one_context_stay_consistent(mem: Memory) -> None:
    ids = seed(mem)
    h1 = mem.context("shared-ctx")
    first = h1.remember("from handle one")
    h2 = mem.context("shared-ctx")
    assert h2.get(first.id).text == "from handle one"
    second = h2.remember("from handle two")
    h1.update(ids["acme"], attrs={"x": 1})  # h1 catches up before staging
    assert h1.get(second.id).text == "from handle two"
    h1.commit()
    assert mem.exists(first.id) and mem.exists(second.id)
    with pytest.raises(Conflict):
        h2.remember("after the commit")


def test_a_name_can_be_reused_after_commit(mem: Memory) -> None:
    first = mem.context("daily")
    old = first.remember("monday notes")
    first.commit()
    second = mem.context("daily")
    assert second.exists(old.id) and second.changes() == []
    new = second.remember("tuesday notes")
    assert [(c.name, c.pending) for c in mem.contexts()] == [("daily", 2)]
    assert mem.compact() == 1  # only the committed incarnation's staging is erased
    assert mem.context("daily").get(new.id).text == "tuesday notes"
    second.commit()
    assert mem.get(new.id).text == "tuesday notes"


def test_projection_is_a_fold_of_the_log(mem: Memory) -> None:
    ids = seed(mem)
    a = mem.context("a")
    a.remember("a1")
    early = ContextsProjection()
    for event in mem.store.log.read():
        early.process(event)
    snap, snap_seq = early.snapshot(), mem.seq
    b = mem.context("b", agent="x")
    b.update(ids["acme"], attrs={"k": 1})
    a.remember("a2")
    a.rebase()
    b.discard()
    mem.context("c").remember("c1")
    live = mem.store.projection("contexts").snapshot()
    full = ContextsProjection()
    for event in mem.store.log.read():
        full.process(event)
    tail = ContextsProjection()
    tail.restore(snap)
    for event in mem.store.log.read(after=snap_seq):
        tail.process(event)
    assert live == full.snapshot() == tail.snapshot()
    assert [c.name for c in full.open_contexts("default")] == ["a", "c"]


# -- durability ------------------------------------------------------------------


@pytest.mark.parametrize("snapshots", [True, False])
def test_context_survives_restart(tmp_path: pathlib.Path, snapshots: bool) -> None:
    path = str(tmp_path / "agent.engram")
    with open_mem(path) as mem:
        ids = seed(mem)
        ctx = mem.context("agent-7", agent="planner")
        note = ctx.remember("Launch may slip to Q3", domain="plans")
        ctx.update(ids["acme"], attrs={"risk": "high"})
        ctx.relate(note.id, "about", ids["acme"])
        read_seq = ctx.read_seq
        mem.remember("written by someone else after the context opened")
        with open_mem(path, read_only=True) as reader:  # another process's view
            assert not reader.exists(note.id)
            assert reader.get(ids["acme"]).attrs == {}
            assert [c.name for c in reader.contexts()] == ["agent-7"]
    if not snapshots:  # rebuilt from the log alone
        shutil.rmtree(path + ".snapshots")
    with open_mem(path) as mem:
        assert ("contexts" in mem.store.restored) is snapshots
        [info] = mem.contexts()
        assert (info.name, info.agent, info.read_seq, info.pending) == (
            "agent-7", "planner", read_seq, 4)
        assert not mem.exists(note.id)
        ctx = mem.context("agent-7")
        assert ctx.read_seq == read_seq
        assert ctx.get(note.id).text == "Launch may slip to Q3"
        assert ctx.get(ids["acme"]).attrs == {"risk": "high"}
        assert ctx.recall("launch slip", k=1)[0].id == note.id
        assert [nb.node.id for nb in ctx.neighbors(note.id)] == [ids["acme"]]
        ctx.commit()
    with open_mem(path) as mem:
        assert mem.contexts() == []
        assert mem.get(ids["acme"]).attrs == {"risk": "high"}
        assert [nb.node.id for nb in mem.neighbors(note.id)] == [ids["acme"]]


def on_disk(mem: Memory) -> bytes:
    return b"".join(pathlib.Path(f).read_bytes() for f in mem.files() if pathlib.Path(f).exists())


def test_compact_erases_discarded_and_committed_staging(tmp_path: pathlib.Path) -> None:
    path = str(tmp_path / "agent.engram")
    with open_mem(path) as mem:
        seed(mem)
        dropped = mem.context("dropped")
        dropped.remember("zanzibar-secret-plan")
        # staged payloads sit base64-encoded inside the context.staged event
        [op] = mem.store.projection("contexts").get(dropped.stream).ops
        needles = [b"zanzibar", base64.b64encode(op.drafts[0].payload)]
        dropped.discard()
        assert any(n in on_disk(mem) for n in needles)  # the check below can fail
        kept = mem.context("kept")
        published = kept.remember("quokka-published-note")
        kept.commit()
        still_open = mem.context("open")
        still_open.remember("wombat-pending-draft")
        assert mem.compact() == 2
        assert not any(n in on_disk(mem) for n in needles)
        assert mem.get(published.id).text == "quokka-published-note"
        assert mem.context("open").find  # the open context is intact
        assert [c.pending for c in mem.contexts()] == [2]
    with open_mem(path) as mem:
        [node] = [e for e in mem.context("open").changes() if e.type == "node.created"]
        assert node.payload.text == "wombat-pending-draft"


def test_compact_erases_staged_writes_to_forgotten_memories(mem: Memory) -> None:
    ids = seed(mem)
    ctx = mem.context("agent-7")
    ctx.update(ids["alice"], text="Alice's secret salary")
    mem.forget(ids["alice"])
    assert not ctx.exists(ids["alice"])  # forgetting is retroactive, in contexts too
    assert mem.compact() >= 1
    assert [c.pending for c in mem.contexts()] == [0]


# -- README ----------------------------------------------------------------------


def test_readme_contexts_example_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
              if "mem.context(" in b]
    assert blocks, "README has no contexts example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_local_text_hits_are_scored_on_the_shared_corpus(mem: Memory) -> None:
    shared = mem.remember("quarterly rocket launch review", domain="ops")
    mem.remember("team lunch on friday")
    mem.remember("rocket engines need review")
    index = mem.store.projection("text").index  # type: ignore[attr-defined]
    n, total, df = index.corpus_stats(["rocket", "review", "absent"])
    assert (n, total, df) == (3, 11.0, {"rocket": 2, "review": 2})
    with mem.context("scoring") as ctx:
        twin = ctx.remember("quarterly rocket launch review", domain="ops")
        hits = {h.id: h for h in ctx.recall("rocket review", k=5, signals=("text",))}
        # scored on the shared corpus plus the local document (not on the local one alone)
        local = hits[twin.id].signals["text"]["score"]
        base = hits[shared.id].signals["text"]["score"]
        assert 0.5 * base < local < base  # one more document holding the terms: a bit lower
        ctx.discard()


def test_forgetting_a_newer_fact_in_a_context_reopens_the_older_one(mem: Memory) -> None:
    slot = {"subject": "Maya", "predicate": "lives_in"}
    berlin = mem.remember("Maya lives in Berlin", attrs=slot)
    lisbon = mem.remember("Maya lives in Lisbon", attrs=slot)
    assert mem.get(berlin.id).valid_to is not None
    with mem.context("cleanup") as ctx:
        ctx.forget(lisbon.id)
        assert ctx.get(berlin.id).valid_to is None  # read your writes
        assert mem.get(berlin.id).valid_to is not None  # nobody else sees it yet
        ctx.commit()
    assert mem.get(berlin.id).valid_to is None
    assert [h.id for h in mem.recall("where does Maya live", k=1, valid_at="2100-01-01")] == [
        berlin.id]


def test_supersedes_in_a_context(mem: Memory) -> None:
    old = mem.remember("The launch is in May", valid_from="2026-01-01")
    head = mem.seq
    with mem.context("planner") as ctx:
        with pytest.raises(NotFound):
            ctx.remember("x", supersedes="no-such-id")
        with pytest.raises(InvalidInput):
            ctx.remember("x", id="self1", supersedes="self1")
        assert ctx.changes() == [] and mem.seq == head  # bad input staged nothing
        new = ctx.remember("The launch is in July", supersedes=old.id, valid_from="2026-04-01")
        assert ctx.get(old.id).valid_to == new.valid_from
        assert [h.id for h in ctx.recall("when is the launch", k=5)] == [new.id]
        assert mem.get(old.id).valid_to is None  # private until commit
        ctx.commit()
    assert mem.get(old.id).valid_to == new.valid_from
    assert [h.id for h in mem.recall("when is the launch", k=5)] == [new.id]
    assert [n.node.id for n in mem.neighbors(new.id, rel="supersedes")] == [old.id]
