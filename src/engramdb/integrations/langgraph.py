"""LangGraph long-term memory backed by engramdb: :class:`EngramStore` is a ``BaseStore``.

Install with ``pip install 'engram-eventdb[langgraph]'``; then::

    from langgraph.graph import StateGraph
    from engramdb import Memory
    from engramdb.integrations.langgraph import EngramStore

    store = EngramStore(Memory.open("agent.engram", namespace="my-app"))
    graph = builder.compile(store=store)      # nodes get it as `store`

Each LangGraph item ``(namespace tuple, key) -> value dict`` is one engramdb memory
in the domain ``langgraph`` (configurable), so every put is an event: history, time
travel (``store.memory.as_of(...)``) and provenance come with it. The memory's text
is what ``search(query=...)`` ranks by engramdb's hybrid recall: the values of the
put's ``index`` fields, else the whole value as JSON (``index=False``: not searchable
by query, still listed and filtered). ``filter`` follows LangGraph's own store:
equality on value keys (nested dicts allowed) and ``$eq $ne $gt $gte $lt $lte``.
The engramdb namespace of the wrapped Memory stays the hard tenant boundary; the
LangGraph namespace tuple lives inside it. TTLs are not supported (``ttl`` must be
None), as the store's history is the point.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from ..errors import NotFound
from ..events import from_us
from ..extras import missing_extra

try:
    from langgraph.store.base import (
        BaseStore,
        GetOp,
        Item,
        ListNamespacesOp,
        MatchCondition,
        Op,
        PutOp,
        Result,
        SearchItem,
        SearchOp,
    )
except ModuleNotFoundError as exc:  # pragma: no cover - exercised without the extra
    raise missing_extra(exc, "engramdb.integrations.langgraph") from exc

__all__ = ["EngramStore"]

_NS = "lg_namespace"
_KEY = "lg_key"
_VALUE = "lg_value"


def _name(namespace: tuple[str, ...], key: str) -> str:
    """The engramdb name of an item: stable, short, and free of user characters."""
    digest = hashlib.sha256(json.dumps([list(namespace), key]).encode()).hexdigest()
    return f"langgraph:{digest[:40]}"


def _text(value: Mapping[str, Any], index: Any) -> str:
    if index is False:
        return ""
    if index:
        parts = [value.get(field) for field in index]
        return " ".join(p if isinstance(p, str) else json.dumps(p) for p in parts
                        if p is not None)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _matches(value: Any, wanted: Any) -> bool:
    """LangGraph's filter semantics (as its in-memory store applies them)."""
    if isinstance(wanted, dict):
        if any(k.startswith("$") for k in wanted):
            return all(_operator(value, op, arg) for op, arg in wanted.items())
        return isinstance(value, dict) and all(_matches(value.get(k), v)
                                               for k, v in wanted.items())
    if isinstance(wanted, (list, tuple)):
        return (isinstance(value, (list, tuple)) and len(value) == len(wanted)
                and all(_matches(a, b) for a, b in zip(value, wanted, strict=True)))
    return bool(value == wanted)


def _operator(value: Any, op: str, arg: Any) -> bool:
    if op == "$eq":
        return bool(value == arg)
    if op == "$ne":
        return bool(value != arg)
    if value is None:
        return False
    compare = {"$gt": float.__gt__, "$gte": float.__ge__, "$lt": float.__lt__,
               "$lte": float.__le__}.get(op)
    if compare is None:
        raise ValueError(f"unsupported filter operator {op!r}")
    return bool(compare(float(value), float(arg)))


def _namespace_matches(namespace: tuple[str, ...], condition: MatchCondition) -> bool:
    path = tuple(condition.path)
    if len(path) > len(namespace):
        return False
    part = namespace[: len(path)] if condition.match_type == "prefix" else namespace[-len(path):]
    if not path:
        return True
    return all(p == "*" or p == n for p, n in zip(path, part, strict=True))


class EngramStore(BaseStore):
    """A LangGraph ``BaseStore`` over one engramdb :class:`~engramdb.Memory` namespace.

    ``memory`` may also be a :func:`engramdb.connect` remote memory. ``batch`` runs
    the ops in order; ``abatch`` runs the same in a worker thread so the event loop
    never waits on embedding or disk.
    """

    supports_ttl = False

    def __init__(self, memory: Any, *, domain: str = "langgraph",
                 agent: str | None = "langgraph") -> None:
        self.memory = memory
        self.domain = domain
        self.agent = agent

    # -- the two methods LangGraph requires ---------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                results.append(self._get(op.namespace, op.key))
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, PutOp):
                self._put(op)
                results.append(None)
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            else:
                raise ValueError(f"unknown store operation {type(op).__name__}")
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await asyncio.to_thread(self.batch, list(ops))

    # -- operations ---------------------------------------------------------------------

    def node(self, namespace: tuple[str, ...], key: str) -> Any:
        """The engramdb memory holding an item (for its history, provenance, as_of), or None."""
        try:
            return self.memory.find(_name(tuple(namespace), key))
        except NotFound:
            return None

    @staticmethod
    def _item(node: Any, cls: type[Item] = Item, **extra: Any) -> Any:
        attrs = node.attrs
        created: datetime = from_us(node.created_at)
        updated: datetime = from_us(node.updated_at)
        return cls(namespace=tuple(attrs[_NS]), key=attrs[_KEY], value=attrs[_VALUE],
                   created_at=created, updated_at=updated, **extra)

    def _get(self, namespace: tuple[str, ...], key: str) -> Item | None:
        node = self.node(tuple(namespace), key)
        return None if node is None else self._item(node)

    def _put(self, op: PutOp) -> None:
        if op.ttl is not None:
            raise ValueError("EngramStore keeps history and does not expire items (ttl=None)")
        namespace = tuple(op.namespace)
        existing = self.node(namespace, op.key)
        if op.value is None:
            if existing is not None:
                self.memory.forget(existing.id, reason="langgraph delete")
            return
        value = dict(op.value)
        json.dumps(value)  # a LangGraph value is JSON: refuse anything else here, not later
        attrs = {_NS: list(namespace), _KEY: op.key, _VALUE: value}
        text = _text(value, op.index) or op.key
        if existing is None:
            self.memory.remember(text, name=_name(namespace, op.key), domain=self.domain,
                                 kind="langgraph_item", attrs=attrs, agent=self.agent)
        elif existing.attrs.get(_VALUE) != value or existing.text != text:
            self.memory.update(existing.id, text=text, attrs=attrs, agent=self.agent)

    def _items(self) -> list[Any]:
        return [n for n in self.memory.in_domain(self.domain) if _NS in n.attrs]

    def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)

        def keep(node: Any) -> bool:
            ns = tuple(node.attrs.get(_NS, ()))
            return (_NS in node.attrs and ns[: len(prefix)] == prefix
                    and (not op.filter or _matches(node.attrs[_VALUE], op.filter)))

        want = op.offset + op.limit
        if not op.query:
            nodes = sorted((n for n in self._items() if keep(n)),
                           key=lambda n: n.updated_at, reverse=True)
            return [self._item(n, SearchItem) for n in nodes[op.offset:want]]
        k = max(50, want * 4)
        while True:
            hits = self.memory.recall(op.query, k=k, domains=[self.domain])
            kept = [h for h in hits if keep(h.node)]
            if len(kept) >= want or len(hits) < k or k >= 10_000:
                break
            k *= 4
        return [self._item(h.node, SearchItem, score=float(h.score))
                for h in kept[op.offset:want]]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        found = {tuple(n.attrs[_NS]) for n in self._items()}
        if op.match_conditions:
            found = {ns for ns in found
                     if all(_namespace_matches(ns, c) for c in op.match_conditions)}
        if op.max_depth is not None:
            found = {ns[: op.max_depth] for ns in found}
        return sorted(found)[op.offset: op.offset + op.limit]

