"""Property test: a context behaves like a private branch of shared memory.

Three stores start identical. Random operations (remember, update, relate,
unrelate, forget, remember superseding a memory) go to a context on store A
and, directly, to store B; C is left alone. Checked:

* after every operation, the context reads exactly what B reads (nodes with
  their versions, out-edges, domain sizes, vector recall with its scores, the
  set of memories text recall finds), while A's shared view still equals C's;
* commit == replaying the local events onto shared: afterwards A's visible
  state (nodes, edges, domains, bridges, fused recall top-k) equals B's;
* discard == nothing happened: afterwards A's visible state equals C's.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engramdb import Memory
from engramdb.recall.embed import HashingEmbedder

WORDS = ["rocket", "launch", "alice", "team", "fuel", "engine", "orbit", "budget", "delay", "q3"]
DOMAINS = ["plans", "people", "companies"]
RELS = ["about", "knows", "blocks"]
QUERIES = ["rocket launch delay", "alice team budget", "orbit fuel engine"]

text_st = st.lists(st.sampled_from(WORDS), min_size=1, max_size=5).map(" ".join)
pick = st.integers(min_value=0, max_value=1000)
op_st = st.one_of(
    st.tuples(st.just("remember"), text_st, st.sampled_from([None, *DOMAINS]), st.booleans()),
    st.tuples(st.just("update"), pick, st.one_of(st.none(), text_st),
              st.sampled_from([None, *DOMAINS]), st.integers(0, 3)),
    st.tuples(st.just("relate"), pick, st.sampled_from(RELS), pick),
    st.tuples(st.just("unrelate"), pick),
    st.tuples(st.just("forget"), pick),
    st.tuples(st.just("supersede"), text_st, pick, st.integers(1, 12)),
)


def open_seeded() -> Memory:
    mem = Memory.open(":memory:", embedder=HashingEmbedder(dim=64))
    for i, (text, domain) in enumerate([
        ("rocket launch team", "plans"), ("alice leads the team", "people"),
        ("engine fuel budget", "companies"), ("orbit delay q3", None),
    ]):
        mem.remember(text, domain=domain, id=f"s{i}", name=f"seed{i}")
    mem.relate("s1", "knows", "s0")
    mem.relate("s2", "blocks", "s3")
    return mem


def live_ids(mem: Memory, known: list[str]) -> list[str]:
    return [i for i in known if mem.exists(i)]


def out_edges(reader: Any, ids: list[str]) -> list[tuple[str, str, str]]:
    return sorted((nb.edge.src, nb.edge.rel, nb.edge.dst)
                  for i in ids for nb in reader.neighbors(i))


def apply(target: Any, op: tuple[Any, ...], direct: Memory, known: list[str]) -> None:
    """Apply one abstract op to ``target`` (a context or a Memory), choosing its
    nodes and edges from ``direct``'s state (both targets agree, or the test fails)."""
    live = live_ids(direct, known)
    kind = op[0]
    if kind == "remember":
        _, text, domain, named = op
        node_id = f"n{len(known)}"
        target.remember(text, domain=domain, name=text.split()[0] if named else None,
                        attrs={"n": len(known)}, id=node_id)
    elif not live:
        if kind == "supersede":  # nothing to supersede: a plain remember keeps ids in step
            target.remember(op[1], attrs={"n": len(known)}, id=f"n{len(known)}")
        return
    elif kind == "supersede":  # a new memory replacing a live one, from a given month
        _, text, i, month = op
        target.remember(text, attrs={"n": len(known)}, id=f"n{len(known)}",
                        supersedes=live[i % len(live)], valid_from=f"2026-{month:02d}-01")
    elif kind == "update":
        _, i, text, domain, attr = op
        fields: dict[str, Any] = {"attrs": {"a": attr}}
        if text is not None:
            fields["text"] = text
        if domain is not None:
            fields["domain"] = domain
        target.update(live[i % len(live)], **fields)
    elif kind == "relate":
        _, i, rel, j = op
        target.relate(live[i % len(live)], rel, live[j % len(live)])
    elif kind == "unrelate":
        edges = out_edges(direct, live)
        if edges:
            target.unrelate(*edges[op[1] % len(edges)])
    elif kind == "forget":
        target.forget(live[op[1] % len(live)])


def reads(reader: Any, known: list[str]) -> dict[str, Any]:
    """What a reader (a Memory or a context) answers, in comparable form."""
    nodes = {}
    for i in known:
        if reader.exists(i):
            n = reader.get(i)
            nodes[i] = (n.text, n.name, n.domain, n.kind, n.attrs, n.version, n.valid_to)
    # raw cosines (recall's min-max normalisation would blow float noise near 0 up)
    vector = {q: {h.id: h.signals["vector"]["score"]
                  for h in reader.recall(q, k=100, signals=("vector",))} for q in QUERIES}
    text = {q: sorted(h.id for h in reader.recall(q, k=100, signals=("text",))) for q in QUERIES}
    return {"nodes": nodes, "edges": out_edges(reader, list(nodes)), "domains": reader.domains(),
            "vector": vector, "text": text}


def same(got: dict[str, Any], want: dict[str, Any]) -> bool:
    """Equal, except cosines (summed in another order) only to 1e-5."""
    rest = {k: v for k, v in got.items() if k != "vector"}
    if rest != {k: v for k, v in want.items() if k != "vector"}:
        return False
    for q, scores in got["vector"].items():
        other = want["vector"][q]
        if scores.keys() != other.keys():
            return False
        if any(abs(score - other[i]) > 1e-5 for i, score in scores.items()):
            return False
    return True


def visible(mem: Memory, known: list[str]) -> dict[str, Any]:
    """A shared reader's view, including fused recall and bridges."""
    state = reads(mem, known)
    state["fused"] = {
        q: [(h.id, round(h.score, 6)) for h in mem.recall(q, k=10, signals=("vector", "text",
                                                                            "graph"))]
        for q in QUERIES
    }
    state["bridges"] = sorted((b.src, b.rel, b.dst, b.src_domain, b.dst_domain)
                              for b in mem.bridges())
    return state


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op_st, max_size=10), commit=st.booleans())
def test_context_is_a_private_branch(ops: list[tuple[Any, ...]], commit: bool) -> None:
    a, b, c = open_seeded(), open_seeded(), open_seeded()
    try:
        known = [f"s{i}" for i in range(4)]
        untouched = visible(c, known)
        ctx = a.context("agent-7")
        for op in ops:
            apply(ctx, op, b, known)
            apply(b, op, b, known)
            if op[0] in ("remember", "supersede"):
                known.append(f"n{len(known)}")
            assert same(reads(ctx, known), reads(b, known)), op
        assert same(visible(a, known), visible(c, known))  # nothing leaked before commit
        if commit:
            ctx.commit()
            assert same(visible(a, known), visible(b, known))
        else:
            ctx.discard()
            assert same(visible(a, known), visible(c, known))
            assert same(visible(c, known[:4]), untouched)
        assert a.contexts() == []
    finally:
        for m in (a, b, c):
            m.close()
