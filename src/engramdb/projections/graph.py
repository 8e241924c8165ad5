"""Graph projections: typed adjacency, the domain index, cross-domain bridges.

All three keep *intervals* ``[start, end)`` of seqs during which a fact held
(an edge existed, a node sat in a domain, an edge joined two domains), so any
query can be asked at any seq. An open interval ends at :data:`OPEN`. The
writer only appends intervals or closes the open one (``end`` goes from OPEN to
a seq later than any reader's), so readers need no lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from operator import attrgetter
from typing import Any

import msgspec
from msgspec import UNSET

from ..events import (
    EDGE_ADDED,
    EDGE_REMOVED,
    NODE_CREATED,
    NODE_FORGOTTEN,
    NODE_UPDATED,
    Event,
)

__all__ = ["Adjacency", "DomainIndex", "CrossDomain", "Edge", "Bridge", "OPEN"]

OPEN = (1 << 63) - 1
_start = attrgetter("start")


class Edge(msgspec.Struct, kw_only=True, gc=False):
    """One interval of an edge's life. ``end`` is set once, when it closes."""

    namespace: str
    src: str
    rel: str
    dst: str
    attrs: dict[str, Any]
    start: int
    end: int = OPEN

    def live(self, at: int) -> bool:
        return self.start <= at < self.end


class Adjacency:
    """Outgoing and incoming typed edges of every node."""

    name = "adjacency"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._out: dict[str, list[Edge]] = {}
        self._in: dict[str, list[Edge]] = {}
        self._open: dict[tuple[str, str, str], Edge] = {}

    def edges(
        self, node_id: str, at: int, *, direction: str = "out", rel: str | None = None
    ) -> list[Edge]:
        found: list[Edge] = []
        if direction in ("out", "both"):
            found.extend(self._live(self._out.get(node_id, ()), at, rel))
        if direction in ("in", "both"):
            found.extend(self._live(self._in.get(node_id, ()), at, rel))
        return found

    @staticmethod
    def _live(edges: Any, at: int, rel: str | None) -> Iterator[Edge]:
        for e in edges:
            if e.start <= at < e.end and (rel is None or e.rel == rel):
                yield e

    def open_edges(self) -> int:
        return len(self._open)

    def process(self, event: Event) -> None:
        if event.type == EDGE_ADDED:
            p = event.payload
            self._close((p.src, p.rel, p.dst), event.seq)
            edge = Edge(
                namespace=event.namespace, src=p.src, rel=p.rel, dst=p.dst,
                attrs=p.attrs, start=event.seq,
            )
            self._open[(p.src, p.rel, p.dst)] = edge
            self._out.setdefault(p.src, []).append(edge)
            self._in.setdefault(p.dst, []).append(edge)
        elif event.type == EDGE_REMOVED:
            p = event.payload
            self._close((p.src, p.rel, p.dst), event.seq)
        elif event.type == NODE_FORGOTTEN:
            node = event.stream
            for edge in [*self._out.get(node, ()), *self._in.get(node, ())]:
                if edge.end == OPEN:
                    self._close((edge.src, edge.rel, edge.dst), event.seq)

    def _close(self, key: tuple[str, str, str], seq: int) -> None:
        edge = self._open.pop(key, None)
        if edge is not None:
            edge.end = seq

    def snapshot(self) -> bytes:
        edges = list({id(e): e for lst in self._out.values() for e in lst}.values())
        edges.sort(key=_start)  # in seq order: restore's own sort then costs one pass
        return msgspec.msgpack.encode(edges)

    def restore(self, data: bytes) -> None:
        self.reset()
        edges = msgspec.msgpack.decode(data, type=list[Edge])
        # Re-append in seq order, as process() did, so incoming lists keep their order.
        edges.sort(key=_start)
        for edge in edges:
            self._out.setdefault(edge.src, []).append(edge)
            self._in.setdefault(edge.dst, []).append(edge)
            if edge.end == OPEN:
                self._open[(edge.src, edge.rel, edge.dst)] = edge


class _Member(msgspec.Struct, array_like=True, gc=False):
    node: str
    start: int
    end: int = OPEN


class _DomainsSnapshot(msgspec.Struct):
    members: list[tuple[str, str, list[_Member]]]
    forgotten: list[str]


class DomainIndex:
    """Nodes by (namespace, domain), with membership intervals for as-of queries.

    A forgotten node leaves every domain retroactively: its past memberships are
    hidden from every seq (as node state hides its past versions), and a late
    update of it (committed after the forget) does not bring it back.
    """

    name = "domains"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._members: dict[tuple[str, str], list[_Member]] = {}
        self._current: dict[str, tuple[tuple[str, str], _Member]] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._forgotten: set[str] = set()

    def nodes(self, namespace: str, domain: str, at: int) -> list[str]:
        gone = self._forgotten
        return [
            m.node for m in self._members.get((namespace, domain), ())
            if m.start <= at < m.end and m.node not in gone
        ]

    def domains(self, namespace: str, at: int) -> dict[str, int]:
        """Domain -> number of nodes in it, as of ``at``."""
        sizes: dict[str, int] = {}
        gone = self._forgotten
        for (ns, domain), members in list(self._members.items()):
            if ns != namespace:
                continue
            n = sum(1 for m in members if m.start <= at < m.end and m.node not in gone)
            if n:
                sizes[domain] = n
        return sizes

    def current_size(self, namespace: str, domain: str) -> int:
        return self._counts.get((namespace, domain), 0)

    def process(self, event: Event) -> None:
        t = event.type
        if t == NODE_CREATED or (t == NODE_UPDATED and event.payload.domain is not UNSET):
            if event.stream not in self._forgotten:
                self._move(event, event.payload.domain)
        elif t == NODE_FORGOTTEN and event.stream not in self._forgotten:
            self._forgotten.add(event.stream)
            self._move(event, None)

    def _move(self, event: Event, domain: str | None) -> None:
        node = event.stream
        current = self._current.get(node)
        if current is not None:
            if domain is not None and current[0] == (event.namespace, domain):
                return
            current[1].end = event.seq
            self._counts[current[0]] -= 1
            del self._current[node]
        if domain is None:
            return
        key = (event.namespace, domain)
        member = _Member(node, event.seq)
        self._members.setdefault(key, []).append(member)
        self._current[node] = (key, member)
        self._counts[key] = self._counts.get(key, 0) + 1

    def snapshot(self) -> bytes:
        rows = [(ns, d, members) for (ns, d), members in self._members.items()]
        return msgspec.msgpack.encode(
            _DomainsSnapshot(members=rows, forgotten=sorted(self._forgotten))
        )

    def restore(self, data: bytes) -> None:
        self.reset()
        snap = msgspec.msgpack.decode(data, type=_DomainsSnapshot)
        self._forgotten = set(snap.forgotten)
        for ns, domain, members in snap.members:
            key = (ns, domain)
            self._members[key] = members
            for m in members:
                if m.end == OPEN:
                    self._current[m.node] = (key, m)
                    self._counts[key] = self._counts.get(key, 0) + 1


class Bridge(msgspec.Struct, kw_only=True, gc=False):
    """An interval during which an edge joined two different domains."""

    namespace: str
    src: str
    rel: str
    dst: str
    src_domain: str
    dst_domain: str
    start: int
    end: int = OPEN


class _CrossSnapshot(msgspec.Struct):
    """The snapshot map (the same keys a plain dict had, so both read alike)."""

    bridges: list[Bridge]
    domain: dict[str, str | None]
    edges: list[tuple[str, str, str, str]]
    forgotten: list[str]


class CrossDomain:
    """Edges whose two ends lie in different domains (the bridges recall follows).

    Bridges that touch a forgotten node are hidden at every seq, like the node.
    """

    name = "cross_domain"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._bridges: dict[str, list[Bridge]] = {}
        self._domain: dict[str, str | None] = {}
        self._touching: dict[str, set[tuple[str, str, str]]] = {}
        self._edge_ns: dict[tuple[str, str, str], str] = {}
        self._open: dict[tuple[str, str, str], Bridge] = {}
        self._forgotten: set[str] = set()

    def bridges(
        self, namespace: str, at: int, *, domains: set[str] | None = None
    ) -> list[Bridge]:
        out = []
        gone = self._forgotten
        for b in self._bridges.get(namespace, ()):
            if b.start <= at < b.end and (
                domains is None or b.src_domain in domains or b.dst_domain in domains
            ) and b.src not in gone and b.dst not in gone:
                out.append(b)
        return out

    def process(self, event: Event) -> None:
        t = event.type
        if t == NODE_CREATED or (t == NODE_UPDATED and event.payload.domain is not UNSET):
            if event.stream in self._forgotten:
                return  # a late update of a forgotten node
            self._domain[event.stream] = event.payload.domain
            self._reevaluate(event.stream, event.seq)
        elif t == NODE_FORGOTTEN:
            self._forgotten.add(event.stream)
            self._domain[event.stream] = None
            self._reevaluate(event.stream, event.seq)
        elif t in (EDGE_ADDED, EDGE_REMOVED):
            p = event.payload
            key = (p.src, p.rel, p.dst)
            if t == EDGE_ADDED:
                self._edge_ns[key] = event.namespace
                self._touching.setdefault(p.src, set()).add(key)
                self._touching.setdefault(p.dst, set()).add(key)
            else:
                self._edge_ns.pop(key, None)
                self._touching.get(p.src, set()).discard(key)
                self._touching.get(p.dst, set()).discard(key)
            self._evaluate(key, event.seq)

    def _reevaluate(self, node: str, seq: int) -> None:
        keys = self._touching.get(node)
        if keys:  # most nodes have no edges: no copy, no loop
            for key in list(keys):
                self._evaluate(key, seq)

    def _evaluate(self, key: tuple[str, str, str], seq: int) -> None:
        src_d = self._domain.get(key[0])
        dst_d = self._domain.get(key[2])
        ns = self._edge_ns.get(key)
        want = ns is not None and src_d is not None and dst_d is not None and src_d != dst_d
        current = self._open.get(key)
        if current is not None:
            if want and (current.src_domain, current.dst_domain) == (src_d, dst_d):
                return
            current.end = seq
            del self._open[key]
        if want:
            assert ns is not None and src_d is not None and dst_d is not None
            b = Bridge(
                namespace=ns, src=key[0], rel=key[1], dst=key[2],
                src_domain=src_d, dst_domain=dst_d, start=seq,
            )
            self._bridges.setdefault(ns, []).append(b)
            self._open[key] = b

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(_CrossSnapshot(
            bridges=[b for lst in self._bridges.values() for b in lst],
            domain=self._domain,
            edges=[(*k, ns) for k, ns in self._edge_ns.items()],
            forgotten=sorted(self._forgotten),
        ))

    def restore(self, data: bytes) -> None:
        self.reset()
        state = msgspec.msgpack.decode(data, type=_CrossSnapshot)
        bridges, opened = self._bridges, self._open
        for b in state.bridges:
            lst = bridges.get(b.namespace)
            if lst is None:
                bridges[b.namespace] = [b]
            else:
                lst.append(b)
            if b.end == OPEN:
                opened[(b.src, b.rel, b.dst)] = b
        self._domain = state.domain
        self._forgotten = set(state.forgotten)
        edge_ns, touching = self._edge_ns, self._touching
        for src, rel, dst, ns in state.edges:
            key = (src, rel, dst)
            edge_ns[key] = ns
            for end in (src, dst):
                keys = touching.get(end)
                if keys is None:
                    touching[end] = {key}
                else:
                    keys.add(key)
