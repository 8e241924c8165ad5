"""engramdb memory as OpenAI Agents SDK tools (pip install 'engram-eventdb[openai-agents]').

Run: python docs/examples/openai_agents_tools.py [STORE]

With OPENAI_API_KEY set, an Agent with the tools answers a question (the model
decides when to call remember/recall). Without it, the script invokes the same tool
objects directly, exactly as the SDK's runner would, so it runs offline.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from agents import Agent, FunctionTool, Runner
from agents.tool_context import ToolContext

from engramdb import Memory
from engramdb.integrations.openai_agents import memory_tools


async def invoke(tool: FunctionTool, **arguments: object) -> str:
    raw = json.dumps(arguments)
    ctx = ToolContext(context=None, tool_name=tool.name, tool_call_id="local",
                      tool_arguments=raw)
    return str(await tool.on_invoke_tool(ctx, raw))


async def main(path: str = ":memory:") -> None:
    with Memory.open(path, namespace="maya") as mem:
        tools = memory_tools(mem, domain="chat")
        agent = Agent(name="assistant", tools=tools,
                      instructions="Remember what the user tells you about themselves; "
                                   "recall it before answering questions about them.")
        if os.environ.get("OPENAI_API_KEY"):
            await Runner.run(agent, "I'm allergic to peanuts and I live in Lisbon.")
            result = await Runner.run(agent, "Where do I live?")
            print("agent ->", result.final_output)
            return
        by_name = {t.name: t for t in tools}
        for text in ["Maya is allergic to peanuts", "Maya lives in Lisbon"]:
            print("remember ->", await invoke(by_name["remember"], text=text, name=None))
        print("recall ->", await invoke(by_name["recall"], query="where does Maya live?", k=1))
        print("bad call ->", await invoke(by_name["forget"], memory_id="no-such-id"))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:2]))
