"""Times that cannot be right are refused where they come in (issue 9 item 15):
a validity that ends before it starts, and any time outside the years 1-9999."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from engramdb import InvalidInput, Memory
from engramdb.cognition.tiers import TierPolicy
from engramdb.events import to_us
from engramdb.recall.embed import HashingEmbedder

EARLY, LATE = datetime(2020, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture
def mem() -> Iterator[Memory]:
    with Memory.open(":memory:", embedder=HashingEmbedder(dim=32)) as m:
        yield m


def test_valid_to_before_valid_from_is_refused_and_writes_nothing(mem: Memory) -> None:
    """Regression (issue 9 item 15): valid_to < valid_from was stored."""
    node = mem.remember("Maya lives in Berlin", valid_from=EARLY, valid_to=LATE)
    head = mem.seq
    writes: list[Callable[[], Any]] = [
        lambda: mem.remember("x", valid_from=LATE, valid_to=EARLY),
        lambda: mem.remember_many([{"text": "x", "valid_from": LATE, "valid_to": EARLY}]),
        lambda: mem.remember("y", valid_from=LATE.isoformat(), valid_to=EARLY.isoformat()),
        lambda: mem.update(node.id, valid_from=LATE, valid_to=EARLY),
        lambda: mem.update(node.id, valid_to=datetime(2019, 1, 1, tzinfo=UTC)),  # < its start
        lambda: mem.update(node.id, valid_from=datetime(2025, 1, 1, tzinfo=UTC)),  # > its end
        lambda: mem.context("c").remember("x", valid_from=LATE, valid_to=EARLY),
        lambda: mem.context("c").update(node.id, valid_to=datetime(2019, 1, 1, tzinfo=UTC)),
    ]
    for write in writes:
        with pytest.raises(InvalidInput, match="earlier than valid_from"):
            write()
    assert mem.seq == head and mem.contexts() == []
    same = mem.remember("an instant", valid_from=EARLY, valid_to=EARLY)  # empty span is fine
    assert same.valid_from == same.valid_to


@pytest.mark.parametrize("now", [2**63 - 1, -(2**63), 300_000_000_000_000_000, -7 * 10**16])
def test_consolidate_refuses_a_now_outside_the_years_1_to_9999(mem: Memory, now: int) -> None:
    """Regression (issue 9 item 15): consolidate(now=2**63-1) was accepted."""
    mem.remember("x")
    head = mem.seq
    with pytest.raises(InvalidInput, match="years 1"):
        mem.consolidate(now=now)
    assert mem.seq == head


@pytest.mark.parametrize("when", [2**63 - 1, 300_000_000_000_000_000, -7 * 10**16, 1e18])
def test_every_time_input_has_the_same_range(mem: Memory, when: Any) -> None:
    node = mem.remember("x")
    head = mem.seq
    for call in (lambda: mem.remember("y", valid_from=when),
                 lambda: mem.remember("y", valid_to=when),
                 lambda: mem.update(node.id, valid_from=when),
                 lambda: mem.ingest_conversation([{"text": "hi"}], session="s", at=when),
                 lambda: mem.recall("x", valid_at=when),
                 lambda: mem.consolidate(now=when)):
        with pytest.raises(InvalidInput, match="years 1"):
            call()
    assert mem.seq == head


def test_the_range_is_every_time_a_datetime_can_hold() -> None:
    low = datetime(1, 1, 1, tzinfo=UTC)
    high = datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    assert to_us(low) is not None and to_us(high) is not None
    for beyond in (to_us(low) - 1, to_us(high) + 1):  # type: ignore[operator]
        with pytest.raises(InvalidInput, match="years 1"):
            to_us(beyond)


def test_tier_policy_refuses_nan_days() -> None:
    for field in ("short_term_days", "archive_after_days"):
        with pytest.raises(InvalidInput):
            TierPolicy(**{field: math.nan})


def test_http_refuses_an_inverted_validity() -> None:
    from tests.adapters._http import make_env

    for env in make_env():
        head = env.mem.seq
        r = env.call("POST", "/v1/namespaces/a/memories", as_="write_a", json={
            "text": "x", "valid_from": LATE.isoformat(), "valid_to": EARLY.isoformat()})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "invalid_input"
        assert env.mem.seq == head


@pytest.mark.parametrize("now", [2**63 - 1, 300_000_000_000_000_000, -7 * 10**16])
def test_recall_now_outside_the_years_1_to_9999_is_refused(mem: Memory, now: int) -> None:
    mem.remember("x")
    with pytest.raises(InvalidInput):
        mem.recall("x", now=now)
