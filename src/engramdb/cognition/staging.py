"""The ``contexts`` projection: every open context and the drafts it has staged.

A context (see :mod:`engramdb.cognition.context`) logs its private writes in
its own stream, ``ctx:<namespace>|<name>``, as ``context.*`` events that no
shared projection reads. This projection folds them back into
:class:`OpenContext` records, so that reopening the store restores every
context that was neither committed nor discarded:

* ``context.opened``: the context exists; its reads are pinned to ``read_seq``;
* ``context.staged``: one local operation's drafts, plus the version each
  newly touched stream had when the context read it (what commit will check);
* ``context.rebased``: a new ``read_seq`` and a new set of checks;
* ``context.committed`` / ``context.discarded``: the context is gone;
* ``event.redacted`` in a context stream (compaction erased a staged
  operation): the operation is dropped.

Records are replaced, never mutated, so a reader holding one is undisturbed.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ..events import EDGE_ADDED, REDACTED, Event, check_stream
from ..events.types import (
    CONTEXT_COMMITTED,
    CONTEXT_DISCARDED,
    CONTEXT_OPENED,
    CONTEXT_REBASED,
    CONTEXT_STAGED,
    StagedDraft,
)

__all__ = ["OpenContext", "StagedOp", "ContextsProjection", "context_stream", "CONTEXT_PREFIX",
           "staged_redactions"]

CONTEXT_PREFIX = "ctx:"
MAX_NAME = 100


def context_stream(namespace: str, name: str) -> str:
    """The stream holding context ``name`` of ``namespace`` (``|`` never occurs in a
    namespace, so the pair is recoverable and no two contexts share a stream)."""
    return check_stream(f"{CONTEXT_PREFIX}{namespace}|{name}")


class StagedOp(msgspec.Struct, frozen=True, kw_only=True):
    """One staged operation: the ``context.staged`` event's seq and time, and its drafts."""

    seq: int
    recorded_at: int
    drafts: list[StagedDraft]


class OpenContext(msgspec.Struct, frozen=True, kw_only=True):
    """A context that is neither committed nor discarded, as its events left it."""

    stream: str
    namespace: str
    name: str
    agent: str | None
    read_seq: int
    opened_at: int
    version: int
    bases: dict[str, int]
    ops: tuple[StagedOp, ...] = ()


class ContextsProjection:
    """Open contexts by stream."""

    name = "contexts"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._open: dict[str, OpenContext] = {}

    def get(self, stream: str) -> OpenContext | None:
        return self._open.get(stream)

    def open_contexts(self, namespace: str) -> list[OpenContext]:
        found = [c for c in list(self._open.values()) if c.namespace == namespace]
        return sorted(found, key=lambda c: (c.opened_at, c.name))

    def process(self, event: Event) -> None:
        t = event.type
        if not t.startswith("context.") and t != REDACTED:
            return
        stream = event.stream
        if t == CONTEXT_OPENED:
            p = event.payload
            self._open[stream] = OpenContext(
                stream=stream, namespace=event.namespace, name=p.name, agent=p.agent,
                read_seq=p.read_seq, opened_at=event.recorded_at, version=event.version,
                bases={},
            )
            return
        ctx = self._open.get(stream)
        if ctx is None:
            return
        if t == CONTEXT_STAGED:
            p = event.payload
            op = StagedOp(seq=event.seq, recorded_at=event.recorded_at, drafts=p.drafts)
            bases = {**p.bases, **ctx.bases}  # the first check of a stream stands
            self._open[stream] = msgspec.structs.replace(
                ctx, version=event.version, ops=(*ctx.ops, op), bases=bases
            )
        elif t == CONTEXT_REBASED:
            p = event.payload
            self._open[stream] = msgspec.structs.replace(
                ctx, version=event.version, read_seq=p.read_seq, bases=dict(p.bases)
            )
        elif t in (CONTEXT_COMMITTED, CONTEXT_DISCARDED):
            del self._open[stream]
        elif t == REDACTED:
            ops = tuple(op for op in ctx.ops if op.seq != event.seq)
            self._open[stream] = msgspec.structs.replace(ctx, ops=ops)

    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode(list(self._open.values()))

    def restore(self, data: bytes) -> None:
        self.reset()
        for ctx in msgspec.msgpack.decode(data, type=list[OpenContext]):
            self._open[ctx.stream] = ctx


def staged_redactions(events: Iterable[Event], forgotten: set[str]) -> list[int]:
    """Seqs of ``context.staged`` events compaction should erase: every one of a
    context that was committed (its content now lives in real events) or
    discarded, and any that wrote a forgotten memory or an edge touching one."""
    erase: list[int] = []
    pending: dict[str, list[int]] = {}  # context stream -> staged seqs since it opened
    for e in events:
        if e.type == CONTEXT_OPENED:
            pending[e.stream] = []
        elif e.type == CONTEXT_STAGED:
            if any(_touches(d, forgotten) for d in e.payload.drafts):
                erase.append(e.seq)
            else:
                pending.setdefault(e.stream, []).append(e.seq)
        elif e.type in (CONTEXT_COMMITTED, CONTEXT_DISCARDED):
            erase.extend(pending.pop(e.stream, []))
    return sorted(erase)


def _touches(draft: StagedDraft, forgotten: set[str]) -> bool:
    if draft.stream in forgotten:
        return True
    if draft.type == EDGE_ADDED:
        p = msgspec.json.decode(draft.payload)
        return p.get("src") in forgotten or p.get("dst") in forgotten
    return False
