"""Snapshot restores that skip work (no sort of every node, typed decodes) give
exactly the state the events built, whatever order or format the snapshot has."""

from __future__ import annotations

import os
import random

import msgspec

from engramdb.events import Event, Meta, NodeCreated, NodeForgotten, NodeUpdated, new_id
from engramdb.events.types import EdgeAdded
from engramdb.projections import CrossDomain, NodeState
from engramdb.projections.nodes import _Snap


def _event(seq: int, type: str, stream: str, payload: object, namespace: str = "a") -> Event:
    return Event(seq=seq, id=f"e{seq}", namespace=namespace, stream=stream, version=1,
                 type=type, schema=1, recorded_at=seq, payload=payload, meta=Meta())


def _namespace(node: str) -> str:
    return "b" if int(node[1:]) % 3 == 0 else "a"


def _nodes_events() -> list[Event]:
    """Creates, renames and forgets as the facade writes them (a node is created
    once, in one namespace; nothing follows its forget)."""
    rng = random.Random(3)
    events: list[Event] = []
    live: list[str] = []
    for seq in range(1, 301):
        kind = rng.random()
        if kind < 0.5 or not live:
            node = f"n{seq}"
            live.append(node)
            events.append(_event(seq, "node.created", node, NodeCreated(
                text=f"t{seq}", name=rng.choice([None, "Ann", "Bob"])),
                namespace=_namespace(node)))
        elif kind < 0.9:
            node = rng.choice(live)
            events.append(_event(seq, "node.updated", node,
                                 NodeUpdated(name=rng.choice(["Ann", "Cy", None])),
                                 namespace=_namespace(node)))
        else:
            node = live.pop(rng.randrange(len(live)))
            events.append(_event(seq, "node.forgotten", node, NodeForgotten(),
                                 namespace=_namespace(node)))
    return events


def _state(p: NodeState) -> tuple[object, ...]:
    names = {key: list(ids) for key, ids in p._names.items()}
    return p._versions, names, p._order


def test_node_restore_equals_the_events_in_any_snapshot_order() -> None:
    built = NodeState()
    for e in _nodes_events():
        built.process(e)
    restored = NodeState()
    restored.restore(built.snapshot())
    assert _state(restored) == _state(built)
    # a snapshot whose map is not in creation order still restores the same order
    shuffled = list(built._versions.items())
    random.Random(1).shuffle(shuffled)
    other = NodeState()
    other.restore(msgspec.msgpack.encode(_Snap(versions=dict(shuffled))))
    assert other._order == built._order
    assert {k: list(v) for k, v in other._names.items()} == {
        k: list(v) for k, v in built._names.items()}


def test_cross_domain_restores_the_older_plain_map_snapshot() -> None:
    built = CrossDomain()
    events = [_event(1, "node.created", "x", NodeCreated(domain="d1")),
              _event(2, "node.created", "y", NodeCreated(domain="d2")),
              _event(3, "edge.added", "x|r|y", EdgeAdded(src="x", rel="r", dst="y")),
              _event(4, "node.updated", "y", NodeUpdated(domain="d3"))]
    for e in events:
        built.process(e)
    old_format = msgspec.msgpack.encode({
        "bridges": [b for lst in built._bridges.values() for b in lst],
        "domain": built._domain,
        "edges": [[*k, ns] for k, ns in built._edge_ns.items()],
        "forgotten": sorted(built._forgotten),
    })
    for data in (old_format, built.snapshot()):
        restored = CrossDomain()
        restored.restore(data)
        assert restored.bridges("a", 10) == built.bridges("a", 10)
        assert restored.bridges("a", 3) == built.bridges("a", 3)
        assert restored._touching == built._touching and restored._open == built._open


def test_new_ids_are_unique_and_not_shared_with_a_forked_child() -> None:
    ids = [new_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids must not be the parent's next ones
        os.write(write, "".join(new_id() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 4096).decode()
    os.close(read)
    parent = [new_id() for _ in range(10)]
    child_ids = [child[i:i + 32] for i in range(0, len(child), 32)]
    assert not {i[12:] for i in parent} & {i[12:] for i in child_ids}
