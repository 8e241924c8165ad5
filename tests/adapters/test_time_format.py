"""One time format at every edge: ISO 8601 with the UTC offset in HTTP responses,
``engram ... --json`` and MCP results; ISO strings (any offset) and, as before,
microseconds accepted on input. The library keeps microseconds."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from mcp.client import Client
from typer.testing import CliRunner

from engramdb import Memory
from engramdb.adapters.cli import app
from engramdb.adapters.http import create_app
from engramdb.adapters.mcp import build_server
from engramdb.errors import InvalidInput
from engramdb.events import iso_time, to_us
from engramdb.events.model import MAX_TIME_US, MIN_TIME_US
from engramdb.recall.embed import HashingEmbedder

TIME_KEYS = {"created_at", "updated_at", "valid_from", "valid_to", "recorded_at",
             "last_access"}


def utc_iso(value: Any) -> datetime:
    """``value`` parsed as ISO 8601 that carries the UTC offset."""
    assert isinstance(value, str) and "T" in value, value
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0) and value.endswith("+00:00"), value
    return parsed


def times_in(obj: Any) -> list[Any]:
    """Every value under a time key, anywhere in a JSON document."""
    found: list[Any] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in TIME_KEYS and value is not None:
                found.append(value)
            found.extend(times_in(value))
    elif isinstance(obj, list):
        for value in obj:
            found.extend(times_in(value))
    return found


# -- the format itself -----------------------------------------------------------


def test_iso_time_round_trips_every_microsecond_exactly() -> None:
    rng = random.Random(7)
    edges = [0, -1, 1, MIN_TIME_US, MAX_TIME_US, 1_800_000_000_123_457, 2**53 + 1]
    for us in edges + [rng.randint(MIN_TIME_US, MAX_TIME_US) for _ in range(2000)]:
        text = iso_time(us)
        assert to_us(text) == us, text
        assert datetime.fromisoformat(text).utcoffset() == timedelta(0)


def test_input_takes_any_offset_z_or_none_and_microseconds() -> None:
    base = to_us("2026-03-01T13:30:00+00:00")
    assert to_us("2026-03-01T14:30:00+01:00") == base
    assert to_us("2026-03-01T13:30:00Z") == base
    assert to_us("2026-03-01T13:30:00") == base  # no offset: UTC
    assert to_us(datetime(2026, 3, 1, 8, 30, tzinfo=timezone(timedelta(hours=-5)))) == base
    assert to_us(base) == base  # microseconds, as before


@pytest.mark.parametrize("bad", [MAX_TIME_US + 1, MIN_TIME_US - 1, 2**63 - 1, -(2**63),
                                 "9999-12-31T23:00:00-05:00", float(2**62), "soon"])
def test_a_time_no_edge_could_show_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidInput):
        to_us(bad)


def test_a_stored_time_beyond_year_9999_still_renders() -> None:
    # written before years were bounded: shown with an expanded year, never a crash
    assert iso_time(MAX_TIME_US + 1) == "+010000-01-01T00:00:00+00:00"
    assert iso_time(2**63 - 1).startswith("+294247-")
    assert iso_time(-(2**63)).startswith("-290308-")


# -- the edges -------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A store file with one memory (valid from 14:30+01:00) that was updated once."""
    monkeypatch.setenv("ENGRAM_EMBEDDER", "hashing")
    path = str(tmp_path / "t.engram")
    with Memory.open(path, embedder=HashingEmbedder()) as mem:
        node = mem.remember("Maya lives in Berlin", name="Maya", domain="people",
                            valid_from="2026-03-01T14:30:00+01:00")
        mem.update(node.id, text="Maya lives in Lisbon")
    return path, node.id


def test_http_responses_show_iso_times_and_take_them_back(store: tuple[str, str]) -> None:
    path, node_id = store
    with Memory.open(path, embedder=HashingEmbedder()) as mem, \
            TestClient(create_app(mem, tokens=None)) as client:
        base = "/v1/namespaces/default"
        got = client.get(f"{base}/memories/{node_id}").json()
        assert got["valid_from"] == "2026-03-01T13:30:00+00:00"
        assert utc_iso(got["created_at"]) <= utc_iso(got["updated_at"])
        answers = [got,
                   client.get(f"{base}/memories/{node_id}/history").json(),
                   client.get(f"{base}/memories/{node_id}/provenance").json(),
                   client.post(f"{base}/recall", json={"query": "Maya"}).json(),
                   client.post(f"{base}/memories",
                               json={"text": "Acme", "valid_to": 1_800_000_000_000_000}).json()]
        found = [t for a in answers for t in times_in(a)]
        assert len(found) >= 10
        for value in found:
            utc_iso(value)
        assert answers[-1]["valid_to"] == iso_time(1_800_000_000_000_000)  # µs still taken
        history = answers[1]["items"]
        assert "=" not in json.dumps([e["payload"] for e in history])  # no base64 vectors
        # a time the API gave is a time it takes: as_of the first version's time
        first = history[0]["recorded_at"]
        old = client.get(f"{base}/memories/{node_id}", params={"as_of": first}).json()
        assert old["text"] == "Maya lives in Berlin"
        def valid_at(when: str) -> list[str]:
            body = {"query": "Maya", "valid_at": when}
            return [h["id"] for h in client.post(f"{base}/recall", json=body).json()["hits"]]

        assert node_id in valid_at(first)
        assert node_id not in valid_at("2026-03-01T14:29:59+01:00")  # a second before


def test_openapi_declares_response_times_as_date_time(store: tuple[str, str]) -> None:
    with Memory.open(":memory:", embedder=None) as mem:
        schema = create_app(mem, tokens=None).openapi()["components"]["schemas"]
    for model, fields in (("NodeOut", ("created_at", "updated_at")), ("EventOut",
                          ("recorded_at",)), ("ProvenanceOut", ("recorded_at",))):
        for name in fields:
            prop = schema[model]["properties"][name]
            assert prop["type"] == "string" and prop["format"] == "date-time", (model, name)


def test_cli_json_shows_iso_times(store: tuple[str, str]) -> None:
    path, node_id = store
    runner = CliRunner()
    outputs = []
    for args in (["get", node_id], ["history", node_id, "--json"],
                 ["recall", "Maya", "--json"], ["as-of", "1", "Maya", "--json"]):
        result = runner.invoke(app, [*args, "--store", path])
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.output))
    assert outputs[0]["valid_from"] == "2026-03-01T13:30:00+00:00"
    found = [t for o in outputs for t in times_in(o)]
    assert len(found) >= 6
    for value in found:
        utc_iso(value)
    assert runner.invoke(app, ["token", "create", "-n", "default", "--store", path]).exit_code == 0
    tokens = json.loads(runner.invoke(app, ["token", "list", "--json", "--store", path]).output)
    assert abs(utc_iso(tokens[0]["created_at"]) - datetime.now(UTC)) < timedelta(hours=1)


def test_every_edge_shows_the_same_time_the_same_way(store: tuple[str, str]) -> None:
    path, node_id = store
    cli = json.loads(CliRunner().invoke(app, ["get", node_id, "--store", path]).output)
    with Memory.open(path, embedder=HashingEmbedder()) as mem:
        with TestClient(create_app(mem, tokens=None)) as client:
            http = client.get(f"/v1/namespaces/default/memories/{node_id}").json()
        got: dict[str, Any] = {}

        async def main() -> None:
            async with Client(build_server(mem)) as client:
                got.update((await client.call_tool("get", {"id": node_id})).structured_content
                           or {})

        anyio.run(main)
    for key in ("created_at", "updated_at", "valid_from"):
        assert cli[key] == http[key] == got[key], key


def test_cli_remember_takes_valid_times_with_an_offset(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGRAM_EMBEDDER", "hashing")
    path = str(tmp_path / "c.engram")
    runner = CliRunner()
    made = runner.invoke(app, ["remember", "Maya lives in Lisbon", "--valid-from",
                               "2026-03-01T14:30:00+01:00", "--valid-to", "1800000000000000",
                               "--store", path])
    assert made.exit_code == 0, made.output
    got = json.loads(runner.invoke(app, ["get", made.output.strip(), "--store", path]).output)
    assert got["valid_from"] == "2026-03-01T13:30:00+00:00"
    assert got["valid_to"] == iso_time(1_800_000_000_000_000)
    bad = runner.invoke(app, ["remember", "x", "--valid-from", "someday", "--store", path])
    assert bad.exit_code != 0
