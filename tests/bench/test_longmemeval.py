"""LongMemEval runner: the official corpus ids, metric and skips, checked by hand.

The haystacks are built so that BM25 ranks every document at a known position
(each document matches a known number of query words, rarer words scoring
higher), so the expected metric values are computed here from those positions
with the official formulas written out by hand.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from engramdb.adapters.cli import app
from engramdb.bench.longmemeval import (
    build_corpus,
    dcg,
    evaluate_retrieval,
    evaluate_turn2session,
    has_user_evidence,
    load_longmemeval,
    parse_date,
    run,
)
from engramdb.errors import InvalidInput
from engramdb.recall.embed import HashingEmbedder


def user(text: str, answer: bool = False) -> dict[str, Any]:
    return {"role": "user", "content": text, "has_answer": answer}


def bot(text: str, answer: bool = False) -> dict[str, Any]:
    return {"role": "assistant", "content": text, "has_answer": answer}


def question(qid: str, qtype: str, text: str, sessions: dict[str, list[dict[str, Any]]]) -> dict:
    ids = list(sessions)
    return {
        "question_id": qid, "question_type": qtype, "question": text, "answer": "n/a",
        "question_date": "2023/06/01 (Thu) 10:00",
        "haystack_dates": [f"2023/05/{i + 1:02d} (Mon) 09:{i:02d}" for i in range(len(ids))],
        "haystack_session_ids": ids,
        "haystack_sessions": [sessions[s] for s in ids],
        "answer_session_ids": [s for s in ids if s.startswith("answer")],
    }


FILLER = [f"lorem{i} ipsum{i} dolor{i} sitamet{i} consect{i}" for i in range(6)]

# q1: BM25 ranks d1 (3 query words), d2 (2), then the gold session (1): gold at rank 3.
Q1 = question("q1", "single-session-user", "zephyr quokka marmot?", {
    "sharegpt_d1": [user("zephyr quokka marmot pebble1 pebble2"), bot("zephyr noted")],
    "sharegpt_d2": [user("zephyr quokka pebble3 pebble4 pebble5"), bot("ok")],
    "answer_q1": [user(FILLER[0]), bot("sure"),
                  user("zephyr pebble6 pebble7 pebble8 pebble9", True)],
    "sharegpt_f1": [user(FILLER[1]), bot("fine")],
    "sharegpt_f2": [user(FILLER[2])],
})
# q2: two gold sessions, at BM25 ranks 1 and 4.
Q2 = question("q2", "multi-session", "heron ibis stork crane", {
    "answer_q2a": [user("heron ibis stork crane reed1", True)],
    "ultrachat_d3": [user("heron ibis stork reed2 reed3")],
    "ultrachat_d4": [user("heron ibis reed4 reed5 reed6")],
    "answer_q2b": [bot("hello"), user("heron reed7 reed8 reed9 reed10", True)],
    "ultrachat_f3": [user(FILLER[3])],
})
# skipped: an abstention question, and one whose evidence only the assistant said
Q3 = question("q3_abs", "single-session-user", "zephyr?", {
    "answer_q3": [user("zephyr pebble", True)], "sharegpt_f4": [user(FILLER[4])],
})
Q4 = question("q4", "single-session-assistant", "heron?", {
    "answer_q4": [user("tell me about birds"), bot("heron facts", True)],
    "sharegpt_f5": [user(FILLER[5])],
})

LOG3 = 1 / math.log2(3)  # official discount at the third position


@pytest.fixture
def data_file(tmp_path: Path) -> str:
    path = tmp_path / "lme.json"
    path.write_text(json.dumps([Q1, Q2, Q3, Q4]))
    return str(path)


# -- the official pieces ------------------------------------------------------------


def test_turn_ids_count_every_turn_and_rename_non_evidence() -> None:
    corpus = build_corpus(Q1, "turn")
    assert corpus.ids == ["sharegpt_d1_1", "sharegpt_d2_1", "noans_q1_1", "answer_q1_3",
                          "sharegpt_f1_1", "sharegpt_f2_1"]
    assert corpus.texts[3] == "zephyr pebble6 pebble7 pebble8 pebble9"
    assert corpus.gold == ["answer_q1_3"]
    assert corpus.sessions[2] == corpus.sessions[3] == "answer_q1"


def test_session_docs_are_user_turns_joined() -> None:
    corpus = build_corpus(Q1, "session")
    assert corpus.ids == ["sharegpt_d1", "sharegpt_d2", "answer_q1", "sharegpt_f1", "sharegpt_f2"]
    assert corpus.texts[2] == f"{FILLER[0]} zephyr pebble6 pebble7 pebble8 pebble9"
    assert corpus.gold == ["answer_q1"]
    # an answer session whose evidence is only on the assistant side is renamed noans
    assert build_corpus(Q4, "session").ids[0] == "noans_q4"
    assert build_corpus(Q4, "session").gold == []
    assert not has_user_evidence(Q4) and has_user_evidence(Q1)


def test_dcg_uses_the_official_discount() -> None:
    assert dcg([0, 1], 2) == 1.0  # second position divided by log2(2), like the first
    assert dcg([0, 0, 1], 3) == pytest.approx(LOG3)
    assert dcg([1, 0, 0, 1], 4) == pytest.approx(1.5)
    assert dcg([1, 1], 1) == 1.0
    assert dcg([], 5) == 0.0


def test_evaluate_retrieval_by_hand() -> None:
    corpus = ["a", "b", "g1", "c", "g2"]
    ranked = ["g1", "a", "b", "g2", "c"]
    assert evaluate_retrieval(ranked, ["g1", "g2"], corpus, 1) == (1.0, 0.0, 1.0)
    any3, all3, ndcg3 = evaluate_retrieval(ranked, ["g1", "g2"], corpus, 3)
    assert (any3, all3) == (1.0, 0.0) and ndcg3 == pytest.approx(1 / 2)  # ideal = 1 + 1
    any5, all5, ndcg5 = evaluate_retrieval(ranked, ["g1", "g2"], corpus, 5)
    assert (any5, all5) == (1.0, 1.0) and ndcg5 == pytest.approx(1.5 / 2)
    # a gold document recall never returned counts as not retrieved
    assert evaluate_retrieval(["a"], ["g1"], corpus, 10) == (0.0, 0.0, 0.0)


def test_turn2session_grows_k_until_k_sessions() -> None:
    ranked = ["s1_1", "s1_3", "s2_1", "answer_x_2"]
    corpus = [*ranked, "s3_1"]
    # k=2: s1, s1 cover one session, so the cut grows to 3 (s1, s2): gold not in it
    assert evaluate_turn2session(ranked, ["answer_x_2"], corpus, 2) == (0.0, 0.0, 0.0)
    # k=3: grows to 4 turns; the gold session sits at the 4th position: 1/log2(4)
    assert evaluate_turn2session(ranked, ["answer_x_2"], corpus, 3) == (1.0, 1.0, 0.5)


def test_dates_and_bad_input(tmp_path: Path) -> None:
    assert parse_date("2023/05/20 (Sat) 02:21") == datetime(2023, 5, 20, 2, 21)
    assert parse_date("someday") is None
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"question_id": "x"}]))
    with pytest.raises(InvalidInput, match="lacks"):
        load_longmemeval(str(bad))
    bad.write_text("{not json")
    with pytest.raises(InvalidInput):
        load_longmemeval(str(bad))
    with pytest.raises(InvalidInput, match="granularity"):
        build_corpus(Q1, "paragraph")


# -- the runner on a synthetic file ----------------------------------------------------


def _bm25(path: str, granularity: str, out: Path) -> dict[str, Any]:
    run(path=path, granularity=granularity, out=str(out), systems=("bm25",),
        embedder=HashingEmbedder(dim=64))
    return json.loads(out.read_text())


def test_session_granularity_matches_hand_computed(data_file: str, tmp_path: Path) -> None:
    doc = _bm25(data_file, "session", tmp_path / "s.json")
    assert doc["params"]["skipped"] == {"abstention": 1, "no_user_evidence": 1}
    assert [q["question_id"] for q in doc["questions"]] == ["q1", "q2"]
    q1, q2 = (q["metrics"]["bm25"] for q in doc["questions"])
    assert q1["ranked"][:3] == ["sharegpt_d1", "sharegpt_d2", "answer_q1"]
    assert q2["ranked"][:4] == ["answer_q2a", "ultrachat_d3", "ultrachat_d4", "answer_q2b"]
    m1 = q1["session"]
    assert (m1["recall_any@1"], m1["recall_any@3"], m1["recall_all@3"]) == (0.0, 1.0, 1.0)
    assert m1["ndcg_any@1"] == 0.0 and m1["ndcg_any@3"] == pytest.approx(LOG3)
    assert m1["ndcg_any@50"] == pytest.approx(LOG3)
    m2 = q2["session"]
    assert (m2["recall_any@1"], m2["recall_all@1"], m2["recall_all@3"], m2["recall_all@5"]) == (
        1.0, 0.0, 0.0, 1.0)
    assert m2["ndcg_any@3"] == pytest.approx(0.5) and m2["ndcg_any@5"] == pytest.approx(0.75)
    overall = doc["params"]["session_metrics"]["bm25"]["overall"]
    assert overall["recall_all@3"] == pytest.approx(0.5)
    assert overall["ndcg_any@3"] == pytest.approx((LOG3 + 0.5) / 2)
    by_type = doc["params"]["session_metrics"]["bm25"]
    assert by_type["multi-session"]["recall_all@5"] == 1.0
    assert by_type["single-session-user"]["recall_any@1"] == 0.0


def test_turn_granularity_scores_turns_and_sessions(data_file: str, tmp_path: Path) -> None:
    doc = _bm25(data_file, "turn", tmp_path / "t.json")
    q1 = doc["questions"][0]["metrics"]["bm25"]
    assert q1["ranked"][:3] == ["sharegpt_d1_1", "sharegpt_d2_1", "answer_q1_3"]
    assert q1["turn"]["recall_any@1"] == 0.0 and q1["turn"]["recall_any@3"] == 1.0
    assert q1["turn"]["ndcg_any@3"] == pytest.approx(LOG3)
    assert q1["session"]["recall_any@3"] == 1.0  # turn2session
    q2 = doc["questions"][1]["metrics"]["bm25"]
    assert q2["turn"]["recall_all@3"] == 0.0 and q2["turn"]["recall_all@5"] == 1.0
    assert set(doc["params"]) >= {"turn_metrics", "session_metrics"}


def test_bad_arguments(data_file: str, tmp_path: Path) -> None:
    for kwargs in ({"granularity": "word"}, {"ks": [0]}, {"systems": ("magic",)}):
        with pytest.raises(InvalidInput):
            run(path=data_file, out=str(tmp_path / "x.json"),
                embedder=HashingEmbedder(dim=64), **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "x.json").exists()


def test_cli_runs_and_writes_json(data_file: str, tmp_path: Path) -> None:
    out = tmp_path / "cli.json"
    result = CliRunner().invoke(app, ["bench", "longmemeval", data_file, "--granularity", "turn",
                                      "--k", "5", "--k", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "turn overall (n=2) @3" in result.output and "session overall (n=2) @5" in result.output
    assert "turn multi-session (n=1) @5" in result.output  # per type: k 5 and 10 only
    assert "turn multi-session (n=1) @3" not in result.output
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "longmemeval" and doc["params"]["ks"] == [3, 5]
    metrics = doc["params"]["turn_metrics"]
    assert set(metrics) == {"hybrid", "bm25", "dense"}
    assert metrics["bm25"]["overall"]["recall_any@3"] == 1.0  # deterministic: hand-checked above
    for system in metrics.values():
        assert all(0.0 <= v <= 1.0 for v in system["overall"].values())
