"""Stateful property test of the core projections, driven through the Memory facade.

A Hypothesis state machine remembers, updates, relates, unrelates and forgets
memories (and, on SQLite, snapshots, closes and reopens the store, and compacts
it), while an independent model — plain dicts, no engramdb projection code —
records what every node, edge and domain should be after every seq. Checked:

(a) after every step the live store answers exactly as the model says;
(b) the incremental projections equal a full replay of the log into fresh
    projections, and equal ``restore(snapshot())`` taken at an earlier seq plus
    a replay of the tail;
(c) ``mem.as_of(seq)`` answers get / neighbors / in_domain / domains / bridges
    (and find) exactly as the model recorded at that seq; a forgotten node is
    absent from every view, before and after its forget seq (and so are its
    domain memberships and the bridges it took part in);
(d) ``history(id)`` returns the stream's events in version order, masked for
    forgotten nodes and for edges that touch them.
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from engramdb import Memory
from engramdb.errors import NotFound
from engramdb.events import (
    EDGE_ADDED,
    EDGE_REMOVED,
    NODE_CREATED,
    NODE_FORGOTTEN,
    NODE_UPDATED,
    REDACTED,
    Draft,
    Redacted,
    edge_stream,
)
from engramdb.projections import Adjacency, CrossDomain, DomainIndex, NodeState

NS = "default"
OTHER_NS = "other"
DOMAINS = ["people", "places", "work"]
NAMES = ["Ada", "ada", "Bob", "Cy"]  # "Ada" and "ada" are one name (case-insensitive)
RELS = ["knows", "near"]
KEYS = ["a", "b", "c"]
AGENTS = [None, "extractor", "user"]
CORE = ("nodes", "adjacency", "domains", "cross_domain")
SNAPSHOT_EVERY = 7  # SQLite variant: the store also snapshots by itself every 7 commits

texts = st.text(st.characters(codec="utf-8"), max_size=12)
values = st.one_of(st.integers(-3, 3), st.booleans(), st.text(max_size=4))
attr_dicts = st.dictionaries(st.sampled_from(KEYS), values, max_size=2)
maybe_domain = st.sampled_from([*DOMAINS, None])
maybe_name = st.sampled_from([*NAMES, None])

EdgeKey = tuple[str, str, str]


# -- the model -------------------------------------------------------------------


class Model:
    """What the store should hold, written without any engramdb projection."""

    def __init__(self) -> None:
        self.seq = 0
        self.nodes: dict[str, dict[str, Any]] = {}  # default-namespace nodes ever created
        self.forgotten: set[str] = set()
        self.other: dict[str, str | None] = {}  # other-namespace node -> its domain
        self.edges: dict[EdgeKey, dict[str, Any]] = {}  # edges that exist now -> attrs
        # every event: (seq, stream, type, edge key for edge events)
        self.log: list[tuple[int, str, str, EdgeKey | None]] = []
        self.redacted: set[int] = set()
        self.past: dict[int, tuple[dict[str, dict[str, Any]], dict[EdgeKey, dict[str, Any]]]] = {
            0: ({}, {})
        }

    def event(self, stream: str, type_: str, key: EdgeKey | None = None) -> int:
        self.seq += 1
        self.log.append((self.seq, stream, type_, key))
        return self.seq

    def record(self) -> None:
        live = {i: copy.deepcopy(n) for i, n in self.nodes.items() if i not in self.forgotten}
        self.past[self.seq] = (live, dict(self.edges))

    def live_ids(self) -> list[str]:
        # creation order, never id order: ids are partly random, and a draw must pick
        # the same node when Hypothesis replays it
        return [i for i in self.nodes if i not in self.forgotten]

    def streams(self) -> dict[str, EdgeKey | None]:
        """Every stream of the default namespace -> its edge key (None for nodes)."""
        out: dict[str, EdgeKey | None] = {}
        for _, stream, _, key in self.log:
            if stream not in self.other:
                out[stream] = key
        return out

    def stream_events(self, stream: str, upto: int) -> list[tuple[int, str]]:
        return [(s, t) for s, st_, t, _ in self.log if st_ == stream and s <= upto]

    def masked(self, stream: str, key: EdgeKey | None) -> bool:
        if key is None:
            return stream in self.forgotten
        return key[0] in self.forgotten or key[2] in self.forgotten

    def to_redact(self) -> set[int]:
        """The seqs ``compact()`` must redact: forgotten streams and their edges'
        events (added and removed: the relation and the provenance are the caller's)."""
        out = set()
        for seq, stream, type_, key in self.log:
            if type_ == NODE_FORGOTTEN:
                continue
            if stream in self.forgotten or (
                type_ in (EDGE_ADDED, EDGE_REMOVED) and key is not None
                and self.masked(stream, key)
            ):
                out.add(seq)
        return out


# -- comparing a reader with the model ---------------------------------------------


def freeze(attrs: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, (type(v).__name__, v)) for k, v in attrs.items()))


def fields(node: Any) -> dict[str, Any]:
    assert node.namespace == NS and not node.forgotten
    return {
        "kind": node.kind, "text": node.text, "name": node.name, "domain": node.domain,
        "attrs": node.attrs, "version": node.version, "seq": node.seq,
    }


def check_reader(
    reader: Any,
    model: Model,
    nodes_at: dict[str, dict[str, Any]],
    edges_at: dict[EdgeKey, dict[str, Any]],
) -> None:
    """``reader`` (the Memory or a View) answers as the model recorded at its seq."""
    forgotten = model.forgotten
    live = {i: n for i, n in nodes_at.items() if i not in forgotten}
    edges = {k: a for k, a in edges_at.items() if k[0] in live and k[2] in live}
    where = f"at seq {reader.seq}"

    for nid in model.nodes:
        if nid in live:
            assert fields(reader.get(nid)) == live[nid], where
            assert reader.exists(nid)
        else:
            with pytest.raises(NotFound):
                reader.get(nid)
            assert not reader.exists(nid)
            with pytest.raises(NotFound):
                reader.neighbors(nid)
    for nid in model.other:
        with pytest.raises(NotFound):
            reader.get(nid)

    members = {d: sorted(i for i, n in live.items() if n["domain"] == d) for d in DOMAINS}
    for d in DOMAINS:
        got = [n.id for n in reader.in_domain(d)]
        assert sorted(got) == members[d], (where, d)
        assert len(got) == len(set(got))
    assert reader.domains() == {d: len(m) for d, m in members.items() if m}, where

    for nid in live:
        want_out: Counter[Any] = Counter()
        want_in: Counter[Any] = Counter()
        for (s, r, d), attrs in edges.items():
            if s == nid:
                want_out[(s, r, d, freeze(attrs), d)] += 1
            if d == nid:
                want_in[(s, r, d, freeze(attrs), s)] += 1
        got = {
            direction: Counter(
                (nb.edge.src, nb.edge.rel, nb.edge.dst, freeze(nb.edge.attrs), nb.node.id)
                for nb in reader.neighbors(nid, direction=direction)
            )
            for direction in ("out", "in", "both")
        }
        assert got["out"] == want_out, (where, nid)
        assert got["in"] == want_in, (where, nid)
        assert got["both"] == want_out + want_in, (where, nid)
        knows = Counter({k: v for k, v in want_in.items() if k[1] == "knows"})
        got_knows = Counter(
            (nb.edge.src, nb.edge.rel, nb.edge.dst, freeze(nb.edge.attrs), nb.node.id)
            for nb in reader.neighbors(nid, rel="knows", direction="in")
        )
        assert got_knows == knows, (where, nid)
        for nb in reader.neighbors(nid, direction="both"):
            assert fields(nb.node) == live[nb.node.id]

    def want_bridges(touching: set[str] | None) -> Counter[Any]:
        out: Counter[Any] = Counter()
        for s, r, d in edges:
            sd, dd = live[s]["domain"], live[d]["domain"]
            if sd is None or dd is None or sd == dd:
                continue
            if touching is None or sd in touching or dd in touching:
                out[(s, r, d, sd, dd)] += 1
        return out

    def got_bridges(touching: set[str] | None) -> Counter[Any]:
        return Counter(
            (b.src, b.rel, b.dst, b.src_domain, b.dst_domain)
            for b in reader.bridges(domains=touching)
        )

    assert got_bridges(None) == want_bridges(None), where
    assert got_bridges({DOMAINS[0]}) == want_bridges({DOMAINS[0]}), where

    for name in NAMES:
        named = {
            i: n["seq"] for i, n in live.items()
            if n["name"] is not None and n["name"].casefold() == name.casefold()
        }
        if not named:
            with pytest.raises(NotFound):
                reader.find(name)
            continue
        found = reader.find(name)
        assert found.id in named, (where, name)
        assert fields(found) == live[found.id]
        # several nodes may share the name: the one changed most recently (at that seq)
        assert found.id == max(named, key=named.__getitem__), (where, name)


def check_history(reader: Any, model: Model) -> None:
    """(d): each stream's events in version order, masked where content was forgotten."""
    at = reader.seq
    for stream, key in model.streams().items():
        want = model.stream_events(stream, at)
        if not want:
            with pytest.raises(NotFound):
                reader.history(stream)
            continue
        got = reader.history(stream)
        assert [e.seq for e in got] == [s for s, _ in want], (at, stream)
        assert [e.version for e in got] == list(range(1, len(want) + 1))
        assert all(e.stream == stream and e.namespace == NS for e in got)
        masked = model.masked(stream, key)
        for event, (_, type_) in zip(got, want, strict=True):
            hide = masked and (type_ in (NODE_CREATED, NODE_UPDATED, EDGE_ADDED, EDGE_REMOVED))
            if hide:
                assert event.type == REDACTED and event.payload == Redacted(was=type_), (
                    at, stream, event)
            else:
                assert event.type == type_, (at, stream, event)
    for nid in model.other:
        with pytest.raises(NotFound):
            reader.history(nid)


# -- comparing projections with each other ------------------------------------------


def fresh() -> list[Any]:
    return [NodeState(), Adjacency(), DomainIndex(), CrossDomain()]


def fingerprint(projs: list[Any], model: Model) -> dict[Any, Any]:
    """Every query answer of the four projections, at every seq of the log."""
    nodes, adj, dom, cross = projs
    ids = [*model.nodes, *model.other]
    fp: dict[Any, Any] = {
        "ids": nodes.ids(), "len": len(nodes), "open_edges": adj.open_edges(),
    }
    for i in ids:
        fp[("versions", i)] = nodes.versions(i)
    for ns in (NS, OTHER_NS):
        for name in NAMES:
            fp[("by_name", ns, name)] = nodes.by_name(ns, name)
        for d in DOMAINS:
            fp[("size", ns, d)] = dom.current_size(ns, d)
    for at in range(model.seq + 1):
        for i in ids:
            fp[("get", at, i)] = nodes.get(i, at)
            for direction in ("out", "in"):
                fp[("edges", at, i, direction)] = adj.edges(i, at, direction=direction)
        for ns in (NS, OTHER_NS):
            fp[("domains", at, ns)] = dom.domains(ns, at)
            fp[("bridges", at, ns)] = cross.bridges(ns, at)
            for d in DOMAINS:
                fp[("members", at, ns, d)] = dom.nodes(ns, d, at)
    return fp


def assert_same(a: dict[Any, Any], b: dict[Any, Any], what: str) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key], f"{what} differs at {key!r}:\n{a[key]!r}\n!=\n{b[key]!r}"


# -- the machine -------------------------------------------------------------------


class MemoryMachine(RuleBasedStateMachine):
    base: Path | None = None  # a directory for SQLite stores; None: in-memory
    _count = itertools.count()

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.checkpoints: list[tuple[int, list[bytes]]] = []
        self.clean = True
        self.path: str | None = None
        if self.base is not None:
            store_dir = self.base / f"m{next(self._count)}"
            store_dir.mkdir()
            self.path = str(store_dir / "mem.engram")
            self.snap_seq: int | None = None  # seq of the snapshot files on disk
        self.mem = self._open()

    def _open(self) -> Memory:
        # embedder=None: no recall vectors, so each write is exactly one event
        if self.path is None:
            return Memory.open(":memory:", embedder=None)
        mem = Memory.open(self.path, snapshot_every=SNAPSHOT_EVERY, embedder=None)
        # the store rewrites snapshots at the next close unless they covered the head
        self.snapshotted_at = self.snap_seq or 0
        return mem

    def _committed(self) -> int:
        """Mirror the store's own snapshot-every-N-commits after one commit."""
        seq = self.model.seq
        if self.path is not None and seq - self.snapshotted_at >= SNAPSHOT_EVERY:
            self.snap_seq = self.snapshotted_at = seq
        self.model.record()
        return seq

    def _core(self) -> list[Any]:
        return [self.mem.store.projection(n) for n in CORE]


    # -- writes ------------------------------------------------------------------

    @rule(text=texts, domain=maybe_domain, name=maybe_name, attrs=attr_dicts,
          agent=st.sampled_from(AGENTS), elsewhere=st.integers(0, 4))
    def remember(self, text: str, domain: str | None, name: str | None,
                 attrs: dict[str, Any], agent: str | None, elsewhere: int) -> None:
        self.clean = False
        if elsewhere == 0:
            # another namespace (sharing the projections): invisible to every view here
            other = self.mem.namespaced(OTHER_NS).remember(text, domain=domain, name=name)
            assert other.namespace == OTHER_NS
            if not other.created:  # an exact re-remember of a live memory writes nothing
                assert other.id in self.model.other
                return
            self.model.other[other.id] = domain
            self.model.event(other.id, NODE_CREATED)
            self._committed()
            return
        node = self.mem.remember(text, domain=domain, name=name, attrs=attrs, agent=agent)
        if not node.created:  # an exact re-remember of a live memory writes nothing
            assert node.id in self.model.live_ids()
            assert fields(node) == self.model.nodes[node.id]
            assert (text, domain, name, attrs) == (node.text, node.domain, node.name, node.attrs)
            return
        seq = self.model.event(node.id, NODE_CREATED)
        self.model.nodes[node.id] = {
            "kind": "memory", "text": text, "name": name, "domain": domain,
            "attrs": dict(attrs), "version": 1, "seq": seq,
        }
        assert fields(node) == self.model.nodes[node.id]
        self._committed()

    @precondition(lambda self: self.model.live_ids())
    @rule(data=st.data())
    def update(self, data: st.DataObject) -> None:
        self.clean = False
        nid = data.draw(st.sampled_from(self.model.live_ids()), label="node")
        kwargs: dict[str, Any] = {}
        if data.draw(st.booleans(), label="set text"):
            kwargs["text"] = data.draw(texts, label="text")
        if data.draw(st.booleans(), label="set domain"):
            kwargs["domain"] = data.draw(maybe_domain, label="domain")
        if data.draw(st.integers(0, 3), label="rename") == 0:
            kwargs["name"] = data.draw(maybe_name, label="name")
        attrs = data.draw(attr_dicts, label="attrs")
        unset = data.draw(st.lists(st.sampled_from(KEYS), max_size=2, unique=True), label="unset")
        agent = data.draw(st.sampled_from(AGENTS), label="agent")
        node = self.mem.update(nid, attrs=attrs, unset=unset, agent=agent, **kwargs)

        seq = self.model.event(nid, NODE_UPDATED)
        want = self.model.nodes[nid]
        want.update(kwargs)
        new_attrs = {k: v for k, v in want["attrs"].items() if k not in unset}
        new_attrs.update(attrs)
        want.update(attrs=new_attrs, version=want["version"] + 1, seq=seq)
        assert fields(node) == want
        self._committed()

    @precondition(lambda self: self.model.live_ids())
    @rule(data=st.data(), rel=st.sampled_from(RELS), attrs=attr_dicts)
    def relate(self, data: st.DataObject, rel: str, attrs: dict[str, Any]) -> None:
        self.clean = False
        live = self.model.live_ids()
        src = data.draw(st.sampled_from(live), label="src")
        dst = data.draw(st.sampled_from(live), label="dst")  # self-loops allowed
        edge = self.mem.relate(src, rel, dst, attrs=attrs)
        key = (src, rel, dst)
        seq = self.model.event(edge_stream(*key), EDGE_ADDED, key)
        self.model.edges[key] = dict(attrs)
        assert (edge.src, edge.rel, edge.dst, edge.attrs, edge.start) == (*key, attrs, seq)
        self._committed()

    def _bridgeable(self) -> list[tuple[str, str]]:
        live = self.model.live_ids()
        domain = {i: self.model.nodes[i]["domain"] for i in live}
        return [(a, b) for a in live for b in live
                if domain[a] is not None and domain[b] is not None and domain[a] != domain[b]]

    @precondition(lambda self: self._bridgeable())
    @rule(data=st.data(), rel=st.sampled_from(RELS))
    def relate_across(self, data: st.DataObject, rel: str) -> None:
        """An edge between two domains: a bridge."""
        self.clean = False
        src, dst = data.draw(st.sampled_from(self._bridgeable()), label="pair")
        self.mem.relate(src, rel, dst)
        key = (src, rel, dst)
        self.model.event(edge_stream(*key), EDGE_ADDED, key)
        self.model.edges[key] = {}
        self._committed()

    @precondition(lambda self: self.model.edges)
    @rule(data=st.data())
    def unrelate(self, data: st.DataObject) -> None:
        self.clean = False
        key = data.draw(st.sampled_from(list(self.model.edges)), label="edge")
        self.mem.unrelate(*key)
        self.model.event(edge_stream(*key), EDGE_REMOVED, key)
        del self.model.edges[key]
        self._committed()

    @precondition(lambda self: self.model.live_ids())
    @rule(data=st.data(), rel=st.sampled_from(RELS))
    def unrelate_missing(self, data: st.DataObject, rel: str) -> None:
        self.clean = False
        live = self.model.live_ids()
        src = data.draw(st.sampled_from(live), label="src")
        dst = data.draw(st.sampled_from(live), label="dst")
        if (src, rel, dst) in self.model.edges:
            return
        with pytest.raises(NotFound):
            self.mem.unrelate(src, rel, dst)
        assert self.mem.seq == self.model.seq

    @precondition(lambda self: self.model.live_ids())
    @rule(data=st.data(), agent=st.sampled_from(AGENTS))
    def forget(self, data: st.DataObject, agent: str | None) -> None:
        self.clean = False
        nid = data.draw(st.sampled_from(self.model.live_ids()), label="node")
        event = self.mem.forget(nid, reason="test", agent=agent)
        seq = self.model.event(nid, NODE_FORGOTTEN)
        assert (event.seq, event.type, event.stream, event.meta.agent) == (
            seq, NODE_FORGOTTEN, nid, agent)
        self.model.forgotten.add(nid)
        self.model.edges = {
            k: a for k, a in self.model.edges.items() if nid not in (k[0], k[2])
        }
        with pytest.raises(NotFound):
            self.mem.forget(nid)
        with pytest.raises(NotFound):
            self.mem.update(nid, text="again")
        self._committed()

    @precondition(lambda self: self.model.forgotten)
    @rule(data=st.data(), domain=st.sampled_from(DOMAINS))
    def late_update(self, data: st.DataObject, domain: str) -> None:
        """An update that lost the race with a forget (checked before, committed
        after it): the log holds it, but it must not bring the node back anywhere."""
        self.clean = False
        gone = [i for i in self.model.nodes if i in self.model.forgotten]
        nid = data.draw(st.sampled_from(gone), label="node")
        self.mem.store.append([
            Draft(type=NODE_UPDATED, stream=nid, namespace=NS,
                  payload={"text": "late", "domain": domain, "name": "Ada"})
        ])
        self.model.event(nid, NODE_UPDATED)
        self._committed()

    @precondition(lambda self: self.model.forgotten)
    @rule()
    def compact(self) -> None:
        self.clean = False
        expected = self.model.to_redact() - self.model.redacted
        assert self.mem.compact() == len(expected)
        self.model.redacted |= expected
        self.checkpoints.clear()  # the log changed under them
        if self.path is not None:
            self.snap_seq = self.snapshotted_at = self.model.seq

    # -- snapshots and reopening -----------------------------------------------------

    @rule()
    def checkpoint(self) -> None:
        """Keep each core projection's snapshot at this seq for the restore check."""
        self.checkpoints = [*self.checkpoints[-1:], (self.mem.seq, [p.snapshot() for p in
                                                                    self._core()])]

    @precondition(lambda self: self.path is not None)
    @rule()
    def write_snapshots(self) -> None:
        self.clean = False
        paths = self.mem.snapshot()
        assert {Path(p).name for p in paths} >= {f"{name}.snap" for name in CORE}
        self.snap_seq = self.snapshotted_at = self.model.seq

    @precondition(lambda self: self.path is not None)
    @rule(snapshot_on_close=st.booleans())
    def reopen(self, snapshot_on_close: bool) -> None:
        self.clean = False
        if snapshot_on_close:
            self.mem.close()
            if self.model.seq != self.snapshotted_at:
                self.snap_seq = self.model.seq
        else:
            self.mem.store.close(snapshot=False)
        self.mem = self._open()
        want = {} if self.snap_seq is None else dict.fromkeys(CORE, self.snap_seq)
        assert {k: v for k, v in self.mem.store.restored.items() if k in CORE} == want
        assert self.mem.seq == self.model.seq

    # -- checks --------------------------------------------------------------------

    @invariant()
    def matches_model(self) -> None:  # (a)
        assert self.mem.seq == self.model.seq
        live, edges = self.model.past[self.model.seq]
        check_reader(self.mem, self.model, live, edges)
        index = self.mem.store.projection("domains")
        for d in DOMAINS:  # the index's running counts agree with the model too
            size = sum(1 for n in live.values() if n["domain"] == d)
            assert index.current_size(NS, d) == size, d  # type: ignore[attr-defined]
        other = Counter(d for i, d in self.model.other.items() if d is not None)
        assert self.mem.namespaced(OTHER_NS).domains() == dict(other)
        self.clean = True

    @rule()
    def matches_replay(self) -> None:  # (b)
        self.clean = False
        self._check_replay()

    @rule(data=st.data())
    def time_travel(self, data: st.DataObject) -> None:  # (c) and (d) at a few seqs
        self.clean = False
        seqs = data.draw(
            st.lists(st.sampled_from(sorted(self.model.past)), min_size=1, max_size=3,
                     unique=True),
            label="seqs",
        )
        for seq in seqs:
            self._check_past(seq)

    def _check_replay(self) -> None:
        incremental = fingerprint(self._core(), self.model)
        replayed = fresh()
        for event in self.mem.store.log.read():
            for p in replayed:
                p.process(event)
        assert_same(incremental, fingerprint(replayed, self.model), "full replay")
        for seq, blobs in self.checkpoints:
            restored = fresh()
            for p, blob in zip(restored, blobs, strict=True):
                p.restore(blob)
            for event in self.mem.store.log.read(after=seq):
                for p in restored:
                    p.process(event)
            assert_same(incremental, fingerprint(restored, self.model),
                        f"restore at seq {seq} + tail")

    def _check_past(self, seq: int) -> None:
        view = self.mem.as_of(seq)
        assert view.seq == seq
        live, edges = self.model.past[seq]
        check_reader(view, self.model, live, edges)
        check_history(view, self.model)

    def teardown(self) -> None:
        try:
            if self.clean:  # skip the full check after a failed step
                check_history(self.mem, self.model)
                self._check_replay()
                for seq in sorted(self.model.past):
                    self._check_past(seq)
        finally:
            self.mem.close()


SETTINGS = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_memory_store_matches_model() -> None:
    class InMemory(MemoryMachine):
        base = None

    run_state_machine_as_test(InMemory, settings=SETTINGS)


def test_sqlite_store_matches_model(tmp_path: Path) -> None:
    class OnSQLite(MemoryMachine):
        base = tmp_path

    run_state_machine_as_test(OnSQLite, settings=SETTINGS)


# -- pinned cases -------------------------------------------------------------------
# The shapes the machine found when it first ran, kept as plain tests so that each
# fix stays covered whatever the machine happens to draw.


@pytest.fixture(params=["memory", "sqlite"])
def mem(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        m = Memory.open(":memory:", embedder=None)
    else:
        m = Memory.open(tmp_path / "pinned.engram", embedder=None)
    yield m
    m.close()


def test_forgotten_node_leaves_past_domains_and_bridges(mem: Memory) -> None:
    a = mem.remember("m a", domain="people")
    b = mem.remember("m b", domain="places")
    mem.relate(a.id, "knows", b.id)
    before = mem.seq
    assert [(x.src, x.dst) for x in mem.as_of(before).bridges()] == [(a.id, b.id)]
    mem.forget(a.id)
    for _ in range(2):  # before compaction and after: the same answers
        past = mem.as_of(before)
        assert past.domains() == {"places": 1}
        assert past.in_domain("people") == []
        assert past.bridges() == []
        assert mem.store.projection("domains").current_size(NS, "people") == 0
        mem.compact()


def test_late_update_of_forgotten_node_stays_forgotten(mem: Memory) -> None:
    a = mem.remember("m a", domain="people")
    b = mem.remember("m b", domain="places")
    mem.relate(b.id, "knows", a.id)
    mem.forget(a.id)
    mem.store.append([Draft(type=NODE_UPDATED, stream=a.id, namespace=NS,
                            payload={"domain": "work", "name": "Ada"})])
    assert mem.domains() == {"places": 1}
    assert mem.in_domain("work") == []
    assert mem.bridges() == []
    assert mem.store.projection("domains").current_size(NS, "work") == 0
    with pytest.raises(NotFound):
        mem.find("Ada")


def test_restore_keeps_neighbor_order(mem: Memory) -> None:
    b, c, x, y = (mem.remember(f"m {t}") for t in "bcxy")
    mem.relate(b.id, "r", y.id)
    mem.relate(c.id, "r", x.id)
    mem.relate(b.id, "r", x.id)
    want = [n.node.id for n in mem.neighbors(x.id, direction="in")]
    assert want == [c.id, b.id]
    restored = Adjacency()
    restored.restore(mem.store.projection("adjacency").snapshot())
    assert [e.src for e in restored.edges(x.id, mem.seq, direction="in")] == want


def test_find_survives_forget_rename_and_restore(mem: Memory) -> None:
    a = mem.remember("m a", name="Ada")
    b = mem.remember("m b", name="ada")  # the same name, case-insensitively
    named = mem.seq
    assert mem.find("ADA").id == b.id
    mem.update(a.id, text="m a2")  # a changed last: it is the one found now
    assert mem.find("Ada").id == a.id
    nodes = NodeState()
    nodes.restore(mem.store.projection("nodes").snapshot())
    assert nodes.by_name(NS, "ada") == a.id
    mem.forget(a.id)
    assert mem.find("Ada").id == b.id  # the other live "Ada" is still found
    mem.update(b.id, name="Bea")
    with pytest.raises(NotFound):
        mem.find("Ada")
    past = mem.as_of(named)  # a view finds by the names as they were then
    assert past.find("ada").id == b.id
    with pytest.raises(NotFound):
        past.find("Bea")


def test_past_history_masks_forgotten_content(mem: Memory) -> None:
    a = mem.remember("m secret", domain="people")
    b = mem.remember("m b")
    edge = mem.relate(b.id, "knows", a.id, attrs={"why": "secret"})
    before = mem.seq
    mem.unrelate(b.id, "knows", a.id)
    mem.forget(a.id)
    for _ in range(2):  # before compaction and after: the same answers
        for reader in (mem, mem.as_of(before)):
            created = reader.history(a.id)[0]
            assert created.type == REDACTED and created.payload == Redacted(was=NODE_CREATED)
            added = reader.history(edge_stream(b.id, "knows", a.id))[0]
            assert added.type == REDACTED and added.payload == Redacted(was=EDGE_ADDED)
        assert [e.type for e in mem.history(edge_stream(b.id, "knows", a.id))] == [
            REDACTED, REDACTED]  # the removal names the forgotten end too
        mem.compact()
    assert edge.attrs == {"why": "secret"}
