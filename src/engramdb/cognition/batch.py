"""``Memory.remember_many``: many remembers in one commit, with :meth:`remember`'s rules.

Each item is planned as :func:`~engramdb.cognition.supersession.plan_remember`
plans one remember, against the store *plus the items before it*, so a batch
writes what the same remembers one after another would, atomically:

* an exact duplicate of a live, current memory writes nothing and returns it
  (``created=False``), and so does an exact repeat of an earlier item;
* an item filling a ``subject`` + ``predicate`` slot supersedes the slot's current
  memory, which may be an earlier item of the same batch (it then gets its
  ``valid_to`` and a ``supersedes`` edge in the same commit);
* ``supersedes`` names memories that exist before the call.

The facts projection and node state only learn of the batch once it is
appended, so the items' own keys, slots and supersessions
(:class:`_BatchFacts`) and the ends they set (:class:`_BatchView`) are tracked
here meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ..errors import Conflict
from ..events import NODE_CREATED, NODE_UPDATED, Draft
from ..projections import Node
from ..view import Reader, View
from .facts import FactIndex, Slot, content_key, slot_of
from .supersession import plan_remember, replacing, supersedes_ids

__all__ = ["BatchItem", "BatchPlan", "plan_remember_many"]

Supersedes = str | Sequence[str] | None


class BatchItem(msgspec.Struct, frozen=True):
    """What became of one item: ``existing`` (an id, nothing written for it) or a
    new memory ``stream`` that replaced ``superseded``."""

    stream: str
    existing: str | None = None
    superseded: tuple[str, ...] = ()


class BatchPlan(msgspec.Struct, frozen=True):
    drafts: list[Draft]
    items: list[BatchItem]


class _BatchFacts:
    """The facts projection as the items planned so far leave it."""

    def __init__(self, facts: FactIndex) -> None:
        self.facts = facts
        self.keys: dict[str, str] = {}  # content key -> the batch memory saying it
        self.slots: dict[Slot, str] = {}  # slot -> the batch memory filling it now
        self.closed: set[str] = set()  # memories (stored or batch) superseded by the batch
        self.superseded: dict[str, tuple[str, ...]] = {}  # batch memory -> what it replaced

    def duplicate_of(self, key: str) -> str | None:
        found = self.facts.duplicate_of(key)
        return None if found in self.closed else found

    def current_in_slot(self, slot: Slot) -> list[str]:
        return [i for i in self.facts.current_in_slot(slot) if i not in self.closed]


class _BatchView(View):
    """The store as the items planned so far leave it: the ends (``valid_to``)
    they gave memories, including their own."""

    def __init__(self, source: Reader) -> None:
        super().__init__(source, source.seq)
        self.ends: dict[str, int | None] = {}

    def get(self, node_id: str) -> Node:
        node = super().get(node_id)
        if node.id in self.ends:
            return msgspec.structs.replace(node, valid_to=self.ends[node.id])
        return node

    def planned(self, drafts: list[Draft]) -> None:
        for d in drafts:
            if d.type == NODE_CREATED or (d.type == NODE_UPDATED and d.valid_to is not None):
                self.ends[d.stream] = d.valid_to


def plan_remember_many(
    reader: Reader, facts: FactIndex, items: Sequence[tuple[Draft, Supersedes]], *, now: int,
) -> BatchPlan:
    """The drafts of a whole batch (``node.created`` drafts with their
    ``supersedes``) and, per item, what became of it. Raises before anything is
    written; call it and append under ``facts.guard(...)`` of every item."""
    batch = _BatchFacts(facts)
    reader = _BatchView(reader)
    drafts: list[Draft] = []
    results: list[BatchItem] = []
    for draft, supersedes in items:
        p = draft.payload
        key = content_key(draft.namespace, p.get("kind", "memory"), p["text"], p.get("domain"),
                          p.get("name"), p.get("attrs", {}))
        earlier = batch.keys.get(key)
        if earlier is not None:
            results.append(_repeat(batch, earlier, supersedes))
            continue
        plan = plan_remember(reader, batch, draft, supersedes, now=now)
        if plan.existing is not None:
            results.append(BatchItem(stream=draft.stream, existing=plan.existing))
            continue
        planned, superseded = list(plan.drafts), plan.superseded
        slot = slot_of(draft.namespace, p.get("attrs", {}))
        previous = batch.slots.get(slot) if slot is not None else None
        if previous is not None:
            planned[0], extra = _replace_earlier(planned[0], previous, reader.ends[previous],
                                                 now=now)
            planned.extend(extra)
            superseded = (*superseded, previous)
            batch.keys = {k: v for k, v in batch.keys.items() if v != previous}
        drafts.extend(planned)
        reader.planned(planned)
        batch.closed.update(superseded)
        batch.superseded[draft.stream] = superseded
        batch.keys[key] = draft.stream
        if slot is not None:
            batch.slots[slot] = draft.stream
        results.append(BatchItem(stream=draft.stream, superseded=superseded))
    return BatchPlan(drafts, results)


def _repeat(batch: _BatchFacts, earlier: str, supersedes: Supersedes) -> BatchItem:
    """An item repeating an earlier one: that memory, if it replaces what this names."""
    replaced = batch.superseded.get(earlier, ())
    missing = [i for i in supersedes_ids(supersedes) if i not in replaced]
    if missing:
        raise Conflict(f"an identical item {earlier} does not supersede {missing}",
                       existing=earlier)
    return BatchItem(stream=earlier, existing=earlier)


def _replace_earlier(
    created: Draft, previous: str, end: int | None, *, now: int,
) -> tuple[Draft, list[Draft]]:
    """``created`` superseding the batch memory ``previous`` (as a later remember would)."""
    [created, *extra], _ = replacing(created, [(previous, end)], now=now)
    return created, extra
