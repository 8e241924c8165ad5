"""memory_tools() against the real openai-agents package: the tool objects are invoked
directly, as the SDK's runner would (no network, no LLM)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from agents import Agent, FunctionTool
from agents.tool_context import ToolContext

from engramdb import Memory
from engramdb.integrations.openai_agents import memory_tools
from engramdb.recall.embed import HashingEmbedder


@pytest.fixture
def mem() -> Any:
    with Memory.open(":memory:", namespace="maya", embedder=HashingEmbedder(dim=64)) as m:
        yield m


def call(tool: FunctionTool, **arguments: Any) -> Any:
    raw = json.dumps(arguments)
    ctx = ToolContext(context=None, tool_name=tool.name, tool_call_id="call-1",
                      tool_arguments=raw)
    return json.loads(asyncio.run(tool.on_invoke_tool(ctx, raw)))


def test_tools_have_names_and_schemas(mem: Memory) -> None:
    tools = {t.name: t for t in memory_tools(mem)}
    assert set(tools) == {"remember", "recall", "forget"}
    assert all(isinstance(t, FunctionTool) for t in tools.values())
    assert "text" in tools["remember"].params_json_schema["properties"]
    assert "query" in tools["recall"].params_json_schema["properties"]
    assert "Look up stored memories" in tools["recall"].description
    Agent(name="assistant", instructions="remember things", tools=list(tools.values()))


def test_remember_recall_forget_through_the_tools(mem: Memory) -> None:
    tools = {t.name: t for t in memory_tools(mem, domain="chat", agent="assistant")}
    made = call(tools["remember"], text="Maya is allergic to peanuts", name=None)
    call(tools["remember"], text="Maya flies to Tokyo in May", name=None)
    assert made["created"] is True
    node = mem.get(made["id"])
    assert node.domain == "chat" and mem.history(node.id)[0].meta.agent == "assistant"
    hits = call(tools["recall"], query="who is allergic to peanuts?", k=1)
    assert [h["id"] for h in hits] == [made["id"]]
    assert call(tools["forget"], memory_id=made["id"]) == {"forgotten": made["id"]}
    assert all(h["id"] != made["id"] for h in call(tools["recall"], query="peanuts", k=5))


def test_refused_calls_tell_the_model_the_code_and_change_nothing(mem: Memory) -> None:
    tools = {t.name: t for t in memory_tools(mem)}
    before = mem.seq
    missing = call(tools["forget"], memory_id="no-such-id")
    assert missing["error"]["code"] == "not_found"
    bad_k = call(tools["recall"], query="x", k=500)
    assert bad_k["error"]["code"] == "invalid_input"
    assert mem.seq == before
