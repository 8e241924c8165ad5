"""Tenants are sealed on every write path: an id of another namespace answers
exactly like an id that does not exist, and changes nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engramdb import ConcurrencyConflict, Conflict, EngramError, InvalidInput, Memory, NotFound
from engramdb.cognition.ownership import answer_conflict
from engramdb.events import Draft
from engramdb.events.types import (
    INTERNAL_PREFIXES,
    OUTCOME_RECORDED,
    TIER_CHANGED,
    OutcomeRecorded,
    TierChanged,
)
from engramdb.recall.embed import HashingEmbedder


@pytest.fixture
def two() -> Iterator[tuple[Memory, Memory, dict[str, str]]]:
    """Namespace b holds two memories joined by an edge; a holds one of its own."""
    with Memory.open(":memory:", embedder=HashingEmbedder(dim=32), namespace="a") as a:
        b = a.namespaced("b")
        x, y = b.remember("B's Maya"), b.remember("B's Acme")
        b.relate(x.id, "knows", y.id)
        mine = a.remember("A's own note")
        yield a, b, {"x": x.id, "y": y.id, "mine": mine.id}


def test_unrelate_of_another_namespaces_edge_is_not_found(two: Any) -> None:
    """Regression (issue 9 item 1): a's unrelate removed b's edge."""
    a, b, ids = two
    head = a.seq
    with pytest.raises(NotFound):
        a.unrelate(ids["x"], "knows", ids["y"])
    with a.context("plan") as ctx, pytest.raises(NotFound):
        ctx.unrelate(ids["x"], "knows", ids["y"])
    assert a.seq == head
    assert [n.node.id for n in b.neighbors(ids["x"])] == [ids["y"]]


WRITES: list[tuple[str, Callable[[Memory, dict[str, str]], Any]]] = [
    ("update", lambda m, i: m.update(i["x"], text="hacked")),
    ("forget", lambda m, i: m.forget(i["x"])),
    ("relate src", lambda m, i: m.relate(i["x"], "r", i["mine"])),
    ("relate dst", lambda m, i: m.relate(i["mine"], "r", i["x"])),
    ("unrelate", lambda m, i: m.unrelate(i["x"], "knows", i["y"])),
    ("supersedes", lambda m, i: m.remember("new", supersedes=i["x"])),
    ("batch supersedes", lambda m, i: m.remember_many([{"text": "n", "supersedes": i["x"]}])),
    ("record_outcome", lambda m, i: m.record_outcome(i["x"], "success")),
    ("tier", lambda m, i: m.tier(i["x"])),
    ("ctx update", lambda m, i: m.context("c").update(i["x"], text="hacked")),
    ("ctx forget", lambda m, i: m.context("c").forget(i["x"])),
    ("ctx relate", lambda m, i: m.context("c").relate(i["mine"], "r", i["x"])),
    ("ctx unrelate", lambda m, i: m.context("c").unrelate(i["x"], "knows", i["y"])),
    ("ctx supersedes", lambda m, i: m.context("c").remember("n", supersedes=i["x"])),
    # the net under every path: drafts naming b's memory, appended as a's
    ("tier move", lambda m, i: m._append([Draft(
        type=TIER_CHANGED, stream="tier:" + i["x"], namespace="a",
        payload=TierChanged(memory_id=i["x"], from_tier="short_term", to_tier="archival",
                            reason="x"))])),
    ("outcome", lambda m, i: m._append([Draft(
        type=OUTCOME_RECORDED, stream="outcome:x", namespace="a",
        payload=OutcomeRecorded(memory_id=i["x"], outcome="success"))])),
    ("other namespace's draft", lambda m, i: m._append([Draft(
        type=OUTCOME_RECORDED, stream="outcome:y", namespace="b",
        payload=OutcomeRecorded(memory_id=i["x"], outcome="success"))])),
]


def _masked(error: Exception, ids: dict[str, str]) -> str:
    text = str(error)
    for value in ids.values():
        text = text.replace(value, "?")
    return text


@pytest.mark.parametrize("write", [w for _, w in WRITES], ids=[n for n, _ in WRITES])
def test_every_write_path_treats_another_namespaces_id_as_absent(
    two: Any, write: Callable[[Memory, dict[str, str]], Any],
) -> None:
    a, b, ids = two
    head, before = a.seq, (b.get(ids["x"]), b.neighbors(ids["x"]), b.outcomes(ids["x"]))
    with pytest.raises(NotFound) as theirs:
        write(a, ids)
    absent = {**ids, "x": "0" * 32, "y": "1" * 32}
    with pytest.raises(NotFound) as nothing:
        write(a, absent)
    # the same words as for an id that exists nowhere: nothing about b leaks
    assert _masked(theirs.value, ids) == _masked(nothing.value, absent)
    assert a.seq == head
    assert (b.get(ids["x"]), b.neighbors(ids["x"]), b.outcomes(ids["x"])) == before
    assert a.contexts() == []  # nothing was staged either


def test_http_delete_of_another_namespaces_edge_is_404() -> None:
    """Regression (issue 9 item 1) over HTTP: a's token deleted b's edge with a 200."""
    from tests.adapters._http import make_env

    for env in make_env():
        b = env.mem.namespaced("b")
        other = b.remember("B's other memory")
        b.relate(env.ids["secret_b"], "knows", other.id)
        head = env.mem.seq
        r = env.call("DELETE", "/v1/namespaces/a/edges", as_="write_a", params={
            "src": env.ids["secret_b"], "rel": "knows", "dst": other.id})
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "not_found"
        assert env.mem.seq == head
        assert [n.node.id for n in b.neighbors(env.ids["secret_b"])] == [other.id]


# -- item 2: no tenant can name a stream engramdb derives ---------------------------


@pytest.mark.parametrize("prefix", INTERNAL_PREFIXES)
def test_chosen_ids_cannot_claim_internal_streams(two: Any, prefix: str) -> None:
    """Regression (issue 9 item 2): a could create ``tier:<b id>``, ``access:b``...
    and b's later events landed on a's stream."""
    a, _, ids = two
    head = a.seq
    for claim in (prefix + ids["x"], prefix + "b", (prefix + "b|plan").upper()):
        for write in (lambda c: a.remember("squat", id=c),
                      lambda c: a.remember_many([{"text": "squat", "id": c}]),
                      lambda c: a.context("c").remember("squat", id=c)):
            with pytest.raises(InvalidInput, match="reserved"):
                write(claim)
    assert a.seq == head and a.contexts() == []


def test_http_refuses_a_reserved_id() -> None:
    from tests.adapters._http import make_env

    for env in make_env():
        head = env.mem.seq
        r = env.call("POST", "/v1/namespaces/a/memories", as_="write_a",
                     json={"text": "squat", "id": "tier:" + env.ids["secret_b"]})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "invalid_input"
        assert env.mem.seq == head


def test_every_stream_engramdb_derives_is_reserved() -> None:
    """The class, not the instances: after every kind of write, each stream in the
    log is a memory's own (its ``node.created`` names it) or starts with a
    reserved prefix, so no chosen id can ever be one of them."""
    mem = Memory.open(":memory:", embedder=HashingEmbedder(dim=32), namespace="n",
                      record_reads=True)
    with mem:
        x, y = mem.remember("Maya works at Acme"), mem.remember("Acme builds robots")
        mem.relate(x.id, "knows", y.id)
        mem.unrelate(x.id, "knows", y.id)
        mem.remember("Maya moved", supersedes=x.id)
        mem.record_outcome(y.id, "success", goal="g")
        mem.get(y.id)
        mem.flush_accesses()
        mem.consolidate(now=y.created_at + 400 * 86_400_000_000)
        with mem.context("plan") as ctx:
            ctx.remember("staged")
            ctx.commit()
        mem.context("other").remember("dropped")
        mem.context("other").discard()
        mem.ingest_conversation([{"speaker": "a", "text": "hi"}, {"text": "yo"}], session="s")
        mem.reembed(HashingEmbedder(dim=16))
        events = list(mem.store.log.read())
    nodes = {e.stream for e in events if e.type == "node.created"}
    kinds = {e.type for e in events}
    assert {"tier.changed", "memory.accessed", "outcome.recorded", "context.committed",
            "vectors.model_activated", "edge.removed"} <= kinds
    for e in events:
        assert e.stream in nodes or e.stream.startswith(INTERNAL_PREFIXES), (e.type, e.stream)


# -- item 3: a chosen id is no oracle for other tenants' ids ------------------------


def _refusal(write: Callable[[], Any]) -> tuple[str, str, int]:
    """How a write fails: the error's code, message, and HTTP status."""
    with pytest.raises(EngramError) as info:
        write()
    err = info.value
    return getattr(err, "code", type(err).__name__), str(err), getattr(err, "status", 0)


def test_a_chosen_id_of_another_namespace_reveals_nothing(two: Any) -> None:
    """Regression (issue 9 item 3): b's create with an id a holds answered 409
    "stream 'x' is at version 3" (that it exists, and how often a changed it)
    while a free id answered 201: an oracle for a's ids. Now the answer is an
    invalid id that names no namespace and no version, on every create path,
    and the same whether a's memory was updated or not."""
    a, b, _ = two
    a.remember("a's secret v1", id="alice-1")
    a.remember("a's other", id="alice-2")
    a.update("alice-2", text="v2")
    a.update("alice-2", text="v3")
    head = b.seq
    for held in ("alice-1", "alice-2"):
        answers = {
            _refusal(lambda i=held: b.remember("probe", id=i)),
            _refusal(lambda i=held: b.remember_many([{"text": "probe", "id": i}])),
            _refusal(lambda i=held: b.context("c").remember("probe", id=i)),
        }
        assert answers == {("invalid_input",
                            f"invalid id {held!r}: this id is not available, choose another",
                            422)}
    assert b.seq == head and b.contexts() == []
    assert b.remember("free", id="bob-1").id == "bob-1"
    with pytest.raises(ConcurrencyConflict):  # an id of one's own is a conflict, as before
        a.remember("changed", id="alice-1")


def test_a_racing_create_of_another_namespaces_id_reveals_nothing(two: Any) -> None:
    """The log's own refusal (a create that passed the check while another
    tenant's create of the same id committed) gets the same answer, not the
    log's 409 naming the version."""
    a, b, _ = two
    draft = b._created_draft("probe", meta=b._meta(None, None, None), id="race-1")
    a.remember("a's", id="race-1")
    with pytest.raises(ConcurrencyConflict) as refused:  # the log, past the facade's check
        b.store.append([draft])
    answer = answer_conflict(refused.value, [draft], "b", lambda i: b._nodes.get(i, b.seq))
    assert isinstance(answer, InvalidInput) and not isinstance(answer, ConcurrencyConflict)
    assert str(answer) == "invalid id 'race-1': this id is not available, choose another"
    own = a._created_draft("again", meta=a._meta(None, None, None), id="race-1")
    with pytest.raises(ConcurrencyConflict) as mine:
        a.store.append([own])
    assert answer_conflict(mine.value, [own], "a", lambda i: a._nodes.get(i, a.seq)) \
        is mine.value


def test_http_a_chosen_id_of_another_namespace_reveals_nothing() -> None:
    """Regression (issue 9 item 3) over HTTP: 409 for b's id, 201 for a free one."""
    from tests.adapters._http import make_env

    for env in make_env():
        env.mem.namespaced("b").remember("b's", id="held-by-b")
        head = env.mem.seq
        r = env.call("POST", "/v1/namespaces/a/memories", as_="write_a",
                     json={"text": "probe", "id": "held-by-b"})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid_input"
        assert error["message"] == ("invalid id 'held-by-b': this id is not available,"
                                    " choose another")
        assert "version" not in r.text and "namespace" not in r.text
        assert env.mem.seq == head


def test_a_racing_create_refused_without_a_stream_named_reveals_nothing(two: Any) -> None:
    """A backend's unique violation (PostgreSQL's) names no stream: the create of
    another tenant's id still gets the same answer, and an unrelated conflict of
    one's own stays itself."""
    a, b, _ = two
    a.remember("a's", id="race-2")
    draft = b._created_draft("probe", meta=b._meta(None, None, None), id="race-2")
    unnamed = ConcurrencyConflict("another writer committed the same stream version")
    answer = answer_conflict(unnamed, [draft], "b", lambda i: b._nodes.get(i, b.seq))
    assert str(answer) == "invalid id 'race-2': this id is not available, choose another"
    mine = b._created_draft("probe", meta=b._meta(None, None, None), id="free-3")
    assert answer_conflict(unnamed, [mine], "b", lambda i: b._nodes.get(i, b.seq)) is unnamed


def test_a_chosen_id_is_never_silently_replaced_by_a_duplicates_id(tmp_path: Path) -> None:
    """Remembering the text of a live memory under another chosen id used to answer
    the old memory (created=False), and the chosen id was then 404."""
    with Memory.open(tmp_path / "s.engram", embedder=None) as mem:
        mem.remember("Maya lives in Lisbon", id="k1")
        with pytest.raises(Conflict) as err:
            mem.remember("Maya lives in Lisbon", id="k2")
        assert err.value.details.get("existing") == "k1"
        assert mem.remember("Maya lives in Lisbon", id="k1").created is False  # its own id
        assert mem.remember("Maya lives in Lisbon").id == "k1"  # no id: the duplicate
        with pytest.raises(NotFound):
            mem.get("k2")
