"""The compressed index: a markdown table of contents of a namespace, in a token budget.

::

    # Memory index: default
    45 memories, 12 named entities, 3 domains, 4 cross-domain links (as of seq 118)

    ## Domains
    - people: 20 memories (Maya, Bob, Carol)
    ...
    ## Entities
    - **Maya** (people): Maya lives in Lisbon. works_at -> Acme; knows <- Bob
    ...
    ## Cross-references
    - people -> companies: works_at x2 (Maya -> Acme, Bob -> Acme)

Domains are listed by size, entities (named nodes) by how connected they are,
cross-references (edges joining two domains) grouped by domain pair with their
relation types. Only names and short text snippets appear, never ids.

**How it stays current.** :class:`IndexProjection` is fed every event like the
other projections, but keeps only what they do not: per namespace, the seqs of
events that change what the index shows, the count of memories after each, the
ids that were ever named, and the enrichments (LLM rewrites) with their
validity. The text itself is rendered on demand from the core projections (node
state, adjacency, domains, cross-domain), which already answer at any seq, so
``mem.as_of(t).index()`` is the index as it was at ``t`` with no extra state.
Renders are cached by *(namespace, last change at or before the seq, budget)*:
events that change nothing shown (vectors, other namespaces, enrichments) keep
the cache, and every view between two changes shares one entry. Forgetting is
retroactive (a forgotten memory vanishes from every view), so a forget drops
the namespace's cached renders and hides every enrichment written before it.

**Budget.** :func:`adaptive_budget` grows from 500 tokens (up to 25 memories)
to 2,000 (1,600 memories and up), logarithmically. :func:`estimate_tokens` is a
deliberately pessimistic count for LLM subword tokenizers: ``ceil(len/4)`` per
ASCII word (``ceil(len/2)`` past 12 letters), ``ceil(len/3)`` per run of up to
4 digits (else one per digit), one per ASCII punctuation mark and newline, and
the UTF-8 byte length of every non-ASCII character (a byte-level BPE never
needs more). On rendered indexes it runs 1.3-1.4x the MiniLM WordPiece count
and 1.6-1.8x ``chars / 4``. Sections are filled line by line, always the one
furthest below its share of the budget next, and a section cut short ends with
``- ... N more``; the finished text is checked against the budget, so the
returned index never exceeds it by this estimate.
"""

from __future__ import annotations

import bisect
import math
import re
import threading
from array import array
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..errors import InvalidInput
from ..events import (
    EDGE_ADDED,
    EDGE_REMOVED,
    NODE_CREATED,
    NODE_FORGOTTEN,
    NODE_UPDATED,
    Event,
)
from ..events.types import ENRICHMENT_REVERTED, INDEX_ENRICHED
from ..projections import (
    OPEN,
    SUPERSEDES,
    Adjacency,
    Bridge,
    CrossDomain,
    DomainIndex,
    Node,
    NodeState,
    is_superseded,
)
from .engine import SEQUENCE_REL, Hit

__all__ = [
    "IndexProjection",
    "Enrichment",
    "Recall",
    "adaptive_budget",
    "estimate_tokens",
    "fit_text",
    "MIN_BUDGET",
]

#: The smallest ``max_tokens`` accepted: room for the header and a few lines.
MIN_BUDGET = 64
_MAX_BUDGET = 100_000
_CACHE_SIZE = 64
_CANDIDATES = 400  # lines considered per section; more never fit in 2,000 tokens


# --------------------------------------------------------------------------- tokens


_PIECE = re.compile(r"[A-Za-z]+|[0-9]+|[\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e]|[^\x00-\x7f]|\n")


def estimate_tokens(text: str) -> int:
    """A pessimistic token count for LLM subword tokenizers (see the module docstring)."""
    n = 0
    for m in _PIECE.finditer(text):
        s = m.group()
        c = s[0]
        if c.isascii():
            if c.isalpha():  # long runs are rarely one word: hashes, base64, "aaaa..."
                n += (len(s) + 3) // 4 if len(s) <= 12 else (len(s) + 1) // 2
            elif c.isdigit():  # long numbers: one per digit (ids, phone numbers...)
                n += (len(s) + 2) // 3 if len(s) <= 4 else len(s)
            else:
                n += 1
        else:
            n += len(c.encode("utf-8"))
    return n


def adaptive_budget(memories: int) -> int:
    """Tokens for an index of ``memories`` memories: 500 up to 25, then +250 per
    doubling, at most 2,000 (reached at 1,600)."""
    if memories <= 25:
        return 500
    return min(2000, int(500 + 250 * math.log2(memories / 25)))


def fit_text(text: str, budget: int) -> str:
    """``text`` cut (at a line, else a word) so that ``estimate_tokens`` <= ``budget``."""
    if estimate_tokens(text) <= budget:
        return text
    lines = text.split("\n")
    out: list[str] = []
    used = 0
    for line in lines:
        cost = estimate_tokens(line) + 1
        if used + cost > budget - 2:
            words = line.split(" ")
            while words and estimate_tokens(" ".join(words)) + used + 3 > budget:
                words.pop()
            if words:
                out.append(" ".join(words) + " ...")
            break
        out.append(line)
        used += cost
    result = "\n".join(out)
    while result and estimate_tokens(result) > budget:  # belt and braces
        result = result[: max(0, len(result) - 16)]
    return result


def _clean(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters, no markdown emphasis or controls."""
    flat = " ".join(text.replace("*", "").replace("`", "").split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 3].rsplit(" ", 1)[0] if " " in flat[: limit - 3] else flat[: limit - 3]
    return cut + "..."


def _sentence(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    m = re.search(r"(?<=[.!?])\s", flat)
    return _clean(flat[: m.start()] if m else flat, limit)


# --------------------------------------------------------------------------- results


class Recall(list[Hit]):
    """Recall hits (a plain list of :class:`Hit`) plus the compressed index at the same seq."""

    __slots__ = ("index", "seq")

    def __init__(self, hits: Iterable[Hit], *, index: str, seq: int) -> None:
        super().__init__(hits)
        self.index = index
        self.seq = seq

    @property
    def hits(self) -> list[Hit]:
        return list(self)


class Enrichment(msgspec.Struct, kw_only=True):
    """An LLM rewrite of the index, valid from its seq until reverted or a forget."""

    id: str
    namespace: str
    seq: int
    model: str
    text: str
    covers: int  # the change key (last change seq) of the state it rewrote
    max_tokens: int
    end: int = OPEN
    masked: bool = False


# --------------------------------------------------------------------------- projection


class _Ns(msgspec.Struct, kw_only=True):
    changes: bytes = b""  # array('q') of seqs of events that change the index
    counts: bytes = b""  # array('q'): memories created up to and including each change
    named: list[str] = []
    forgotten: dict[str, int] = {}  # forgotten node -> seq it was created at (0: never)
    epoch: int = 0
    superseded: list[str] = []


class _Snap(msgspec.Struct, tag="index/2"):
    """Format 2 keeps the memories ever superseded (format 1, untagged, did not:
    it fails to decode, and the store replays the log)."""

    namespaces: dict[str, _Ns]
    enrichments: list[Enrichment]


@dataclass(slots=True)
class _Space:
    changes: array = field(default_factory=lambda: array("q"))  # type: ignore[type-arg]
    counts: array = field(default_factory=lambda: array("q"))  # type: ignore[type-arg]
    named: dict[str, None] = field(default_factory=dict)
    forgotten: dict[str, int] = field(default_factory=dict)
    epoch: int = 0  # bumped by each forget: cached renders of this namespace are stale
    # memories a ``supersedes`` edge ever pointed at (whether one still does is
    # asked of the core projections at the seq rendered)
    superseded: dict[str, None] = field(default_factory=dict)
    enrichments: list[Enrichment] = field(default_factory=list)

    def key(self, at: int) -> int:
        """The seq of the last change at or before ``at`` (0: none)."""
        i = bisect.bisect_right(self.changes, at)
        return self.changes[i - 1] if i else 0

    def created(self, at: int) -> int:
        i = bisect.bisect_right(self.changes, at)
        return self.counts[i - 1] if i else 0


_INDEXED = frozenset({NODE_CREATED, NODE_UPDATED, NODE_FORGOTTEN, EDGE_ADDED, EDGE_REMOVED})


class IndexProjection:
    """Keeps what the compressed index needs beyond the core projections; renders it.

    Register it after the core projections it reads (``nodes``, ``adjacency``,
    ``domains``, ``cross_domain``)::

        core = core_projections()
        store.register(*core, IndexProjection(*core))
    """

    name = "index"

    def __init__(
        self, nodes: NodeState, adjacency: Adjacency, domains: DomainIndex, cross: CrossDomain
    ) -> None:
        self._nodes = nodes
        self._adjacency = adjacency
        self._domains = domains
        self._cross = cross
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self._spaces: dict[str, _Space] = {}
        self._enrichments: dict[str, Enrichment] = {}
        self._cache: OrderedDict[tuple[str, int, int, int], str] = OrderedDict()
        self.renders = 0  # how many renders missed the cache (tests and benchmarks read it)

    def _space(self, namespace: str) -> _Space:
        space = self._spaces.get(namespace)
        if space is None:
            space = self._spaces[namespace] = _Space()
        return space

    # -- events ------------------------------------------------------------------

    def process(self, event: Event) -> None:
        t = event.type
        if t in _INDEXED:
            self._indexed(event)
        elif t == INDEX_ENRICHED:
            self._enriched(event)
        elif t == ENRICHMENT_REVERTED:
            found = self._enrichments.get(event.payload.target)
            if found is not None and found.end == OPEN:
                found.end = event.seq

    def _indexed(self, event: Event) -> None:
        space = self._space(event.namespace)
        created = space.counts[-1] if space.counts else 0
        t = event.type
        if t == NODE_CREATED:
            created += 1
            if event.payload.name:
                space.named[event.stream] = None
        elif t == NODE_UPDATED and event.payload.name:
            space.named[event.stream] = None
        elif t == EDGE_ADDED and event.payload.rel == SUPERSEDES:
            space.superseded[event.payload.dst] = None
        elif t == NODE_FORGOTTEN and event.stream not in space.forgotten:
            versions = self._nodes.versions(event.stream)
            born = versions[0].seq if versions and versions[0].seq < event.seq else 0
            space.forgotten[event.stream] = born
            space.named.pop(event.stream, None)
            space.epoch += 1
            for e in space.enrichments:
                if e.seq < event.seq:
                    e.masked = True  # it may name what was just forgotten
        space.changes.append(event.seq)
        space.counts.append(created)

    def _enriched(self, event: Event) -> None:
        p = event.payload
        space = self._space(event.namespace)
        found = Enrichment(
            id=event.id, namespace=event.namespace, seq=event.seq, model=p.model, text=p.text,
            covers=space.key(p.covers_seq), max_tokens=p.max_tokens,
        )
        space.enrichments.append(found)
        self._enrichments[event.id] = found

    # -- reads -------------------------------------------------------------------

    def memories(self, namespace: str, at: int) -> int:
        """Live memories of ``namespace`` at seq ``at``."""
        space = self._spaces.get(namespace)
        if space is None:
            return 0
        gone = sum(1 for born in list(space.forgotten.values()) if 0 < born <= at)
        return space.created(at) - gone

    def render(self, namespace: str, at: int, *, max_tokens: int | None = None) -> str:
        """The index of ``namespace`` as of seq ``at``, within ``max_tokens``
        (default: :func:`adaptive_budget` of its size)."""
        budget = self.budget(namespace, at, max_tokens)
        space = self._spaces.get(namespace) or _Space()
        key = (namespace, space.key(at), space.epoch, budget)
        with self._lock:
            text = self._cache.get(key)
            if text is not None:
                self._cache.move_to_end(key)
                return text
        text = _Renderer(self, namespace, space.key(at), space).render(budget)
        with self._lock:
            self.renders += 1
            self._cache[key] = text
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return text

    def text(
        self, namespace: str, at: int, *, max_tokens: int | None = None, prose: bool = False
    ) -> str:
        """What readers get: with ``prose``, the latest valid LLM rewrite (cut to
        ``max_tokens`` if given), else — and always as the fallback — :meth:`render`."""
        if prose:
            found = self.enrichment(namespace, at)
            if found is not None:
                if max_tokens is None:
                    return found.text
                return fit_text(found.text, self.budget(namespace, at, max_tokens))
        return self.render(namespace, at, max_tokens=max_tokens)

    def budget(self, namespace: str, at: int, max_tokens: int | None) -> int:
        """``max_tokens`` checked, or the adaptive budget of the namespace at ``at``."""
        if max_tokens is None:
            return adaptive_budget(self.memories(namespace, at))
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not (
            MIN_BUDGET <= max_tokens <= _MAX_BUDGET
        ):
            raise InvalidInput(f"max_tokens must be an integer from {MIN_BUDGET} to {_MAX_BUDGET}")
        return max_tokens

    def change_key(self, namespace: str, at: int) -> int:
        """The seq of the last event at or before ``at`` that changed ``namespace``'s index."""
        space = self._spaces.get(namespace)
        return space.key(at) if space is not None else 0

    def enrichment(self, namespace: str, at: int) -> Enrichment | None:
        """The latest LLM rewrite valid at ``at``: written by then, not reverted by
        then, nothing shown changed since the state it rewrote, nothing forgotten since."""
        space = self._spaces.get(namespace)
        if space is None:
            return None
        current = space.key(at)
        for e in reversed(space.enrichments):
            if e.seq <= at < e.end and not e.masked and e.covers == current:
                return e
        return None

    def enrichment_by_id(self, event_id: str) -> Enrichment | None:
        return self._enrichments.get(event_id)

    # -- snapshots ---------------------------------------------------------------

    def snapshot(self) -> bytes:
        spaces = {
            ns: _Ns(changes=s.changes.tobytes(), counts=s.counts.tobytes(), named=list(s.named),
                    forgotten=dict(s.forgotten), epoch=s.epoch, superseded=list(s.superseded))
            for ns, s in self._spaces.items()
        }
        return msgspec.msgpack.encode(_Snap(spaces, list(self._enrichments.values())))

    def restore(self, data: bytes) -> None:
        snap = msgspec.msgpack.decode(data, type=_Snap)
        self.reset()
        for ns, raw in snap.namespaces.items():
            space = self._space(ns)
            space.changes.frombytes(raw.changes)
            space.counts.frombytes(raw.counts)
            space.named = dict.fromkeys(raw.named)
            space.forgotten = dict(raw.forgotten)
            space.epoch = raw.epoch
            space.superseded = dict.fromkeys(raw.superseded)
        for e in sorted(snap.enrichments, key=lambda e: e.seq):
            self._space(e.namespace).enrichments.append(e)
            self._enrichments[e.id] = e


# --------------------------------------------------------------------------- rendering


@dataclass(slots=True)
class _Section:
    title: str
    noun: str
    share: float
    lines: list[str]
    total: int  # items that exist (lines holds at most _CANDIDATES of them)
    costs: list[int] = field(default_factory=list)
    shown: int = 0
    used: int = 0


class _Renderer:
    """Renders one namespace at one seq (the change key: same result for any seq
    up to the next change)."""

    def __init__(self, proj: IndexProjection, namespace: str, at: int, space: _Space) -> None:
        self.p = proj
        self.ns = namespace
        self.at = at
        self.space = space
        self._labels: dict[str, str | None] = {}
        # memories a live memory supersedes at this seq: the index shows current facts only
        self.gone = {
            i for i in list(space.superseded)
            if self.node(i) is not None and is_superseded(proj._nodes, proj._adjacency, i, at)
        }

    def node(self, node_id: str) -> Node | None:
        node = self.p._nodes.get(node_id, self.at)
        if node is None or node.forgotten or node.namespace != self.ns:
            return None
        return node

    def label(self, node_id: str) -> str | None:
        """A node's name, else a quoted snippet of its text (never its id)."""
        if node_id not in self._labels:
            node = self.node(node_id)
            if node is None:
                self._labels[node_id] = None
            elif node.name and _clean(node.name, 60):
                self._labels[node_id] = _clean(node.name, 60)
            else:
                snippet = _clean(node.text, 32)
                self._labels[node_id] = f'"{snippet}"' if snippet else None
        return self._labels[node_id]

    def render(self, budget: int) -> str:
        domains = self.p._domains.domains(self.ns, self.at)
        for node_id in self.gone:
            node = self.node(node_id)
            if node is not None and node.domain in domains:
                domains[node.domain] -= 1
                if not domains[node.domain]:
                    del domains[node.domain]
        bridges = [b for b in self.p._cross.bridges(self.ns, self.at)
                   if b.src not in self.gone and b.dst not in self.gone]
        entities = self._entities(bridges)
        memories = self.p.memories(self.ns, self.at) - len(self.gone)
        header = [
            f"# Memory index: {self.ns}",
            (f"{_count(memories, 'memory', 'memories')}, "
             f"{_count(len(entities), 'named entity', 'named entities')}, "
             f"{_count(len(domains), 'domain', 'domains')}, "
             f"{_count(len(bridges), 'cross-domain link', 'cross-domain links')}"
             f" (as of seq {self.at})"),
        ]
        if memories == 0:
            header.append("(empty)")
        sections = [
            self._domain_section(domains, entities),
            self._entity_section(entities),
            self._bridge_section(bridges),
        ]
        return _fit(header, [s for s in sections if s.total], budget)

    def _entities(self, bridges: list[Bridge]) -> list[tuple[Node, list[str]]]:
        """Live named nodes, most connected first; the first :data:`_CANDIDATES`
        with their relation snippets (the rest are only counted)."""
        touching: dict[str, int] = {}
        for b in bridges:
            touching[b.src] = touching.get(b.src, 0) + 1
            touching[b.dst] = touching.get(b.dst, 0) + 1
        ranked = []
        get, at, ns = self.p._nodes.get, self.at, self.ns
        for node_id in list(self.space.named):
            node = get(node_id, at)
            if node is None or node.forgotten or node.namespace != ns or not _clean(
                node.name or "", 60
            ) or node_id in self.gone:
                continue
            score = self._degree(node_id) + 2 * touching.get(node_id, 0)
            ranked.append((-score, -node.seq, node))
        ranked.sort(key=lambda r: (r[0], r[1]))
        return [
            (node, self._relations(node.id) if i < _CANDIDATES else [])
            for i, (_, _, node) in enumerate(ranked)
        ]

    def _edges(self, node_id: str) -> list[Any]:
        return [
            e for e in self.p._adjacency.edges(node_id, self.at, direction="both")
            if e.rel != SEQUENCE_REL and e.namespace == self.ns
            and e.src not in self.gone and e.dst not in self.gone
        ]

    def _degree(self, node_id: str) -> int:
        n = 0
        at, ns = self.at, self.ns
        gone = self.gone
        for e in self.p._adjacency.edges(node_id, at, direction="both"):
            if e.rel != SEQUENCE_REL and e.namespace == ns and e.src not in gone \
                    and e.dst not in gone:
                n += 1
        return n

    def _relations(self, node_id: str) -> list[str]:
        rels = []
        for e in self._edges(node_id):
            out = e.src == node_id
            other = self.label(e.dst if out else e.src)
            if other is not None:
                arrow = "->" if out else "<-"
                rels.append((0 if other[0] != '"' else 1, f"{e.rel} {arrow} {other}"))
        rels.sort(key=lambda r: r[0])  # named neighbours first, otherwise in edge order
        shown = [r for _, r in rels[:3]]
        if len(rels) > 3:
            shown.append(f"+{len(rels) - 3} more")
        return shown

    def _domain_section(
        self, domains: dict[str, int], entities: list[tuple[Node, list[str]]]
    ) -> _Section:
        top: dict[str, list[str]] = {}
        for node, _ in entities:
            if node.domain is not None and len(top.setdefault(node.domain, [])) < 3:
                top[node.domain].append(_clean(node.name or "", 40))
        order = sorted(domains.items(), key=lambda kv: (-kv[1], kv[0]))
        lines = []
        for domain, size in order[:_CANDIDATES]:
            names = f" ({', '.join(top[domain])})" if top.get(domain) else ""
            lines.append(f"- {_clean(domain, 60) or '(blank)'}:"
                         f" {_count(size, 'memory', 'memories')}{names}")
        return _Section("Domains", "domains", 0.25, lines, len(order))

    def _entity_section(self, entities: list[tuple[Node, list[str]]]) -> _Section:
        lines = []
        for node, rels in entities[:_CANDIDATES]:
            where = f" ({_clean(node.domain, 40) or '(blank)'})" if node.domain else ""
            name = _clean(node.name or "", 60)
            summary = _sentence(node.text)
            line = f"- **{name}**{where}"
            if summary and summary.casefold() != name.casefold():
                line += f": {summary}"
            if rels:
                line += f" [{'; '.join(rels)}]"
            lines.append(line)
        return _Section("Entities", "entities", 0.5, lines, len(entities))

    def _bridge_section(self, bridges: list[Bridge]) -> _Section:
        pairs: dict[tuple[str, str], list[Bridge]] = {}
        for b in bridges:
            pairs.setdefault((b.src_domain, b.dst_domain), []).append(b)
        order = sorted(pairs.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        lines = []
        for (src, dst), group in order[:_CANDIDATES]:
            rels = Counter(b.rel for b in group)
            common = sorted(rels.items(), key=lambda kv: (-kv[1], kv[0]))[:4]
            kinds = ", ".join(f"{rel} x{n}" if n > 1 else rel for rel, n in common)
            if len(rels) > 4:
                kinds += f", +{len(rels) - 4} more"
            examples = []
            for b in group:
                a, c = self.label(b.src), self.label(b.dst)
                if a is not None and c is not None:
                    examples.append(f"{a} {b.rel} {c}")
                if len(examples) == 2:
                    break
            tail = f" (e.g. {'; '.join(examples)})" if examples else ""
            left, right = _clean(src, 40) or "(blank)", _clean(dst, 40) or "(blank)"
            lines.append(f"- {left} -> {right}: {kinds}{tail}")
        return _Section("Cross-references", "domain pairs", 0.25, lines, len(order))


def _more(section: _Section) -> str:
    return f"- ... {section.total - section.shown} more {section.noun}"


def _fit(header: list[str], sections: list[_Section], budget: int) -> str:
    """Header, then each section's lines, filled fairly by share, within ``budget``."""
    used = sum(estimate_tokens(line) + 1 for line in header)
    for s in sections:
        s.costs = [estimate_tokens(line) + 1 for line in s.lines]
    # the fixed cost of opening a section: a blank line, its heading and a "more" line
    # sized for the largest count it could show
    opening = {
        id(s): 3 + estimate_tokens(f"## {s.title}")
        + estimate_tokens(f"- ... {s.total} more {s.noun}")
        for s in sections
    }
    while True:
        best: _Section | None = None
        for s in sections:
            if s.shown >= len(s.lines):
                continue
            extra = s.costs[s.shown] + (opening[id(s)] if s.shown == 0 else 0)
            if used + extra > budget:
                continue
            if best is None or s.used / s.share < best.used / best.share:
                best = s
        if best is None:
            break
        extra = best.costs[best.shown] + (opening[id(best)] if best.shown == 0 else 0)
        best.shown += 1
        best.used += extra
        used += extra
    out = list(header)
    for s in sections:
        if not s.shown:
            continue
        out += ["", f"## {s.title}", *s.lines[: s.shown]]
        if s.shown < s.total:
            out.append(_more(s))
    return fit_text("\n".join(out), budget)


def _count(n: int, one: str, many: str) -> str:
    """``1 memory``, ``2 memories``, ``0 memories``."""
    return f"{n} {one if n == 1 else many}"
