"""Bad input changes nothing: values the log cannot hold losslessly are refused
before anything is written, with a stable code, whichever door they come in by.

The checks live in the events layer (``Registry.coerce`` for payloads,
``to_us`` for times, ``EventLog.prepare`` for a draft's integers) and the one
"a seq or a time" rule in ``view.parse_seq``; these tests go through the facade.
"""

from __future__ import annotations

import enum
import inspect
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engramdb import Memory
from engramdb.adapters.cli import app
from engramdb.errors import InvalidInput, InvalidPayload, InvalidQuery
from engramdb.events import NODE_CREATED, Draft
from engramdb.recall.embed import HashingEmbedder
from engramdb.view import parse_seq

BIG = 2**64  # beyond SQLite's INTEGER and the snapshots' int64


class Level(enum.IntEnum):
    HIGH = 2


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Memory, Path]]:
    path = tmp_path / "a.engram"
    with Memory.open(path, embedder=HashingEmbedder(dim=32)) as mem:
        yield mem, path


def writes(mem: Memory, a: str, b: str) -> dict[str, Callable[[Any], Any]]:
    """Every facade write that takes free-form attributes, as ``attrs -> call``."""
    return {
        "remember": lambda v: mem.remember("x", attrs=v),
        "update": lambda v: mem.update(a, attrs=v),
        "relate": lambda v: mem.relate(a, "r", b, attrs=v),
        "ingest": lambda v: mem.ingest_conversation([{"text": "hi", "attrs": v}], session="s"),
        "remember_many": lambda v: mem.remember_many([{"text": "y", "attrs": v}]),
    }


@pytest.mark.parametrize("value", [BIG, -BIG, 2**63, [1, {"deep": BIG}], math.nan, math.inf,
                                   {"nested": -math.inf}])
def test_unstorable_attribute_values_are_refused_and_the_store_still_snapshots(
    store: tuple[Memory, Path], value: Any
) -> None:
    mem, path = store
    a, b = mem.remember("Maya").id, mem.remember("Acme").id
    head = mem.seq
    for name, call in writes(mem, a, b).items():
        with pytest.raises(InvalidPayload):
            call({"v": value})
        assert mem.seq == head, name
    mem.close()  # writes the snapshots: it used to fail here, after the write was acked
    with Memory.open(path, embedder=HashingEmbedder(dim=32)) as again:
        assert again.seq == head and again.get(a).attrs == {}


def test_mapping_keys_must_be_strings(store: tuple[Memory, Path]) -> None:
    mem, _ = store
    a, b = mem.remember("Maya").id, mem.remember("Acme").id
    head = mem.seq
    for name, call in writes(mem, a, b).items():
        for value in ({"nested": {1: "one"}}, {"sub": OrderedDict({2: "two"})}):
            with pytest.raises(InvalidPayload):
                call(value)
            assert mem.seq == head, name


def test_every_storable_value_still_goes_in(store: tuple[Memory, Path]) -> None:
    mem, path = store
    attrs = {"b": True, "n": None, "f": -1.5, "lo": -(2**63), "hi": 2**63 - 1,
             "l": [1, "a", [False]], "d": {"x": {"y": [0.0]}}, "e": Level.HIGH}
    node = mem.remember("x", attrs=attrs)
    mem.close()
    with Memory.open(path, embedder=HashingEmbedder(dim=32)) as again:
        assert again.get(node.id).attrs == {**attrs, "e": 2}


def test_a_hand_built_payload_is_type_checked_before_the_commit(
    store: tuple[Memory, Path],
) -> None:
    """``update`` builds its payload struct directly; msgspec does not check a
    struct's field types, so a wrong type used to commit, then break a projection."""
    mem, _ = store
    node = mem.remember("Maya lives in Berlin")
    head = mem.seq
    for kwargs in ({"text": 5}, {"name": 3}, {"unset": [1]}):
        with pytest.raises(InvalidInput):
            mem.update(node.id, **kwargs)
        assert mem.seq == head, kwargs
    assert mem.get(node.id).text == "Maya lives in Berlin"


def test_what_projections_see_is_what_a_replay_decodes(store: tuple[Memory, Path]) -> None:
    mem, path = store
    node = mem.remember("x", attrs={"when": datetime(2026, 3, 1, tzinfo=UTC)})
    mem.update(node.id, attrs={"pair": (1, 2)})
    live = mem.get(node.id).attrs
    mem.close()
    with Memory.open(path, embedder=HashingEmbedder(dim=32)) as again:
        assert again.get(node.id).attrs == live == {"pair": [1, 2],
                                                    "when": "2026-03-01T00:00:00Z"}


@pytest.mark.parametrize("when", [BIG, -BIG, 1e30, math.nan, math.inf])
def test_times_beyond_64_bits_are_invalid_input(store: tuple[Memory, Path], when: Any) -> None:
    mem, _ = store
    node = mem.remember("x")
    head = mem.seq
    for call in (lambda: mem.remember("y", valid_from=when),
                 lambda: mem.remember("y", valid_to=when),
                 lambda: mem.update(node.id, valid_from=when),
                 lambda: mem.remember_many([{"text": "z", "valid_to": when}]),
                 lambda: mem.recall("x", valid_at=when)):
        with pytest.raises(InvalidInput):
            call()
    assert mem.seq == head


def test_the_log_refuses_a_draft_integer_beyond_64_bits(store: tuple[Memory, Path]) -> None:
    mem, _ = store
    draft = Draft(type=NODE_CREATED, stream="n1", payload={"text": "x"}, valid_from=BIG)
    with pytest.raises(InvalidInput, match="64 bits"):
        mem.store.append([draft])
    assert mem.seq == 0


def test_remember_many_names_a_bad_item_and_writes_nothing(store: tuple[Memory, Path]) -> None:
    mem, _ = store
    old = mem.remember("Maya lives in Berlin").id
    head = mem.seq
    for items, match in (([{"text": "a"}, {"text": "b", "colour": "red"}], "item 1.*'colour'"),
                         ([{"text": "a"}, 5], "item 1"),
                         ([{"domain": "x"}], "item 0.*text"),
                         ("just a string", "list"),
                         ([{"text": "a", "attrs": "not a mapping"}], "attrs")):
        with pytest.raises(InvalidInput, match=match):
            mem.remember_many(items)  # type: ignore[arg-type]
        assert mem.seq == head
    [new] = mem.remember_many([{"text": "Maya lives in Lisbon", "supersedes": old}])
    assert new.superseded == (old,)
    assert [h.id for h in mem.recall("where does Maya live")] == [new.id]


def test_attrs_and_unset_must_have_their_shapes(store: tuple[Memory, Path]) -> None:
    mem, _ = store
    node = mem.remember("x")
    head = mem.seq
    for call in (lambda: mem.remember("y", attrs=5),  # type: ignore[arg-type]
                 lambda: mem.update(node.id, attrs="abc"),  # type: ignore[arg-type]
                 lambda: mem.update(node.id, unset="name"),
                 lambda: mem.remember("y", supersedes=5)):  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            call()
    assert mem.seq == head


def test_recall_filters_take_scalars(store: tuple[Memory, Path]) -> None:
    """An unhashable filter value used to escape as TypeError (an MCP tool crash)."""
    mem, _ = store
    node = mem.remember("Maya lives in Berlin", attrs={"city": "Berlin"})
    for kwargs in ({"filters": {"attrs.city": {"a": 1}}}, {"filters": {"attrs.city": [[1]]}},
                   {"filters": {1: "x"}}, {"domains": [["people"]]}, {"domains": 5}):
        with pytest.raises(InvalidQuery):
            mem.recall("Maya", **kwargs)  # type: ignore[arg-type]
    hits = mem.recall("Maya", filters={"attrs.city": ["Berlin", None, 1.5]})
    assert [h.id for h in hits] == [node.id]


# -- "a seq or a time": one strict rule ----------------------------------------------


def test_parse_seq_takes_ascii_digits_only() -> None:
    assert parse_seq("42") == 42 and parse_seq("0") == 0
    for text in ("²", "٣", "４２", " 42", "42 ", "-1", "+1", "4_2", "", "2026-03-01"):  # noqa: RUF001
        assert parse_seq(text) is None, text
    with pytest.raises(InvalidInput, match="64 bits"):
        parse_seq("9" * 25)


def test_as_of_reads_a_digit_string_as_a_seq_and_refuses_lookalikes(
    store: tuple[Memory, Path],
) -> None:
    mem, _ = store
    node = mem.remember("Maya lives in Berlin")
    mem.update(node.id, text="Maya lives in Lisbon")
    first = node.seq
    assert mem.as_of(str(first)).get(node.id).text == "Maya lives in Berlin"
    assert mem.index(as_of=str(first)) == mem.index(as_of=first)
    for bad in ("²", "٣", " 1", None, True, "9" * 4400):
        with pytest.raises(InvalidInput):
            mem.as_of(bad)  # type: ignore[arg-type]


def test_cli_as_of_a_superscript_is_a_usage_error(store: tuple[Memory, Path],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    mem, path = store
    node = mem.remember("Maya lives in Berlin")
    mem.close()
    monkeypatch.setenv("ENGRAM_EMBEDDER", "hashing")
    for args in (["get", node.id, "--as-of", "²"], ["as-of", "²"],
                 ["history", node.id, "--as-of", "٣"]):
        result = CliRunner().invoke(app, [*args, "--store", str(path)])
        assert isinstance(result.exception, InvalidInput), (args, result.exception)
    result = CliRunner().invoke(app, ["get", node.id, "--as-of", "1", "--store", str(path)])
    assert result.exit_code == 0 and "Maya lives in Berlin" in result.output


# -- wrong-typed arguments from Python: InvalidInput, never TypeError/AttributeError --


Call = Callable[[Any, str, str], Any]  # (memory, view or context; id a; id b) -> result

#: Calls a Python caller can get wrong (no adapter sends these: their schemas check
#: types first). Each must raise InvalidInput and write nothing.
READS: dict[str, Call] = {
    "find(5)": lambda r, a, b: r.find(5),
    "find(None)": lambda r, a, b: r.find(None),
    "get(5)": lambda r, a, b: r.get(5),
    "get([1])": lambda r, a, b: r.get([1]),
    "exists(5)": lambda r, a, b: r.exists(5),
    "history([1])": lambda r, a, b: r.history([1]),
    "history(5)": lambda r, a, b: r.history(5),
    "provenance(id, 5)": lambda r, a, b: r.provenance(a, 5),
    "provenance(5, text)": lambda r, a, b: r.provenance(5, "text"),
    "in_domain([1])": lambda r, a, b: r.in_domain([1]),
    "in_domain(5)": lambda r, a, b: r.in_domain(5),
    "neighbors(5)": lambda r, a, b: r.neighbors(5),
    "neighbors(id, rel=5)": lambda r, a, b: r.neighbors(a, rel=5),
    "bridges(domains=5)": lambda r, a, b: r.bridges(domains=5),
    "bridges(domains='people')": lambda r, a, b: r.bridges(domains="people"),
    "bridges(domains=[1])": lambda r, a, b: r.bridges(domains=[1]),
    "index(prose='yes')": lambda r, a, b: r.index(prose="yes"),
}
RECALLS: dict[str, Call] = {
    "recall(signals=5)": lambda r, a, b: r.recall("Maya", signals=5),
    "recall(signals=('text', 5))": lambda r, a, b: r.recall("Maya", signals=("text", 5)),
    "recall(filters='x')": lambda r, a, b: r.recall("Maya", filters="x"),
    "recall(filters=[pair])": lambda r, a, b: r.recall("Maya", filters=[("kind", "memory")]),
    "recall(domains=[1])": lambda r, a, b: r.recall("Maya", domains=[1]),
}
WRITES: dict[str, Call] = {  # the facade's and a context's
    "unrelate([1], r, b)": lambda w, a, b: w.unrelate([1], "works_at", b),
    "unrelate(a, r, {})": lambda w, a, b: w.unrelate(a, "works_at", {"x": 1}),
    "forget(reason=bytes)": lambda w, a, b: w.forget(a, reason=b"gone"),
    "update(text=bytes)": lambda w, a, b: w.update(a, text=b"x"),
    "update(name=bytes)": lambda w, a, b: w.update(a, name=b"x"),
    "update(unset=5)": lambda w, a, b: w.update(a, unset=5),
}
FACADE_ONLY: dict[str, Call] = {
    "outcomes(goal=5)": lambda m, a, b: m.outcomes(a, goal=5),
    "get(id, agent=5)": lambda m, a, b: m.get(a, agent=5),
    "working([1])": lambda m, a, b: m.working([1]),
    "prefetch_stats([1])": lambda m, a, b: m.prefetch_stats([1]),
    "recall(with_index='yes')": lambda m, a, b: m.recall("Maya", with_index="yes"),
    "tier(5)": lambda m, a, b: m.tier(5),
    "salience(5)": lambda m, a, b: m.salience(5),
    "ingest_conversation(5)": lambda m, a, b: m.ingest_conversation(5, session="s"),
    "ingest_conversation(str)": lambda m, a, b: m.ingest_conversation("hi", session="s"),
    "ingest_conversation(dict)": lambda m, a, b: m.ingest_conversation({"text": "hi"},
                                                                       session="s"),
    "consolidate(policy=5)": lambda m, a, b: m.consolidate(policy=5),
    "consolidate(agent=5)": lambda m, a, b: m.consolidate(agent=5),
}


@pytest.fixture
def graph() -> Iterator[tuple[Memory, str, str]]:
    with Memory.open(":memory:", embedder=HashingEmbedder(dim=32)) as mem:
        a = mem.remember("Maya leads the platform team", domain="people", name="Maya").id
        b = mem.remember("Acme builds rockets", domain="companies", name="Acme").id
        mem.relate(a, "works_at", b)
        mem.record_outcome(a, "success", goal="ship")
        yield mem, a, b


@pytest.mark.parametrize("call", [*READS.values(), *RECALLS.values(), *WRITES.values(),
                                  *FACADE_ONLY.values()],
                         ids=[*READS, *RECALLS, *WRITES, *FACADE_ONLY])
def test_the_facade_refuses_wrong_types(graph: tuple[Memory, str, str], call: Call) -> None:
    mem, a, b = graph
    head = mem.seq
    with pytest.raises(InvalidInput):
        call(mem, a, b)
    assert mem.seq == head
    assert mem.get(a).text == "Maya leads the platform team" and mem.neighbors(a)


@pytest.mark.parametrize("call", list(READS.values()), ids=list(READS))
def test_a_view_refuses_wrong_types(graph: tuple[Memory, str, str], call: Call) -> None:
    mem, a, b = graph
    head = mem.seq
    with pytest.raises(InvalidInput):
        call(mem.as_of(head), a, b)
    assert mem.seq == head


@pytest.mark.parametrize("call", [*READS.values(), *RECALLS.values(), *WRITES.values()],
                         ids=[*READS, *RECALLS, *WRITES])
def test_a_context_refuses_wrong_types(graph: tuple[Memory, str, str], call: Call) -> None:
    mem, a, b = graph
    ctx = mem.context("probe")
    head = mem.seq
    with pytest.raises(InvalidInput):
        call(ctx, a, b)
    assert mem.seq == head and ctx.changes() == []
    assert ctx.get(a).text == "Maya leads the platform team"


#: A valid value for each required parameter of a read, by name.
VALID = {"node_id": "A", "name": "Maya", "domain": "people", "stream_id": "A", "field": "text"}
WRONG = [5, 1.5, [1], {"a": 1}, b"x", object(), ("a", 5), {"x"}]


def test_every_read_of_a_view_refuses_every_wrong_type(graph: tuple[Memory, str, str]) -> None:
    """A sweep: each public read, each parameter given each wrong-typed value, the
    others valid. A new read that lets a TypeError out fails here."""
    mem, a, _ = graph
    view = mem.as_of(mem.seq)
    escaped = []
    for name in sorted(n for n in dir(view) if not n.startswith("_")):
        method = getattr(view, name)
        if not callable(method):
            continue
        params = list(inspect.signature(method).parameters.values())
        required = {p.name: VALID[p.name].replace("A", a) if p.name in VALID else None
                    for p in params if p.default is p.empty}
        assert None not in required.values(), f"add a valid value for {name}{required}"
        for param in params:
            for wrong in WRONG:
                kwargs = {**required, param.name: wrong}
                try:
                    method(**kwargs)
                except InvalidInput:
                    pass
                except Exception as exc:  # listing every escape is the point
                    escaped.append(f"{name}({param.name}={wrong!r}): {type(exc).__name__}")
    assert not escaped, escaped
