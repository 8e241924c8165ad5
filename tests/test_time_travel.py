"""Time travel, provenance, read-only views, forgetting and compaction."""

from __future__ import annotations

import inspect
import random
import string
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engramdb import Memory, View
from engramdb.errors import InvalidInput, NotFound
from engramdb.events import (
    EDGE_ADDED,
    NODE_CREATED,
    NODE_FORGOTTEN,
    NODE_UPDATED,
    REDACTED,
    NodeForgotten,
    Redacted,
    edge_stream,
    from_us,
)
from engramdb.view import Reader


@pytest.fixture(params=["memory", "sqlite"])
def mem(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Memory]:
    path = ":memory:" if request.param == "memory" else tmp_path / "tt.engram"
    m = Memory.open(path, embedder=None)
    yield m
    m.close()


def tick() -> None:
    """Let the clock move so consecutive commits get different timestamps."""
    start = time.time_ns() // 1000
    while time.time_ns() // 1000 <= start + 1:
        time.sleep(0.001)


def marker(prefix: str) -> str:
    """A unique lowercase word (survives tokenising unchanged)."""
    return prefix + "".join(random.choices(string.ascii_lowercase, k=20))


# -- as_of -------------------------------------------------------------------------


def test_as_of_by_seq_and_by_datetime(mem: Memory) -> None:
    a = mem.remember("Maya lives in Berlin", domain="people", name="Maya")
    tick()
    b = mem.remember("Acme builds robots", domain="companies")
    tick()
    mem.relate(a.id, "works_at", b.id)
    tick()
    a2 = mem.update(a.id, text="Maya lives in Lisbon", domain="expats")
    tick()
    mem.unrelate(a.id, "works_at", b.id)
    seqs = {"a": a.seq, "b": b.seq, "rel": b.seq + 1, "a2": a2.seq, "end": mem.seq}
    assert seqs["a2"] == seqs["rel"] + 1 and seqs["end"] == seqs["a2"] + 1

    # by seq
    assert mem.as_of(seqs["a"]).get(a.id).text == "Maya lives in Berlin"
    with pytest.raises(NotFound):
        mem.as_of(seqs["a"]).get(b.id)
    assert mem.as_of(seqs["rel"]).domains() == {"people": 1, "companies": 1}
    assert [n.node.id for n in mem.as_of(seqs["rel"]).neighbors(a.id)] == [b.id]
    assert [x.rel for x in mem.as_of(seqs["rel"]).bridges()] == ["works_at"]
    assert mem.as_of(seqs["a2"]).get(a.id).text == "Maya lives in Lisbon"
    assert mem.as_of(seqs["a2"]).domains() == {"expats": 1, "companies": 1}
    assert mem.as_of(seqs["end"]).neighbors(a.id) == []
    assert mem.as_of(10**9).seq == mem.seq  # beyond the head: the head
    assert mem.find("Maya").id == a.id

    # by datetime (aware, naive-as-UTC and ISO string) at each commit's own timestamp
    for key, node in (("a", a), ("b", b), ("a2", a2)):
        at = from_us(node.updated_at)
        assert mem.as_of(at).seq == seqs[key], key
        assert mem.as_of(at.replace(tzinfo=None)).seq == seqs[key]
        assert mem.as_of(at.isoformat()).seq == seqs[key]
        assert mem.as_of(at - timedelta(microseconds=1)).seq < seqs[key]
    when = from_us(a.created_at)
    assert mem.as_of(when).get(a.id).text == "Maya lives in Berlin"
    assert mem.as_of(from_us(a2.updated_at)).get(a.id).domain == "expats"
    assert mem.as_of(datetime.now(UTC) + timedelta(days=1)).seq == mem.seq

    for bad in (-1, True, "not a time", 1.5j):
        with pytest.raises(InvalidInput):
            mem.as_of(bad)  # type: ignore[arg-type]


def test_as_of_before_the_first_event_is_empty(mem: Memory) -> None:
    opened = datetime.now(UTC) - timedelta(microseconds=1)
    tick()
    a = mem.remember("first", domain="d", name="First")
    b = mem.remember("second", domain="e")
    mem.relate(a.id, "r", b.id)
    for when in (opened, datetime(2000, 1, 1, tzinfo=UTC), "1999-12-31T23:59:59", 0):
        view = mem.as_of(when)
        assert view.seq == 0
        assert view.domains() == {}
        assert view.in_domain("d") == []
        assert view.bridges() == []
        assert view.stats()["in_domains"] == 0
        for node_id in (a.id, b.id):
            assert not view.exists(node_id)
            with pytest.raises(NotFound):
                view.get(node_id)
            with pytest.raises(NotFound):
                view.neighbors(node_id)
            with pytest.raises(NotFound):
                view.history(node_id)
        with pytest.raises(NotFound):
            view.find("First")
        with pytest.raises(NotFound):
            view.provenance(a.id, "text")


# -- provenance --------------------------------------------------------------------


def test_provenance_names_event_agent_source_and_session(mem: Memory) -> None:
    node = mem.remember(
        "Maya lives in Berlin", domain="people", attrs={"city": "Berlin", "age": 30},
        agent="extractor", source="chat", session="s1",
    )
    tick()
    mem.update(node.id, text="Maya lives in Lisbon", agent="editor", source="ui", session="s2")
    tick()
    mem.update(node.id, domain="expats", attrs={"city": "Lisbon"}, agent="mover", session="s3")
    tick()
    mem.update(node.id, attrs={"pet": "cat"}, unset=["age"], agent="cleaner", source="job")
    history = mem.history(node.id)
    assert [e.type for e in history] == [NODE_CREATED] + [NODE_UPDATED] * 3
    created, text_set, moved, cleaned = history

    want = {
        "text": ("Maya lives in Lisbon", text_set),
        "domain": ("expats", moved),
        "kind": ("memory", created),
        "name": (None, created),
        "attrs.city": ("Lisbon", moved),
        "attrs.pet": ("cat", cleaned),
    }
    for field, (value, event) in want.items():
        p = mem.provenance(node.id, field)
        assert (p.node_id, p.field, p.value) == (node.id, field, value), field
        assert (p.event_id, p.seq, p.type) == (event.id, event.seq, event.type), field
        assert p.recorded_at == from_us(event.recorded_at)
        assert (p.agent, p.source, p.session) == (
            event.meta.agent, event.meta.source, event.meta.session), field
    assert mem.provenance(node.id, "text").agent == "editor"
    assert mem.provenance(node.id, "text").session == "s2"
    assert mem.provenance(node.id, "domain").agent == "mover"
    assert mem.provenance(node.id, "attrs.pet").source == "job"

    with pytest.raises(NotFound):  # unset by the last update
        mem.provenance(node.id, "attrs.age")
    with pytest.raises(NotFound):
        mem.provenance(node.id, "colour")

    # in the past, provenance names the event that had set the value by then
    past = mem.as_of(text_set.seq - 1)
    p = past.provenance(node.id, "text")
    assert (p.value, p.event_id, p.agent, p.session) == (
        "Maya lives in Berlin", created.id, "extractor", "s1")
    p = past.provenance(node.id, "attrs.age")
    assert (p.value, p.event_id, p.source) == (30, created.id, "chat")
    p = mem.as_of(moved.seq).provenance(node.id, "attrs.city")
    assert (p.value, p.seq, p.agent) == ("Lisbon", moved.seq, "mover")

    mem.forget(node.id, agent="gdpr")
    with pytest.raises(NotFound):
        mem.provenance(node.id, "text")
    with pytest.raises(NotFound):
        mem.as_of(moved.seq).provenance(node.id, "text")


# -- views are read-only -----------------------------------------------------------


def test_views_are_read_only_and_frozen(mem: Memory) -> None:
    a = mem.remember("one", domain="d")
    view = mem.as_of(mem.seq)
    assert isinstance(view, View)

    writes = {
        name for name, member in inspect.getmembers(Memory, callable)
        if not name.startswith("_") and not hasattr(Reader, name)
    }
    assert {"remember", "remember_many", "update", "relate", "unrelate", "forget",
            "compact", "snapshot", "close"} <= writes
    for name in sorted(writes):
        assert not hasattr(view, name), f"a View has a {name}() method"
    public = {name for name in dir(view) if not name.startswith("_")}
    assert public <= {name for name in dir(Reader) if not name.startswith("_")} | {"namespace"}

    seq = view.seq
    b = mem.remember("two", domain="d")
    mem.update(a.id, text="one, changed")
    mem.relate(a.id, "r", b.id)
    assert view.seq == seq  # later writes do not move a view
    assert view.get(a.id).text == "one"
    assert not view.exists(b.id)
    assert view.domains() == {"d": 1}
    assert view.neighbors(a.id) == []
    assert [e.seq for e in view.history(a.id)] == [a.seq]


# -- forgetting and compaction -----------------------------------------------------


def test_history_of_a_forgotten_memory_is_a_masked_tombstone(mem: Memory) -> None:
    secret = marker("secret")
    a = mem.remember(f"the code is {secret}", domain="people", attrs={"code": secret},
                     agent="extractor")
    mem.update(a.id, text=f"the code is still {secret}", agent="editor")
    before = mem.seq
    tick()
    tomb = mem.forget(a.id, reason="user asked", agent="gdpr-bot")

    for reader in (mem, mem.as_of(before)):  # a view from before the forget masks too
        history = reader.history(a.id)
        assert [e.type for e in history[:2]] == [REDACTED, REDACTED]
        assert [e.payload for e in history[:2]] == [
            Redacted(was=NODE_CREATED), Redacted(was=NODE_UPDATED)]
        assert all(secret not in repr(e) for e in history)
    last = mem.history(a.id)[-1]
    assert last.type == NODE_FORGOTTEN and last.seq == tomb.seq
    assert last.meta.agent == "gdpr-bot"  # by whom
    assert last.recorded_at == tomb.recorded_at and last.recorded <= datetime.now(UTC)  # when
    assert last.payload == NodeForgotten(reason="user asked")
    assert [e.version for e in mem.history(a.id)] == [1, 2, 3]
    with pytest.raises(NotFound):
        mem.get(a.id)
    with pytest.raises(NotFound):
        mem.as_of(before).get(a.id)


def _bytes_of(paths: list[str]) -> dict[str, bytes]:
    out = {}
    for p in paths:
        with open(p, "rb") as fh:
            out[p] = fh.read()
    return out


@pytest.mark.parametrize("embedder", [None, "default"])
def test_compact_erases_forgotten_bytes_from_every_file(
    tmp_path: Path, embedder: Any
) -> None:
    gone, kept = marker("gone"), marker("kept")
    path = tmp_path / "forget.engram"
    mem = Memory.open(path, embedder=embedder)
    try:
        keep = mem.remember(f"keep this {kept}", domain="notes", name="Keeper")
        drop = mem.remember(f"forget this {gone}", domain="notes", name=f"N{gone}",
                            attrs={"note": gone})
        mem.update(drop.id, text=f"forget this too {gone}", attrs={"again": gone})
        mem.relate(keep.id, "mentions", drop.id, attrs={"quote": gone})
        mem.snapshot()  # snapshots (and the WAL) now hold the forgotten text too
        on_disk = _bytes_of(mem.files())
        assert any(gone.encode() in data for data in on_disk.values())
        assert any(p.endswith("-wal") for p in on_disk)

        # created, updated (and with an embedder their vectors), and the quoting edge
        to_redact = len(mem.history(drop.id)) + 1
        assert to_redact == (3 if embedder is None else 5)
        tomb = mem.forget(drop.id, agent="gdpr-bot")
        assert mem.compact() == to_redact
        assert mem.compact() == 0  # nothing left to redact

        files = mem.files()
        assert str(path) in files and any(".snapshots" in f for f in files)
        data = _bytes_of(files)
        for name, blob in data.items():
            assert gone.encode() not in blob, f"the forgotten text is still in {name}"
        assert any(kept.encode() in blob for blob in data.values())
        assert mem.get(keep.id).text == f"keep this {kept}"
    finally:
        mem.close()

    mem = Memory.open(path, embedder=embedder)  # reopening still works
    try:
        assert mem.get(keep.id).text == f"keep this {kept}"
        assert mem.find("Keeper").id == keep.id
        assert mem.domains() == {"notes": 1}
        assert mem.neighbors(keep.id) == []
        with pytest.raises(NotFound):
            mem.get(drop.id)
        history = mem.history(drop.id)
        assert [e.type for e in history] == [REDACTED] * (to_redact - 1) + [NODE_FORGOTTEN]
        was = [e.payload.was for e in history[:-1]]
        assert was[0] == NODE_CREATED and NODE_UPDATED in was
        assert history[-1].seq == tomb.seq and history[-1].meta.agent == "gdpr-bot"
        assert history[-1].recorded_at == tomb.recorded_at
        edge = mem.history(edge_stream(keep.id, "mentions", drop.id))
        assert [e.payload for e in edge] == [Redacted(was=EDGE_ADDED)]
        mem.remember("after reopening")
    finally:
        mem.close()
    for name, blob in _bytes_of(
        [str(p) for p in tmp_path.rglob("*") if p.is_file()]
    ).items():
        assert gone.encode() not in blob, f"the forgotten text is back in {name}"
