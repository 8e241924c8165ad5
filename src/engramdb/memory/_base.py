"""What every part of the facade shares: the stores and projections a
:class:`~engramdb.memory.Memory` holds, and the helpers its writes go through
(checking provenance, appending drafts with their vectors, building a
``node.created`` draft)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from msgspec import UNSET

from ..cognition.agent import Cognition
from ..cognition.ownership import answer_conflict, check_owned
from ..cognition.prefetch import Prefetcher
from ..cognition.tiers import TierState
from ..errors import ConcurrencyConflict, InvalidInput, NotFound, ReadOnly
from ..events import (
    NO_STREAM,
    NODE_CREATED,
    Draft,
    Event,
    Meta,
    NodeUpdated,
    from_us,
    new_id,
    to_us,
)
from ..events.types import (
    check_memory_id,
)
from ..progress import track
from ..projections import Node
from ..recall.engine import RecallWeights
from ..recall.index import IndexProjection
from ..recall.models import VectorModels
from ..recall.projections import TextProjection, VectorProjection
from ..store import EventStore
from ..view import Reader, View, resolve_seq
from ._forget import Erasure, erasure

if TYPE_CHECKING:
    from ..recall.embed import Embedder


_UNSET: Any = UNSET
_T = TypeVar("_T")

def _attrs(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(f"attrs must be a mapping, got {type(value).__name__}")
    return dict(value)


def _names(value: Any, label: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise InvalidInput(f"{label} must be a list of strings")
    return list(value)



def scope_alias(value: Any, alias: Any, name: str, alias_name: str) -> Any:
    """``name`` or its older spelling ``alias_name`` (both only if they agree)."""
    if value is None:
        return alias
    if alias is not None and alias != value:
        raise InvalidInput(f"{name} and {alias_name} name the same thing: give one")
    return value


class FacadeBase(Reader):
    """State and helpers shared by the facade's parts (see :class:`Memory`)."""

    weights: RecallWeights
    _text: TextProjection | None
    _models: VectorModels | None
    _index: IndexProjection | None
    _owner: bool
    _cog: Cognition
    _tiers: TierState
    _prefetch: Prefetcher

    @property
    def _embedder(self) -> Embedder | None:
        return None if self._models is None else self._models.state.embedder

    @property
    def _vectors(self) -> VectorProjection | None:
        return None if self._models is None else self._models.state.projection

    def _vector_pair(self) -> dict[str, Any]:
        """``vectors=`` and ``embedder=`` for recall, from one read (never straddling a switch)."""
        state = None if self._models is None else self._models.state
        return {"vectors": state and state.projection, "embedder": state and state.embedder}

    #: how long (seconds) a read with ``min_seq`` waits for this process to apply it
    min_seq_timeout: float = 5.0

    def _at(self) -> int:
        return self._store.head

    def wait_for(self, seq: int, *, timeout: float | None = None) -> int:
        """Read your writes across processes: return once this process has applied
        ``seq`` (the seq a write answered with, here or in another process on the
        same log), waiting at most ``timeout`` seconds (default
        :attr:`min_seq_timeout`); else :class:`~engramdb.errors.NotYetApplied`
        (code ``seq_not_applied``, details ``min_seq`` and ``seq``, the seq this
        process is at). A seq past the log's head, which no write has answered
        with, is :class:`~engramdb.errors.InvalidQuery` at once."""
        return self._store.wait_for(seq, self.min_seq_timeout if timeout is None else timeout)

    def _fresh(self, plan: Callable[[], _T]) -> _T:
        """``plan()``; when it finds something missing (:class:`NotFound`), once more
        after catching up with other processes, which may have written it."""
        at = self._at()
        try:
            return plan()
        except NotFound:
            if self._store.catch_up() <= at:
                raise
            return plan()

    def _min_seq(self, min_seq: int | None) -> None:
        if min_seq is not None:
            self.wait_for(min_seq)

    @property
    def store(self) -> EventStore:
        return self._store

    def as_of(self, when: datetime | int | str) -> View:
        """A read-only view of this namespace as it was at ``when`` (a seq or a time)."""
        return View(self, resolve_seq(self._store, when))

    def _meta(
        self, agent: str | None, source: str | None, session: str | None,
        user: str | None = None,
    ) -> Meta:
        for label, value in (("agent", agent), ("source", source), ("session", session),
                             ("user_id", user)):
            if value is not None and not isinstance(value, str):
                raise InvalidInput(f"{label} must be a string")
        return Meta(agent=agent, source=source, session=session, user=user)

    def _scoped_meta(
        self, source: str | None, *, agent: str | None = None, session: str | None = None,
        user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
    ) -> Meta:
        """The meta of a write from its scope keywords: ``agent_id`` (alias
        ``agent``), ``run_id`` (alias ``session``) and ``user_id``."""
        return self._meta(scope_alias(agent_id, agent, "agent_id", "agent"), source,
                          scope_alias(run_id, session, "run_id", "session"), user_id)

    def _append(
        self, drafts: Sequence[Draft], *, planned_at: int | None = None,
        replan: Callable[[], Sequence[Draft]] | None = None,
    ) -> list[Event]:
        """Append ``drafts`` (checked: read-only store, ownership). ``planned_at`` +
        ``replan``: see :meth:`EventStore.append` (another process's events that
        arrived since the plan make the commit plan again, under the write lock,
        so what the plan checked sees every process's writes)."""
        if getattr(self._store.log, "read_only", False):
            raise ReadOnly("this store is open read-only")
        if self._store.shard is not None:  # another shard's events would never be applied here
            self._store.shard.check(self.namespace)
        head = self._store.head
        check_owned(drafts, self.namespace, lambda node_id: self._nodes.get(node_id, head))
        checked = None
        if replan is not None:
            def checked() -> Sequence[Draft]:
                again = replan()
                now = self._store.head
                check_owned(again, self.namespace, lambda node_id: self._nodes.get(node_id, now))
                return again
        try:
            events = self._store.append(drafts, planned_at=planned_at, replan=checked)
        except ConcurrencyConflict as exc:  # maybe a racing create of another tenant's id
            answer = answer_conflict(exc, drafts, self.namespace,
                                     lambda node_id: self._nodes.get(node_id, self._store.head))
            if answer is exc:
                raise
            raise answer from None
        if self._models is not None:  # embed what raced a switch of model (see reembed)
            self._models.after_append(self._store, events)
        return events

    def _with_vectors(self, drafts: list[Draft]) -> list[Draft]:
        """Add ``vector.stored`` drafts after each draft that sets text (one batch embed
        per model: the active one, and during :meth:`reembed` the new one too)."""
        return drafts if self._models is None else self._models.with_vectors(drafts)

    def _created_draft(
        self, text: str, *, meta: Meta, domain: str | None = None, kind: str = "memory",
        name: str | None = None, attrs: Mapping[str, Any] | None = None,
        valid_from: Any = None, valid_to: Any = None, id: str | None = None,
    ) -> Draft:
        if not isinstance(text, str):
            raise InvalidInput("text must be a string")
        node_id = check_memory_id(id) if id is not None else new_id()
        for label, value in (("kind", kind), ("name", name), ("domain", domain)):
            if value is not None and not isinstance(value, str):
                raise InvalidInput(f"{label} must be a string")
        payload = {"kind": kind, "text": text, "name": name, "domain": domain,
                   "attrs": _attrs(attrs)}
        return Draft(
            type=NODE_CREATED, stream=node_id, namespace=self.namespace,
            payload={k: v for k, v in payload.items() if v is not None},
            meta=meta, **self._validity(valid_from, valid_to), expected_version=NO_STREAM,
        )

    @staticmethod
    def _validity(valid_from: Any, valid_to: Any, current: Node | None = None) -> dict[str, Any]:
        """``valid_from`` and ``valid_to`` in µs, :class:`InvalidInput` if the memory
        would end before it starts (``current``: the memory an update changes)."""
        start, end = to_us(valid_from), to_us(valid_to)
        first = start if start is not None else current and current.valid_from
        last = end if end is not None else current and current.valid_to
        if first is not None and last is not None and last < first:
            raise InvalidInput(f"valid_to ({from_us(last).isoformat()}) is earlier than "
                               f"valid_from ({from_us(first).isoformat()})")
        return {"valid_from": start, "valid_to": end}

    @staticmethod
    def _updated_payload(
        *, text: Any, name: Any, domain: Any, kind: Any, attrs: Any, unset: Any
    ) -> NodeUpdated:
        """The ``node.updated`` payload of an update (the facade's and a context's),
        each field type-checked: msgspec would store bytes as base64 text, not refuse them."""
        for label, value in (("text", text), ("name", name), ("domain", domain), ("kind", kind)):
            if value is UNSET or (value is None and label in ("name", "domain")):
                continue
            if not isinstance(value, str):
                raise InvalidInput(f"{label} must be a string")
        return NodeUpdated(text=text, name=name, domain=domain, kind=kind,
                           attrs=_attrs(attrs), unset=_names(unset, "unset"))

    @staticmethod
    def _check_rel(rel: Any) -> None:
        if not isinstance(rel, str) or not rel or len(rel) > 128 or not rel.isprintable():
            raise InvalidInput("a relation is a printable string of 1-128 characters")

    def _erasure(self) -> Erasure:
        """What compaction erases of forgotten memories (see :mod:`._forget`)."""
        head = self._store.head
        return erasure(track("scan", self._store.log.read(upto=head), total=head))

    def _nodes_get(self, node_id: str, seq: int) -> Node:
        node = self._nodes.get(node_id, seq)
        assert node is not None
        return node
