"""``Registry.coerce`` skips the Python walk of :func:`check_storable` when the
payload equals its own decoding and its JSON has no 19-digit run; these tests
check that the shortcut refuses exactly what the full check refuses, with the
same message, and returns what a replay decodes."""

from __future__ import annotations

import math
import random
from typing import Any

import msgspec
import pytest

from engramdb.errors import InvalidPayload
from engramdb.events import NODE_CREATED, NodeCreated, default_registry
from engramdb.events.registry import check_storable

EDGES = [2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64 - 1, 2**64, 10**30, -(10**30)]


def reference(payload: Any) -> tuple[str, Any]:
    """The check as it was: convert, walk, encode, decode."""
    et = default_registry().get(NODE_CREATED)
    try:
        if not isinstance(payload, NodeCreated):
            payload = msgspec.convert(payload, NodeCreated, strict=True)
        check_storable(payload, NODE_CREATED)
        blob = msgspec.json.encode(payload)
        return "ok", et.decoder.decode(blob)
    except (InvalidPayload, msgspec.ValidationError, TypeError, ValueError) as exc:
        return "error", type(exc).__name__ if not isinstance(exc, InvalidPayload) else str(exc)


def actual(payload: Any) -> tuple[str, Any]:
    try:
        typed, blob, _ = default_registry().coerce(NODE_CREATED, payload)
    except InvalidPayload as exc:
        return "error", str(exc)
    assert typed == default_registry().decode(NODE_CREATED, 1, blob)  # what a replay sees
    return "ok", typed


def value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(9 if depth < 3 else 5)
    if pick == 0:
        return rng.choice(EDGES)
    if pick == 1:
        return rng.choice([0.5, -0.0, 1e300, math.nan, math.inf, -math.inf])
    if pick == 2:
        return rng.choice(["x", "1234567890123456789012", "null", "NaN", ""])
    if pick == 3:
        return rng.choice([True, False, None, 7, -3])
    if pick == 4:
        return rng.randint(-(2**62), 2**62)
    if pick in (5, 6):
        keys = [rng.choice(["a", "b", "c", 1, 2.5]) for _ in range(rng.randrange(3))]
        return {k: value(rng, depth + 1) for k in keys}
    items = [value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return tuple(items) if pick == 7 else items


@pytest.mark.parametrize("seed", range(20))
def test_the_shortcut_refuses_and_returns_what_the_full_check_does(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        attrs = {"v": value(rng), "w": value(rng)}
        for payload in ({"text": "t", "attrs": attrs}, NodeCreated(text="t", attrs=attrs)):
            assert actual(payload) == reference(payload), attrs


@pytest.mark.parametrize("bad", [2**63, -(2**63) - 1, 2**64, math.nan, -math.inf,
                                 {"k": {1: "one"}}, [1, {"deep": 2**70}]])
def test_unstorable_values_are_refused_by_message(bad: Any) -> None:
    for payload in ({"text": "t", "attrs": {"v": bad}}, NodeCreated(text="t", attrs={"v": bad})):
        kind, message = actual(payload)
        assert kind == "error"
        assert any(word in message for word in ("64 bits", "not finite", "must be strings"))


def test_storable_edges_go_in_and_tuples_come_back_as_lists() -> None:
    attrs = {"max": 2**63 - 1, "min": -(2**63), "digits": "12345678901234567890123",
             "t": (1, (2, "x"))}
    kind, typed = actual(NodeCreated(text="t", attrs=attrs))
    assert kind == "ok"
    assert typed.attrs == {**attrs, "t": [1, [2, "x"]]}


def test_a_hand_built_struct_of_the_wrong_types_is_refused() -> None:
    with pytest.raises(InvalidPayload):
        default_registry().coerce(NODE_CREATED, NodeCreated(text=5))  # type: ignore[arg-type]
