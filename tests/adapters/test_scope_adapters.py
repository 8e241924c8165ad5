"""user_id / agent_id / run_id, filters, list pages, stats, forget by filter and
drop namespace over HTTP, the CLI and MCP (issue 11 items 2, 3; issue 9 item 14)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client
from typer.testing import CliRunner

from engramdb import Memory
from engramdb.adapters.cli import app
from engramdb.adapters.mcp import build_server
from engramdb.errors import EngramError, error_info
from engramdb.recall.embed import HashingEmbedder

from ._http import Env, make_env


@pytest.fixture
def env() -> Iterator[Env]:
    yield from make_env()


def _post(env: Env, body: dict[str, Any], ns: str = "a") -> dict[str, Any]:
    r = env.call("POST", f"/v1/namespaces/{ns}/memories", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_http_scope_on_writes_filters_on_recall_and_list_pages(env: Env) -> None:
    made = [_post(env, {"text": f"tea note {i}", "user_id": "u1" if i % 2 else "u2",
                        "agent_id": "bot", "run_id": f"r{i}", "attrs": {"n": i}})
            for i in range(5)]
    assert (made[1]["user_id"], made[1]["agent_id"], made[1]["run_id"]) == ("u1", "bot", "r1")
    r = env.call("POST", "/v1/namespaces/a/recall",
                 json={"query": "tea note", "user_id": "u1", "k": 10,
                       "filters": {"attrs.n": {"gte": 2}}})
    assert r.status_code == 200, r.text
    assert [h["node"]["attrs"]["n"] for h in r.json()["hits"]] == [3]
    r = env.call("POST", "/v1/namespaces/a/recall", json={"query": "tea", "min_score": 1e9})
    assert r.json()["hits"] == []
    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"user_id": "u2", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        r = env.call("GET", "/v1/namespaces/a/memories", params=params)
        assert r.status_code == 200, r.text
        seen += [m["attrs"]["n"] for m in r.json()["items"]]
        if seen == [4, 2]:
            _post(env, {"text": "written meanwhile", "user_id": "u2"})
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [4, 2, 0]
    r = env.call("GET", "/v1/namespaces/a/memories",
                 params={"filters": json.dumps({"attrs.n": {"in": [1, 3]}}), "order": "oldest"})
    assert [m["attrs"]["n"] for m in r.json()["items"]] == [1, 3]
    r = env.call("GET", "/v1/namespaces/a/memories", params={"filters": "[1]"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_query"
    r = env.call("GET", "/v1/namespaces/a/stats")
    assert r.json()["by_user"]["u2"] == 4 and "by_tier" in r.json()
    assert r.json()["memories"] == r.json()["by_user"]["u2"] + 2 + r.json()["by_user"]["null"]


def test_http_forget_where_and_drop_namespace(env: Env) -> None:
    mine = _post(env, {"text": "erase me", "user_id": "subject"})
    head = env.mem.seq
    r = env.call("POST", "/v1/namespaces/a/forget", json={})
    assert r.status_code == 422 and env.mem.seq == head  # no filter: an error, not "all"
    r = env.call("POST", "/v1/namespaces/a/forget", json={"user_id": "subject", "dry_run": True})
    assert r.json()["forgotten"] == [mine["id"]] and env.mem.seq == head
    r = env.call("POST", "/v1/namespaces/a/forget", json={"user_id": "subject"}, as_="read_a")
    assert r.status_code == 403
    r = env.call("POST", "/v1/namespaces/a/forget", json={"user_id": "subject"})
    assert r.status_code == 200 and r.json()["count"] == 1
    r = env.call("POST", "/v1/namespaces/b/forget", json={"user_id": "subject"})
    assert r.status_code == 403  # a's token cannot touch b
    r = env.call("POST", "/v1/namespaces/a/drop", json={"confirm": "b"})
    assert r.status_code == 422 and env.mem.namespaced("a").list()
    r = env.call("POST", "/v1/namespaces/a/drop", json={})
    assert r.status_code == 422
    r = env.call("POST", "/v1/namespaces/a/drop", json={"confirm": "a"})
    assert r.status_code == 200 and r.json()["count"] >= 2
    assert env.mem.namespaced("a").list() == [] and env.mem.namespaced("b").list()


def _cli(*args: str) -> tuple[int, str]:
    """Exit code as ``main()`` maps it (an engramdb error: its own code)."""
    result = CliRunner().invoke(app, list(args))
    if isinstance(result.exception, EngramError):
        return error_info(result.exception)["exit_code"], result.output
    return result.exit_code, result.output


def test_cli_scope_list_forget_where_needs_yes(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("ENGRAM_EMBEDDER", "hashing")
    store = str(tmp_path / "c.engram")
    for i, user in enumerate(["maya@example.com", "bob", "maya@example.com"]):
        code, _ = _cli("remember", f"note {i}", "--user-id", user, "--run-id", f"r{i}",
                       "--agent-id", "cli", "-s", store)
        assert code == 0
    code, out = _cli("list", "--user-id", "maya@example.com", "--json", "-s", store)
    assert code == 0, out
    assert [m["text"] for m in json.loads(out)["items"]] == ["note 2", "note 0"]
    code, out = _cli("list", "--limit", "1", "-s", store)
    assert code == 0 and "next page: --cursor" in out
    code, out = _cli("recall", "note", "--run-id", "r1", "--json", "-s", store)
    assert code == 0 and [h["text"] for h in json.loads(out)] == ["note 1"]
    code, out = _cli("forget-where", "-s", store)
    assert code == 2  # an empty filter is an error
    code, out = _cli("forget-where", "--user-id", "maya@example.com", "-s", store)
    assert code == 1 and "would forget 2" in out and "--yes" in out
    with Memory.open(store, embedder=None) as m:
        assert len(m.list()) == 3
    code, out = _cli("forget-where", "--filter", "run_id=r0", "--yes", "-s", store)
    assert code == 0 and "forgot 1" in out
    code, out = _cli("drop-namespace", "default", "-s", store)
    assert code == 1 and "would forget 2" in out
    code, out = _cli("drop-namespace", "default", "--yes", "-s", store)
    assert code == 0
    code, out = _cli("stats", "-s", store)
    assert code == 0 and json.loads(out)["memories"] == 0


def test_mcp_scope_list_and_forget_where() -> None:
    with Memory.open(":memory:", embedder=HashingEmbedder(dim=64)) as mem:
        async def body(client: Client) -> None:
            r = await client.call_tool("remember", {"text": "Maya likes tea",
                                                    "user_id": "maya", "run_id": "r1"})
            assert r.structured_content["user_id"] == "maya"  # type: ignore[index]
            await client.call_tool("remember", {"text": "Bob likes coffee", "user_id": "bob"})
            r = await client.call_tool("recall", {"query": "likes", "user_id": "bob"})
            assert [h["text"] for h in r.structured_content["hits"]] == [  # type: ignore[index]
                "Bob likes coffee"]
            r = await client.call_tool("list_memories", {"user_id": "maya"})
            assert [m["text"] for m in r.structured_content["items"]] == [  # type: ignore[index]
                "Maya likes tea"]
            r = await client.call_tool("forget_where", {})
            assert r.is_error
            r = await client.call_tool("forget_where", {"user_id": "maya"})
            assert r.structured_content["count"] == 1  # type: ignore[index]
            assert "would_forget" in r.structured_content  # type: ignore[operator]
            assert len(mem.list()) == 2
            r = await client.call_tool("forget_where", {"user_id": "maya", "confirm": True})
            assert len(r.structured_content["forgotten"]) == 1  # type: ignore[index]
            r = await client.call_tool("drop_namespace", {"namespace": "default",
                                                          "confirm": True})
            assert r.structured_content["count"] == 1  # type: ignore[index]
            assert mem.list() == []

        async def main() -> None:
            async with Client(build_server(mem)) as client:
                await body(client)

        anyio.run(main)
