"""The MCP ``query`` and ``record_outcome`` tools and the agent behind ``recall``, in process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mcp.client import Client

from engramdb import Memory
from engramdb.adapters.mcp import build_server
from engramdb.recall.embed import HashingEmbedder

from .test_mcp import error_code, ok, run


@pytest.fixture
def mem() -> Iterator[Memory]:
    with Memory.open(":memory:", embedder=HashingEmbedder(dim=64)) as m:
        yield m


def test_query_tool_finds_what_worked_and_explains(mem: Memory) -> None:
    async def body(client: Client) -> None:
        ids = {}
        for key, text, outcome in (("ok", "deploy to staging with blue green", "success"),
                                   ("bad", "deploy to staging with big bang", "failure")):
            ids[key] = ok(await client.call_tool("remember", {"text": text, "domain": "ops"}))["id"]
            done = ok(await client.call_tool("record_outcome", {"id": ids[key],
                                                                "outcome": outcome}))
            assert done["outcome"] == outcome and done["seq"] == mem.seq
        found = ok(await client.call_tool("query", {"in_domain": "ops",
                                                    "with_outcome": "success"}))
        assert [r["id"] for r in found["results"]] == [ids["ok"]]
        assert found["results"][0]["reasons"] and found["results"][0]["outcome"] == "success"
        found = ok(await client.call_tool("query", {"contrasting_with": ids["bad"]}))
        assert [r["id"] for r in found["results"]] == [ids["ok"]]
        found = ok(await client.call_tool("query", {"similar_to": "deploy staging",
                                                    "within_days": 1, "limit": 1}))
        assert len(found["results"]) == 1
        plan = ok(await client.call_tool("query", {"in_domain": "ops", "explain": True}))
        assert plan["plan"].startswith("plan at seq") and plan["seq"] == mem.seq

    run(build_server(mem), body)


def test_query_tool_errors_are_tool_errors(mem: Memory) -> None:
    async def body(client: Client) -> None:
        before = mem.seq
        assert error_code(await client.call_tool("query", {"limit": 0})) == "invalid_query"
        assert error_code(await client.call_tool("query", {"similar_to": "x",
                                                           "min_score": 3})) == "invalid_query"
        assert error_code(await client.call_tool("query", {"caused_by": "nope"})) == "not_found"
        assert error_code(await client.call_tool("record_outcome", {
            "id": "nope", "outcome": "success"})) == "not_found"
        assert error_code(await client.call_tool("query", {"namespace": "other"})) == "forbidden"
        assert mem.seq == before

    run(build_server(mem), body)


def test_recall_feeds_the_servers_agent(mem: Memory) -> None:
    mem.configure_working(enabled=True)
    maya = mem.remember("Maya lives in Berlin", name="Maya").id

    async def body(client: Client) -> None:
        hits = ok(await client.call_tool("recall", {"query": "Maya Berlin", "k": 1}))
        assert hits["hits"][0]["id"] == maya and hits["seq"] == mem.seq
        with_index = ok(await client.call_tool("recall", {"query": "Maya", "with_index": True}))
        assert with_index["index"] and with_index["seq"] == mem.seq

    run(build_server(mem, agent="planner"), body)
    assert maya in [n.id for n in mem.working("planner")]
    assert mem.working("someone-else") == []
