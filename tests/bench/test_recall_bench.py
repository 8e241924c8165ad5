"""The recall benchmark's plumbing: corpus, table-served embeddings, a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engramdb.bench.recall import LookupEmbedder, corpus, curve_table, run
from engramdb.errors import InvalidInput
from engramdb.recall.embed import HashingEmbedder


class Counting(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__(dim=32)
        self.seen: list[str] = []

    def embed(self, texts):  # type: ignore[no-untyped-def, override]
        self.seen.extend(texts)
        return super().embed(texts)


def test_corpus_is_distinct_and_questions_are_about_the_smallest_store() -> None:
    texts, questions = corpus(3000, 50, within=500)
    assert len(texts) == len(set(texts)) == 3000
    assert len(questions) == len(set(questions)) == 50
    assert corpus(3000, 50, within=500) == (texts, questions)  # seeded


def test_lookup_embedder_serves_the_table_and_asks_inner_for_the_rest() -> None:
    inner = Counting()
    known = inner.embed(["known text"])[0]
    inner.seen.clear()
    lookup = LookupEmbedder(inner, {"known text": known})
    out = lookup.embed(["known text", "new text"])
    assert inner.seen == ["new text"] and lookup.computed == 1
    assert np.array_equal(out[0], known)
    assert np.allclose(out[1], HashingEmbedder(dim=32).embed(["new text"])[0])
    assert (lookup.model_id, lookup.dim) == (inner.model_id, 32)


def test_tiny_run_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "recall.json"
    report = run(sizes=[300, 600], queries=15, embed_sample=100, out=str(out),
                 embedder=HashingEmbedder(dim=32), chroma=False)
    doc = json.loads(out.read_text())
    metrics = [r["metric"] for r in doc["results"]]
    for tag in ("300", "600"):
        for system in ("hybrid", "vector", "text"):
            assert f"{tag} recall {system} p50, embedding excluded" in metrics
    # 2 sizes x (hybrid, vector) x (p50, p99)
    assert sum("embedding included" in m for m in metrics) == 2 * 2 * 2
    exact = [r for r in doc["results"] if "exact top-10" in r["metric"]]
    assert [r["value"] for r in exact] == [1.0, 1.0]  # below the HNSW threshold search is exact
    assert doc["params"]["vector_index"] == {"300": "numpy exact", "600": "numpy exact"}
    assert doc["params"]["chromadb"].startswith("not run")
    assert "chromadb baseline: not run" in report.table()
    # open in a fresh process: ready at once, RSS measured; the curve has a row per size
    for tag in ("300", "600"):
        assert f"{tag} engramdb open" in metrics
        assert f"{tag} engramdb RSS after open + first query" in metrics
    curve = doc["params"]["curve"]
    assert [row["size"] for row in curve] == [300, 600]
    assert all(row["engramdb RSS MiB"] > 0 and row["chromadb RSS MiB"] is None for row in curve)
    assert all(row["hybrid p50 ms"] > 0 for row in curve)
    png = doc["params"]["png"]
    assert png.startswith("not drawn") or (png.endswith(".png") and Path(png).stat().st_size)
    assert "engramdb ingest/s" in curve_table(curve)


def test_sizes_must_be_sensible(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        run(sizes=[10], out=str(tmp_path / "x.json"), embedder=HashingEmbedder(dim=8))
