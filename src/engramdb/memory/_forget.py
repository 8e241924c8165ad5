"""What compaction erases of forgotten memories (and what an export leaves out).

Forgetting leaves a tombstone (the ``node.forgotten`` event: that a memory was
forgotten, when, by which agent, and the reason given) and nothing else the
caller supplied. :func:`erasure` plans it from the log, by one rule rather
than a list of fields:

* every event of a forgotten memory's stream (its versions and vectors), and
  every event that names it (:func:`~engramdb.events.types.touched_nodes`: edges
  to or from it and their removals, outcomes, tier moves, enrichments drawn from
  it) becomes a redaction marker: payload, validity and the WHOLE meta go (so a
  provenance field added later, a ``user_id`` say, goes too);
* a batch of recorded reads naming a forgotten memory whose id the caller chose
  is erased whole (an id engramdb generated says nothing about anyone, so such
  batches keep the other memories' reads);
* staged copies in contexts, and compressed-index prose written before the forget;
* everything a dropped namespace held before its ``namespace.dropped`` event;
* a chosen id is itself user data: the memory's stream, and the streams derived
  from it (``tier:<id>``, its outcome and edge streams), are renamed to
  ``forgotten:<tombstone event id>...``, so the id appears nowhere on disk. A
  generated id (32 hex digits) keeps its stream, and ``history(id)`` still
  shows the tombstone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..cognition.outcomes import outcome_stream
from ..cognition.staging import staged_redactions
from ..events import NODE_FORGOTTEN, Event
from ..events.types import (
    EDGE_ADDED,
    EDGE_REMOVED,
    FORGOTTEN_PREFIX,
    INDEX_ENRICHED,
    MEMORY_ACCESSED,
    NAMESPACE_DROPPED,
    VECTORS_ACTIVATED,
    touched_nodes,
)

__all__ = ["Erasure", "erasure"]

_GENERATED = re.compile(r"[0-9a-f]{32}")
#: Events compaction never redacts: tombstones, and the store-wide model switch.
_KEPT = frozenset({NODE_FORGOTTEN, NAMESPACE_DROPPED, VECTORS_ACTIVATED})


@dataclass
class Erasure:
    """The seqs to redact and the streams to rename (old -> new name)."""

    seqs: list[int] = field(default_factory=list)
    renames: dict[str, str] = field(default_factory=dict)


def chosen(node_id: str) -> bool:
    """Whether a caller chose ``node_id`` (engramdb's own ids are 32 hex digits)."""
    return not _GENERATED.fullmatch(node_id) and not node_id.startswith(FORGOTTEN_PREFIX)


def erasure(events: Iterable[Event]) -> Erasure:
    events = list(events)
    tombs: dict[str, Event] = {}
    last_forget: dict[str, int] = {}  # namespace -> seq of its last forget
    dropped: dict[str, int] = {}  # namespace -> seq of its last drop
    for e in events:
        if e.type == NODE_FORGOTTEN:
            tombs[e.stream] = e
            last_forget[e.namespace] = e.seq
        elif e.type == NAMESPACE_DROPPED:
            dropped[e.namespace] = e.seq
    out = Erasure()
    streams = {e.stream for e in events}
    for e in events:
        if e.type in _KEPT:
            continue
        if e.seq < dropped.get(e.namespace, 0):
            out.seqs.append(e.seq)  # everything a dropped namespace held before the drop
            continue
        named = [i for i in touched_nodes(e.type, e.stream, e.payload) if i in tombs]
        if e.stream in tombs or (named and e.type != MEMORY_ACCESSED):
            out.seqs.append(e.seq)
        elif named and any(chosen(i) for i in named):
            out.seqs.append(e.seq)  # reads of a chosen id: the batch goes whole
        elif e.type == INDEX_ENRICHED and e.seq < last_forget.get(e.namespace, 0):
            out.seqs.append(e.seq)  # index prose may name what was forgotten after it
        if e.type in (EDGE_ADDED, EDGE_REMOVED):
            for i in named:
                _rename(out, streams, i, tombs[i], e.stream, ".edge")
    out.seqs.extend(staged_redactions(events, set(tombs)))  # closed contexts' staged copies
    for node_id, tomb in tombs.items():
        for derived, suffix in ((node_id, ""), (f"tier:{node_id}", ".tier"),
                                (outcome_stream(node_id), ".outcome")):
            _rename(out, streams, node_id, tomb, derived, suffix)
    return out


def _rename(out: Erasure, streams: set[str], node_id: str, tomb: Event, stream: str,
            suffix: str) -> None:
    if not chosen(node_id) or stream not in streams or stream in out.renames:
        return
    base = f"{FORGOTTEN_PREFIX}{tomb.id}{suffix}"
    if suffix == ".edge":
        base += str(sum(1 for v in out.renames.values() if v.startswith(base)))
    out.renames[stream] = base
