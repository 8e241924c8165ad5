"""LangGraph long-term memory in engramdb (pip install 'engram-eventdb[langgraph]').

Run: python docs/examples/langgraph_store.py [STORE]   (default: an in-memory store)

A two-node graph: `learn` writes what the user told it into the store, `answer`
searches the store for it. No LLM is involved, so this runs offline as it is; in a
real agent the nodes would call a model. Because the store is engramdb, every put
is an event: the script ends by showing the item's history and an older version.
"""

from __future__ import annotations

import operator
import sys
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore

from engramdb import Memory
from engramdb.integrations.langgraph import EngramStore


class State(TypedDict):
    user: str
    said: str
    question: str
    log: Annotated[list[str], operator.add]


def learn(state: State, *, store: BaseStore) -> dict[str, Any]:
    key = str(len(store.search(("users", state["user"]), limit=1000)))
    store.put(("users", state["user"]), key, {"text": state["said"]})
    return {"log": [f"stored {state['said']!r} as {key}"]}


def answer(state: State, *, store: BaseStore) -> dict[str, Any]:
    hits = store.search(("users", state["user"]), query=state["question"], limit=1)
    return {"log": [f"{state['question']} -> {hits[0].value['text'] if hits else '?'}"]}


def main(path: str = ":memory:") -> None:
    with Memory.open(path, namespace="langgraph-demo") as mem:
        store = EngramStore(mem)
        builder = StateGraph(State)
        builder.add_node("learn", learn)
        builder.add_node("answer", answer)
        builder.add_edge(START, "learn")
        builder.add_edge("learn", "answer")
        builder.add_edge("answer", END)
        graph = builder.compile(store=store)
        for said, question in [("I live in Berlin", "where do I live?"),
                               ("I am allergic to peanuts", "what can't I eat?")]:
            result = graph.invoke({"user": "maya", "said": said, "question": question,
                                   "log": []})
            print("\n".join(result["log"]))
        before = mem.seq
        store.put(("users", "maya"), "0", {"text": "I moved to Lisbon"})
        now = store.get(("users", "maya"), "0")
        print("now:", now.value["text"] if now else None)
        node = store.node(("users", "maya"), "0")  # the engramdb memory behind the item
        print("as of seq", before, ":", mem.as_of(before).get(node.id).attrs["lg_value"])
        print("history:", [e.type for e in mem.history(node.id)])


if __name__ == "__main__":
    main(*sys.argv[1:2])
