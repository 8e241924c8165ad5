"""EngramStore against the real langgraph package: BaseStore API and a compiled graph."""

from __future__ import annotations

import asyncio
import operator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore, GetOp, Item, PutOp, SearchItem, SearchOp

from engramdb import Memory
from engramdb.integrations.langgraph import EngramStore
from engramdb.recall.embed import HashingEmbedder


@pytest.fixture
def store(tmp_path: Path) -> Any:
    with Memory.open(str(tmp_path / "lg.engram"), namespace="app",
                     embedder=HashingEmbedder(dim=64)) as mem:
        yield EngramStore(mem)


def test_put_get_update_delete(store: EngramStore) -> None:
    assert isinstance(store, BaseStore)
    ns = ("users", "maya")
    store.put(ns, "home", {"city": "Berlin", "since": 2019})
    item = store.get(ns, "home")
    assert isinstance(item, Item) and item.value == {"city": "Berlin", "since": 2019}
    assert item.namespace == ns and item.key == "home"
    store.put(ns, "home", {"city": "Lisbon", "since": 2024})
    again = store.get(ns, "home")
    assert again is not None and again.value["city"] == "Lisbon"
    assert again.created_at == item.created_at and again.updated_at >= item.updated_at
    history = store.memory.history(store.node(ns, "home").id)
    assert [e.type for e in history][:1] == ["node.created"] and len(history) >= 3
    assert store.get(("users", "other"), "home") is None  # namespaces are separate
    store.delete(ns, "home")
    assert store.get(ns, "home") is None
    store.put(ns, "home", {"city": "Porto"})  # a key can be used again after delete
    back = store.get(ns, "home")
    assert back is not None and back.value == {"city": "Porto"}


def test_search_by_query_and_filter(store: EngramStore) -> None:
    ns = ("memories", "maya")
    store.put(ns, "1", {"text": "Maya is allergic to peanuts", "kind": "health", "level": 3})
    store.put(ns, "2", {"text": "Maya flies to Tokyo in May", "kind": "travel", "level": 1})
    store.put(ns, "3", {"text": "Maya likes peanut-free desserts", "kind": "food", "level": 2})
    store.put(("memories", "ben"), "1", {"text": "Ben is allergic to peanuts", "kind": "health"})
    hits = store.search(("memories", "maya"), query="who is allergic to peanuts?", limit=2)
    assert all(isinstance(h, SearchItem) and h.namespace == ns for h in hits)
    assert hits[0].key == "1" and hits[0].score is not None
    assert [h.key for h in store.search(("memories",), filter={"kind": "health"})] != []
    health = store.search(("memories",), filter={"kind": "health"}, limit=10)
    assert sorted(h.namespace[1] for h in health) == ["ben", "maya"]
    high = store.search(ns, filter={"level": {"$gte": 2}}, limit=10)
    assert sorted(h.key for h in high) == ["1", "3"]
    assert [h.key for h in store.search(ns, filter={"kind": {"$ne": "travel"}},
                                        query="Tokyo", limit=10)] in (["1", "3"], ["3", "1"])
    page = store.search(ns, limit=1, offset=1)
    assert len(page) == 1 and page[0].key in {"1", "2", "3"}


def test_index_fields_and_not_indexed(store: EngramStore) -> None:
    store.put(("docs",), "a", {"title": "Quarterly revenue report", "body": "x"},
              index=["title"])
    store.put(("docs",), "b", {"title": "revenue numbers"}, index=False)
    hits = store.search(("docs",), query="quarterly revenue", limit=5)
    assert hits and hits[0].key == "a"
    assert {h.key for h in store.search(("docs",), limit=5)} == {"a", "b"}


def test_list_namespaces(store: EngramStore) -> None:
    for ns in [("a", "x", "1"), ("a", "y", "1"), ("b", "x", "1")]:
        store.put(ns, "k", {"v": 1})
    assert store.list_namespaces() == [("a", "x", "1"), ("a", "y", "1"), ("b", "x", "1")]
    assert store.list_namespaces(prefix=("a",)) == [("a", "x", "1"), ("a", "y", "1")]
    assert store.list_namespaces(suffix=("x", "*")) == [("a", "x", "1"), ("b", "x", "1")]
    assert store.list_namespaces(max_depth=1) == [("a",), ("b",)]
    assert store.list_namespaces(limit=1, offset=1) == [("a", "y", "1")]


def test_batch_and_abatch(store: EngramStore) -> None:
    ns = ("batch",)
    out = store.batch([PutOp(ns, "k1", {"n": 1}), PutOp(ns, "k2", {"n": 2}),
                       GetOp(ns, "k1"), SearchOp(ns, filter={"n": 2})])
    assert out[0] is None and out[2].value == {"n": 1}  # type: ignore[union-attr]
    assert [i.key for i in out[3]] == ["k2"]  # type: ignore[union-attr]

    async def main() -> tuple[Any, Any]:
        await store.aput(ns, "k3", {"n": 3})
        return await store.aget(ns, "k3"), await store.asearch(ns, filter={"n": {"$gt": 1}})

    got, found = asyncio.run(main())
    assert got.value == {"n": 3} and sorted(i.key for i in found) == ["k2", "k3"]
    with pytest.raises(NotImplementedError, match="TTL"):  # LangGraph's own refusal
        store.put(ns, "k4", {"n": 4}, ttl=5.0)
    with pytest.raises(ValueError, match="ttl"):  # and ours, for a raw PutOp
        store.batch([PutOp(ns, "k4", {"n": 4}, ttl=5.0)])
    assert store.get(ns, "k4") is None


class State(TypedDict):
    user: str
    notes: Annotated[list[str], operator.add]


def test_inside_a_compiled_graph(store: EngramStore) -> None:
    def write(state: State, *, store: BaseStore) -> dict[str, Any]:
        store.put(("prefs", state["user"]), "theme", {"text": "prefers dark mode"})
        return {"notes": ["wrote"]}

    def read(state: State, *, store: BaseStore) -> dict[str, Any]:
        hits = store.search(("prefs", state["user"]), query="which theme?", limit=1)
        return {"notes": [hits[0].value["text"]]}

    builder = StateGraph(State)
    builder.add_node("write", write)
    builder.add_node("read", read)
    builder.add_edge(START, "write")
    builder.add_edge("write", "read")
    builder.add_edge("read", END)
    graph = builder.compile(store=store)
    result = graph.invoke({"user": "maya", "notes": []})
    assert result["notes"] == ["wrote", "prefers dark mode"]
    # the memory lives on in engramdb, with its history
    assert store.get(("prefs", "maya"), "theme") is not None
