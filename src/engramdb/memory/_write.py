"""The facade's writes: remember (one or many), update, relate/unrelate,
forget and compact, and conversation ingest (see :class:`~engramdb.memory.Memory`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from itertools import pairwise
from typing import Any

from ..cognition.batch import plan_remember_many
from ..cognition.supersession import Remembered, plan_remember, remembered, reopen_drafts
from ..errors import ConcurrencyConflict, Conflict, InvalidInput, NotFound
from ..events import (
    ANY_VERSION,
    EDGE_ADDED,
    EDGE_REMOVED,
    NODE_CREATED,
    NODE_FORGOTTEN,
    NODE_UPDATED,
    Draft,
    EdgeAdded,
    EdgeRemoved,
    Event,
    NodeForgotten,
    edge_stream,
)
from ..projections import Edge, Node
from ..recall.engine import SEQUENCE_REL
from ..recall.when import parse_when
from ..view import Reader, View, check_optional_str, check_str
from ._base import _UNSET, FacadeBase, _attrs

#: The keys an item of :meth:`Memory.remember_many` may have (``remember``'s keywords).
_BATCH_KEYS = frozenset({"text", "domain", "kind", "name", "attrs", "valid_from", "valid_to",
                         "source", "agent", "session", "id", "supersedes", "user_id",
                         "agent_id", "run_id"})


def _batch_item(index: int, item: Any) -> dict[str, Any]:
    """One ``remember_many`` item as keywords, or :class:`InvalidInput` naming it."""
    if isinstance(item, str):
        return {"text": item}
    if not isinstance(item, Mapping):
        raise InvalidInput(f"item {index}: expected a text or a dict, got {type(item).__name__}")
    unknown = sorted(str(k)[:40] for k in item if k not in _BATCH_KEYS)
    if unknown:
        raise InvalidInput(f"item {index}: unknown key(s) {', '.join(map(repr, unknown))}",
                           item=index, keys=unknown)
    if "text" not in item:
        raise InvalidInput(f"item {index}: 'text' is required", item=index)
    return dict(item)



class WriteOps(FacadeBase):
    """Every write of memories and edges (part of :class:`~engramdb.memory.Memory`)."""

    def remember(
        self,
        text: str,
        *,
        domain: str | None = None,
        kind: str = "memory",
        name: str | None = None,
        attrs: Mapping[str, Any] | None = None,
        valid_from: datetime | int | str | None = None,
        valid_to: datetime | int | str | None = None,
        source: str | None = None,
        agent: str | None = None,
        session: str | None = None,
        id: str | None = None,
        supersedes: str | Sequence[str] | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> Remembered:
        """Store a memory; returns it as a :class:`Node` (its ``id`` names it from now on).

        ``supersedes`` (an id or ids) replaces older memories: they get ``valid_to``
        (this memory's ``valid_from``, default now) and a ``supersedes`` edge from
        it, in the same commit; a memory with ``attrs`` ``subject`` + ``predicate``
        supersedes the current one of that slot by itself. Remembering exactly a
        live, current memory again writes nothing: the result has ``created=False``
        (under another chosen ``id`` it is a :class:`Conflict` naming the existing one).
        See :mod:`engramdb.cognition.supersession`.

        Scope: ``user_id`` (whom the memory is about or for), ``agent_id`` (which
        agent wrote it; ``agent`` is the older name) and ``run_id`` (the session
        or run; ``session`` is the older name) are kept on the memory
        (``node.user_id`` ...) and filter :meth:`recall`, :meth:`list` and
        :meth:`forget_where`.
        """
        draft = self._created_draft(
            text, domain=domain, kind=kind, name=name, attrs=attrs, valid_from=valid_from,
            valid_to=valid_to, id=id,
            meta=self._scoped_meta(source, agent=agent, session=session, user_id=user_id,
                                   agent_id=agent_id, run_id=run_id),
        )
        now = self._cog.clock()
        with self._cog.facts.guard(self.namespace, draft.payload):
            at = self._at()
            plan = plan_remember(View(self, at), self._cog.facts, draft, supersedes, now=now)
            if plan.existing is not None:
                return self._duplicate(plan.existing, id)
            first = self._with_vectors(plan.drafts)
            plans = [plan]

            def replan() -> list[Draft]:  # another process wrote since: plan again
                again = plan_remember(View(self, self._store.head), self._cog.facts, draft,
                                      supersedes, now=now)
                plans.append(again)
                if again.existing is not None:
                    return []
                return first if again.drafts == plans[0].drafts else self._with_vectors(
                    again.drafts)

            events = self._append(first, planned_at=at, replan=replan)
            plan = plans[-1]
            if not events:  # the replan found the same memory, written elsewhere
                assert plan.existing is not None
                return self._duplicate(plan.existing, id)
        event = events[0]
        return remembered(self._nodes_get(event.stream, event.seq), created=True,
                          superseded=plan.superseded)

    def _duplicate(self, existing: str, chosen: str | None) -> Remembered:
        """What :meth:`remember` answers when the memory is already there: that memory
        (``created=False``), unless the caller chose another id for it. A chosen id is
        never silently replaced by another (a later ``get(chosen)`` would be 404)."""
        if chosen is not None and chosen != existing:
            raise Conflict(f"an identical memory {existing} exists: remember under that id, "
                           "or change the text", existing=existing)
        return remembered(Reader.get(self, existing), created=False)

    def remember_many(self, items: Iterable[Mapping[str, Any] | str]) -> list[Remembered]:
        """Store many memories in one atomic commit: all of them, or (on any bad
        item, :class:`InvalidInput` naming it) none. Items are texts or dicts of
        :meth:`remember`'s keywords, ``supersedes`` included (ids of memories that
        exist before this call). One result per item, written as the same
        :meth:`remember` calls in a row would be: an exact duplicate (of a live,
        current memory or of an earlier item) writes nothing and comes back with
        ``created=False``; a ``subject`` + ``predicate`` slot is superseded, also
        by a later item of the batch (see :mod:`engramdb.cognition.batch`)."""
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
            raise InvalidInput("remember_many takes a list of texts or dicts")
        planned: list[tuple[Draft, Any]] = []
        for index, item in enumerate(items):
            spec = _batch_item(index, item)
            supersedes = spec.pop("supersedes", None)
            meta = self._scoped_meta(
                spec.pop("source", None), agent=spec.pop("agent", None),
                session=spec.pop("session", None), user_id=spec.pop("user_id", None),
                agent_id=spec.pop("agent_id", None), run_id=spec.pop("run_id", None))
            planned.append((self._created_draft(meta=meta, **spec), supersedes))
        now = self._cog.clock()
        with self._cog.facts.guard(self.namespace, *(d.payload for d, _ in planned)):
            at = self._at()
            plan = plan_remember_many(View(self, at), self._cog.facts, planned, now=now)
            first = self._with_vectors(plan.drafts) if plan.drafts else []
            plans = [plan]

            def replan() -> list[Draft]:  # another process wrote since: plan again
                again = plan_remember_many(View(self, self._store.head), self._cog.facts,
                                           planned, now=now)
                plans.append(again)
                if again.drafts == plans[0].drafts:
                    return first
                return self._with_vectors(again.drafts) if again.drafts else []

            events = self._append(first, planned_at=at, replan=replan) if first else []
            plan = plans[-1]
        born = {e.stream: e.seq for e in events if e.type == NODE_CREATED}
        out = []
        for item in plan.items:
            if item.existing is None:
                out.append(remembered(self._nodes_get(item.stream, born[item.stream]),
                                      created=True, superseded=item.superseded))
            elif item.existing in born:  # an earlier item of this batch, repeated
                out.append(remembered(self._nodes_get(item.existing, born[item.existing]),
                                      created=False))
            else:
                out.append(remembered(Reader.get(self, item.existing), created=False))
        return out

    def update(
        self,
        node_id: str,
        *,
        text: str = _UNSET,
        name: str | None = _UNSET,
        domain: str | None = _UNSET,
        kind: str = _UNSET,
        attrs: Mapping[str, Any] | None = None,
        unset: Sequence[str] = (),
        valid_from: datetime | int | str | None = None,
        valid_to: datetime | int | str | None = None,
        expected_version: int | None = None,
        source: str | None = None,
        agent: str | None = None,
        session: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> Node:
        """Change fields of a memory. ``expected_version`` makes it optimistic: pass
        the ``version`` of the node you read (1 for a new memory, one more per
        update); :class:`ConcurrencyConflict` if the memory changed since, and
        nothing is written (a new vector, e.g. a re-embedding, is no change).
        ``user_id`` / ``agent_id`` / ``run_id`` say on whose behalf the update was
        made (its provenance); the memory keeps the scope it was created in."""
        payload = self._updated_payload(text=text, name=name, domain=domain, kind=kind,
                                        attrs=attrs, unset=unset)
        meta = self._scoped_meta(source, agent=agent, session=session, user_id=user_id,
                                 agent_id=agent_id, run_id=run_id)

        def plan() -> Draft:
            current = Reader.get(self, node_id)  # a write, not a read to count
            return Draft(
                type=NODE_UPDATED, stream=current.id, namespace=self.namespace,
                payload=payload, **self._validity(valid_from, valid_to, current), meta=meta,
                expected_version=_stream_version(current, expected_version),
            )

        at = self._at()
        draft = self._fresh(plan)
        first = self._with_vectors([draft])

        def replan() -> list[Draft]:  # another process wrote since: the memory may be gone
            again = plan()
            return first if again == draft else self._with_vectors([again])

        events = self._append(first, planned_at=at, replan=replan)
        return self._nodes_get(draft.stream, events[-1].seq)

    def relate(
        self,
        src: str,
        rel: str,
        dst: str,
        *,
        attrs: Mapping[str, Any] | None = None,
        source: str | None = None,
        agent: str | None = None,
        session: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> Edge:
        """Add the typed edge ``src -rel-> dst`` (both must exist in this namespace)."""
        self._check_rel(rel)
        meta = self._scoped_meta(source, agent=agent, session=session, user_id=user_id,
                                 agent_id=agent_id, run_id=run_id)
        edge_attrs = _attrs(attrs)

        def plan() -> list[Draft]:  # both ends exist (again, if another process wrote since)
            a, b = Reader.get(self, src), Reader.get(self, dst)
            return [Draft(
                type=EDGE_ADDED, stream=edge_stream(a.id, rel, b.id), namespace=self.namespace,
                payload=EdgeAdded(src=a.id, rel=rel, dst=b.id, attrs=edge_attrs), meta=meta,
            )]

        at = self._at()
        [draft] = self._fresh(plan)
        event = self._append([draft], planned_at=at, replan=plan)[0]
        a_id, b_id = draft.payload.src, draft.payload.dst
        for edge in self._adjacency.edges(a_id, event.seq, rel=rel):
            if edge.dst == b_id:
                return edge
        raise NotFound("the edge vanished before it could be read")  # pragma: no cover

    def unrelate(self, src: str, rel: str, dst: str, *, agent: str | None = None) -> None:
        """Remove the edge ``src -rel-> dst``; :class:`NotFound` if there is none."""
        self._check_rel(rel)
        check_str(src, "src")
        check_str(dst, "dst")
        if not any(e.dst == dst and e.namespace == self.namespace
                   for e in self._adjacency.edges(src, self._at(), rel=rel)):
            raise NotFound(f"no edge {src[:80]} -{rel}-> {dst[:80]}")
        self._append([
            Draft(
                type=EDGE_REMOVED, stream=edge_stream(src, rel, dst), namespace=self.namespace,
                payload=EdgeRemoved(src=src, rel=rel, dst=dst),
                meta=self._meta(agent, None, None),
            )
        ])

    def forget(self, node_id: str, *, reason: str | None = None, agent: str | None = None) -> Event:
        """Tombstone a memory. Its content disappears from every view now and from
        disk at the next :meth:`compact`; history keeps that, when and by whom.
        Memories it superseded are current again, their validity reopened in the
        same commit (see :func:`~engramdb.cognition.supersession.reopen_drafts`)."""
        check_optional_str(reason, "reason")
        meta = self._meta(agent, None, None)

        def plan() -> list[Draft]:  # (again, if another process wrote since)
            at = self._at()
            node = Reader.get(self, node_id)
            return [
                Draft(type=NODE_FORGOTTEN, stream=node.id, namespace=self.namespace,
                      payload=NodeForgotten(reason=reason), meta=meta),
                *reopen_drafts(View(self, at), node.id, meta),
            ]

        at = self._at()  # before planning: the plan is at least this fresh
        return self._append(self._fresh(plan), planned_at=at, replan=plan)[0]

    def compact(self) -> int:
        """Physically erase the content of forgotten memories (and their edges'
        attributes) from every file of the store. Returns the events redacted."""
        plan = self._erasure()
        return self._store.compact(plan.seqs, renames=plan.renames)

    def ingest_conversation(
        self,
        turns: Iterable[Mapping[str, Any]],
        *,
        session: str | None = None,
        at: datetime | int | str | None = None,
        domain: str | None = "conversation",
        source: str | None = None,
        agent: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> list[Node]:
        """Remember a chat transcript in one commit: one memory per turn, linked
        in order by ``next`` edges (recall passes relevance along them).

        Each turn is ``{"speaker", "text"}`` plus optional ``"id"`` (e.g. a dialog
        id), ``"time"`` and ``"attrs"``; session, speaker, turn index and id become
        attributes, and the text is stored as ``"Speaker: text"`` so names are
        searchable. ``at`` (the session's date) becomes each turn's ``valid_from``.

        Turns are utterances, not facts: each is stored, even one repeating an
        earlier turn word for word (its session, turn index and position in the
        ``next`` chain differ, and "yes" said twice was said twice), and turns
        never supersede memories. Remember the facts drawn from a conversation
        with :meth:`remember` / :meth:`remember_many` to get those rules.

        ``run_id`` is ``session`` (one of them is required); ``user_id`` and
        ``agent_id`` (alias ``agent``) scope every turn as in :meth:`remember`.
        """
        if isinstance(turns, (str, bytes, Mapping)) or not isinstance(turns, Iterable):
            raise InvalidInput("ingest_conversation takes a list of turns (dicts)")
        drafts: list[Draft] = []
        meta = self._scoped_meta(source, agent=agent, session=session, user_id=user_id,
                                 agent_id=agent_id, run_id=run_id)
        session = meta.session
        if session is None:
            raise InvalidInput("ingest_conversation needs a session (run_id)")
        at = parse_when(at, label="at")
        for index, turn in enumerate(turns):
            text, speaker = _turn_fields(turn, index)
            attrs = {"session": session, "turn": index, **({"speaker": speaker} if speaker else {})}
            if turn.get("id") is not None:
                attrs["dia_id"] = turn["id"]
            attrs.update(_attrs(turn.get("attrs")))
            when = parse_when(turn["time"], label=f"turn {index} time") if "time" in turn else at
            drafts.append(self._created_draft(
                f"{speaker}: {text}" if speaker else text, meta=meta,
                kind="turn", domain=domain, attrs=attrs, valid_from=when,
            ))
        links = [
            Draft(type=EDGE_ADDED, stream=edge_stream(a.stream, SEQUENCE_REL, b.stream),
                  namespace=self.namespace, meta=meta,
                  payload=EdgeAdded(src=a.stream, rel=SEQUENCE_REL, dst=b.stream))
            for a, b in pairwise(drafts)
        ]
        events = self._append([*self._with_vectors(drafts), *links])
        return [self._nodes_get(e.stream, e.seq) for e in events if e.type == NODE_CREATED]


_TURN_SHAPE = ("a turn is a dict with 'text' (or 'content') and optional 'speaker' (or 'role'),"
               " 'id', 'time' and 'attrs'")


def _turn_fields(turn: Any, index: int) -> tuple[str, str | None]:
    """A turn's text and speaker, from ``{speaker, text}`` or ``{role, content}``."""
    if not isinstance(turn, Mapping):
        raise InvalidInput(f"turn {index} is not a dict: {_TURN_SHAPE}")
    text = turn.get("text", turn.get("content"))
    if not isinstance(text, str):
        raise InvalidInput(f"turn {index} needs a 'text' (or 'content') string: {_TURN_SHAPE}")
    speaker = turn.get("speaker", turn.get("role"))
    if speaker is not None and not isinstance(speaker, str):
        raise InvalidInput(f"turn {index}: 'speaker' / 'role' must be a string: {_TURN_SHAPE}")
    return text, speaker or None


def _stream_version(current: Node, expected: Any) -> int:
    """The log's ``expected_version`` for an update of ``current`` that expects the
    user-visible version ``expected``: the stream version ``current`` is at (so the
    log refuses the append if anything reached the stream since ``current`` was
    read), after checking ``expected`` against ``current.version`` here."""
    if expected is None or (type(expected) is int and expected == ANY_VERSION):
        return ANY_VERSION
    if type(expected) is not int or expected < 0:
        raise InvalidInput("expected_version must be a memory's version (1 or more)")
    if expected != current.version:
        raise ConcurrencyConflict(
            f"memory {current.id!r} is at version {current.version}, the update expected"
            f" version {expected}", stream=current.id, expected=expected,
            actual=current.version)
    return current.stream_version
