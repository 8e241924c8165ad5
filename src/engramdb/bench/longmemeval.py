"""``engram bench longmemeval``: LongMemEval's retrieval metric, computed the official way.

LongMemEval (Wu et al., ICLR 2025) gives each question its own haystack of
timestamped chat sessions. Its retrieval evaluation (``src/retrieval/
run_retrieval.py`` and ``src/retrieval/eval_utils.py`` in the LongMemEval
repository) indexes, per question, either one document per session (the
session's user turns joined by spaces) or one document per user turn, ranks them
by the question, and scores the ranking with recall_any@k, recall_all@k and
ndcg_any@k for k in 1, 3, 5, 10, 30, 50. This module rebuilds that corpus
exactly (same ids, same gold), lets engramdb do the ranking -- a fresh
in-memory store per question, its haystack remembered at the session dates --
and applies the same formulas, quirks included. Three systems answer from the
same stores in the same run: hybrid (all signals), BM25 only and dense only.

The dataset is not shipped; point the command at ``longmemeval_s.json`` (or any
file of the same format).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from ..errors import InvalidInput
from ..memory import Memory
from ..recall.embed import CachedEmbedder, Embedder, default_embedder
from .common import Report

__all__ = [
    "KS",
    "Corpus",
    "build_corpus",
    "dcg",
    "evaluate_retrieval",
    "evaluate_turn2session",
    "has_user_evidence",
    "load_longmemeval",
    "run",
]

#: run_retrieval.py: ``for k in [1, 3, 5, 10, 30, 50]``.
KS = (1, 3, 5, 10, 30, 50)
SYSTEMS: dict[str, tuple[str, ...]] = {
    "hybrid": ("vector", "text", "graph", "recency"),
    "bm25": ("text",),
    "dense": ("vector",),
}
GRANULARITIES = ("session", "turn")
_FIELDS = ("question_id", "question_type", "question", "haystack_session_ids",
           "haystack_sessions", "haystack_dates")
_MAX_K = 1000  # Memory.recall's largest k


# -- the official corpus and metric ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Corpus:
    """One question's documents: ids (official naming), texts, session dates."""

    ids: list[str]
    texts: list[str]
    sessions: list[str]
    dates: list[str]

    @property
    def gold(self) -> list[str]:
        # run_retrieval.py: correct_docs = list(set([doc_id for doc_id in corpus_ids
        #                                            if "answer" in doc_id]))
        return sorted({d for d in self.ids if "answer" in d})


def build_corpus(entry: Mapping[str, Any], granularity: str) -> Corpus:
    """The documents ``process_item_flat_index`` (run_retrieval.py) makes for a question.

    * session: one document per session, its user turns' contents joined by a
      space; id = the session id, except that an ``answer`` session none of whose
      user turns has ``has_answer`` is renamed ``answer`` -> ``noans``;
    * turn: one document per user turn; id = ``<session id>_<i+1>`` where ``i`` is
      the turn's index among *all* turns of the session (assistant turns count);
      in an ``answer`` session a user turn without ``has_answer`` gets ``noans``.
    """
    if granularity not in GRANULARITIES:
        raise InvalidInput(f"granularity must be 'session' or 'turn', got {granularity!r}")
    out = Corpus([], [], [], [])
    for sess_id, session, date in zip(entry["haystack_session_ids"], entry["haystack_sessions"],
                                      entry["haystack_dates"], strict=True):
        user = [(i, t) for i, t in enumerate(session) if t.get("role") == "user"]
        if granularity == "session":
            doc_id = sess_id
            if "answer" in sess_id and not any(t.get("has_answer") for _, t in user):
                doc_id = sess_id.replace("answer", "noans")
            docs = [(doc_id, " ".join(str(t.get("content", "")) for _, t in user))]
        else:
            docs = []
            for i, turn in user:
                doc_id = f"{sess_id}_{i + 1}"
                if "answer" in sess_id and not turn.get("has_answer"):
                    doc_id = doc_id.replace("answer", "noans")
                docs.append((doc_id, str(turn.get("content", ""))))
        for doc_id, text in docs:
            out.ids.append(doc_id)
            out.texts.append(text)
            out.sessions.append(sess_id)
            out.dates.append(date)
    return out


def has_user_evidence(entry: Mapping[str, Any]) -> bool:
    """Whether a user turn of an ``answer`` session holds the answer.

    Without one the official corpus has no gold document at either granularity
    (evidence said by the assistant only is renamed ``noans``), and
    ``evaluate_retrieval`` would score the question recall_all = 1
    (``all([])``), recall_any = 0 and ndcg = 0; such questions are skipped.
    """
    return any(
        "answer" in sess_id and turn.get("role") == "user" and turn.get("has_answer")
        for sess_id, session in zip(entry["haystack_session_ids"], entry["haystack_sessions"],
                                    strict=True)
        for turn in session
    )


def dcg(relevances: Sequence[float], k: int) -> float:
    """eval_utils.dcg: ``rel[0] + sum(rel[i] / log2(i + 1) for i >= 1)`` over the top k.

    Note the official discount: the second position is divided by log2(2) = 1,
    like the first (textbook DCG would use log2(3)). Kept for comparable numbers.
    """
    rel = list(relevances)[:k]
    if not rel:
        return 0.0
    return float(rel[0]) + sum(r / math.log2(i + 1) for i, r in enumerate(rel) if i >= 1)


def _ndcg(ranked: Sequence[str], correct: set[str], corpus_ids: Sequence[str], k: int) -> float:
    # eval_utils.ndcg: the ideal ranking sorts the relevance of every corpus entry
    # (duplicates included), the actual one takes the top k of the ranking.
    ideal = dcg(sorted((1 if d in correct else 0 for d in corpus_ids), reverse=True), k)
    actual = dcg([1 if d in correct else 0 for d in ranked[:k]], k)
    return 0.0 if ideal == 0 else actual / ideal


def evaluate_retrieval(
    ranked: Sequence[str], correct: Iterable[str], corpus_ids: Sequence[str], k: int
) -> tuple[float, float, float]:
    """eval_utils.evaluate_retrieval on a ranking given as corpus ids, best first.

    recall_any: any gold id in the top k; recall_all: every gold id in the top k;
    ndcg_any: binary-relevance NDCG@k. A ranking shorter than the corpus (recall
    returns at most ``k`` hits) treats unreturned documents as ranked last.
    """
    gold = set(correct)
    recalled = set(ranked[:k])
    recall_any = float(any(d in recalled for d in gold))
    recall_all = float(all(d in recalled for d in gold))
    return recall_any, recall_all, _ndcg(ranked, gold, corpus_ids, k)


def _strip_turn(doc_id: str) -> str:
    # eval_utils.evaluate_retrieval_turn2session.strip_turn_id
    return "_".join(doc_id.split("_")[:-1])


def evaluate_turn2session(
    ranked: Sequence[str], correct: Iterable[str], corpus_ids: Sequence[str], k: int
) -> tuple[float, float, float]:
    """eval_utils.evaluate_retrieval_turn2session: session-level scores of a turn ranking.

    Turn ids lose their ``_<index>`` suffix; k grows until the top k turns cover k
    distinct sessions (or the corpus runs out); then :func:`evaluate_retrieval`.
    """
    gold = {_strip_turn(d) for d in correct}
    corpus = [_strip_turn(d) for d in corpus_ids]
    sessions = [_strip_turn(d) for d in ranked]
    effective_k = k
    while effective_k <= len(corpus) and len(set(sessions[:effective_k])) < k:
        effective_k += 1
    return evaluate_retrieval(sessions, gold, corpus, effective_k)


# -- loading -----------------------------------------------------------------------------


def load_longmemeval(path: str) -> list[dict[str, Any]]:
    """The questions of a LongMemEval JSON file, checked for the fields used here."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except FileNotFoundError as exc:
        raise InvalidInput(f"no such file: {path}", path=path) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} is not JSON: {exc}", path=path) from exc
    if not isinstance(data, list) or not data:
        raise InvalidInput(f"{path} is not a LongMemEval file (a non-empty list of questions)")
    for n, entry in enumerate(data):
        missing = [f for f in _FIELDS if not isinstance(entry, dict) or f not in entry]
        if missing:
            raise InvalidInput(f"{path}: question {n} lacks {', '.join(missing)}", index=n)
        lengths = {len(entry[f]) for f in ("haystack_session_ids", "haystack_sessions",
                                           "haystack_dates")}
        if len(lengths) != 1:
            raise InvalidInput(f"{path}: question {n} has haystack lists of different lengths",
                               index=n)
    return data


def parse_date(text: Any) -> datetime | None:
    """LongMemEval's ``"2023/05/20 (Sat) 02:21"``; None if it is not in that form."""
    if not isinstance(text, str):
        return None
    for fmt in ("%Y/%m/%d (%a) %H:%M", "%Y/%m/%d"):
        try:
            return datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
    return None


# -- running ------------------------------------------------------------------------------


def ingest(mem: Memory, corpus: Corpus, granularity: str) -> None:
    """Remember a question's documents, each at its session's date.

    Turns go in through :meth:`Memory.ingest_conversation`, one conversation per
    session (so they are linked in order and share the session signal); sessions
    as one memory each. Every memory keeps its official id as ``corpus_id``.
    """
    if granularity == "session":
        mem.remember_many(
            {"text": text, "kind": "session", "domain": "conversation",
             "valid_from": parse_date(date), "source": "longmemeval",
             "attrs": {"corpus_id": doc_id, "haystack_session": sess}}
            for doc_id, text, sess, date in zip(corpus.ids, corpus.texts, corpus.sessions,
                                                corpus.dates, strict=True)
        )
        return
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    dates: dict[str, str] = {}
    for doc_id, text, sess, date in zip(corpus.ids, corpus.texts, corpus.sessions, corpus.dates,
                                        strict=True):
        by_session[sess].append({"text": text, "attrs": {"corpus_id": doc_id}})
        dates[sess] = date
    for sess, turns in by_session.items():
        mem.ingest_conversation(turns, session=sess, at=parse_date(dates[sess]),
                                source="longmemeval")


@dataclass
class _Scores:
    """Per-question metric values, grouped for averaging."""

    values: dict[tuple[str, str, str, str], list[float]] = field(
        default_factory=lambda: defaultdict(list))  # (system, level, group, metric) -> values
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, system: str, level: str, groups: Sequence[str], ks: Sequence[int],
            score: Callable[[int], tuple[float, float, float]]) -> dict[str, float]:
        row: dict[str, float] = {}
        for k in ks:
            for name, value in zip(("recall_any", "recall_all", "ndcg_any"), score(k),
                                   strict=True):
                row[f"{name}@{k}"] = value
                for group in groups:
                    self.values[(system, level, group, f"{name}@{k}")].append(value)
        return row

    def mean(self, system: str, level: str, group: str, metric: str) -> float:
        vals = self.values.get((system, level, group, metric), [])
        return sum(vals) / len(vals) if vals else float("nan")


def run(
    *,
    path: str,
    granularity: str = "session",
    ks: Sequence[int] = KS,
    out: str = "bench-results/longmemeval.json",
    limit: int | None = None,
    embedder: Embedder | None = None,
    systems: Sequence[str] = tuple(SYSTEMS),
    progress: Callable[[int, int], None] = lambda _done, _total: None,
) -> Report:
    """Score every question; returns the report (also written to ``out`` as JSON)."""
    if granularity not in GRANULARITIES:
        raise InvalidInput(f"granularity must be 'session' or 'turn', got {granularity!r}")
    ks = sorted(set(ks))
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise InvalidInput("k values must be positive integers")
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or not systems:
        raise InvalidInput(f"systems must be among {sorted(SYSTEMS)}, got {list(systems)}")
    data = load_longmemeval(path)[:limit]
    emb = CachedEmbedder(embedder or default_embedder(), max_entries=500_000)
    levels = ("session", "turn") if granularity == "turn" else ("session",)
    scores = _Scores()
    questions: list[dict[str, Any]] = []
    skipped = {"abstention": 0, "no_user_evidence": 0}
    timing = {"ingest_s": 0.0, "docs": 0, "embed_s": 0.0}
    query_s: dict[str, float] = defaultdict(float)
    for done, entry in enumerate(data, start=1):
        qid = str(entry["question_id"])
        if "_abs" in qid:  # run_retrieval.py averages over '_abs' not in question_id
            skipped["abstention"] += 1
        elif not has_user_evidence(entry):
            skipped["no_user_evidence"] += 1
        else:
            questions.append(_one(entry, granularity, ks, systems, emb, scores, timing, query_s))
        progress(done, len(data))
    return _report(scores, questions, skipped, timing, query_s, emb,
                   params={"data": os.path.basename(path), "granularity": granularity,
                           "ks": list(ks), "systems": list(systems), "questions": len(data),
                           "model": emb.model_id},
                   levels=levels, out=out)


def _one(
    entry: Mapping[str, Any], granularity: str, ks: Sequence[int], systems: Sequence[str],
    emb: Embedder, scores: _Scores, timing: dict[str, Any], query_s: dict[str, float],
) -> dict[str, Any]:
    corpus = build_corpus(entry, granularity)
    gold = corpus.gold
    qtype = str(entry["question_type"])
    groups = ("overall", qtype)
    for group in groups:
        scores.counts[group] += 1
    result: dict[str, Any] = {"question_id": entry["question_id"], "question_type": qtype,
                              "gold": gold, "metrics": {}}
    with Memory.open(":memory:", embedder=emb) as mem:
        t0 = time.perf_counter()
        ingest(mem, corpus, granularity)
        timing["ingest_s"] += time.perf_counter() - t0
        timing["docs"] += len(corpus.ids)
        want = max(1, min(_MAX_K, len(corpus.ids)))  # the whole ranking, as far as recall goes
        t0 = time.perf_counter()
        emb.embed([str(entry["question"])])  # cached now: systems are timed without it
        timing["embed_s"] += time.perf_counter() - t0
        for system in systems:
            t0 = time.perf_counter()
            hits = mem.recall(str(entry["question"]), k=want, signals=SYSTEMS[system])
            query_s[system] += time.perf_counter() - t0
            ranked = [str(h.node.attrs["corpus_id"]) for h in hits]
            metrics = {granularity: scores.add(
                system, granularity, groups, ks,
                partial(evaluate_retrieval, ranked, gold, corpus.ids))}
            if granularity == "turn":  # run_retrieval.py also scores turns at session level
                metrics["session"] = scores.add(
                    system, "session", groups, ks,
                    partial(evaluate_turn2session, ranked, gold, corpus.ids))
            result["metrics"][system] = {"ranked": ranked[: max(ks)], **metrics}
    return result


class _Report(Report):
    """The results table plus every question's ranking and scores in the JSON."""

    def __init__(self, name: str, params: dict[str, Any], questions: list[dict[str, Any]]):
        super().__init__(name, params=params)
        self.questions = questions

    def write(self, path: str) -> str:
        super().write(path)
        with open(path) as fh:
            doc = json.load(fh)
        doc["questions"] = self.questions
        with open(path, "w") as fh:
            json.dump(doc, fh, indent=2)
        return path


def _report(
    scores: _Scores, questions: list[dict[str, Any]], skipped: dict[str, int],
    timing: dict[str, Any], query_s: dict[str, float], emb: CachedEmbedder,
    *, params: dict[str, Any], levels: Sequence[str], out: str,
) -> Report:
    params = {**params, "evaluated": len(questions), "skipped": skipped}
    report = _Report("longmemeval", params, questions)
    systems = params["systems"]
    main, others = systems[0], systems[1:]
    groups = ["overall", *sorted(g for g in scores.counts if g != "overall")]
    for level in levels:
        for group in groups:
            n = scores.counts[group]
            # print_retrieval_metrics.py prints recall_all and ndcg_any at 5 and 10 (and 50
            # for turns); the table shows recall_all first, per type at 5 and 10 only.
            shown = [k for k in params["ks"] if group == "overall" or k in (5, 10)]
            for k in shown:
                def cell(metric: str, system: str = main, k: int = k, group: str = group,
                         level: str = level) -> float:
                    return scores.mean(system, level, group, f"{metric}@{k}")
                note = (f"{main}; recall_any {cell('recall_any'):.3f} "
                        f"ndcg_any {cell('ndcg_any'):.3f}")
                for other in others:
                    note += f" | {other} all {cell('recall_all', other):.3f}"
                report.add(f"{level} {group} (n={n}) @{k}", cell("recall_all"), "recall_all",
                           note=note)
    report.add("skipped", skipped["abstention"] + skipped["no_user_evidence"], "questions",
               note=f"{skipped['abstention']} _abs, {skipped['no_user_evidence']} "
                    "without a user-side has_answer turn")
    n = max(len(questions), 1)
    report.add("ingest", timing["docs"] / max(timing["ingest_s"], 1e-9), "docs/s",
               note=f"embedding included; cache hits {emb.hits:,}, misses {emb.misses:,}")
    report.add("query embedding", timing["embed_s"] / n * 1000, "ms/query")
    for system in systems:
        report.add(f"query latency {system}", query_s[system] / n * 1000, "ms/query",
                   note="query embedding excluded; whole ranking returned")
    for level in levels:
        report.params[f"{level}_metrics"] = {
            system: {group: {metric: scores.mean(system, level, group, metric)
                             for metric in (f"{m}@{k}" for k in params["ks"]
                                            for m in ("recall_any", "recall_all", "ndcg_any"))}
                     for group in groups}
            for system in systems
        }
    report.write(out)
    return report
