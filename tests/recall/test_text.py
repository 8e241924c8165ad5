"""Tests for the BM25 text index: scores vs a reference, writes, filters, snapshots."""

from __future__ import annotations

import math
import random
import threading
from collections import Counter

import numpy as np
import pytest

from engramdb.errors import CorruptStore, InvalidInput, NotFound
from engramdb.recall.text import STOPWORDS, TextIndex, _distinct, stem, tokenize

WORDS = (
    "apple river painting caroline melanie support group camping beach guitar "
    "pottery sunrise adoption school counseling 2023 7 may running runs hiking "
    "dog cat book concert friends family kids work photo cake birthday"
).split()
FILLER = ["the", "and", "I", "was", "with", "to", "of"]

QUERIES = [
    "When did Caroline go to the LGBTQ support group?",
    "What did Melanie paint? a sunrise",
    "apple",
    "running with the dog on the beach in May 2023",
    "kids birthday cake photo concert friends family work book",
    "caroline caroline melanie",
    "counseling school adoption",
]


def make_corpus(n: int, seed: int = 1) -> dict[int, str]:
    """``n`` short random docs over a small Zipf-ish vocabulary (many shared terms, ties)."""
    rng = random.Random(seed)
    weights = [1.0 / (i + 1) for i in range(len(WORDS))]
    docs = {}
    for key in range(n):
        words = rng.choices(WORDS, weights=weights, k=rng.randint(1, 14))
        words += rng.sample(FILLER, rng.randint(0, 3))
        rng.shuffle(words)
        docs[key * 3 + 1] = " ".join(words)  # non-contiguous keys
    return docs


def reference(docs: dict[int, str], query: str, k1: float = 1.2, b: float = 0.75) -> list:
    """Textbook BM25 (Lucene idf), each distinct query term once, ties by key."""
    toks = {key: tokenize(text) for key, text in docs.items()}
    n = len(toks)
    avgdl = sum(len(t) for t in toks.values()) / n if n else 0.0
    df = Counter(term for t in toks.values() for term in set(t))
    out = []
    for key, t in toks.items():
        tf = Counter(t)
        score, matched = 0.0, False
        for term in dict.fromkeys(tokenize(query)):
            if tf[term]:
                matched = True
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                denom = tf[term] + k1 * (1 - b + b * len(t) / avgdl)
                score += idf * tf[term] * (k1 + 1) / denom
        if matched:
            out.append((key, score))
    out.sort(key=lambda kv: (-kv[1], kv[0]))
    return out


def build(docs: dict[int, str]) -> TextIndex:
    index = TextIndex()
    for key, text in docs.items():
        index.add(key, text)
    return index


def assert_same(got: list, want: list) -> None:
    """Same keys in the same order, scores within 1e-6 relative."""
    assert [k for k, _ in got] == [k for k, _ in want]
    for (_, gs), (_, ws) in zip(got, want, strict=True):
        assert gs == pytest.approx(ws, rel=1e-6)


# ---------------------------------------------------------------- tokenizer


def test_tokenize_stems_inflections_to_the_same_term() -> None:
    assert stem("running") == stem("runs") == stem("run") == "run"
    assert tokenize("Painting paints painted") == [stem("paint")] * 3
    assert tokenize("Caroline's dogs") == ["caroline", "dog"]
    assert [stem(w) for w in ("caresses", "ponies", "hopping", "hoped", "agreed")] == [
        "caress",
        "poni",
        "hop",
        "hope",
        "agree",
    ]


def test_tokenize_lowercases_splits_drops_stopwords_keeps_numbers() -> None:
    toks = tokenize("When did Caroline go to the LGBTQ support-group on 7 May 2023?")
    assert toks == ["caroline", "go", "lgbtq", "support", "group", "7", "mai", "2023"]
    assert not set(toks) & STOPWORDS
    assert tokenize("the and of to") == []
    assert tokenize("") == []
    assert tokenize("snake_case x2 3.14") == ["snake", "case", "x2", "3", "14"]


def test_query_and_document_share_the_tokenizer() -> None:
    index = build({1: "She was RUNNING marathons", 2: "cats sleep"})
    assert [k for k, _ in index.search("runs marathon", 5)] == [1]


# -------------------------------------------------------------------- scoring


@pytest.mark.parametrize("query", QUERIES)
def test_scores_match_reference(query: str) -> None:
    docs = make_corpus(300)
    index = build(docs)
    want = reference(docs, query)
    assert want, "corpus should match every test query"
    assert_same(index.search(query, len(docs)), want)
    assert_same(index.search(query, 5), want[:5])


def test_top_k_is_a_prefix_of_the_full_ranking_despite_ties() -> None:
    docs = dict.fromkeys(range(50), "apple pie") | {100: "apple", 101: "pie pie"}
    index = build(docs)
    full = index.search("apple pie", 100)
    assert_same(full, reference(docs, "apple pie"))
    for k in (1, 3, 10, 49):
        assert index.search("apple pie", k) == full[:k]


def test_search_many_equals_search() -> None:
    index = build(make_corpus(120))
    assert index.search_many(QUERIES, 7) == [index.search(q, 7) for q in QUERIES]


@pytest.mark.parametrize("query", ["", "   ", "?!", "the and of", "zzzunknown", "7777"])
def test_empty_or_unmatched_query_returns_empty(query: str) -> None:
    assert build(make_corpus(50)).search(query, 10) == []


def test_degenerate_inputs_return_empty() -> None:
    assert TextIndex().search("apple", 10) == []
    index = build({1: "apple"})
    assert index.search("apple", 0) == []
    assert index.search("apple", -3) == []


def test_document_without_terms_is_a_member_that_never_matches() -> None:
    index = build({1: "the and", 2: "apple"})
    assert len(index) == 2 and 1 in index
    assert [k for k, _ in index.search("apple the", 10)] == [2]


# --------------------------------------------------------------------- writes


def test_removes_and_updates_are_honoured_and_stats_follow() -> None:
    docs = make_corpus(300, seed=2)
    index = build(docs)
    rng = random.Random(3)
    for key in rng.sample(sorted(docs), 150):  # enough dead slots to trigger compaction
        index.remove(key)
        del docs[key]
    for key in rng.sample(sorted(docs), 40):
        docs[key] = "caroline adoption " + docs[key][::-1]
        index.update(key, docs[key])
    index.update(10_000, "brand new caroline")  # update of an absent key adds it
    docs[10_000] = "brand new caroline"
    assert len(index) == len(docs)
    for query in QUERIES:
        assert_same(index.search(query, len(docs) + 10), reference(docs, query))


def test_removed_text_is_forgotten() -> None:
    index = build({1: "apple banana", 2: "banana"})
    index.remove(1)
    assert index.search("apple", 10) == []
    assert [k for k, _ in index.search("banana", 10)] == [2]
    index.update(2, "cherry")
    assert index.search("banana", 10) == []
    assert [k for k, _ in index.search("cherry", 10)] == [2]
    assert 1 not in index and len(index) == 1


def test_update_churn_stays_compact_and_correct() -> None:
    docs = make_corpus(40, seed=4)
    index = build(docs)
    rng = random.Random(6)
    for i in range(2_000):
        key = rng.choice(sorted(docs))
        docs[key] = f"{docs[key].split()[0]} apple {i % 7}"
        index.update(key, docs[key])
    assert index._keys.n < 4 * len(docs) + 64  # dead slots were compacted away
    for query in ["apple 3", "caroline", "river 5 apple"]:
        assert_same(index.search(query, 50), reference(docs, query))


def test_duplicate_add_and_missing_remove_raise() -> None:
    index = build({1: "apple"})
    with pytest.raises(InvalidInput):
        index.add(1, "again")
    with pytest.raises(NotFound):
        index.remove(2)
    with pytest.raises(KeyError):  # NotFound is a KeyError
        index.remove(2)
    assert [k for k, _ in index.search("apple", 5)] == [1]


@pytest.mark.parametrize("key", [2**63, -(2**63) - 1, "1", 1.0, True, None])
def test_invalid_keys_are_rejected_without_side_effects(key: object) -> None:
    index = build({1: "apple"})
    with pytest.raises(InvalidInput):
        index.add(key, "apple pie")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        index.update(key, "apple pie")  # type: ignore[arg-type]
    assert len(index) == 1 and index.search("apple pie", 5) == index.search("apple", 5)


def test_numpy_and_extreme_int_keys_work() -> None:
    import numpy as np

    index = TextIndex()
    index.add(np.int64(7), "apple")
    index.add(2**63 - 1, "apple pie")
    index.add(-(2**63), "pie")
    assert [k for k, _ in index.search("apple pie", 5)] == [2**63 - 1, -(2**63), 7]  # tie: key asc
    assert TextIndex.restore(index.snapshot()).search("pie", 5) == index.search("pie", 5)


def test_incremental_index_equals_fresh_build() -> None:
    docs = make_corpus(400, seed=5)
    index = TextIndex()
    live: dict[int, str] = {}
    for i, (key, text) in enumerate(docs.items()):
        index.add(key, text)
        live[key] = text
        if i % 3 == 2:
            victim = next(iter(live))
            index.remove(victim)
            del live[victim]
        if i % 50 == 0:  # interleave searches so pending appends flush mid-stream
            index.search("caroline apple", 3)
    fresh = build(live)
    for query in QUERIES:
        assert index.search(query, 25) == fresh.search(query, 25)


# -------------------------------------------------------------------- filters


@pytest.mark.parametrize("query", QUERIES[:5])
def test_filters_give_the_true_top_k_among_allowed(query: str) -> None:
    docs = make_corpus(300, seed=7)
    index = build(docs)
    ranked = reference(docs, query)
    top = {key for key, _ in ranked[:30]}
    allowed = {key for key in docs if key not in top and key % 2}  # excludes the head
    want = [(key, s) for key, s in ranked if key in allowed][:10]
    assert len(want) == 10
    assert_same(index.search(query, 10, allowed=allowed), want)
    assert_same(index.search(query, 10, allowed=allowed.__contains__), want)
    small = set(sorted(allowed)[:5]) | {999_999}  # smaller than the candidates; unknown key
    want_small = [(key, s) for key, s in ranked if key in small][:10]
    assert_same(index.search(query, 10, allowed=small), want_small)


def test_filters_that_allow_nothing_or_everything() -> None:
    docs = make_corpus(100)
    index = build(docs)
    assert index.search("caroline", 10, allowed=set()) == []
    assert index.search("caroline", 10, allowed=lambda key: False) == []
    everything = index.search("caroline", 10)
    assert index.search("caroline", 10, allowed=set(docs)) == everything
    assert index.search("caroline", 10, allowed=lambda key: True) == everything


def test_filters_skip_removed_docs() -> None:
    index = build({1: "apple", 2: "apple pie", 3: "apple tart"})
    index.remove(2)
    assert [k for k, _ in index.search("apple", 10, allowed={1, 2})] == [1]
    assert [k for k, _ in index.search("apple", 10, allowed=lambda key: key != 1)] == [3]


# ------------------------------------------------------------------ snapshots


def test_snapshot_restore_round_trip_is_identical() -> None:
    docs = make_corpus(300, seed=9)
    index = build(docs)
    for key in list(docs)[:40]:  # dead slots, not yet compacted
        index.remove(key)
        del docs[key]
    data = index.snapshot()
    restored = TextIndex.restore(data)
    assert len(restored) == len(index)
    for query in QUERIES:
        assert restored.search(query, 50) == index.search(query, 50)
    assert restored.snapshot() == data
    # the restored index keeps working: writes touch terms that are CSR views
    for index_ in (index, restored):
        index_.add(5_000, "caroline apple apple")
        index_.remove(list(docs)[0])
        index_.update(list(docs)[1], "melanie sunrise")
    docs[5_000] = "caroline apple apple"
    del docs[list(docs)[0]]
    docs[list(docs)[0]] = "melanie sunrise"
    for query in QUERIES:
        assert restored.search(query, 50) == index.search(query, 50)
        assert_same(restored.search(query, 400), reference(docs, query))


def test_snapshot_of_empty_index_and_parameters() -> None:
    restored = TextIndex.restore(TextIndex(k1=0.9, b=0.4).snapshot())
    assert len(restored) == 0 and restored.search("apple", 3) == []
    assert (restored.k1, restored.b) == (0.9, 0.4)
    restored.add(1, "apple")
    assert [k for k, _ in restored.search("apple", 3)] == [1]


def test_non_default_parameters_match_reference() -> None:
    docs = make_corpus(120, seed=11)
    index = TextIndex(k1=0.9, b=0.4)
    for key, text in docs.items():
        index.add(key, text)
    restored = TextIndex.restore(index.snapshot())
    want = reference(docs, QUERIES[3], k1=0.9, b=0.4)
    assert_same(restored.search(QUERIES[3], 200), want)


@pytest.mark.parametrize("data", [b"", b"not msgpack", b"\x93\x01\x02\x03"])
def test_restore_rejects_garbage(data: bytes) -> None:
    with pytest.raises(CorruptStore):
        TextIndex.restore(data)


ARRAY_FIELDS = {"term_off": 8, "docs": 4, "tfs": 4, "keys": 8, "doc_len": 8, "fwd_off": 8, "fwd": 4}


@pytest.mark.parametrize("field", sorted(ARRAY_FIELDS))
@pytest.mark.parametrize("cut", ["item", "byte"])
def test_restore_rejects_inconsistent_arrays(field: str, cut: str) -> None:
    import msgspec

    from engramdb.recall import text as mod

    wire = msgspec.msgpack.decode(build({1: "apple", 2: "pie"}).snapshot(), type=mod._Wire)
    raw = getattr(wire, field)
    short = raw[: -ARRAY_FIELDS[field]] if cut == "item" else raw[:-1]
    broken = msgspec.structs.replace(wire, **{field: short})
    with pytest.raises(CorruptStore):
        TextIndex.restore(msgspec.msgpack.encode(broken))


def test_restore_rejects_repeated_keys() -> None:
    import msgspec
    import numpy as np

    from engramdb.recall import text as mod

    wire = msgspec.msgpack.decode(build({1: "apple", 2: "pie"}).snapshot(), type=mod._Wire)
    broken = msgspec.structs.replace(wire, keys=np.array([1, 1], dtype="<i8").tobytes())
    with pytest.raises(CorruptStore):
        TextIndex.restore(msgspec.msgpack.encode(broken))


# ---------------------------------------------------------------- concurrency


def test_concurrent_searches_during_writes() -> None:
    docs = make_corpus(200, seed=13)
    index = build(docs)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                hits = index.search("caroline apple beach", 10)
                hits += index.search_many(["apple kids", "beach"], 5)[0]
                for key, score in hits:
                    assert score > 0 and isinstance(key, int)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(600):
            key = 100_000 + i
            index.add(key, "caroline apple " + docs[1 + 3 * (i % 200)])
            if i % 2:
                index.remove(key - 1)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    added = {100_000 + i: "caroline apple " + docs[1 + 3 * (i % 200)] for i in range(1, 600, 2)}
    live = docs | added
    assert len(index) == len(live)
    want = reference(live, "caroline apple beach")[:20]
    assert_same(index.search("caroline apple beach", 20), want)


# ------------------------------------------------- ranking vs the plain form


def plain_top(index: TextIndex, query: str, k: int, keep: set[int] | None) -> list:
    """The index's own BM25 scores, ranked the straightforward way: every matching
    live document, filtered, sorted by (score desc, key asc), cut at ``k``."""
    tids = [index._vocab[t] for t in dict.fromkeys(tokenize(query)) if t in index._vocab]
    tids = [t for t in tids if index._df[t] > 0]
    if not tids or k <= 0:
        return []
    scores, _ = index._accumulate(tids)
    n = index._keys.n
    keys, alive = index._keys.arr[:n].tolist(), index._alive.arr[:n].tolist()
    hits = [
        (keys[slot], float(scores[slot]))
        for slot in range(n)
        if alive[slot] and scores[slot] > 0 and (keep is None or keys[slot] in keep)
    ]
    return sorted(hits, key=lambda kv: (-kv[1], kv[0]))[:k]


@pytest.mark.parametrize("seed", range(12))
def test_search_is_the_plain_ranking_of_its_scores(seed: int) -> None:
    """Same keys, bit-identical scores and the same tie order as :func:`plain_top`,
    for every filter form, pass rate and k (the batched predicate walk included)."""
    rng = random.Random(seed)
    docs = make_corpus(rng.randint(1, 400), seed=seed)
    for key in rng.sample(sorted(docs), len(docs) // 4):  # exact duplicates: score ties
        docs[key] = docs[rng.choice(sorted(docs))]
    index = build(docs)
    for key in rng.sample(sorted(docs), min(len(docs) // 8, 60)):  # dead slots, uncompacted
        index.remove(key)
        del docs[key]
    assert index._n_dead == len(index._alive.view()) - len(docs)
    words = [*WORDS, "the", "zzz"]
    for _ in range(12):
        query = " ".join(rng.choices(words, k=rng.randint(1, 6)))
        k = rng.choice([1, 2, 5, 10, 50, 200, len(docs) + 5])
        want = plain_top(index, query, k, None)
        assert index.search(query, k) == want
        if want:
            assert_same(want, reference(docs, query)[:k])
        for rate in (0.0, 0.05, 0.3, 0.8, 1.0):
            keep = {key for key in docs if rng.random() < rate}
            want = plain_top(index, query, k, keep)
            assert index.search(query, k, allowed=keep) == want
            assert index.search(query, k, allowed=keep.__contains__) == want


def test_predicate_walk_asks_few_keys_when_most_pass() -> None:
    docs = make_corpus(3000, seed=21)
    index = build(docs)
    asked: list[int] = []

    def most(key: int) -> bool:
        asked.append(key)
        return key % 10 != 0

    got = index.search("caroline apple", 20, allowed=most)
    assert got == plain_top(index, "caroline apple", 20, {k for k in docs if k % 10})
    assert len(asked) == len(set(asked)) < 60  # the first pass, not every match
    assert len(plain_top(index, "caroline apple", 10_000, None)) > 1000


@pytest.mark.parametrize("size", [0, 1, 2, 7, 100, 5000])
def test_distinct_is_np_unique(size: int) -> None:
    rng = np.random.default_rng(size)
    for high in (3, 1000, 2**31 - 1):
        slots = rng.integers(0, high, size).astype(np.int32)
        got = _distinct(slots)
        assert got.dtype == slots.dtype
        assert np.array_equal(got, np.unique(slots))
