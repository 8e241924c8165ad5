"""engramdb inside agent frameworks, each an optional extra.

* :mod:`engramdb.integrations.langgraph` -- ``EngramStore``, a LangGraph ``BaseStore``
  (``pip install 'engram-eventdb[langgraph]'``).
* :mod:`engramdb.integrations.openai_agents` -- remember/recall as OpenAI Agents SDK
  function tools (``pip install 'engram-eventdb[openai-agents]'``).
"""
