"""engramdb memory as OpenAI Agents SDK function tools.

Install with ``pip install 'engram-eventdb[openai-agents]'``.

::

    from agents import Agent
    from engramdb import Memory
    from engramdb.integrations.openai_agents import memory_tools

    mem = Memory.open("agent.engram", namespace="maya")
    agent = Agent(name="assistant", instructions="...", tools=memory_tools(mem))

:func:`memory_tools` returns ``remember``, ``recall`` and ``forget`` as
``agents.FunctionTool`` objects. Each runs its engramdb call in a worker thread, so
the agent's event loop never waits on embedding or disk, and answers the model
with JSON. A refused call (bad input, an unknown id) goes back to the model as
``{"error": {"code", "message"}}`` with engramdb's stable code, so it can correct
itself; nothing is written. ``memory`` may be a :func:`engramdb.connect` remote
memory too.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ..errors import EngramError, InvalidInput
from ..extras import missing_extra

try:
    from agents import FunctionTool, RunContextWrapper, function_tool
except ModuleNotFoundError as exc:  # pragma: no cover - exercised without the extra
    raise missing_extra(exc, "engramdb.integrations.openai_agents") from exc

__all__ = ["memory_tools"]


def _failure(_: RunContextWrapper[Any], error: Exception) -> str:
    """What the model is told when a tool call fails: engramdb's code, never a traceback."""
    if isinstance(error, EngramError):
        return json.dumps({"error": {"code": error.code, "message": error.message}})
    return json.dumps({"error": {"code": "internal_error", "message": "the tool failed"}})


def memory_tools(memory: Any, *, domain: str | None = None, agent: str | None = "agent",
                 max_k: int = 20) -> list[FunctionTool]:
    """``remember``, ``recall`` and ``forget`` over ``memory`` as Agents SDK tools.

    ``domain`` is given to every memory the agent writes (and limits what it recalls);
    ``agent`` is recorded as the writer in each event's provenance.
    """

    async def remember(text: str, name: str | None = None) -> str:
        """Store one fact, preference or event about the user or the task for later.

        Args:
            text: The fact in one self-contained sentence.
            name: Optional unique name of the entity it describes (e.g. a person).
        """
        node = await asyncio.to_thread(memory.remember, text, name=name, domain=domain,
                                       agent=agent)
        return json.dumps({"id": node.id, "created": bool(getattr(node, "created", True))})

    async def recall(query: str, k: int = 5) -> str:
        """Look up stored memories relevant to a question, best first.

        Args:
            query: What you want to know, in natural language.
            k: How many memories to return (1 to 20).
        """
        if isinstance(k, int) and not 1 <= k <= max_k:
            raise InvalidInput(f"k must be from 1 to {max_k}, got {k}")
        domains = None if domain is None else [domain]
        hits = await asyncio.to_thread(memory.recall, query, k=k, domains=domains)
        return json.dumps([{"id": h.id, "text": h.text, "score": round(float(h.score), 4)}
                           for h in hits])

    async def forget(memory_id: str) -> str:
        """Forget a stored memory that is wrong or that the user asked to delete.

        Args:
            memory_id: The id returned by remember or recall.
        """
        await asyncio.to_thread(memory.forget, memory_id, reason="forgotten by the agent")
        return json.dumps({"forgotten": memory_id})

    return [function_tool(fn, failure_error_function=_failure)
            for fn in (remember, recall, forget)]

