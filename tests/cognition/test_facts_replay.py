"""The facts projection against a plain fold of random node and edge events.

For random histories: the incremental projection equals a model recomputed from
the current memories with :func:`content_key` and :func:`slot_of` (the functions
remember's planning looks up with), and ``restore(snapshot())`` taken at any
seq plus the tail equals it too, down to the snapshot bytes.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engramdb.cognition import SUPERSEDES, FactIndex, content_key, slot_of
from engramdb.events import (
    EDGE_ADDED,
    EDGE_REMOVED,
    NODE_CREATED,
    NODE_FORGOTTEN,
    NODE_UPDATED,
    EdgeAdded,
    EdgeRemoved,
    Event,
    NodeCreated,
    NodeForgotten,
    NodeUpdated,
)

IDS = [f"n{i}" for i in range(5)]
texts = st.sampled_from(["a", "Maya lives in Berlin"])
attrs = st.sampled_from([  # few values, so duplicates and shared slots are common
    {}, {"k": [1, 2]}, {"subject": "Maya", "predicate": "lives_in"},
    {"predicate": "LIVES_IN", "subject": "maya", "k": 1}, {"subject": "Maya"},
    {"subject": "", "predicate": "x"},
])
names = st.sampled_from([None, None, "x"])

namespaces = st.sampled_from(["default", "default", "other"])

ops = st.lists(st.one_of(
    st.tuples(st.just("create"), st.sampled_from(IDS), namespaces, texts, names, attrs),
    st.tuples(st.just("update"), st.sampled_from(IDS), st.one_of(st.none(), texts), names,
              attrs, st.lists(st.sampled_from(["subject", "k"]), max_size=1)),
    st.tuples(st.just("forget"), st.sampled_from(IDS)),
    st.tuples(st.sampled_from(["link", "unlink"]), st.sampled_from(IDS),
              st.sampled_from(IDS)),
), max_size=30)


class Model:
    """The current memories, in the order they last changed, and the edges."""

    def __init__(self) -> None:
        self.live: dict[str, tuple[str, dict[str, Any]]] = {}  # id -> (ns, content)
        self.created: set[str] = set()
        self.edges: set[tuple[str, str]] = set()

    def apply(self, op: tuple[Any, ...], seq: int) -> Event | None:
        kind, node = op[0], op[1]
        if kind == "create":
            if node in self.created:
                return None
            self.created.add(node)
            _, _, ns, text, name, a = op
            self.live[node] = (ns, {"kind": "memory", "text": text, "domain": None,
                                    "name": name, "attrs": a})
            return _event(seq, ns, node, NODE_CREATED, NodeCreated(text=text, name=name, attrs=a))
        if kind == "update":
            _, _, text, name, a, unset = op
            payload = NodeUpdated(name=name, attrs=a, unset=unset,
                                  **({} if text is None else {"text": text}))
            if node in self.live:
                ns, old = self.live.pop(node)
                merged = {k: v for k, v in old["attrs"].items() if k not in unset} | a
                self.live[node] = (ns, {**old, "name": name, "attrs": merged,
                                        "text": old["text"] if text is None else text})
            return _event(seq, "default", node, NODE_UPDATED, payload)
        if kind == "forget":
            self.live.pop(node, None)
            self.edges = {e for e in self.edges if node not in e}
            return _event(seq, "default", node, NODE_FORGOTTEN, NodeForgotten())
        src, dst = op[1], op[2]
        if kind == "link":
            self.edges.add((src, dst))
            return _event(seq, "default", f"{src}>{dst}", EDGE_ADDED,
                          EdgeAdded(src=src, rel=SUPERSEDES, dst=dst))
        self.edges.discard((src, dst))
        return _event(seq, "default", f"{src}>{dst}", EDGE_REMOVED,
                      EdgeRemoved(src=src, rel=SUPERSEDES, dst=dst))

    def state(self) -> dict[str, Any]:
        keys: dict[str, list[str]] = {}
        slots: dict[Any, list[str]] = {}
        for node, (ns, c) in self.live.items():
            key = content_key(ns, c["kind"], c["text"], c["domain"], c["name"], c["attrs"])
            keys.setdefault(key, []).append(node)
            slot = slot_of(ns, c["attrs"])
            if slot is not None:
                slots.setdefault(slot, []).append(node)
        superseded: dict[str, list[str]] = {}
        for src, dst in sorted(self.edges):
            superseded.setdefault(dst, []).append(src)
        return {"keys": keys, "slots": slots, "superseded": superseded}


def _event(seq: int, ns: str, stream: str, type_: str, payload: Any) -> Event:
    return Event(seq=seq, id=f"e{seq}", namespace=ns, stream=stream, version=1, type=type_,
                 schema=1, recorded_at=seq, payload=payload)


@settings(max_examples=150, deadline=None)
@given(ops=ops, cut=st.integers(0, 30))
def test_facts_equal_the_fold_and_snapshot_plus_tail(ops: list[Any], cut: int) -> None:
    model = Model()
    events = [e for seq, op in enumerate(ops, 1) if (e := model.apply(op, seq)) is not None]
    facts = FactIndex()
    for e in events:
        facts.process(e)
    assert facts.state() == model.state()

    head = FactIndex()
    for e in events[:cut]:
        head.process(e)
    restored = FactIndex()
    restored.restore(head.snapshot())
    assert restored.state() == head.state()
    for e in events[cut:]:
        restored.process(e)
    assert restored.state() == facts.state()
    assert restored.snapshot() == facts.snapshot()
    # what remember asks: the current duplicate and slot holders
    for node, (ns, c) in model.live.items():
        key = content_key(ns, c["kind"], c["text"], c["domain"], c["name"], c["attrs"])
        assert restored.duplicate_of(key) == facts.duplicate_of(key)
        slot = slot_of(ns, c["attrs"])
        if slot is not None:
            assert restored.current_in_slot(slot) == facts.current_in_slot(slot)
            assert node in facts.state()["slots"][slot]
