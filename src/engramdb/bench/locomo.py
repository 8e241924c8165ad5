"""``engram bench locomo``: evidence recall on LoCoMo, beside its baselines.

For each of the 10 conversations: a fresh in-memory store, every session
ingested with :meth:`Memory.ingest_conversation` at its session date (turn
ids kept as ``dia_id``; shared photos' captions appended to the turn), then
every question asked. LoCoMo's retrieval metric: per question, the fraction of
its evidence dialog ids found among the top-k recalled turns, averaged per
category and overall, for k = 5, 10, 25. The same stores answer three ways in
the same run: hybrid (all signals), BM25 only, and dense (MiniLM) only.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from ..memory import Memory
from ..recall.embed import CachedEmbedder, Embedder, default_embedder
from .common import Report

__all__ = ["run", "clean_evidence", "load_locomo", "score"]

KS = (5, 10, 25)
SYSTEMS: dict[str, tuple[str, ...]] = {
    "hybrid": ("vector", "text", "graph", "recency"),
    "bm25": ("text",),
    "dense": ("vector",),
}
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}


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


def _sessions(
    conversation: dict[str, Any],
) -> list[tuple[str, datetime | None, list[dict[str, Any]]]]:
    found = []
    for key, turns in conversation.items():
        m = re.fullmatch(r"session_(\d+)", key)
        if not m or not isinstance(turns, list):
            continue
        when = _parse_date(conversation.get(f"{key}_date_time"))
        found.append((int(m.group(1)), key, when, turns))
    return [(key, when, turns) for _, key, when, turns in sorted(found)]


def _parse_date(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y")
    except ValueError:
        return None


def _turn(turn: dict[str, Any]) -> dict[str, Any]:
    text = str(turn.get("text", ""))
    caption = turn.get("blip_caption")
    if caption:
        text = f"{text} [shares a photo: {caption}]"
    return {"speaker": turn.get("speaker"), "text": text, "id": turn.get("dia_id")}


def ingest(mem: Memory, sample: dict[str, Any]) -> int:
    n = 0
    for key, when, turns in _sessions(sample["conversation"]):
        mem.ingest_conversation([_turn(t) for t in turns], session=key, at=when, source="locomo")
        n += len(turns)
    return n


def score(found: list[str], evidence: list[str], k: int) -> float:
    top = set(found[:k])
    return sum(1 for e in evidence if e in top) / len(evidence)


def _dia_ids(hits: Iterable[Any]) -> list[str]:
    return [str(h.node.attrs.get("dia_id")) for h in hits]


def run(
    *,
    path: str = "../shared/data/locomo10.json",
    out: str = "bench-results/locomo.json",
    limit: int | None = None,
    embedder: Embedder | None = None,
    progress: Callable[[int, int], None] = lambda _done, _total: None,
) -> Report:
    data = load_locomo(path)[:limit]
    emb = CachedEmbedder(embedder or default_embedder())
    sums: dict[tuple[str, str, int], float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    timings = {"ingest_s": 0.0, "turns": 0, "queries": 0}
    query_s: dict[str, float] = defaultdict(float)
    total = sum(len(s["qa"]) for s in data)
    done = 0
    for sample in data:
        mem = Memory.open(":memory:", embedder=emb)
        t0 = time.perf_counter()
        timings["turns"] += ingest(mem, sample)
        timings["ingest_s"] += time.perf_counter() - t0
        for qa in sample["qa"]:
            done += 1
            evidence = clean_evidence(qa.get("evidence", []))
            if not evidence:
                continue
            cat = CATEGORIES.get(qa.get("category"), str(qa.get("category")))
            groups = (cat, "overall", *(() if cat == "adversarial" else ("overall-no-adv",)))
            for system, signals in SYSTEMS.items():
                t0 = time.perf_counter()
                hits = mem.recall(str(qa["question"]), k=max(KS), signals=signals)
                query_s[system] += time.perf_counter() - t0
                found = _dia_ids(hits)
                for k in KS:
                    value = score(found, evidence, k)
                    for group in groups:
                        sums[(system, group, k)] += value
            for group in groups:
                counts[group] += 1
            timings["queries"] += 1
            progress(done, total)
        mem.close()
    return _report(sums, counts, timings, query_s, out, path)


def _report(
    sums: dict[tuple[str, str, int], float], counts: dict[str, int], timings: dict[str, Any],
    query_s: dict[str, float], out: str, path: str,
) -> Report:
    report = Report("locomo", params={"data": os.path.basename(path), "ks": list(KS)})
    groups = ["overall", "overall-no-adv", *CATEGORIES.values()]
    for group in groups:
        n = counts.get(group, 0)
        if not n:
            continue
        for k in KS:
            cells = {s: sums[(s, group, k)] / n for s in SYSTEMS}
            report.add(
                f"R@{k} {group} (n={n})", cells["hybrid"], "recall",
                target=">= 0.75" if (group, k) == ("overall", 10) else "",
                note=f"bm25 {cells['bm25']:.3f}  dense {cells['dense']:.3f}",
            )
    report.add("ingest", timings["turns"] / max(timings["ingest_s"], 1e-9), "turns/s",
               note=f"{timings['turns']} turns, embedding included")
    for system in SYSTEMS:
        report.add(f"query latency {system}",
                   query_s[system] / max(timings["queries"], 1) * 1000, "ms/query")
    report.write(out)
    return report
