"""Crash safety with real SIGKILLs, damaged snapshots, two writer processes, torn WAL tails.

A writer subprocess appends from two threads (so group commit is exercised) and
prints one JSON line per append *after* the append returned. The parent reads
those acknowledgements, kills the child with SIGKILL at a random moment, reopens
the store and checks that

* every acknowledged write is there, exactly as acknowledged,
* seqs are dense ``1..head`` and multi-event batches are all-or-nothing,
* the projections (possibly restored from snapshots) equal a full replay of the
  log and an independent fold of it,
* no snapshot file in place is ever a bad one.

``ENGRAM_CRASH_TRIALS`` (default 20) sets the number of kill trials;
``ENGRAM_CRASH_SEED`` fixes the random seed (printed in every failure).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from msgspec import UNSET

from engramdb import Memory
from engramdb.errors import CorruptStore
from engramdb.events import (
    EDGE_ADDED,
    EDGE_REMOVED,
    NODE_CREATED,
    NODE_FORGOTTEN,
    NODE_UPDATED,
    Event,
)
from engramdb.log import SQLiteLog
from engramdb.store import SnapshotFiles
from engramdb.store import snapshots as snapshots_module

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

TRIALS = max(1, int(os.environ.get("ENGRAM_CRASH_TRIALS", "20")))
CHAIN = 5  # consecutive kills on one store (each run reopens what the last one left)
SEED = int(os.environ.get("ENGRAM_CRASH_SEED", str(random.SystemRandom().randrange(10**9))))
PROJECTIONS = ("nodes", "adjacency", "domains", "cross_domain")
EXTRA_PROJECTIONS = ("text", "vectors")  # compared when Memory.open registers them
DEADLINE = 60.0  # seconds a child may take to start or stop before the test gives up

# --------------------------------------------------------------------------------------
# the writer process
# --------------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import json, os, random, sys, threading

    path, snapshot_every, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    stop_file = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] != "-" else None
    announce_snapshots = "--announce-snapshots" in sys.argv
    max_ops = int(os.environ.get("WRITER_MAX_OPS", "1000000"))
    out_lock = threading.Lock()

    def ack(obj):
        # one write(2) per line (< PIPE_BUF): a line is either whole or absent
        line = (json.dumps(obj, separators=(",", ":")) + "\\n").encode()
        with out_lock:
            os.write(1, line)

    if announce_snapshots:
        from engramdb.store import snapshots as _snapshots
        _write = _snapshots.SnapshotFiles.write

        def write(self, name, **kw):
            ack({"op": "snap", "name": name, "seq": kw["seq"]})
            return _write(self, name, **kw)

        _snapshots.SnapshotFiles.write = write

    from engramdb import Memory

    DOMAINS = ["people", "places", "work", "food", "music"]
    RELS = ["knows", "near", "cites"]
    mem = Memory.open(path, snapshot_every=snapshot_every,
                      durability=os.environ.get("WRITER_DURABILITY", "normal"))
    ids = list(mem.store.projection("nodes").ids())
    ids_lock = threading.Lock()
    ack({"op": "open", "seq": mem.seq, "pid": os.getpid()})

    def worker(wid):
        try:
            work(wid)
        except BaseException:
            import traceback
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(3)

    def work(wid):
        rng = random.Random(seed * 7919 + wid)
        n = 0
        while n < max_ops and not (stop_file and os.path.exists(stop_file)):
            n += 1
            tag = f"{seed}-{wid}-{n}"
            with ids_lock:
                known = ids[-300:]
            r = rng.random()
            if len(known) < 2 or r < 0.3:
                text = f"memory {tag}"
                node = mem.remember(text, domain=rng.choice(DOMAINS), name=f"name {tag}",
                                    attrs={"w": wid, "n": n})
                ack({"op": "remember", "id": node.id, "seq": node.seq, "text": text})
                with ids_lock:
                    ids.append(node.id)
            elif r < 0.5:
                k = rng.randint(2, 6)
                batch = f"b{tag}"
                nodes = mem.remember_many([
                    {"text": f"batch {tag} #{i}", "domain": rng.choice(DOMAINS),
                     "attrs": {"batch": batch, "n": k}}
                    for i in range(k)
                ])
                ack({"op": "many", "batch": batch,
                     "items": [[x.id, x.seq, x.text] for x in nodes]})
                with ids_lock:
                    ids.extend(x.id for x in nodes)
            elif r < 0.75:
                node_id = rng.choice(known)
                text = f"update {tag}"
                if rng.random() < 0.3:
                    node = mem.update(node_id, text=text, domain=rng.choice(DOMAINS + [None]))
                else:
                    node = mem.update(node_id, text=text, attrs={"u": n})
                ack({"op": "update", "id": node_id, "seq": node.seq, "text": text})
            else:
                src, dst = rng.choice(known), rng.choice(known)
                rel = rng.choice(RELS)
                edge = mem.relate(src, rel, dst, attrs={"tag": tag})
                ack({"op": "relate", "src": src, "rel": rel, "dst": dst, "seq": edge.start})

    threads = [threading.Thread(target=worker, args=(w,)) for w in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    mem.close()
    ack({"op": "closed"})
    """
)

PROBE = textwrap.dedent(
    """
    import json, sys
    from engramdb import Memory
    from engramdb.errors import EngramError

    try:
        mem = Memory.open(sys.argv[1], read_only=sys.argv[2] == "ro")
    except EngramError as exc:
        print(json.dumps({"code": exc.code}))
        sys.exit(exc.exit_code)
    print(json.dumps({"code": "ok", "seq": mem.seq}))
    mem.close()
    """
)


@dataclass
class Run:
    acks: list[dict[str, Any]] = field(default_factory=list)
    returncode: int | None = None
    stderr: str = ""
    snap_announced: int = 0


class Writer:
    """A writer subprocess and the acknowledgements it has printed so far."""

    def __init__(self, tmp_path: Path, store: Path, *, seed: int, snapshot_every: int,
                 stop_file: Path | None = None, announce_snapshots: bool = False,
                 durability: str = "normal") -> None:
        script = tmp_path / "writer.py"
        if not script.exists():
            script.write_text(WRITER)
        args = [sys.executable, str(script), str(store), str(snapshot_every), str(seed),
                str(stop_file) if stop_file else "-"]
        if announce_snapshots:
            args.append("--announce-snapshots")
        self._err = open(tmp_path / f"writer-{seed}.err", "w+b")  # noqa: SIM115
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._err,
                                     env={**os.environ, "WRITER_DURABILITY": durability})
        self.lines: list[bytes] = []
        self.cond = threading.Condition()
        self.snaps = 0
        self._pump = threading.Thread(target=self._read, daemon=True)
        self._pump.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self.cond:
                self.lines.append(raw)
                if raw.startswith(b'{"op":"snap"'):
                    self.snaps += 1
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, predicate: Any, what: str) -> None:
        with self.cond:
            ok = self.cond.wait_for(
                lambda: predicate() or self.proc.poll() is not None, timeout=DEADLINE
            )
            done = predicate()
        if not (ok and done):
            self.kill()
            raise AssertionError(f"writer never got to {what}: {self.finish().stderr[-3000:]}")

    def count(self) -> int:
        with self.cond:
            return len(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)

    def finish(self) -> Run:
        self.proc.wait(timeout=DEADLINE)
        self._pump.join(timeout=DEADLINE)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self._err.seek(0)
        stderr = self._err.read().decode(errors="replace")
        self._err.close()
        run = Run(returncode=self.proc.returncode, stderr=stderr, snap_announced=self.snaps)
        for raw in self.lines:
            if raw.endswith(b"\n"):  # a line cut by the kill was never acknowledged
                obj = json.loads(raw)
                if obj["op"] not in ("snap", "open"):
                    run.acks.append(obj)
        return run


def crash_run(tmp_path: Path, store: Path, rng: random.Random, *, snapshot_every: int,
              at_snapshot: bool = False, durability: str = "normal") -> Run:
    """Start a writer, SIGKILL it 0.05-0.5 s after its first append (or, with
    ``at_snapshot``, as soon as it announces a snapshot write after that)."""
    seed = rng.randrange(10**9)
    w = Writer(tmp_path, store, seed=seed, snapshot_every=snapshot_every,
               announce_snapshots=at_snapshot, durability=durability)
    w.wait_for(lambda: any(b'"op":"open"' not in ln and b'"op":"snap"' not in ln
                           for ln in w.lines), "its first append")
    threading.Event().wait(rng.uniform(0.05, 0.5))
    if at_snapshot:
        seen = w.snaps
        w.wait_for(lambda: w.snaps > seen, "a snapshot write")
    w.kill()
    run = w.finish()
    assert run.returncode == -signal.SIGKILL, (run.returncode, run.stderr[-3000:])
    return run


# --------------------------------------------------------------------------------------
# checking a store
# --------------------------------------------------------------------------------------


def _canon(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=repr)


def projection_state(mem: Memory) -> dict[str, Any]:
    """Everything the core projections know, normalised so that equal knowledge
    compares equal whatever order it was built in."""
    store = mem.store
    head = store.head
    nodes = store.projection("nodes")
    adj = store.projection("adjacency")
    dom = store.projection("domains")
    cross = store.projection("cross_domain")
    ids = sorted(nodes.ids())  # type: ignore[attr-defined]
    state: dict[str, Any] = {"head": head}
    state["nodes"] = {
        i: [msgspec.to_builtins(v) for v in nodes.versions(i)]  # type: ignore[attr-defined]
        for i in ids
    }
    names = {}
    for i in ids:
        node = nodes.get(i, head)  # type: ignore[attr-defined]
        if node is not None and node.name and not node.forgotten:
            names[f"{node.namespace}/{node.name}"] = nodes.by_name(  # type: ignore[attr-defined]
                node.namespace, node.name
            )
    state["names"] = names
    # the full interval history each projection would persist
    state["adjacency"] = sorted(_canon(e) for e in msgspec.msgpack.decode(adj.snapshot()))
    state["domains"] = sorted(_canon(r) for r in msgspec.msgpack.decode(dom.snapshot()))
    raw = msgspec.msgpack.decode(cross.snapshot())
    state["cross"] = {
        "bridges": sorted(_canon(b) for b in raw["bridges"]),
        "domain": raw["domain"],
        "edges": sorted(_canon(e) for e in raw["edges"]),
    }
    # and what the query side answers, now and in the past
    namespaces = sorted({v[0]["namespace"] for v in state["nodes"].values()} | {"default"})
    probes = sorted({head, head // 2, head // 3, max(head - 1, 0)})
    for at in probes:
        state[f"edges@{at}"] = {
            i: sorted(_canon(msgspec.to_builtins(e))
                      for e in adj.edges(i, at, direction="both"))  # type: ignore[attr-defined]
            for i in ids
        }
        state[f"domains@{at}"] = {
            ns: dom.domains(ns, at) for ns in namespaces  # type: ignore[attr-defined]
        }
        state[f"bridges@{at}"] = {
            ns: sorted(_canon(msgspec.to_builtins(b))
                       for b in cross.bridges(ns, at))  # type: ignore[attr-defined]
            for ns in namespaces
        }
    # projections beyond the core ones (recall indexes): what they would persist
    for name in EXTRA_PROJECTIONS:
        try:
            proj = store.projection(name)
        except KeyError:
            continue
        body = proj.snapshot()
        if body is not None:
            state[name] = _canon(msgspec.msgpack.decode(body))
    state["open_edges"] = adj.open_edges()  # type: ignore[attr-defined]
    state["sizes"] = {
        f"{ns}/{d}": dom.current_size(ns, d)  # type: ignore[attr-defined]
        for ns in namespaces for d in dom.domains(ns, head)  # type: ignore[attr-defined]
    }
    return state


def fold(events: list[Event]) -> dict[str, Any]:
    """An independent reading of the log: live nodes' text/domain and live edges."""
    text: dict[str, str] = {}
    domain: dict[str, str | None] = {}
    namespace: dict[str, str] = {}
    forgotten: set[str] = set()
    edges: set[tuple[str, str, str]] = set()
    for e in events:
        p = e.payload
        if e.type == NODE_CREATED:
            text[e.stream], domain[e.stream] = p.text, p.domain
            namespace[e.stream] = e.namespace
        elif e.type == NODE_UPDATED and e.stream in text and e.stream not in forgotten:
            if p.text is not UNSET:
                text[e.stream] = p.text
            if p.domain is not UNSET:
                domain[e.stream] = p.domain
        elif e.type == NODE_FORGOTTEN:
            forgotten.add(e.stream)
        elif e.type == EDGE_ADDED:
            edges.add((p.src, p.rel, p.dst))
        elif e.type == EDGE_REMOVED:
            edges.discard((p.src, p.rel, p.dst))
    live = {i for i in text if i not in forgotten}
    edges = {k for k in edges if k[0] in live and k[2] in live}
    return {
        "nodes": {i: (namespace[i], text[i], domain[i]) for i in live},
        "forgotten": {i: namespace[i] for i in forgotten if i in namespace},
        "edges": edges,
        "domains": {
            ns: dict(Counter(domain[i] for i in live
                             if namespace[i] == ns and domain[i] is not None))
            for ns in {*namespace.values(), "default"}
        },
    }


def check_against_fold(mem: Memory, events: list[Event]) -> None:
    want = fold(events)
    for node_id, (ns, text, domain) in want["nodes"].items():
        node = mem.namespaced(ns).get(node_id)
        assert (node.text, node.domain) == (text, domain), node_id
    for node_id, ns in want["forgotten"].items():
        assert not mem.namespaced(ns).exists(node_id)
    adj = mem.store.projection("adjacency")
    have = {
        (e.src, e.rel, e.dst)
        for i in want["nodes"]
        for e in adj.edges(i, mem.seq)  # type: ignore[attr-defined]
    }
    assert have == want["edges"]
    for ns, sizes in want["domains"].items():
        assert mem.namespaced(ns).domains() == sizes, ns


def check_store(path: Path, acks: list[dict[str, Any]], context: str) -> dict[str, Any]:
    """Reopen ``path`` and check everything acknowledged so far. Returns facts."""
    mem = Memory.open(path)
    try:
        store = mem.store
        log = store.log
        head = store.head
        events = list(log.read())
        assert head == log.head(), context
        assert [e.seq for e in events] == list(range(1, head + 1)), context

        # nothing bad was trusted: files in place are whole (written via rename)
        assert store.snapshots is not None
        bad = {n: r for n, r in store.snapshots.rejected.items() if r != "missing"}
        assert not bad, f"{context}: a snapshot in place was bad: {bad}"

        # every acknowledged write is there, exactly as acknowledged
        top = 0
        for ack in acks:
            op = ack["op"]
            if op in ("remember", "update"):
                items = [[ack["id"], ack["seq"], ack["text"]]]
            elif op == "many":
                items = ack["items"]
                seqs = [s for _, s, _ in items]
                assert seqs == sorted(seqs), (context, ack)
                streams = {i for i, _, _ in items}
                run = [e.stream for e in events[seqs[0] - 1:seqs[-1]]]
                assert set(run) == streams, (context, ack)
            elif op == "relate":
                seq = ack["seq"]
                top = max(top, seq)
                assert seq <= head, (context, ack, head)
                e = log.get(seq)
                assert e.type == EDGE_ADDED, (context, ack)
                assert (e.payload.src, e.payload.rel, e.payload.dst) == (
                    ack["src"], ack["rel"], ack["dst"]), (context, ack)
                edges = mem.store.projection("adjacency").edges(  # type: ignore[attr-defined]
                    ack["src"], seq, rel=ack["rel"])
                assert any(x.dst == ack["dst"] and x.start == seq for x in edges), (context, ack)
                continue
            else:  # pragma: no cover - the writer prints nothing else
                raise AssertionError(f"unknown ack {ack}")
            for node_id, seq, text in items:
                top = max(top, seq)
                assert seq <= head, (context, ack, head)
                e = log.get(seq)
                assert e.stream == node_id, (context, ack)
                assert e.type == (NODE_UPDATED if op == "update" else NODE_CREATED)
                node = mem.as_of(seq).get(node_id)
                assert (node.text, node.seq) == (text, seq), (context, ack)
                assert mem.get(node_id).seq >= seq, (context, ack)
        assert top <= head

        # multi-event batches are all-or-nothing (acknowledged or not), in one run of seqs
        batches: dict[str, list[Event]] = {}
        for e in events:
            if e.type == NODE_CREATED and "batch" in e.payload.attrs:
                batches.setdefault(e.payload.attrs["batch"], []).append(e)
        for batch, created in batches.items():
            assert len(created) == created[0].payload.attrs["n"], (context, batch)
            streams = {e.stream for e in created}
            run = events[created[0].seq - 1:created[-1].seq]
            assert {e.stream for e in run} == streams, (context, batch)

        # the projections as opened (maybe from snapshots) equal a full replay ...
        restored = dict(store.restored)
        opened = projection_state(mem)
        store.rebuild()
        replayed = projection_state(mem)
        assert opened == replayed, f"{context}: opened state differs from a full replay"
        # ... and an independent fold of the log
        check_against_fold(mem, events)
        return {"head": head, "restored": restored, "events": events}
    finally:
        mem.close()


def snapshot_names(path: Path) -> set[str]:
    """Projections that have a snapshot file next to the store."""
    return {p.name[: -len(".snap")] for p in Path(str(path) + ".snapshots").glob("*.snap")}


def leftover_tmp(path: Path) -> list[Path]:
    snapdir = Path(str(path) + ".snapshots")
    return sorted(snapdir.glob("*.tmp")) if snapdir.is_dir() else []


# --------------------------------------------------------------------------------------
# SIGKILL trials
# --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("durability", ["normal", "full"])
@pytest.mark.parametrize("chain", range((TRIALS + CHAIN - 1) // CHAIN))
def test_sigkill_loses_no_acknowledged_write(tmp_path: Path, chain: int, durability: str
                                             ) -> None:
    rng = random.Random(SEED * 1000 + chain + (durability == "full") * 500)
    path = tmp_path / "store.engram"
    acks: list[dict[str, Any]] = []
    trials = min(CHAIN, TRIALS - chain * CHAIN)
    restored_from_snapshot = 0
    for trial in range(trials):
        context = f"seed={SEED} durability={durability} chain={chain} trial={trial}"
        run = crash_run(tmp_path, path, rng, snapshot_every=rng.choice([3, 8, 20]),
                        durability=durability)
        assert run.acks, f"{context}: the writer acknowledged nothing: {run.stderr[-2000:]}"
        acks += run.acks
        facts = check_store(path, acks, context)
        restored_from_snapshot += bool(facts["restored"])
    assert len(acks) > trials
    print(f"seed={SEED} library {durability}: {trials} SIGKILL trials, {len(acks)}"
          " acknowledged writes checked, 0 lost")
    if trials > 1:
        # later runs in a chain reopen a store that has snapshots of earlier runs
        assert restored_from_snapshot, f"seed={SEED}: no reopen ever used a snapshot"


SERVER = textwrap.dedent(
    """
    import sys
    import uvicorn
    from engramdb import Memory
    from engramdb.adapters.http import create_app

    path, snapshot_every, durability, port = sys.argv[1:5]
    mem = Memory.open(path, snapshot_every=int(snapshot_every), durability=durability)
    uvicorn.run(create_app(mem, tokens=None), host="127.0.0.1", port=int(port),
                log_level="warning")
    """
)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http_client(base: str, wid: int, seed: int, known: list[str], acks: list[dict[str, Any]],
                 lock: threading.Lock, stop: threading.Event) -> None:
    """One client of the server: the writer's mix of writes over HTTP, each
    acknowledged (appended to ``acks``) only once the server answered 2xx."""
    import httpx

    rng = random.Random(seed * 7919 + wid)
    url = base + "/v1/namespaces/default"
    with httpx.Client(timeout=30) as client:
        n = 0
        while not stop.is_set():
            n += 1
            tag = f"h{seed}-{wid}-{n}"
            with lock:
                ids = known[-300:]
            r = rng.random()
            try:
                if len(ids) < 2 or r < 0.3:
                    text = f"memory {tag}"
                    res = client.post(url + "/memories", json={
                        "text": text, "domain": rng.choice(["people", "work"]),
                        "name": f"name {tag}", "attrs": {"w": wid, "n": n}})
                    res.raise_for_status()
                    node = res.json()
                    ack = {"op": "remember", "id": node["id"], "seq": node["seq"], "text": text}
                    new = [node["id"]]
                elif r < 0.5:
                    k = rng.randint(2, 6)
                    batch = f"b{tag}"
                    res = client.post(url + "/memories/batch", json={"items": [
                        {"text": f"batch {tag} #{i}", "attrs": {"batch": batch, "n": k}}
                        for i in range(k)]})
                    res.raise_for_status()
                    nodes = res.json()
                    ack = {"op": "many", "batch": batch,
                           "items": [[x["id"], x["seq"], x["text"]] for x in nodes]}
                    new = [x["id"] for x in nodes]
                elif r < 0.75:
                    node_id, text = rng.choice(ids), f"update {tag}"
                    res = client.patch(f"{url}/memories/{node_id}", json={"text": text})
                    res.raise_for_status()
                    ack = {"op": "update", "id": node_id, "seq": res.json()["seq"],
                           "text": text}
                    new = []
                else:
                    src, dst, rel = rng.choice(ids), rng.choice(ids), rng.choice(["knows", "near"])
                    res = client.post(url + "/edges", json={
                        "src": src, "rel": rel, "dst": dst, "attrs": {"tag": tag}})
                    res.raise_for_status()
                    ack = {"op": "relate", "src": src, "rel": rel, "dst": dst,
                           "seq": res.json()["start"]}
                    new = []
            except httpx.HTTPStatusError as exc:  # the test fails on any refused write
                with lock:
                    acks.append({"op": "refused", "status": exc.response.status_code,
                                 "body": exc.response.text[:500]})
                return
            except httpx.TransportError:
                return  # the server was killed: this write was never acknowledged
            with lock:
                acks.append(ack)
                known.extend(new)


def http_crash_run(tmp_path: Path, store: Path, rng: random.Random, known: list[str], *,
                   durability: str) -> list[dict[str, Any]]:
    """Serve ``store`` over HTTP (a real uvicorn process), write to it from three
    clients, SIGKILL the server 0.3-1.5 s after its first acknowledged write;
    the writes it acknowledged."""
    import httpx

    script = tmp_path / "server.py"
    script.write_text(SERVER)
    port = _free_port()
    err = open(tmp_path / "server.err", "w+b")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, str(script), str(store),
                             str(rng.choice([3, 8, 20])), durability, str(port)],
                            stderr=err, env={**os.environ, "ENGRAM_EMBEDDER": "hashing"})
    base = f"http://127.0.0.1:{port}"
    acks: list[dict[str, Any]] = []
    lock, stop = threading.Lock(), threading.Event()
    try:
        deadline = threading.Event()
        for _ in range(int(DEADLINE * 10)):
            assert proc.poll() is None, (err.seek(0), err.read().decode(errors="replace"))
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                deadline.wait(0.1)
        seed = rng.randrange(10**9)
        clients = [threading.Thread(target=_http_client,
                                    args=(base, w, seed, known, acks, lock, stop))
                   for w in (1, 2, 3)]
        for t in clients:
            t.start()
        for _ in range(int(DEADLINE * 100)):
            if acks or not any(t.is_alive() for t in clients):
                break
            deadline.wait(0.01)
        deadline.wait(rng.uniform(0.3, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=DEADLINE)
        stop.set()
        for t in clients:
            t.join(timeout=DEADLINE)
        assert proc.returncode == -signal.SIGKILL, proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
        err.close()
    return acks


@pytest.mark.slow
@pytest.mark.parametrize("durability", ["normal", "full"])
def test_sigkill_of_a_server_loses_no_acknowledged_write(tmp_path: Path, durability: str
                                                         ) -> None:
    """The same guarantee over HTTP: a write is acknowledged when the server
    answered 2xx; SIGKILL of the server process at a random moment, reopen, and
    every acknowledged write is there exactly as answered (a chain of kills on one
    store, like the library trials)."""
    rng = random.Random(SEED * 1000 + 777 + (durability == "full"))
    path = tmp_path / "store.engram"
    acks: list[dict[str, Any]] = []
    known: list[str] = []
    trials = max(2, TRIALS // 2)
    for trial in range(trials):
        context = f"seed={SEED} http durability={durability} trial={trial}"
        run = http_crash_run(tmp_path, path, rng, known, durability=durability)
        assert run, f"{context}: the server acknowledged nothing"
        refused = [a for a in run if a["op"] == "refused"]
        assert not refused, (context, refused)
        acks += run
        check_store(path, acks, context)
    print(f"seed={SEED} http {durability}: {trials} SIGKILL trials, {len(acks)}"
          " acknowledged writes checked, 0 lost")


@pytest.mark.slow
def test_sigkill_during_snapshot_writes(tmp_path: Path) -> None:
    """Snapshots every 2 events and kills timed to land inside snapshot writes:
    whatever the kill leaves behind, nothing bad is trusted, and a torn
    temporary file put in place by hand is rejected or correct."""
    rng = random.Random(SEED + 17)
    path = tmp_path / "store.engram"
    acks: list[dict[str, Any]] = []
    torn = 0
    for trial in range(max(6, TRIALS // 3)):
        context = f"seed={SEED} snapshot trial={trial}"
        run = crash_run(tmp_path, path, rng, snapshot_every=2, at_snapshot=True)
        assert run.snap_announced, context
        acks += run.acks
        # keep what the killed write left half-done (opening the store, in check_store,
        # removes the temp files of dead processes)
        torn_bytes = {tmp: tmp.read_bytes() for tmp in leftover_tmp(path)}
        check_store(path, acks, context)
        assert leftover_tmp(path) == [], context
        # promote whatever the killed write left half-done into the real file
        for tmp, data in torn_bytes.items():
            torn += 1
            final = tmp.parent / (tmp.name.split(".snap.")[0] + ".snap")  # NAME.snap.PID.TID.tmp
            final.write_bytes(data)
            mem = Memory.open(path)
            try:
                name = final.stem
                reason = mem.store.snapshots.rejected.get(name)  # type: ignore[union-attr]
                assert (reason is None) == (name in mem.store.restored), (context, reason)
                opened = projection_state(mem)
                mem.store.rebuild()
                assert opened == projection_state(mem), (context, name, reason)
            finally:
                mem.store.close(snapshot=False)
            if reason is not None:  # keep "whatever is in place is whole" for the next trial
                final.unlink(missing_ok=True)  # (opening removed it already)
    assert acks
    # the kills are real and timed loosely; report how many landed mid-write
    print(f"seed={SEED}: {torn} torn snapshot temp files checked")


# --------------------------------------------------------------------------------------
# damaged snapshot files
# --------------------------------------------------------------------------------------


def populate(path: Path, *, seed: int = 1, n: int = 40) -> dict[str, Any]:
    """A store with every kind of event, closed with fresh snapshots; returns its state."""
    rng = random.Random(seed)
    mem = Memory.open(path)
    try:
        ids = [m.id for m in mem.remember_many(
            [{"text": f"fact {seed}-{i}", "domain": rng.choice(["a", "b", "c"]),
              "name": f"n{seed}-{i}"} for i in range(n)]
        )]
        for _ in range(n):
            mem.relate(rng.choice(ids), rng.choice(["r1", "r2"]), rng.choice(ids))
        for i in range(n // 2):
            mem.update(rng.choice(ids), text=f"changed {i}", domain=rng.choice(["a", "b", None]))
        src = mem.neighbors(ids[0], direction="both")
        for nb in src[:1]:
            mem.unrelate(nb.edge.src, nb.edge.rel, nb.edge.dst)
        mem.forget(ids[1])
        other = mem.namespaced("other")
        x, y = other.remember("x", domain="a"), other.remember("y", domain="b")
        other.relate(x.id, "r", y.id)
        state = projection_state(mem)
        state["_ids"] = ids
        return state
    finally:
        mem.close()


def snap_path(path: Path, name: str) -> Path:
    return Path(str(path) + ".snapshots") / f"{name}.snap"


def reopen_state(path: Path) -> tuple[dict[str, Any], dict[str, str], dict[str, int], list[Event]]:
    mem = Memory.open(path)
    try:
        state = projection_state(mem)
        events = list(mem.store.log.read())
        check_against_fold(mem, events)
        mem.store.rebuild()
        assert projection_state(mem) == state
        rejected = dict(mem.store.snapshots.rejected)  # type: ignore[union-attr]
        return state, rejected, dict(mem.store.restored), events
    finally:
        mem.store.close(snapshot=False)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One populated store per module (building it embeds text: not cheap)."""
    path = tmp_path_factory.mktemp("pristine") / "s.engram"
    state = populate(path)
    state.pop("_ids")
    return path, state


def copy_store(src: Path, dst: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        if Path(str(src) + suffix).exists():
            shutil.copyfile(str(src) + suffix, str(dst) + suffix)
    shutil.copytree(str(src) + ".snapshots", str(dst) + ".snapshots")


@pytest.fixture
def built(
    tmp_path: Path, pristine: tuple[Path, dict[str, Any]]
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A private copy of the pristine store, with its snapshots."""
    path = tmp_path / "s.engram"
    copy_store(pristine[0], path)
    state = pristine[1]
    # sanity: an undamaged reopen restores every projection from its snapshot
    again, rejected, restored, _ = reopen_state(path)
    assert again == state
    assert rejected == {}
    assert set(PROJECTIONS) <= snapshot_names(path) == set(restored)
    return path, state


def _header_end(data: bytes) -> int:
    (hlen,) = struct.unpack_from("<I", data, 8)
    return 12 + hlen


@pytest.mark.parametrize("name", PROJECTIONS)
@pytest.mark.parametrize(
    "cut",
    ["empty", "magic", "mid-header", "header-only", "mid-body", "last-byte"],
)
def test_truncated_snapshot_is_rejected_and_rebuilt(
    built: tuple[Path, dict[str, Any]], name: str, cut: str
) -> None:
    path, state = built
    f = snap_path(path, name)
    data = f.read_bytes()
    end = _header_end(data)
    keep = {
        "empty": 0, "magic": 6, "mid-header": end // 2, "header-only": end,
        "mid-body": (end + len(data)) // 2, "last-byte": len(data) - 1,
    }[cut]
    f.write_bytes(data[:keep])
    got, rejected, restored, _ = reopen_state(path)
    assert rejected.get(name)
    assert rejected[name] in {
        "not a snapshot file (bad magic or truncated)", "unreadable header", "truncated body",
    }
    assert name not in restored
    assert set(restored) == snapshot_names(path) - {name}
    assert got == state


@pytest.mark.parametrize("name", PROJECTIONS)
@pytest.mark.parametrize("where", ["magic", "length", "header-seq", "header-id",
                                   "header-non-utf8", "body", "body-end", "appended"])
def test_garbled_snapshot_is_rejected_and_rebuilt(
    built: tuple[Path, dict[str, Any]], name: str, where: str
) -> None:
    path, state = built
    f = snap_path(path, name)
    data = bytearray(f.read_bytes())
    end = _header_end(bytes(data))
    if where == "appended":
        data += b"\x00"
    else:
        if where == "header-seq":
            # the header claims an earlier seq than the body holds (still valid JSON)
            start = stop = data.index(b'"seq":') + 6
            while chr(data[stop]).isdigit():
                stop += 1
            for at in range(stop - 1, start - 1, -1):
                leading_one = at == start and data[at] == ord("1") and stop - start > 1
                if data[at] > ord("0") and not leading_one:
                    break
            else:  # pragma: no cover - seq is never 0 here
                raise AssertionError("no digit to lower")
            pos, bit = at, data[at] ^ (data[at] - 1)
        else:
            pos = {
                "magic": 3, "length": 8, "header-id": data.index(b'"store_id":"') + 14,
                "header-non-utf8": 14,
                "body": (end + len(data)) // 2, "body-end": len(data) - 1,
            }[where]
            bit = {"header-id": 0x01, "header-non-utf8": 0x80}.get(where, 0xFF)
        data[pos] ^= bit
    f.write_bytes(bytes(data))
    got, rejected, restored, _ = reopen_state(path)
    assert rejected.get(name), f"a garbled {name} snapshot ({where}) was trusted"
    assert name not in restored
    assert got == state


def test_every_single_bit_flip_in_a_snapshot_is_rejected(
    built: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    path, _ = built
    mem = Memory.open(path)
    store_id, epoch, head = mem.store.store_id, mem.store.epoch, mem.store.head
    mem.store.close(snapshot=False)
    good = snap_path(path, "nodes").read_bytes()
    files = SnapshotFiles(str(tmp_path / "probe"), store_id=store_id)
    os.makedirs(files.directory)
    target = Path(files.path("nodes"))
    target.write_bytes(good)
    assert files.read("nodes", epoch=epoch, head=head) is not None
    end = _header_end(good)
    positions = [*range(end), *range(end, len(good), 11), len(good) - 1]

    def trusted(data: bytes) -> bool:
        # what SnapshotFiles.read decides, without a file per variant
        reason, snap = snapshots_module._parse(
            data, name="nodes", store_id=store_id, epoch=epoch, head=head)
        assert (snap is None) == bool(reason)
        return snap is not None

    assert trusted(good)
    bad_ones = []
    for pos in positions:
        for bit in range(8):
            bad = bytearray(good)
            bad[pos] ^= 1 << bit
            if trusted(bytes(bad)):
                bad_ones.append((pos, bit, bytes(bad[max(pos - 8, 0):pos + 8])))
    assert not bad_ones, f"{len(bad_ones)} damaged variants were trusted, e.g. {bad_ones[:5]}"
    # and through the file API, a sample of them (header and body)
    for pos in (9, 20, end - 2, end + 5, len(good) - 1):
        for bit in (0, 5, 7):
            bad = bytearray(good)
            bad[pos] ^= 1 << bit
            target.write_bytes(bytes(bad))
            assert files.read("nodes", epoch=epoch, head=head) is None, (pos, bit)
            assert files.rejected["nodes"]


def test_snapshot_of_another_store_is_rejected(
    tmp_path: Path, pristine: tuple[Path, dict[str, Any]]
) -> None:
    a, b = tmp_path / "a.engram", tmp_path / "b.engram"
    copy_store(pristine[0], a)
    state_a = pristine[1]
    populate(b, seed=2)
    names = snapshot_names(b)
    assert set(PROJECTIONS) <= names
    for name in names:
        shutil.copyfile(snap_path(b, name), snap_path(a, name))
    got, rejected, restored, _ = reopen_state(a)
    assert rejected == dict.fromkeys(names, "written for another store")
    assert restored == {}
    assert got == state_a


def test_snapshot_ahead_of_the_log_is_rejected(tmp_path: Path) -> None:
    """A snapshot taken later than the log it sits next to (say, an older copy
    of the log file was restored) must not be trusted."""
    path = tmp_path / "s.engram"
    mem = Memory.open(path)
    mem.remember("one")
    mem.close()
    old = {p: Path(p).read_bytes() for p in (str(path),) if Path(p).exists()}
    mem = Memory.open(path)
    mem.remember("two")
    mem.close()  # snapshots now at seq 2
    for p, data in old.items():
        Path(p).write_bytes(data)
    # the log now ends before what its head marker recorded: opening says so ...
    with pytest.raises(CorruptStore, match="are gone"):
        Memory.open(path)
    Path(str(path) + ".head").unlink()  # ... until the restore is declared deliberate
    names = snapshot_names(path)
    _, rejected, restored, events = reopen_state(path)
    assert [e.type for e in events][0] == NODE_CREATED
    assert not [e for e in events if e.type == NODE_CREATED and e.payload.text == "two"]
    assert rejected == dict.fromkeys(names, "ahead of the log")
    assert restored == {}
    assert snapshot_names(path) == set()  # removed before anything could be written


def test_snapshots_of_an_abandoned_history_are_never_trusted(tmp_path: Path) -> None:
    """Issue 9 item 7: restore an older db file while .snapshots/ is at a later seq,
    write, stop without final snapshots (a kill), reopen: every acknowledged write is
    there and nothing of the abandoned history came back."""
    path = tmp_path / "s.engram"
    with Memory.open(path, embedder=None) as mem:
        mem.remember_many([{"text": f"kept {i}"} for i in range(10)])
    backup = path.read_bytes()  # closed cleanly: the db file holds everything
    with Memory.open(path, embedder=None) as mem:
        abandoned = [m.id for m in mem.remember_many([{"text": f"abandoned {i}"}
                                                      for i in range(50)])]
    later = snapshot_names(path)
    assert later  # snapshots now cover the abandoned writes
    path.write_bytes(backup)  # the documented restore: the db file, no WAL, no marker
    for suffix in ("-wal", "-shm", ".head"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    mem = Memory.open(path, embedder=None)
    assert set(mem.store.snapshots.rejected) >= later  # type: ignore[union-attr]
    acked = [m.id for m in mem.remember_many([{"text": f"new {i}"} for i in range(70)])]
    mem.store.close(snapshot=False)  # stopped without its final snapshots
    with Memory.open(path, embedder=None) as mem:
        assert all(mem.exists(i) for i in acked)
        assert not any(mem.exists(i) for i in abandoned)
        assert mem.check().ok
        texts = {e.payload.text for e in mem.store.log.read() if e.type == NODE_CREATED}
        assert not any(t.startswith("abandoned") for t in texts)


def test_a_snapshot_bound_to_another_history_at_the_same_seq_is_rejected(
    tmp_path: Path
) -> None:
    """Same store, same seq, different events: only the chain tells them apart."""
    path = tmp_path / "s.engram"
    with Memory.open(path, embedder=None) as mem:
        mem.remember("base")
    backup = path.read_bytes()
    with Memory.open(path, embedder=None) as mem:
        mem.remember("one history")
    snaps = {p.name: p.read_bytes() for p in Path(str(path) + ".snapshots").iterdir()}
    path.write_bytes(backup)
    Path(str(path) + ".head").unlink()
    with Memory.open(path, embedder=None) as mem:
        mem.remember("another history")  # the same seq as "one history"
    for name, data in snaps.items():  # put the first history's snapshots back
        (Path(str(path) + ".snapshots") / name).write_bytes(data)
    with Memory.open(path, embedder=None) as mem:
        assert mem.store.restored == {}
        assert set(mem.store.snapshots.rejected.values()) == {  # type: ignore[union-attr]
            "made from another history (the log's chain differs at its seq)"}
        assert [n.text for n in mem.recall("history", k=5)] == ["another history"]


def test_damaged_snapshot_is_replaced_on_the_next_snapshot(
    built: tuple[Path, dict[str, Any]]
) -> None:
    path, _ = built
    f = snap_path(path, "nodes")
    f.write_bytes(f.read_bytes()[:-3])
    mem = Memory.open(path)
    try:
        rejected = mem.store.snapshots.rejected  # type: ignore[union-attr]
        assert rejected.get("nodes") == "truncated body"
        mem.remember("one more")
    finally:
        mem.close()  # head moved: snapshots are written on close
    mem = Memory.open(path)
    try:
        assert mem.store.snapshots.rejected == {}  # type: ignore[union-attr]
        assert set(mem.store.restored) == snapshot_names(path)
    finally:
        mem.close()


def test_damaged_snapshot_is_replaced_even_without_new_writes(
    built: tuple[Path, dict[str, Any]]
) -> None:
    path, _ = built
    f = snap_path(path, "nodes")
    f.write_bytes(f.read_bytes()[:-3])
    Memory.open(path).close()
    mem = Memory.open(path)
    try:
        assert mem.store.snapshots.rejected == {}  # type: ignore[union-attr]
    finally:
        mem.close()


def test_restored_name_index_matches_replay(tmp_path: Path) -> None:
    """Two live nodes share a name; the one written last is what find() answers,
    whether the name index came from a replay or from a snapshot."""
    path = tmp_path / "s.engram"
    mem = Memory.open(path)
    a = mem.remember("a", name="Same")
    mem.remember("b", name="Same")
    mem.update(a.id, text="a2")
    live = mem.find("Same").id
    mem.close()
    mem = Memory.open(path)
    try:
        assert "nodes" in mem.store.restored
        assert mem.find("Same").id == live
    finally:
        mem.close()


# --------------------------------------------------------------------------------------
# two writer processes
# --------------------------------------------------------------------------------------


def ack_seq(ack: dict[str, Any]) -> int:
    """The highest seq an acknowledgement names."""
    if ack["op"] == "many":
        return max(seq for _, seq, _ in ack["items"])
    return int(ack["seq"])


@pytest.mark.slow
def test_second_writer_process_shares_the_store(tmp_path: Path) -> None:
    """Fails on old main (the second writer got StoreLocked): a second writer and a
    reader open the store while the first writes; both writers keep acknowledging,
    and every acknowledged write of both is in the store."""
    path = tmp_path / "store.engram"
    stop = tmp_path / "stop"
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)

    def open_in_process(mode: str) -> tuple[int, dict[str, Any], str]:
        done = subprocess.run([sys.executable, str(probe), str(path), mode],
                              capture_output=True, timeout=DEADLINE)
        out = json.loads(done.stdout) if done.stdout.strip() else {}
        return done.returncode, out, done.stderr.decode(errors="replace")[-2000:]

    w = Writer(tmp_path, path, seed=SEED, snapshot_every=50, stop_file=stop)
    w2: Writer | None = None
    try:
        w.wait_for(lambda: len(w.lines) >= 10, "10 appends")
        lines_before_reader = w.count()
        reader = open_in_process("ro")
        w2 = Writer(tmp_path, path, seed=SEED + 1, snapshot_every=50, stop_file=stop)
        after = w.count()
        w.wait_for(lambda: len(w.lines) >= after + 20, "20 more appends")
        w2.wait_for(lambda: len(w2.lines) >= 20, "20 appends of the second writer")
    finally:
        stop.touch()
        run = w.finish()
        run2 = w2.finish() if w2 is not None else None
    assert reader[0] == 0 and reader[1]["code"] == "ok", reader
    assert run.returncode == 0, run.stderr[-3000:]
    assert run2 is not None and run2.returncode == 0, run2 and run2.stderr[-3000:]
    assert json.loads(w.lines[-1]) == {"op": "closed"}
    acks = [a for a in run.acks + run2.acks if a["op"] != "closed"]
    seen_before = [json.loads(ln) for ln in w.lines[1:lines_before_reader]]
    assert reader[1]["seq"] >= max(ack_seq(a) for a in seen_before)
    facts = check_store(path, acks, f"seed={SEED}")
    assert facts["head"] >= max(ack_seq(a) for a in acks)
    # both processes' writes are interleaved in one log
    seqs1 = {ack_seq(a) for a in run.acks if a["op"] != "closed"}
    seqs2 = {ack_seq(a) for a in run2.acks if a["op"] != "closed"}
    assert seqs1 and seqs2 and not seqs1 & seqs2
    assert min(seqs2) < max(seqs1)


@pytest.mark.slow
def test_sigkill_several_writer_processes_at_once(tmp_path: Path) -> None:
    """2-3 writer processes on one store, each SIGKILLed at its own random moment,
    for several rounds on the same store: 0 acknowledged writes lost, seqs dense,
    batches whole, projections (restored from anyone's snapshots) equal a replay."""
    path = tmp_path / "store.engram"
    rng = random.Random(SEED)
    acks: list[dict[str, Any]] = []
    rounds = max(3, TRIALS // 5)
    for trial in range(rounds):
        context = f"seed={SEED} multi trial={trial}"
        writers = [Writer(tmp_path, path, seed=rng.randrange(10**9),
                          snapshot_every=rng.choice([5, 20, 100]))
                   for _ in range(rng.choice([2, 3]))]
        for w in writers:
            w.wait_for(lambda w=w: any(b'"op":"open"' not in ln for ln in w.lines),
                       "its first append")
        for w in writers:
            threading.Event().wait(rng.uniform(0.02, 0.3))
            w.kill()
        for w in writers:
            run = w.finish()
            assert run.returncode == -signal.SIGKILL, (context, run.returncode,
                                                       run.stderr[-3000:])
            acks += run.acks
        facts = check_store(path, acks, context)
        assert facts["head"] >= max(ack_seq(a) for a in acks), context
    print(f"seed={SEED}: {rounds} rounds, {len(acks)} acknowledged writes, all present")


def _wal_checksum(buf: bytes, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(buf) // 4}I", buf)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def wal_valid_prefix(data: bytes) -> tuple[int, int, int]:
    """(page size, end of the valid frame chain, frames in it) of a WAL file,
    following SQLite's own rules: matching salts and a running checksum."""
    magic, _, page_size, _, _, _ = struct.unpack(">IIIIII", data[:24])
    assert magic in (0x377F0682, 0x377F0683), hex(magic)
    big = bool(magic & 1)
    s0, s1 = _wal_checksum(data[:24], 0, 0, big)
    assert (s0, s1) == struct.unpack(">II", data[24:32]), "WAL header checksum"
    salts = data[16:24]
    off, frames = 32, 0
    while off + 24 + page_size <= len(data):
        hdr = data[off:off + 24]
        if hdr[8:16] != salts:
            break
        c0, c1 = _wal_checksum(hdr[:8], s0, s1, big)
        c0, c1 = _wal_checksum(data[off + 24:off + 24 + page_size], c0, c1, big)
        if (c0, c1) != struct.unpack(">II", hdr[16:24]):
            break
        s0, s1 = c0, c1
        off += 24 + page_size
        frames += 1
    return page_size, off, frames


def read_all(path: Path) -> list[tuple[Any, ...]]:
    log = SQLiteLog(str(path))
    try:
        return [(e.seq, e.id, e.stream, e.version, e.type, msgspec.to_builtins(e.payload))
                for e in log.read()]
    finally:
        log.close()


@pytest.mark.slow
@pytest.mark.parametrize("garbage", ["random", "torn-frame", "forged-commit-frame"])
def test_torn_wal_tail_is_ignored(tmp_path: Path, garbage: str) -> None:
    rng = random.Random(SEED + len(garbage))
    path = tmp_path / "store.engram"
    wal = Path(str(path) + "-wal")
    run = crash_run(tmp_path, path, rng, snapshot_every=10**9)
    assert run.acks
    data = wal.read_bytes()
    page_size, end, frames = wal_valid_prefix(data)
    assert frames > 0, "the killed writer left no committed frame in the WAL"
    # cut stale frames off so the garbage directly follows the last valid frame
    with open(wal, "r+b") as fh:
        fh.truncate(end)
    # what the store holds without the garbage (opened from a copy, shm rebuilt)
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copyfile(path, copy / path.name)
    shutil.copyfile(wal, copy / wal.name)
    expected = read_all(copy / path.name)
    assert expected, "nothing committed"

    last = data[end - 24 - page_size:end]
    if garbage == "random":
        tail = rng.randbytes(3 * page_size + 77)
    elif garbage == "torn-frame":
        # the next frame, cut mid-page: a header with our salts, half a page
        tail = last[:24] + rng.randbytes(page_size // 2)
    else:
        # a whole frame with our salts, marked as a commit, whose checksum is wrong
        hdr = bytearray(last[:24])
        struct.pack_into(">II", hdr, 0, 1, 1 << 20)  # page 1, commit: db of 2**20 pages
        page = bytearray(last[24:])
        page[page_size // 3] ^= 0x5A
        tail = bytes(hdr) + bytes(page)
    with open(wal, "ab") as fh:
        fh.write(tail)

    acks = run.acks
    facts = check_store(path, acks, f"seed={SEED} garbage={garbage}")
    assert facts["head"] == len(expected)
    assert read_all(path) == expected
    # the store keeps working after the garbage was discarded
    mem = Memory.open(path)
    node = mem.remember("after the torn tail")
    new_head = mem.seq
    assert node.seq == len(expected) + 1
    mem.close()
    log = SQLiteLog(str(path))
    try:
        assert [e.seq for e in log.read()] == list(range(1, new_head + 1))
        assert log.get(len(expected) + 1).payload.text == "after the torn tail"
    finally:
        log.close()
