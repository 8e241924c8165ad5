"""Conversations in the shapes people have them: {role, content} turns, common date
strings, and recall(k=N) ranking every turn a store holds."""

from __future__ import annotations

from datetime import datetime

import pytest

from engramdb import InvalidInput, InvalidQuery, Memory
from engramdb.events import to_us
from engramdb.recall.embed import HashingEmbedder
from engramdb.recall.engine import RecallWeights
from engramdb.recall.when import entities, parse_when, query_window


@pytest.fixture
def mem() -> Memory:
    m = Memory.open(":memory:", embedder=HashingEmbedder(dim=64))
    yield m
    m.close()


def test_recall_k_beyond_the_pool_ranks_everything_held(mem: Memory) -> None:
    # regression: each signal offered a fixed 200 candidates, so k=1000 over 260 turns
    # returned only about 200 of them
    n = RecallWeights().pool + 60
    mem.ingest_conversation(
        [{"speaker": "A", "text": f"turn {i} mentions the garden and item {i}"} for i in range(n)],
        session="s1",
    )
    hits = mem.recall("garden", k=1000)
    assert len(hits) == n
    assert len({h.id for h in hits}) == n
    assert len(mem.recall("garden", k=1000, signals=("text",))) == n
    assert len(mem.recall("garden", k=5)) == 5


def test_role_content_turns_are_accepted(mem: Memory) -> None:
    nodes = mem.ingest_conversation(
        [{"role": "user", "content": "I adopted a cat named Miso"},
         {"role": "assistant", "content": "Congratulations on Miso!"}],
        session="chat-1",
    )
    assert [n.text for n in nodes] == ["user: I adopted a cat named Miso",
                                       "assistant: Congratulations on Miso!"]
    assert nodes[0].attrs["speaker"] == "user"
    assert mem.recall("what is my cat called", k=1)[0].node.attrs["session"] == "chat-1"


@pytest.mark.parametrize("turn", [{"role": "user"}, {"content": 5}, "hello",
                                  {"role": 3, "content": "x"}])
def test_bad_turns_say_what_a_turn_is_and_write_nothing(mem: Memory, turn: object) -> None:
    before = mem.seq
    with pytest.raises(InvalidInput, match="'content'"):
        mem.ingest_conversation([{"text": "fine"}, turn], session="s")  # type: ignore[list-item]
    assert mem.seq == before


@pytest.mark.parametrize(("text", "expected"), [
    ("2023/05/20 (Sat) 02:21", datetime(2023, 5, 20, 2, 21)),
    ("2023/05/20", datetime(2023, 5, 20)),
    ("8:56 pm on 20 July, 2023", datetime(2023, 7, 20, 20, 56)),
    ("1:14 am on 8 May, 2023", datetime(2023, 5, 8, 1, 14)),
    ("12:05 am on 1 January, 2024", datetime(2024, 1, 1, 0, 5)),
    ("20 July 2023", datetime(2023, 7, 20)),
    ("July 20, 2023", datetime(2023, 7, 20)),
    ("Thursday, July 20th 2023 3pm", datetime(2023, 7, 20, 15, 0)),
    ("05/20/2023 14:21", datetime(2023, 5, 20, 14, 21)),
    ("20/05/2023", datetime(2023, 5, 20)),
    ("2023-05-20T02:21:00", datetime(2023, 5, 20, 2, 21)),
])
def test_common_date_strings_parse(text: str, expected: datetime) -> None:
    assert parse_when(text) == expected


@pytest.mark.parametrize("text", ["next tuesday", "2023/13/40", "13:00 pm on 1 May, 2023",
                                  "", "soon"])
def test_unreadable_dates_are_invalid_input_naming_the_forms(text: str) -> None:
    with pytest.raises(InvalidInput, match="ISO 8601"):
        parse_when(text)


def test_ingest_takes_a_chat_export_date_and_rejects_a_bad_one(mem: Memory) -> None:
    nodes = mem.ingest_conversation([{"role": "user", "content": "hi"}], session="s1",
                                    at="2023/05/20 (Sat) 02:21")
    assert nodes[0].valid_from == to_us(datetime(2023, 5, 20, 2, 21))
    before = mem.seq
    with pytest.raises(InvalidInput, match="at: cannot read"):
        mem.ingest_conversation([{"role": "user", "content": "hi"}], session="s2", at="someday")
    with pytest.raises(InvalidInput, match="turn 0 time"):
        mem.ingest_conversation([{"role": "user", "content": "hi", "time": "later"}],
                                session="s3")
    assert mem.seq == before


# -- time-aware recall -------------------------------------------------------------

NOW = datetime(2024, 6, 20, 12, 0)


@pytest.mark.parametrize(("query", "start", "end"), [
    ("what did I cook yesterday", datetime(2024, 6, 19), datetime(2024, 6, 20)),
    ("where did we go last week?", datetime(2024, 6, 6), datetime(2024, 6, 21)),
    ("what happened in May", datetime(2024, 5, 1), datetime(2024, 6, 1)),
    ("what happened in August", datetime(2023, 8, 1), datetime(2023, 9, 1)),
    ("what did she buy in March 2022", datetime(2022, 3, 1), datetime(2022, 4, 1)),
    ("who did I meet before 2023", datetime(1970, 1, 2), datetime(2023, 1, 1)),
    # a named day: that day and the week after it, when it was talked about
    ("where was James on July 12, 2022?", datetime(2022, 7, 11), datetime(2022, 7, 20)),
    ("what happened on 3 May", datetime(2024, 5, 2), datetime(2024, 5, 11)),
    ("what happened on 2023-01-05", datetime(2023, 1, 4), datetime(2023, 1, 13)),
])
def test_time_phrases_resolve_against_the_asking_time(query: str, start: datetime,
                                                      end: datetime) -> None:
    assert query_window(query, NOW) == (to_us(start), to_us(end))


@pytest.mark.parametrize("query", ["what is my cat called", "may I ask about the trip",
                                   "what did she say by may"])
def test_questions_without_a_time_phrase_have_no_window(query: str) -> None:
    assert query_window(query, NOW) is None


def test_recall_now_favours_memories_valid_in_the_asked_window() -> None:
    weights = RecallWeights(time=0.5)
    with Memory.open(":memory:", embedder=HashingEmbedder(dim=64), weights=weights) as mem:
        old = mem.remember("We hiked up the mountain trail", valid_from="2024-03-02")
        new = mem.remember("We hiked up the mountain path", valid_from="2024-06-15")
        asked = "where did we hike last week"
        ranked = [h.id for h in mem.recall(asked, k=2, now="2024-06-20")]
        assert ranked[0] == new.id and "time" in mem.recall(asked, k=1, now=NOW)[0].signals
        assert [h.id for h in mem.recall(asked, k=2, now="2024-03-05")][0] == old.id
        with pytest.raises(InvalidInput):
            mem.recall(asked, now="whenever")


# -- sessions informing turns, names linking sessions -------------------------------

def test_scaled_session_signal_does_not_lift_a_sessions_unrelated_turns() -> None:
    def ranked(weights: RecallWeights) -> list[str]:
        with Memory.open(":memory:", embedder=None, weights=weights) as mem:
            mem.ingest_conversation(
                [{"speaker": "A", "text": "I finally repaired the old violin"},
                 {"speaker": "B", "text": "The weather is grey"},
                 {"speaker": "A", "text": "Lunch was fine"}], session="s1")
            mem.ingest_conversation(
                [{"speaker": "B", "text": "my violin lessons start soon, after the summer"
                                          " holidays, with a new teacher in town"}],
                session="s2")
            return [h.text for h in mem.recall("violin", k=4, signals=("text", "graph"))]

    plain = {"next": 0.01, "prev": 0.01, "graph": 0.0, "session": 2.0}  # neighbours join
    shared = ranked(RecallWeights(**plain))
    scaled = ranked(RecallWeights(**plain, session_mode="scale"))
    assert "weather" in shared[1] or "Lunch" in shared[1]  # the session lifted its noise
    assert [t for t in scaled if "violin" in t] == scaled[:2]


def test_entities_are_names_dates_and_numbers() -> None:
    found = entities("Maya: Yesterday I met Jonas in Lisbon. We paid 250 euros in May.")
    assert found == ["jonas", "lisbon", "250", "may"]


def test_entity_links_reach_a_memory_sharing_a_name_not_the_question_words() -> None:
    weights = RecallWeights(entity=0.5, next=0.0, prev=0.0, session=0.0, graph=0.0)
    with Memory.open(":memory:", embedder=None, weights=weights) as mem:
        mem.ingest_conversation([{"speaker": "A", "text": "My sister Ottilie adopted a puppy"}],
                                session="s1")
        far = mem.ingest_conversation([{"speaker": "A", "text": "Ottilie moved to Porto"}],
                                      session="s2")[0]
        for i in range(5):
            mem.ingest_conversation([{"speaker": "B", "text": f"filler chat number {i}"}],
                                    session=f"f{i}")
        hits = mem.recall("who adopted a puppy", k=3, signals=("text", "graph"))
        assert far.id in [h.id for h in hits]
        linked = next(h for h in hits if h.id == far.id)
        assert "entity" in linked.signals


def test_embedder_setting_names_the_usable_ones() -> None:
    from engramdb.recall.embedders import make_embedder

    assert make_embedder("hashing").model_id.startswith("hashing")
    with pytest.raises(InvalidInput, match="e5-small-q4"):
        make_embedder("bge-small-en-v1.5")  # its package ships no model


def test_bench_embedders_lists_a_candidate_that_ships_no_model(tmp_path) -> None:
    from engramdb.bench.embedders import run

    src = tmp_path / "l.json"
    src.write_text('[{"conversation": {"session_1": []}, "qa": []}]')
    report = run(path=str(src), out=str(tmp_path / "e.json"), names=["bge-small-en-v1.5"],
                 cache=None)
    (row,) = report.rows
    assert row["value"] != row["value"] and "ships no model" in row["note"]


def test_speaker_named_in_the_query_lifts_their_turns() -> None:
    def ranked(weights: RecallWeights) -> list[str]:
        with Memory.open(":memory:", embedder=None, weights=weights) as mem:
            mem.ingest_conversation(
                [{"speaker": "Maya", "text": "I painted a lake at sunrise over the water"
                                             " this morning, with my new brushes"},
                 {"speaker": "Jonas", "text": "I painted my kitchen"},
                 *({"speaker": s, "text": f"small talk {i}"}
                   for i in range(6) for s in ("Maya", "Jonas"))], session="s1")
            return [h.text for h in mem.recall("What did Maya paint?", k=3,
                                               signals=("text",))]

    plain = ranked(RecallWeights(speaker=0.0))
    assert plain[0].startswith("Jonas")  # the shorter turn wins: 'maya' is in half the turns
    for mode in ("share", "scale"):
        lifted = ranked(RecallWeights(speaker=0.5, speaker_mode=mode))
        assert lifted[0].startswith("Maya: I painted")
    with pytest.raises(InvalidQuery):
        RecallWeights(speaker_mode="loud")
