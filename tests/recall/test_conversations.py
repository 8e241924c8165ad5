"""Conversations in the shapes people have them: {role, content} turns, common date
strings, and recall(k=N) ranking every turn a store holds."""

from __future__ import annotations

from datetime import datetime

import pytest

from engramdb import InvalidInput, Memory
from engramdb.events import to_us
from engramdb.recall.embed import HashingEmbedder
from engramdb.recall.engine import RecallWeights
from engramdb.recall.when import parse_when


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
