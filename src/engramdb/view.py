"""Read-only views of a store at one seq: the present, or any point in the past.

:class:`Reader` holds every read operation; subclasses say which seq they read
at. :class:`View` is a frozen seq (``mem.as_of(t)``); the :class:`Memory`
facade reads at the store's current head. Each read takes its seq once, so one
call always sees one consistent state, however many events land meanwhile.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from .errors import InvalidInput, NotFound
from .events import (
    EDGE_ADDED,
    EDGE_REMOVED,
    NODE_CREATED,
    NODE_FORGOTTEN,
    NODE_UPDATED,
    REDACTED,
    Event,
    Redacted,
    from_us,
    to_us,
)
from .events.model import EMPTY_META
from .events.types import OUTCOME_RECORDED, TIER_CHANGED
from .projections import (
    OPEN,
    SUPERSEDES,
    Adjacency,
    Bridge,
    CrossDomain,
    DomainIndex,
    Edge,
    Node,
    NodeState,
    is_superseded,
)

if TYPE_CHECKING:
    from .store import EventStore

__all__ = ["Reader", "View", "Neighbor", "Provenance", "TIMELINE_TYPES", "parse_seq",
           "resolve_seq",
           "check_str", "check_optional_str", "check_bool", "check_strs", "check_mapping"]


#: The events :meth:`Reader.timeline` lists: what happened to memories and edges
#: (not vectors, read counts, index prose or contexts' private staging).
TIMELINE_TYPES = (NODE_CREATED, NODE_UPDATED, NODE_FORGOTTEN, EDGE_ADDED, EDGE_REMOVED,
                  TIER_CHANGED, OUTCOME_RECORDED, REDACTED)


@dataclass(frozen=True, slots=True)
class Neighbor:
    edge: Edge
    node: Node


@dataclass(frozen=True, slots=True)
class Provenance:
    """Which event set a field's current value, when, and on whose behalf."""

    node_id: str
    field: str
    value: Any
    event_id: str
    seq: int
    type: str
    recorded_at: datetime
    agent: str | None
    source: str | None
    session: str | None


class Reader:
    """Every read, answered at the seq :meth:`_at` names, within one namespace."""

    _store: EventStore
    _nodes: NodeState
    _adjacency: Adjacency
    _domains: DomainIndex
    _cross: CrossDomain
    namespace: str

    def _at(self) -> int:
        raise NotImplementedError

    @property
    def seq(self) -> int:
        """The seq this reader answers at."""
        return self._at()

    # -- nodes -------------------------------------------------------------------

    def get(self, node_id: str) -> Node:
        """The memory or entity ``node_id``; :class:`NotFound` if absent or forgotten."""
        node = self._nodes.get(check_str(node_id, "id"), self._at())
        if node is None or node.namespace != self.namespace or node.forgotten:
            raise NotFound(f"no memory {str(node_id)[:80]!r} in namespace {self.namespace!r}")
        return node

    def find(self, name: str) -> Node:
        """The current node named ``name`` (case-insensitive), as of this reader's seq.

        Of several, the one changed most recently that no live memory supersedes.
        When every node of that name is superseded, the memory that replaced the
        latest of them (following the chain to the current one), so
        ``remember("Maya lives in Berlin", name="Maya")`` then Lisbon with
        ``supersedes=`` finds Lisbon, while a view from before the change finds Berlin."""
        at = self._at()
        key = check_str(name, "name").casefold()
        if at >= self._store.head:
            named = [n for i in self._nodes.named(self.namespace, name)
                     if _named(n := self._nodes.get(i, at), self.namespace, key)]
        else:  # the name index is the present's: a past view looks at every node as it was
            found = [n for i in self._nodes.ids()
                     if _named(n := self._nodes.get(i, at), self.namespace, key)]
            named = sorted(found, key=lambda n: n.seq, reverse=True)  # type: ignore[union-attr]
        for node in named:
            assert node is not None
            if not is_superseded(self._nodes, self._adjacency, node.id, at):
                return node
        if named:
            assert named[0] is not None
            return self._replacement(named[0], at)
        raise NotFound(f"nothing named {name!r} in namespace {self.namespace!r}")

    def _replacement(self, node: Node, at: int) -> Node:
        """The current memory at the end of ``node``'s supersession chain (the
        latest replacement at each step); ``node`` itself if the chain loops."""
        seen = {node.id}
        while True:
            newer = [n for e in self._adjacency.edges(node.id, at, direction="in", rel=SUPERSEDES)
                     if (n := self._nodes.get(e.src, at)) is not None and not n.forgotten
                     and n.namespace == self.namespace and n.id not in seen]
            if not newer:
                return node
            node = max(newer, key=lambda n: n.seq)
            seen.add(node.id)

    def exists(self, node_id: str) -> bool:
        try:
            self.get(node_id)
        except NotFound:
            return False
        return True

    def in_domain(self, domain: str) -> list[Node]:
        check_str(domain, "domain")
        at = self._at()
        nodes = (self._nodes.get(i, at) for i in self._domains.nodes(self.namespace, domain, at))
        return [n for n in nodes if n is not None and not n.forgotten]

    def domains(self) -> dict[str, int]:
        """Domain name -> number of memories in it."""
        return self._domains.domains(self.namespace, self._at())

    # -- graph -------------------------------------------------------------------

    def neighbors(
        self, node_id: str, *, rel: str | None = None, direction: str = "out",
        current: bool = True,
    ) -> list[Neighbor]:
        """Nodes one typed edge away. ``direction`` is ``out``, ``in`` or ``both``.

        ``current`` (default) leaves out neighbours a live memory supersedes,
        except across a ``supersedes`` edge itself (the way to the replaced fact);
        ``current=False`` returns every live neighbour."""
        if direction not in ("out", "in", "both"):
            raise InvalidInput("direction must be 'out', 'in' or 'both'")
        check_optional_str(rel, "rel")
        check_bool(current, "current")
        self.get(node_id)
        at = self._at()
        found = []
        for edge in self._adjacency.edges(node_id, at, direction=direction, rel=rel):
            other = edge.dst if edge.src == node_id else edge.src
            node = self._nodes.get(other, at)
            if node is not None and not node.forgotten and node.namespace == self.namespace:
                if current and edge.rel != SUPERSEDES and is_superseded(
                    self._nodes, self._adjacency, other, at
                ):
                    continue
                found.append(Neighbor(edge, node))
        return found

    def bridges(self, *, domains: set[str] | list[str] | None = None) -> list[Bridge]:
        """Edges joining two different domains (touching ``domains`` when given)."""
        wanted = set(check_strs(domains, "domains")) if domains is not None else None
        return self._cross.bridges(self.namespace, self._at(), domains=wanted)

    # -- history and provenance --------------------------------------------------

    def history(self, stream_id: str) -> list[Event]:
        """Every event of a memory/entity (or edge stream) up to this view's seq.

        The events of a forgotten node come back with their payload replaced by
        a :class:`~engramdb.events.Redacted` marker, before and after compaction.
        """
        events = self._store.log.read_stream(check_str(stream_id, "id"), upto=self._at())
        # a context's staged writes (context.* events) are private until commit
        events = [e for e in events
                  if e.namespace == self.namespace and not e.type.startswith("context.")]
        if not events:
            raise NotFound(f"no history for {str(stream_id)[:80]!r} in {self.namespace!r}")
        # Forgetting is retroactive: a view from before the forget masks too, and
        # so does an edge's history once either end is forgotten (what compact()
        # redacts on disk).
        if self._forgotten(stream_id) or any(e.type == NODE_FORGOTTEN for e in events):
            return [_mask(e) for e in events]
        return [_mask(e) if self._concerns_forgotten(e) else e for e in events]

    def timeline(
        self, *, after: int = 0, limit: int = 100, types: Sequence[str] | None = None,
        newest: bool = False,
    ) -> list[Event]:
        """This namespace's events with a seq in ``(after, seq]`` (``seq``: this
        reader's), oldest first, at most ``limit`` of them: the first ones, or with
        ``newest=True`` the last ones. Only :data:`TIMELINE_TYPES` (or the subset
        ``types``) are listed; whatever concerns a forgotten memory is masked as in
        :meth:`history`. Reads the log from ``after`` on: keep windows small."""
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise InvalidInput("after must be a seq (an integer >= 0)")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidInput("limit must be an integer from 1 to 10000")
        wanted = set(TIMELINE_TYPES if types is None else check_strs(types, "types"))
        if not wanted or not wanted <= set(TIMELINE_TYPES):
            raise InvalidInput(f"types must be some of {', '.join(TIMELINE_TYPES)}")
        check_bool(newest, "newest")
        found: deque[Event] = deque(maxlen=limit if newest else None)
        for event in self._store.log.read(after=after, upto=self._at()):
            if event.namespace != self.namespace or event.type not in wanted:
                continue
            if event.type == REDACTED and event.payload.was not in wanted:
                continue  # what compaction left of a vector or a read count
            found.append(event)
            if not newest and len(found) == limit:
                break
        return [_mask(e) if self._concerns_forgotten(e) else e for e in found]

    def _concerns_forgotten(self, event: Event) -> bool:
        if event.type in (NODE_FORGOTTEN, REDACTED):
            return False
        p = event.payload
        if event.type in (EDGE_ADDED, EDGE_REMOVED):
            return self._forgotten(p.src) or self._forgotten(p.dst)
        if event.type in (TIER_CHANGED, OUTCOME_RECORDED):
            return self._forgotten(p.memory_id)
        return self._forgotten(event.stream)

    def _forgotten(self, node_id: str) -> bool:
        latest = self._nodes.get(node_id, OPEN)
        return latest is not None and latest.forgotten

    def provenance(self, node_id: str, field: str) -> Provenance:
        """The event that set ``field`` (``text``, ``name``, ``domain``, ``kind``,
        ``attrs.<key>``) to its value in this view."""
        check_str(field, "field")
        node = self.get(node_id)
        value = _field_value(node, field)
        for event in reversed(self._store.log.read_stream(node_id, upto=self._at())):
            if _sets(event, field):
                return Provenance(
                    node_id=node_id, field=field, value=value, event_id=event.id,
                    seq=event.seq, type=event.type, recorded_at=from_us(event.recorded_at),
                    agent=event.meta.agent, source=event.meta.source,
                    session=event.meta.session,
                )
        raise NotFound(f"{node_id} has no field {field!r}")

    def index(self, *, max_tokens: int | None = None, prose: bool = False) -> str:
        """The compressed index: a markdown table of contents of this namespace
        (domains by size, entities by name with one-line summaries, cross-domain
        references with their relation types) within ``max_tokens`` (default:
        500-2,000, growing with the store). ``prose=True`` returns the latest LLM
        rewrite still valid at this seq, if any (see ``Memory.enrich_index``)."""
        check_bool(prose, "prose")
        index = self._store.find_projection("index")
        if index is None:
            raise InvalidInput("this store has no index projection")
        return index.text(  # type: ignore[attr-defined, no-any-return]
            self.namespace, self._at(), max_tokens=max_tokens, prose=prose
        )

    def _namespace_ids(self) -> list[str]:
        """Ids of this namespace's nodes in creation order (a superset: check each)."""
        order = getattr(self._nodes, "created_order", None)
        return list(order(self.namespace)) if order is not None else self._nodes.ids()

    def stats(self) -> dict[str, Any]:
        """Counts at this seq: ``memories`` (every live node, entities included)
        and how many per ``kind``, ``domain`` and ``user`` (``by_domain`` /
        ``by_user`` key ``"null"`` counts those without one)."""
        domains = self.domains()
        at = self._at()
        kinds: dict[str, int] = {}
        by_domain: dict[str | None, int] = {}
        users: dict[str | None, int] = {}
        for node_id in self._namespace_ids():
            node = self._nodes.get(node_id, at)
            if node is None or node.forgotten or node.namespace != self.namespace:
                continue
            kinds[node.kind] = kinds.get(node.kind, 0) + 1
            by_domain[node.domain] = by_domain.get(node.domain, 0) + 1
            users[node.user_id] = users.get(node.user_id, 0) + 1
        return {
            "namespace": self.namespace,
            "seq": at,
            "domains": len(domains),
            "in_domains": sum(domains.values()),
            "memories": sum(kinds.values()),
            "by_kind": _keyed(kinds),
            "by_domain": _keyed(by_domain),
            "by_user": _keyed(users),
        }


class View(Reader):
    """The store as it was at one seq. Read-only."""

    def __init__(self, source: Reader, at: int) -> None:
        self._store = source._store
        self._nodes = source._nodes
        self._adjacency = source._adjacency
        self._domains = source._domains
        self._cross = source._cross
        self.namespace = source.namespace
        self._seq = at

    def _at(self) -> int:
        return self._seq

    def __repr__(self) -> str:
        return f"View(namespace={self.namespace!r}, seq={self._seq})"


def parse_seq(text: str) -> int | None:
    """``text`` as a seq if it spells one, else None: ASCII digits only, so ``"42"``
    is seq 42 while ``"²"``, ``"٣"`` and ``" 42"`` are not (``str.isdigit`` alone
    would take the first two and ``int()`` would then fail or mean something else).
    The one rule every adapter (CLI, HTTP, MCP) uses for "a seq or a time"."""
    if not (text.isascii() and text.isdigit()):
        return None
    if len(text) > 19:
        raise InvalidInput("a seq must fit in 64 bits")
    return int(text)


def resolve_seq(store: EventStore, when: datetime | int | str) -> int:
    """A seq from a seq (an int, or a string of ASCII digits such as ``"42"``) or a
    time (a datetime or an ISO-8601 string). A seq past the head reads the head."""
    head = store.head
    if isinstance(when, bool) or when is None:
        raise InvalidInput("as_of takes a datetime, an ISO time string or a seq")
    if isinstance(when, str) and (seq := parse_seq(when)) is not None:
        when = seq
    if isinstance(when, int):
        if when < 0:
            raise InvalidInput("a seq is never negative")
        return min(when, head)
    us = to_us(when)
    assert us is not None
    return min(store.log.seq_at(us), head)


def check_str(value: Any, label: str) -> str:
    """``value`` if it is a string, else :class:`InvalidInput` naming ``label``:
    every read refuses a wrong-typed argument with a stable code, before it reads."""
    if not isinstance(value, str):
        raise InvalidInput(f"{label} must be a string, got {type(value).__name__}")
    return value


def check_optional_str(value: Any, label: str) -> str | None:
    return None if value is None else check_str(value, label)


def check_bool(value: Any, label: str) -> bool:
    """``value`` if it is True or False (a flag given 5 or "no" is a mistake, not truthy)."""
    if not isinstance(value, bool):
        raise InvalidInput(f"{label} must be true or false, got {type(value).__name__}")
    return value


def check_strs(value: Any, label: str, *, error: type[InvalidInput] = InvalidInput) -> list[str]:
    """A list, tuple or set of strings as a list (a lone string is refused: it
    would otherwise be read as its characters)."""
    if not isinstance(value, (list, tuple, set, frozenset)) or not all(
        isinstance(v, str) for v in value
    ):
        raise error(f"{label} must be a list of strings, got {type(value).__name__}")
    return list(value)


def check_mapping(
    value: Any, label: str, *, error: type[InvalidInput] = InvalidInput
) -> dict[str, Any] | None:
    """A mapping as a dict; None stays None."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise error(f"{label} must be a mapping, got {type(value).__name__}")
    return dict(value)


_TOP_FIELDS = ("text", "name", "domain", "kind")


def _keyed(counts: Mapping[str | None, int]) -> dict[str, int]:
    """Counts keyed by name, most first; ``"null"`` for none (JSON keys are strings)."""
    return {("null" if k is None else k): v
            for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))}


def _named(node: Node | None, namespace: str, key: str) -> bool:
    return (
        node is not None and not node.forgotten and node.namespace == namespace
        and node.name is not None and node.name.casefold() == key
    )


def _field_value(node: Node, field: str) -> Any:
    if field in _TOP_FIELDS:
        return getattr(node, field)
    if field.startswith("attrs.") and field[6:] in node.attrs:
        return node.attrs[field[6:]]
    raise NotFound(f"{node.id} has no field {field!r}")


def _sets(event: Event, field: str) -> bool:
    p = event.payload
    if event.type == NODE_CREATED:
        return field in _TOP_FIELDS or field[6:] in p.attrs
    if event.type == NODE_UPDATED:
        if field in _TOP_FIELDS:
            return getattr(p, field) is not msgspec.UNSET
        return field[6:] in p.attrs
    return False


def _mask(event: Event) -> Event:
    if event.type in (NODE_FORGOTTEN, REDACTED):
        return event
    # as compaction leaves it: no payload, validity or meta (see memory._forget)
    return msgspec.structs.replace(event, type=REDACTED, schema=1, payload=Redacted(was=event.type),
                                   meta=EMPTY_META, valid_from=None, valid_to=None)
