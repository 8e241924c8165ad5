"""The compressed index: budget, content, freshness, time travel, restart, recall."""

from __future__ import annotations

import itertools
import random
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engramdb import InvalidInput, Memory
from engramdb.recall.embed import HashingEmbedder, _load_minilm_tokenizer
from engramdb.recall.index import (
    IndexProjection,
    Recall,
    adaptive_budget,
    estimate_tokens,
    fit_text,
)


@pytest.fixture
def mem() -> Iterator[Memory]:
    m = Memory.open(":memory:", embedder=HashingEmbedder(dim=64))
    yield m
    m.close()


def small_world(mem: Memory) -> dict[str, str]:
    ids = {}
    for name, text, domain in [
        ("Maya", "Maya lives in Lisbon. She moved from Berlin in March.", "people"),
        ("Bob", "Bob is a robotics engineer", "people"),
        ("Carol", "Carol runs the finance team", "people"),
        ("Acme", "Acme Robotics builds warehouse schedulers", "companies"),
        ("Lisbon", "Lisbon is the capital of Portugal", "places"),
    ]:
        ids[name] = mem.remember(text, name=name, domain=domain).id
    ids["deploy"] = mem.remember("We deployed the scheduler on Tuesday", domain="ops").id
    mem.relate(ids["Maya"], "works_at", ids["Acme"])
    mem.relate(ids["Bob"], "works_at", ids["Acme"])
    mem.relate(ids["Maya"], "lives_in", ids["Lisbon"])
    mem.relate(ids["Bob"], "knows", ids["Maya"])
    mem.relate(ids["deploy"], "about", ids["Acme"])
    return ids


def section(text: str, title: str) -> list[str]:
    """The item lines of one ``## title`` section."""
    lines = text.split("\n")
    if f"## {title}" not in lines:
        return []
    out = []
    for line in lines[lines.index(f"## {title}") + 1 :]:
        if not line.startswith("- "):
            break
        out.append(line)
    return out


def body(text: str) -> str:
    """The index without its "as of seq" header line."""
    return "\n".join(line for line in text.split("\n") if "(as of seq" not in line)


def generated(mem: Memory, n: int, *, seed: int = 7) -> list[str]:
    """``n`` memories in skewed domains, a third of them named, with random edges."""
    rng = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "orbit", "cargo", "ledger", "vector"]
    items = []
    for i in range(n):
        domain = f"domain{min(int(rng.expovariate(0.4)), 30)}"
        text = " ".join(rng.choice(words) for _ in range(rng.randint(5, 30)))
        item = {"text": f"{text}. Extra sentence {i}.", "domain": domain}
        if i % 3 == 0:
            item["name"] = f"Entity {i} {rng.choice(words).title()}"
        items.append(item)
    nodes = mem.remember_many(items)
    ids = [node.id for node in nodes]
    for _ in range(n):
        a, b = rng.sample(ids, 2)
        mem.relate(a, rng.choice(["works_at", "knows", "part_of", "mentions"]), b)
    return ids


# -- budget ------------------------------------------------------------------------


def test_adaptive_budget_grows_from_500_to_2000() -> None:
    sizes = [0, 25, 26, 50, 100, 400, 1600, 10**6]
    budgets = [adaptive_budget(n) for n in sizes]
    assert budgets[0] == budgets[1] == 500 and budgets[-2] == budgets[-1] == 2000
    assert budgets == sorted(budgets) and budgets[3] == 750 and budgets[4] == 1000


@pytest.mark.parametrize("n", [0, 3, 40, 300, 3000])
def test_index_never_exceeds_its_budget(n: int) -> None:
    with Memory.open(":memory:", embedder=None) as mem:
        ids = generated(mem, n) if n else []
        text = mem.index()
        assert estimate_tokens(text) <= adaptive_budget(n)
        for max_tokens in (64, 150, 700, 2500):
            assert estimate_tokens(mem.index(max_tokens=max_tokens)) <= max_tokens
        assert not any(i in text for i in ids)
    if n == 3000:  # a large store fills its 2,000 tokens and says what it left out
        assert estimate_tokens(text) > 1800
        assert re.search(r"^- \.\.\. \d+ more entities$", text, re.M)
        assert re.search(r"^- \.\.\. \d+ more domain pairs$", text, re.M) or len(
            section(text, "Cross-references")) > 0
        assert len(section(text, "Entities")) >= 10 and len(section(text, "Domains")) >= 5


def test_estimate_is_not_below_a_real_subword_tokenizer() -> None:
    """The estimate stays above the MiniLM WordPiece count on indexes and odd text."""
    tok = _load_minilm_tokenizer(100_000)
    samples = ["Maya lives in Lisbon", "Zürich → 東京 ✈️ café", "x" * 50,
               "1234567890" * 3]
    with Memory.open(":memory:", embedder=None) as mem:
        generated(mem, 500)
        samples += [mem.index(), mem.index(max_tokens=300)]
    for text in samples:
        wordpiece = len(tok.encode(text, add_special_tokens=False).ids)
        assert estimate_tokens(text) >= wordpiece, text[:60]


def test_non_ascii_counts_its_utf8_bytes() -> None:
    assert estimate_tokens("東京") == 6 and estimate_tokens("a") == 1
    assert estimate_tokens("schedulers") == 3 and estimate_tokens("2026") == 2
    assert estimate_tokens("a\nb") == 3


def test_fit_text_cuts_to_the_budget() -> None:
    text = "\n".join(f"line {i} with several words in it" for i in range(200))
    for budget in (5, 50, 333):
        cut = fit_text(text, budget)
        assert estimate_tokens(cut) <= budget and text.startswith(cut.removesuffix(" ..."))
    assert fit_text("short", 100) == "short"


@pytest.mark.parametrize("bad", [0, 63, 100_001, "500", True, 1.5])
def test_bad_budget_is_rejected_and_changes_nothing(mem: Memory, bad: object) -> None:
    small_world(mem)
    before = mem.seq
    with pytest.raises(InvalidInput):
        mem.index(max_tokens=bad)  # type: ignore[arg-type]
    assert mem.seq == before


# -- content -----------------------------------------------------------------------


def test_names_not_ids_and_one_line_summaries(mem: Memory) -> None:
    ids = small_world(mem)
    text = mem.index()
    assert not any(node_id in text for node_id in ids.values())
    entities = section(text, "Entities")
    assert len(entities) == 5
    maya = next(line for line in entities if line.startswith("- **Maya**"))
    assert "(people): Maya lives in Lisbon." in maya and "Berlin" not in maya  # first sentence
    assert "works_at -> Acme" in maya and "knows <- Bob" in maya
    # the most connected entity comes first; an unnamed memory is quoted, never by id
    assert entities[0].startswith("- **Acme**")
    assert '"We deployed the scheduler on..."' in entities[0] or "We deployed" in entities[0]


def test_domains_by_size(mem: Memory) -> None:
    small_world(mem)
    for i in range(4):
        mem.remember(f"incident {i}", domain="ops")
    lines = section(mem.index(), "Domains")
    assert [line.split(":")[0] for line in lines] == [
        "- ops", "- people", "- companies", "- places"
    ]
    assert lines[0] == "- ops: 5 memories" and lines[1].startswith("- people: 3 memories (")
    assert lines[2] == "- companies: 1 memory (Acme)"


def test_cross_references_name_their_relation_types(mem: Memory) -> None:
    small_world(mem)
    lines = section(mem.index(), "Cross-references")
    assert lines[0].startswith("- people -> companies: works_at x2 (e.g. ")
    assert "- people -> places: lives_in (e.g. Maya lives_in Lisbon)" in lines
    assert any(line.startswith("- ops -> companies: about") for line in lines)
    assert not any("people -> people" in line for line in lines)  # knows stays in a domain


def test_header_counts_and_empty_store(mem: Memory) -> None:
    assert mem.index() == (
        "# Memory index: default\n"
        "0 memories, 0 named entities, 0 domains, 0 cross-domain links (as of seq 0)\n(empty)"
    )
    small_world(mem)
    assert "6 memories, 5 named entities, 4 domains, 4 cross-domain links" in mem.index()


def test_namespaces_have_their_own_index(mem: Memory) -> None:
    small_world(mem)
    other = mem.namespaced("other")
    other.remember("Zed likes jazz", name="Zed", domain="music")
    assert "Zed" not in mem.index() and "Maya" not in other.index()
    assert other.index().startswith("# Memory index: other\n1 memory,")


# -- freshness, time travel, forgetting ------------------------------------------------


def test_updates_as_events_arrive(mem: Memory) -> None:
    ids = small_world(mem)
    first = mem.index()
    mem.update(ids["Maya"], text="Maya lives in Porto now.")
    assert "Maya lives in Porto now." in mem.index()
    dana = mem.remember("Dana audits Acme", name="Dana", domain="finance")
    mem.relate(dana.id, "audits", ids["Acme"])
    text = mem.index()
    assert "**Dana** (finance)" in text and "finance -> companies: audits" in text
    mem.unrelate(dana.id, "audits", ids["Acme"])
    assert not any("audits" in line for line in section(mem.index(), "Cross-references"))
    assert "audits ->" not in mem.index() and mem.index() != first


def test_renders_are_cached_until_something_shown_changes(mem: Memory) -> None:
    small_world(mem)
    proj = mem.store.projection("index")
    assert isinstance(proj, IndexProjection)
    mem.index()
    renders = proj.renders
    mem.index()
    mem.namespaced("elsewhere").remember("unrelated", domain="x")
    assert mem.as_of(mem.seq).index() == mem.index()
    assert proj.renders == renders  # other namespaces do not touch this one's cache
    mem.remember("new", domain="ops")
    mem.index()
    assert proj.renders == renders + 1


def test_as_of_index_is_the_index_as_it_was(mem: Memory) -> None:
    ids = small_world(mem)
    before = mem.seq
    then = mem.index()
    mem.update(ids["Acme"], domain="clients", text="Acme is now a client")
    mem.remember("Eve joined", name="Eve", domain="people")
    now = mem.index()
    assert "**Eve**" in now and "clients" in now
    assert mem.index(as_of=before) == then == mem.as_of(before).index()
    assert "**Eve**" not in then and "people -> companies" in then
    assert "people -> clients" in now and "people -> companies" not in now


def test_forgotten_entities_vanish_now_and_in_the_past(mem: Memory) -> None:
    ids = small_world(mem)
    before = mem.seq
    assert "Carol" in mem.index(as_of=before)
    mem.forget(ids["Carol"])
    for text in (mem.index(), mem.index(as_of=before)):
        assert "Carol" not in text and "5 memories" in text


# -- restart, replay, recall -------------------------------------------------------------


def test_restart_with_and_without_snapshots_gives_the_same_index(tmp_path: Path) -> None:
    path = tmp_path / "a.engram"
    with Memory.open(path, embedder=None) as mem:
        ids = small_world(mem)
        generated(mem, 200)
        mem.forget(ids["Bob"])
        mid = mem.seq
        mem.remember("Late addition", name="Late", domain="people")
        now, then = mem.index(), mem.index(as_of=mid)
        small = mem.index(max_tokens=200)
    with Memory.open(path, embedder=None) as mem:
        assert mem.store.restored.get("index") == mem.seq
        assert (mem.index(), mem.index(as_of=mid), mem.index(max_tokens=200)) == (now, then, small)
    for snap in (tmp_path / "a.engram.snapshots").iterdir():
        snap.unlink()
    with Memory.open(path, embedder=None) as mem:
        assert "index" not in mem.store.restored
        assert (mem.index(), mem.index(as_of=mid)) == (now, then)


def test_incremental_equals_replay(mem: Memory) -> None:
    ids = small_world(mem)
    generated(mem, 60, seed=3)
    mem.forget(ids["Lisbon"])
    mem.update(ids["Maya"], name="Maya R.")
    live = mem.store.projection("index")
    fresh = IndexProjection(*(mem.store.projection(n) for n in  # type: ignore[arg-type]
                              ("nodes", "adjacency", "domains", "cross_domain")))
    for event in mem.store.log.read():
        fresh.process(event)
    assert fresh.snapshot() == live.snapshot()
    restored = IndexProjection(*(mem.store.projection(n) for n in  # type: ignore[arg-type]
                                 ("nodes", "adjacency", "domains", "cross_domain")))
    restored.restore(live.snapshot())  # type: ignore[arg-type]
    assert restored.render("default", mem.seq) == mem.index()


def test_recall_with_index(mem: Memory) -> None:
    small_world(mem)
    plain = mem.recall("where does Maya work", k=3)
    assert type(plain) is list
    result = mem.recall("where does Maya work", k=3, with_index=True)
    assert isinstance(result, Recall) and isinstance(result, list)
    assert [h.id for h in result] == [h.id for h in plain] == [h.id for h in result.hits]
    assert result.index == mem.index() and result.seq == mem.seq
    before = mem.seq
    mem.remember("Maya now works at Globex", name="Globex", domain="companies")
    old = mem.recall("where does Maya work", k=3, with_index=True, as_of=before)
    assert old.seq == before and old.index == mem.index(as_of=before) and "Globex" not in old.index


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    names=st.lists(st.text(min_size=1, max_size=80), min_size=1, max_size=25),
    texts=st.lists(st.text(max_size=300), min_size=1, max_size=25),
    max_tokens=st.integers(min_value=64, max_value=900),
)
def test_any_content_fits_any_budget(names: list[str], texts: list[str], max_tokens: int) -> None:
    with Memory.open(":memory:", embedder=None) as mem:
        nodes = mem.remember_many(
            {"text": t, "name": n, "domain": n[:5] or "d"}
            for n, t in zip(names, texts, strict=False)  # lists of unrelated lengths
        )
        for a, b in itertools.pairwise(nodes):
            mem.relate(a.id, "rel" + str(len(a.text) % 3), b.id)
        for text in (mem.index(), mem.index(max_tokens=max_tokens)):
            assert estimate_tokens(text) <= max(max_tokens, adaptive_budget(len(nodes)))
        assert estimate_tokens(mem.index(max_tokens=max_tokens)) <= max_tokens
        assert not any(node.id in mem.index() for node in nodes)


def test_renders_while_a_writer_appends() -> None:
    with Memory.open(":memory:", embedder=None) as mem:
        small_world(mem)
        errors: list[BaseException] = []
        done = threading.Event()

        def write() -> None:
            try:
                for i in range(300):
                    node = mem.remember(f"note {i}", name=f"N{i}", domain=f"d{i % 7}")
                    if i % 5:
                        mem.relate(node.id, "after", mem.find("Maya").id)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                done.set()

        writer = threading.Thread(target=write)
        writer.start()
        seen = []
        while not done.is_set():
            view = mem.as_of(mem.seq)
            text = view.index(max_tokens=300)
            assert estimate_tokens(text) <= 300
            seen.append((view.seq, text))
        writer.join()
        assert not errors
        for seq, text in seen[:: max(1, len(seen) // 10)]:
            assert mem.index(as_of=seq, max_tokens=300) == text
