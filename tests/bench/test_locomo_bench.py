"""``engram bench locomo`` is held out: each fold is scored with weights fitted on the other."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from engramdb.bench.locomo import run
from engramdb.recall.embed import HashingEmbedder

TOPICS = ["violin", "garden", "Lisbon", "puppy", "marathon", "pottery", "bakery", "chess"]


def conversation(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    conv: dict[str, Any] = {"speaker_a": "Ana", "speaker_b": "Ben"}
    qa = []
    for s in range(1, 4):
        conv[f"session_{s}_date_time"] = f"1:{10 + s} pm on {s} May, 2023"
        turns = []
        for t in range(1, 7):
            topic = rng.choice(TOPICS)
            turns.append({"speaker": "Ana" if t % 2 else "Ben", "dia_id": f"D{s}:{t}",
                          "text": f"we talked about the {topic} and filler {rng.random():.3f}"})
            if t % 3 == 0:
                qa.append({"question": f"what about the {topic}?", "category": 1 + t % 5,
                           "evidence": [f"D{s}:{t}"]})
        conv[f"session_{s}"] = turns
    return {"conversation": conv, "qa": qa}


def bench(tmp_path: Path, data: list[dict[str, Any]], name: str) -> dict[str, Any]:
    src = tmp_path / f"{name}.json"
    src.write_text(json.dumps(data))
    out = tmp_path / f"{name}-out.json"
    run(path=str(src), out=str(out), embedder=HashingEmbedder(dim=32), cache=str(tmp_path),
        grid={"vector": (0.0, 0.5, 1.0), "session": (0.0, 0.5)}, passes=1)
    return json.loads(out.read_text())


def test_each_fold_is_scored_with_weights_fitted_on_the_other(tmp_path: Path) -> None:
    data = [conversation(i) for i in range(4)]
    first = bench(tmp_path, data, "a")
    folds = first["params"]["per_fold"]
    assert [f["test"] for f in folds] == [[1, 2], [3, 4]]
    assert [f["train"] for f in folds] == [[3, 4], [1, 2]]
    held = first["params"]["held_out"]
    assert set(held) == {"hybrid", "bm25", "dense", "default"}
    assert held["hybrid"]["overall"]["n"] == sum(len(c["qa"]) for c in data)
    assert any(r["metric"].startswith("held-out R@10 overall") for r in first["results"])
    # change fold 1's questions: the weights that score fold 1 were fitted on fold 2 only
    changed = [conversation(i + 10) if i < 2 else c for i, c in enumerate(data)]
    second = bench(tmp_path, changed, "b")
    assert second["params"]["per_fold"][0]["weights"] == folds[0]["weights"]
    assert list((tmp_path).glob("embeddings-*.npz"))  # vectors cached for the next run


def test_session_level_counts_evidence_sessions_among_the_first_sessions_ranked() -> None:
    from engramdb.bench.locomo import session_score

    found = ["D3:1", "D3:2", "D1:4", "D2:7", "D5:1"]
    assert session_score(found, ["D1:9", "D2:1"], 1) == 0.0
    assert session_score(found, ["D1:9", "D2:1"], 2) == 0.5
    assert session_score(found, ["D1:9", "D2:1", "D2:3"], 3) == 1.0
