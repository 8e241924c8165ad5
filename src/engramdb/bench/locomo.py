"""``engram bench locomo``: held-out evidence recall on LoCoMo, beside its baselines.

For each of the 10 conversations: a fresh in-memory store, every session
ingested with :meth:`Memory.ingest_conversation` at its session date (turn
ids kept as ``dia_id``; shared photos' captions appended to the turn). Each
question is asked at the time of the conversation's last session (``now=``).
LoCoMo's retrieval metric (evidence is turn level): per question, the fraction
of its evidence dialog ids among the top-k recalled turns, averaged per
category and overall, for k = 5, 10, 25 (``R@k``). Session level (``S@k``,
k = 1, 3, 5): the fraction of the evidence's sessions among the first k
distinct sessions of the ranking, a session ranking where its best turn does.

Held out: the conversations are split into two folds (1-5 and 6-10). The
fusion weights (:class:`~engramdb.recall.engine.RecallWeights`) are fitted on
one fold by coordinate ascent over a fixed grid (:data:`GRID`), maximising the
fold's mean R@10: starting from the defaults, each weight in turn takes the
grid value that scores best with the others held, until a full pass changes
nothing (at most :data:`PASSES` passes). The fitted weights are then scored on
the other fold, which took no part in choosing them. Both folds are reported
and their mean, beside BM25-only and dense-only recall from the same stores
(neither has a tuned parameter) and the library's default weights (which were
tuned on LoCoMo earlier, so that row is in-sample).

Query vectors and turn vectors can be cached on disk (``cache=``), keyed by
model id and a hash of the text, so repeated runs do not re-embed.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np

from ..memory import Memory
from ..recall.embed import CachedEmbedder, Embedder, default_embedder
from ..recall.engine import RecallWeights
from .common import Report

__all__ = ["GRID", "DiskCachedEmbedder", "clean_evidence", "fit", "load_locomo", "run", "score"]

KS = (5, 10, 25)
SESSION_KS = (1, 3, 5)  # session level: evidence sessions among the first k sessions ranked
METRICS = (*(f"R@{k}" for k in KS), *(f"S@{k}" for k in SESSION_KS))
SYSTEMS: dict[str, tuple[str, ...]] = {
    "hybrid": ("vector", "text", "graph", "recency"),
    "bm25": ("text",),
    "dense": ("vector",),
}
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
FOLDS = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))
PASSES = 3
_DEPTH = 50  # turns recalled per question: the top 25, and the first 5 sessions ranked
# the values coordinate ascent tries for each weight (text stays 1.0: the scale)
GRID: dict[str, tuple[Any, ...]] = {
    "vector": (0.0, 0.25, 0.5, 0.75, 1.0, 1.5),
    "next": (0.0, 0.1, 0.25, 0.5, 0.75),
    "prev": (0.0, 0.1, 0.2, 0.4),
    "session": (0.0, 0.1, 0.25, 0.5, 1.0),
    "session_mode": ("share", "scale"),
    "session_agg": ("max", "sum"),
    "graph": (0.0, 0.15, 0.3, 0.6),
    "recency": (0.0, 0.02, 0.1),
    "time": (0.0, 0.1, 0.3, 0.6, 1.0),
    "entity": (0.0, 0.1, 0.25, 0.5),
    "speaker": (0.0, 0.1, 0.25, 0.5),
    "speaker_mode": ("share", "scale"),
}


def clean_evidence(raw: Iterable[Any]) -> list[str]:
    """Dialog ids as ``D<session>:<turn>``; fixes the few malformed ones in the file
    (``'D8:6; D9:17'``, ``'D:11:26'``) and drops what cannot be read (``'D'``)."""
    out: list[str] = []
    for item in raw:
        for part in re.split(r"[;,\s]+", str(item)):
            m = re.fullmatch(r"D:?(\d+):(\d+)", part.strip())
            if m:
                out.append(f"D{int(m.group(1))}:{int(m.group(2))}")
    return list(dict.fromkeys(out))


def load_locomo(path: str) -> list[dict[str, Any]]:
    with open(path) as fh:
        data = json.load(fh)
    if not isinstance(data, list) or not data or "conversation" not in data[0]:
        raise ValueError(f"{path} is not a LoCoMo file (a list of samples with 'conversation')")
    return data  # type: ignore[no-any-return]


def _sessions(conversation: dict[str, Any]) -> list[tuple[str, str | None, list[dict[str, Any]]]]:
    found = []
    for key, turns in conversation.items():
        m = re.fullmatch(r"session_(\d+)", key)
        if not m or not isinstance(turns, list):
            continue
        found.append((int(m.group(1)), key, conversation.get(f"{key}_date_time"), turns))
    return [(key, when, turns) for _, key, when, turns in sorted(found)]


def _turn(turn: dict[str, Any]) -> dict[str, Any]:
    text = str(turn.get("text", ""))
    caption = turn.get("blip_caption")
    if caption:
        text = f"{text} [shares a photo: {caption}]"
    return {"speaker": turn.get("speaker"), "text": text, "id": turn.get("dia_id")}


def ingest(mem: Memory, sample: dict[str, Any]) -> tuple[int, datetime | None]:
    """Every session of ``sample`` at its date; returns (turns, the last session's date)."""
    n, last = 0, None
    for key, when, turns in _sessions(sample["conversation"]):
        nodes = mem.ingest_conversation([_turn(t) for t in turns], session=key, at=when,
                                        source="locomo")
        n += len(turns)
        if nodes and nodes[-1].valid_from is not None:
            last = max(last or nodes[-1].valid_from, nodes[-1].valid_from)
    return n, None if last is None else datetime.fromtimestamp(last / 1e6)


def score(found: list[str], evidence: list[str], k: int) -> float:
    top = set(found[:k])
    return sum(1 for e in evidence if e in top) / len(evidence)


def session_of(dia_id: str) -> str:
    """``D3:5`` -> ``D3``: the session a dialog id belongs to."""
    return dia_id.split(":", 1)[0]


def session_score(found: list[str], evidence: list[str], k: int) -> float:
    """Session level: the fraction of the evidence's sessions among the first ``k``
    distinct sessions of the ranking (a session ranks where its best turn does)."""
    ranked = list(dict.fromkeys(session_of(f) for f in found))[:k]
    wanted = {session_of(e) for e in evidence}
    return len(wanted & set(ranked)) / len(wanted)


class DiskCachedEmbedder(CachedEmbedder):
    """A :class:`CachedEmbedder` whose entries persist in one ``.npz`` file per model."""

    def __init__(self, inner: Embedder, directory: str | None) -> None:
        super().__init__(inner, max_entries=10_000_000)
        self.path = None if directory is None else os.path.join(
            directory, f"embeddings-{re.sub(r'[^A-Za-z0-9_.-]', '_', inner.model_id)}.npz")
        self._saved = 0
        if self.path and os.path.exists(self.path):
            with np.load(self.path) as data:
                keys, vecs = data["keys"], data["vectors"]
            self._store([(inner.model_id, bytes(k)) for k in keys], vecs)
            self._saved = len(keys)

    def save(self) -> None:
        if self.path is None or len(self) == self._saved:
            return
        with self._lock:
            items = list(self._entries.items())
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        keys = np.array([k[1] for k, _ in items], dtype="S16")
        np.savez(self.path, keys=keys, vectors=np.stack([v for _, v in items]))
        self._saved = len(items)


@dataclass
class _Conversation:
    mem: Memory
    now: datetime | None
    questions: list[tuple[str, str, list[str]]]  # (question, category, evidence)


def _results(conv: _Conversation, weights: RecallWeights | None, signals: Sequence[str]
             ) -> list[tuple[str, tuple[float, ...]]]:
    """(category, (R@5, R@10, R@25, S@1, S@3, S@5)) per question of ``conv``."""
    if weights is not None:
        conv.mem.weights = weights
    out = []
    for question, cat, evidence in conv.questions:
        hits = conv.mem.recall(question, k=_DEPTH, signals=signals, now=conv.now)
        found = [str(h.node.attrs.get("dia_id")) for h in hits]
        out.append((cat, (*(score(found, evidence, k) for k in KS),
                          *(session_score(found, evidence, k) for k in SESSION_KS))))
    return out


def _evaluate(convs: Sequence[_Conversation], weights: RecallWeights | None,
              signals: Sequence[str]) -> list[tuple[str, tuple[float, ...]]]:
    return [r for conv in convs for r in _results(conv, weights, signals)]


def _mean_r10(results: Sequence[tuple[str, tuple[float, ...]]]) -> float:
    return sum(r[1] for _, r in results) / max(len(results), 1)


def fit(convs: Sequence[_Conversation], start: RecallWeights, *,
        grid: dict[str, tuple[Any, ...]] = GRID, passes: int = PASSES,
        progress: Callable[[str], None] = lambda _m: None) -> tuple[RecallWeights, float, int]:
    """Coordinate ascent over ``grid`` maximising mean R@10 on ``convs`` (the training fold).

    Returns the weights, their training R@10 and the number of evaluations."""
    best = start
    best_score = _mean_r10(_evaluate(convs, best, SYSTEMS["hybrid"]))
    seen = {_key(best): best_score}
    for _ in range(passes):
        changed = False
        for name, values in grid.items():
            for value in values:
                trial = replace(best, **{name: value})
                key = _key(trial)
                if key not in seen:
                    seen[key] = _mean_r10(_evaluate(convs, trial, SYSTEMS["hybrid"]))
                if seen[key] > best_score + 1e-9:
                    best, best_score, changed = trial, seen[key], True
            progress(f"fit: {name}={getattr(best, name)} R@10 {best_score:.4f}")
        if not changed:
            break
    return best, best_score, len(seen)


def _key(w: RecallWeights) -> tuple[Any, ...]:
    return tuple(sorted(asdict(w).items()))


def _table(results: Sequence[tuple[str, tuple[float, ...]]]) -> dict[str, dict[str, Any]]:
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(METRICS))
    counts: dict[str, int] = defaultdict(int)
    for cat, values in results:
        for group in (cat, "overall", *(() if cat == "adversarial" else ("overall-no-adv",))):
            counts[group] += 1
            for i, v in enumerate(values):
                sums[group][i] += v
    return {g: {"n": counts[g], **{m: sums[g][i] / counts[g] for i, m in enumerate(METRICS)}}
            for g in counts}


def build(data: Sequence[dict[str, Any]], emb: DiskCachedEmbedder,
          progress: Callable[[str], None] = lambda _m: None) -> tuple[list[_Conversation], int]:
    """One in-memory store per conversation, its questions, query vectors embedded."""
    convs: list[_Conversation] = []
    turns = 0
    for i, sample in enumerate(data):
        mem = Memory.open(":memory:", embedder=emb)
        n, now = ingest(mem, sample)
        turns += n
        questions = []
        for qa in sample["qa"]:
            evidence = clean_evidence(qa.get("evidence", []))
            if evidence:
                cat = CATEGORIES.get(qa.get("category"), str(qa.get("category")))
                questions.append((str(qa["question"]), cat, evidence))
        convs.append(_Conversation(mem, now, questions))
        progress(f"ingested conversation {i + 1}/{len(data)}")
    emb.embed([q for c in convs for q, _, _ in c.questions])  # query vectors, once
    emb.save()
    return convs, turns


def split(convs: list[_Conversation]) -> list[list[_Conversation]]:
    """The two folds (conversations 1-5 and 6-10; halves when fewer than 6)."""
    folds = [[convs[i] for i in fold if i < len(convs)] for fold in FOLDS]
    folds = [f for f in folds if f]
    if len(folds) < 2:  # fewer than 6 conversations: split what there is in two
        half = max(1, len(convs) // 2)
        folds = [convs[:half], convs[half:]] if len(convs) > 1 else [convs, convs]
    return folds


def run(
    *,
    path: str = "../shared/data/locomo10.json",
    out: str = "bench-results/locomo.json",
    limit: int | None = None,
    embedder: Embedder | None = None,
    cache: str | None = "bench-results/cache",
    grid: dict[str, tuple[Any, ...]] = GRID,
    passes: int = PASSES,
    start: RecallWeights | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> Report:
    data = load_locomo(path)[:limit]
    emb = DiskCachedEmbedder(embedder or default_embedder(), cache)
    start = start or RecallWeights()
    t0 = time.perf_counter()
    convs, turns = build(data, emb, progress)
    t_ingest = time.perf_counter() - t0
    folds = split(convs)
    report = Report("locomo", params={
        "data": os.path.basename(path), "ks": list(KS), "session_ks": list(SESSION_KS),
        "model": emb.model_id,
        "folds": [[convs.index(c) + 1 for c in f] for f in folds],
        "fit": f"coordinate ascent over GRID, <= {passes} passes, max mean R@10 on the train fold",
        "grid": {k: list(v) for k, v in grid.items()}, "start": asdict(start),
    })
    held: dict[str, list[tuple[str, tuple[float, ...]]]] = defaultdict(list)
    per_fold: list[dict[str, Any]] = []
    t_query: dict[str, float] = defaultdict(float)
    n_query = 0
    for f, test in enumerate(folds):
        train = folds[1 - f]
        progress(f"fold {f + 1}: fitting on conversations {report.params['folds'][1 - f]}")
        fitted, train_r10, evaluations = fit(train, start, grid=grid, passes=passes,
                                             progress=progress)
        rows: dict[str, Any] = {}
        for system, weights in (("hybrid", fitted), ("bm25", start), ("dense", start),
                                ("default", start)):
            t0 = time.perf_counter()
            res = _evaluate(test, weights, SYSTEMS["hybrid" if system == "default" else system])
            t_query[system] += time.perf_counter() - t0
            held[system] += res
            rows[system] = _table(res)
        n_query += sum(len(c.questions) for c in test)
        per_fold.append({"test": report.params["folds"][f], "train": report.params["folds"][1 - f],
                         "weights": asdict(fitted), "train_R@10": train_r10,
                         "evaluations": evaluations, "results": rows})
    report.params["per_fold"] = per_fold
    pooled = {system: _table(res) for system, res in held.items()}
    report.params["held_out"] = pooled
    groups = ["overall", "overall-no-adv", *CATEGORIES.values()]
    for group in groups:
        if group not in pooled["hybrid"]:
            continue
        n = pooled["hybrid"][group]["n"]
        for metric in METRICS:
            cell = {s: pooled[s][group][metric] for s in pooled}
            folds_note = " / ".join(f"{pf['results']['hybrid'][group][metric]:.3f}"
                                    for pf in per_fold if group in pf["results"]["hybrid"])
            report.add(
                f"held-out {metric} {group} (n={n})", cell["hybrid"], "recall",
                target=">= 0.80" if (group, metric) == ("overall", "R@10") else "",
                note=f"folds {folds_note}  bm25 {cell['bm25']:.3f}  dense {cell['dense']:.3f}"
                     f"  default-weights {cell['default']:.3f}",
            )
    report.add("ingest", turns / max(t_ingest, 1e-9), "turns/s",
               note=f"{turns} turns, embedding included unless cached "
                    f"({emb.misses} texts embedded this run)")
    for system in ("hybrid", "bm25", "dense"):
        report.add(f"query latency {system}", t_query[system] / max(n_query, 1) * 1000,
                   "ms/query", note="query vector cached")
    for conv in convs:
        conv.mem.close()
    emb.save()
    report.write(out)
    return report
