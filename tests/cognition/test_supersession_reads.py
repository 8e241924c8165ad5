"""Supersession honoured by every read: find(name), the compressed index and
neighbours show the current fact, as of the reader's seq (issue 11 item 6)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engramdb import Memory, NotFound


@pytest.fixture
def mem() -> Iterator[Memory]:
    m = Memory.open(":memory:", embedder=None)
    yield m
    m.close()


def _move(mem: Memory) -> tuple[str, str, int]:
    berlin = mem.remember("Maya lives in Berlin", name="Maya", domain="people")
    before = mem.seq
    lisbon = mem.remember("Maya lives in Lisbon", name="Maya", domain="people",
                          supersedes=berlin.id)
    return berlin.id, lisbon.id, before


def test_find_returns_the_current_fact_and_the_past_view_the_old_one(mem: Memory) -> None:
    # regression test fails on old main: find("Maya") was Berlin
    _, lisbon, before = _move(mem)
    assert mem.find("Maya").text == "Maya lives in Lisbon"
    assert mem.find("maya").id == lisbon
    assert mem.as_of(before).find("Maya").text == "Maya lives in Berlin"
    assert mem.as_of(mem.seq).find("Maya").text == "Maya lives in Lisbon"


def test_find_follows_the_chain_to_an_unnamed_replacement(mem: Memory) -> None:
    berlin = mem.remember("Maya lives in Berlin", name="Maya")
    porto = mem.remember("She moved to Porto", supersedes=berlin.id)
    assert mem.find("Maya").id == porto.id
    faro = mem.remember("Then she moved to Faro", supersedes=porto.id)
    assert mem.find("Maya").id == faro.id
    mem.forget(faro.id)
    mem.forget(porto.id)
    assert mem.find("Maya").id == berlin.id  # forgetting undoes the supersession


def test_forgetting_the_new_fact_makes_the_old_one_found_again(mem: Memory) -> None:
    berlin, lisbon, _ = _move(mem)
    mem.forget(lisbon)
    assert mem.find("Maya").id == berlin
    assert "Berlin" in mem.index()


def test_index_lists_only_current_facts(mem: Memory) -> None:
    # regression test fails on old main: "people: 2 memories (Maya, Maya)"
    _, _, before = _move(mem)
    index = mem.index()
    assert "people: 1 memory (Maya)" in index
    assert "Lisbon" in index and "Berlin" not in index
    assert "supersedes" not in index
    old = mem.as_of(before).index()
    assert "people: 1 memory (Maya)" in old and "Berlin" in old and "Lisbon" not in old


def test_index_after_reopen_from_snapshots_stays_current(tmp_path: Path) -> None:
    path = tmp_path / "s.engram"
    with Memory.open(path, embedder=None) as mem:
        _move(mem)
        want = mem.index()
    with Memory.open(path, embedder=None) as mem:
        assert mem.store.restored.get("index") is not None  # the snapshot was used
        assert mem.index() == want
        assert mem.check().ok


def test_neighbours_skip_superseded_memories_except_across_supersedes(mem: Memory) -> None:
    berlin, lisbon, _ = _move(mem)
    bob = mem.remember("Bob", name="Bob")
    mem.relate(bob.id, "knows", berlin)
    mem.relate(bob.id, "knows", lisbon)
    assert [n.node.id for n in mem.neighbors(bob.id)] == [lisbon]
    assert {n.node.id for n in mem.neighbors(bob.id, current=False)} == {berlin, lisbon}
    assert [n.node.id for n in mem.neighbors(lisbon, rel="supersedes")] == [berlin]


def test_find_of_an_unknown_name_is_not_found(mem: Memory) -> None:
    _move(mem)
    with pytest.raises(NotFound):
        mem.find("Nobody")
