"""``engram bench embedders``: each candidate embedder's LoCoMo R@10, speed and size.

For every usable candidate of :data:`~engramdb.recall.embedders.CANDIDATES`:
texts/s embedding a fixed sample of LoCoMo turns (batches of 32, one thread
of this process, the model warmed first); the installed size of the package
that ships its weights; and LoCoMo R@10 over all 10 conversations, dense-only
and hybrid at the library's default weights (no fitting: the same weights
for every embedder; ``engram bench locomo --embedder NAME`` gives the held-out
figures for one). Candidates that cannot run here are listed with the reason.
Vectors are cached on disk like ``engram bench locomo``'s.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..memory import Memory
from ..recall.embedders import CANDIDATES, make_embedder
from .common import Report
from .locomo import (
    CATEGORIES,
    SYSTEMS,
    DiskCachedEmbedder,
    _Conversation,
    _evaluate,
    _table,
    _turn,
    clean_evidence,
    ingest,
    load_locomo,
)

__all__ = ["run"]

_SAMPLE = 256


def _package_mb(requirement: str) -> float | None:
    """Installed size (MB) of the distribution a requirement names, if installed."""
    name = requirement.split("==")[0].split(" ")[0]
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    total = 0
    for f in dist.files or []:
        with contextlib.suppress(OSError):
            total += f.locate().stat().st_size  # type: ignore[union-attr]
    return total / 1e6


def _speed(embedder: Any, texts: Sequence[str]) -> float:
    embedder.embed(list(texts[:8]))
    t0 = time.perf_counter()
    for i in range(0, len(texts), 32):
        embedder.embed(list(texts[i: i + 32]))
    return len(texts) / (time.perf_counter() - t0)


def run(
    *,
    path: str = "../shared/data/locomo10.json",
    out: str = "bench-results/embedders.json",
    names: Sequence[str] | None = None,
    limit: int | None = None,
    cache: str | None = "bench-results/cache",
    progress: Callable[[str], None] = lambda _m: None,
) -> Report:
    data = load_locomo(path)[:limit]
    sample = [_turn(t)["text"] for s in data for k, v in s["conversation"].items()
              if k.startswith("session_") and isinstance(v, list) for t in v][:_SAMPLE]
    report = Report("embedders", params={"data": path, "conversations": len(data),
                                         "speed_sample": len(sample)})
    for name, (package, what, status) in CANDIDATES.items():
        if names is not None and name not in names:
            continue
        if status.startswith("not usable"):
            report.add(f"{name} ({what})", float("nan"), "R@10", note=f"{package}: {status}")
            continue
        progress(f"{name}: measuring speed")
        inner = make_embedder(name)
        speed = _speed(inner, sample)
        emb = DiskCachedEmbedder(inner, cache)
        progress(f"{name}: ingesting LoCoMo")
        convs = []
        for sample_ in data:
            mem = Memory.open(":memory:", embedder=emb)
            _, now = ingest(mem, sample_)
            qs = [(str(qa["question"]), CATEGORIES.get(qa.get("category"), "?"), ev)
                  for qa in sample_["qa"] if (ev := clean_evidence(qa.get("evidence", [])))]
            convs.append(_Conversation(mem, now, qs))
        emb.save()
        cells = {}
        for system in ("hybrid", "dense"):
            cells[system] = _table(_evaluate(convs, None, SYSTEMS[system]))["overall"]["R@10"]
        emb.save()
        for conv in convs:
            conv.mem.close()
        size = _package_mb(package or "")
        report.add(f"{name} ({what})", cells["hybrid"], "R@10",
                   note=f"dense-only {cells['dense']:.3f}  {speed:.0f} texts/s  "
                        f"package {'n/a' if size is None else f'{size:.0f} MB'} ({package})")
    report.write(out)
    return report
