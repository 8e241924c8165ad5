"""The MCP server, driven by the SDK's own client: in process for most cases,
once over stdio as a subprocess (the way Claude Desktop / Cursor launch it) and
once over streamable HTTP on a loopback socket."""

from __future__ import annotations

import json
import pathlib
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult
from typer.testing import CliRunner

from engramdb import Memory
from engramdb.adapters.cli import app
from engramdb.adapters.mcp import build_server
from engramdb.recall.embed import HashingEmbedder

from ._mcp import serve

TOOLS = {"remember", "update", "recall", "relate", "forget", "history", "as_of", "index", "get",
         "query", "record_outcome", "list_memories", "forget_where", "drop_namespace"}
ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def mem() -> Iterator[Memory]:
    with Memory.open(":memory:", embedder=HashingEmbedder(dim=64)) as m:
        yield m


def run(server: MCPServer, body: Callable[[Client], Awaitable[None]]) -> None:
    async def main() -> None:
        async with Client(server) as client:
            await body(client)

    anyio.run(main)


def ok(result: CallToolResult) -> dict[str, Any]:
    """The structured result of a successful call (its text block says the same)."""
    assert not result.is_error, result.content
    assert result.structured_content is not None
    text = result.content[0].text  # type: ignore[union-attr]
    assert json.loads(text) == result.structured_content
    return result.structured_content


async def read_text(client: Client, uri: str) -> str:
    contents = (await client.read_resource(uri)).contents
    assert len(contents) == 1 and contents[0].mime_type == "text/markdown"
    return contents[0].text  # type: ignore[union-attr]


def error_code(result: CallToolResult) -> str:
    assert result.is_error
    body = json.loads(result.content[0].text)  # type: ignore[union-attr]
    assert body["error"]["message"]
    return str(body["error"]["code"])


# -- the tool surface ------------------------------------------------------------


def test_lists_the_documented_tools(mem: Memory) -> None:
    async def body(client: Client) -> None:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert tool.description and len(tool.description) > 120, tool.name
            props = tool.input_schema["properties"]
            assert all(p.get("description") for p in props.values()), tool.name
            assert "namespace" in props, tool.name
            assert tool.output_schema is not None and tool.output_schema["type"] == "object"
        assert tools["recall"].annotations.read_only_hint is True  # type: ignore[union-attr]
        assert tools["forget"].annotations.destructive_hint is True  # type: ignore[union-attr]
        assert "2026-03-01" in tools["as_of"].description  # type: ignore[operator]
        assert tools["as_of"].input_schema["required"] == ["query", "when"]

    run(build_server(mem), body)


def test_remember_recall_get_history_forget(mem: Memory) -> None:
    async def body(client: Client) -> None:
        maya = ok(await client.call_tool("remember", {
            "text": "Maya lives in Berlin", "name": "Maya", "domain": "people",
            "attrs": {"city": "Berlin"}, "source": "chat", "session": "s1",
        }))
        acme = ok(await client.call_tool("remember", {
            "text": "Acme Robotics builds schedulers", "name": "Acme", "domain": "companies",
        }))
        assert (maya["name"], maya["domain"]) == ("Maya", "people")
        assert maya["attrs"] == {"city": "Berlin"}
        edge = ok(await client.call_tool("relate", {"src": maya["id"], "rel": "works_at",
                                                    "dst": acme["id"]}))
        assert edge["rel"] == "works_at" and edge["seq"] > acme["seq"]

        found = ok(await client.call_tool("recall", {"query": "where does Maya live?", "k": 2}))
        top = found["hits"][0]
        assert top["id"] == maya["id"] and top["text"] == "Maya lives in Berlin"
        assert top["score"] > 0 and top["signals"]
        assert top["provenance"] == {"seq": maya["seq"], "recorded_at": maya["created_at"],
                                     "agent": "mcp", "source": "chat", "session": "s1"}
        only = ok(await client.call_tool("recall", {"query": "Maya", "domains": ["companies"]}))
        assert [h["id"] for h in only["hits"]] == [acme["id"]]
        filtered = ok(await client.call_tool("recall", {"query": "lives",
                                                        "filters": {"attrs.city": "Berlin"}}))
        assert [h["id"] for h in filtered["hits"]] == [maya["id"]]

        assert (maya["created"], maya["superseded"]) == (True, [])
        got = ok(await client.call_tool("get", {"id": maya["id"]}))
        assert got == {k: v for k, v in maya.items() if k not in ("created", "superseded")}
        trail = ok(await client.call_tool("history", {"id": maya["id"]}))
        assert trail["events"][0]["type"] == "node.created"
        assert trail["events"][0]["payload"]["text"] == "Maya lives in Berlin"
        assert trail["events"][0]["session"] == "s1"
        assert all(isinstance(v, str) for e in trail["events"] for v in e["payload"].values()
                   if not isinstance(v, int | dict))  # raw vector bytes never leak

        gone = ok(await client.call_tool("forget", {"id": maya["id"], "reason": "asked to"}))
        assert gone["forgotten"] is True and gone["reason"] == "asked to"
        assert error_code(await client.call_tool("get", {"id": maya["id"]})) == "not_found"
        after = ok(await client.call_tool("recall", {"query": "where does Maya live?"}))
        assert maya["id"] not in [h["id"] for h in after["hits"]]
        trail = ok(await client.call_tool("history", {"id": maya["id"]}))
        assert trail["events"][-1]["type"] == "node.forgotten"
        assert "Berlin" not in json.dumps(trail)

    run(build_server(mem), body)
    assert mem.find("Acme").text == "Acme Robotics builds schedulers"  # the same store


def test_as_of_sees_the_old_state(mem: Memory) -> None:
    async def body(client: Client) -> None:
        maya = ok(await client.call_tool("remember", {"text": "Maya lives in Berlin"}))
        before = mem.seq
        time.sleep(0.002)  # keep the two commits' timestamps apart
        moment = datetime.now(UTC).isoformat()
        time.sleep(0.002)
        mem.update(maya["id"], text="Maya lives in Lisbon")
        ok(await client.call_tool("remember", {"text": "Maya adopted a cat"}))

        now = ok(await client.call_tool("recall", {"query": "where does Maya live", "k": 5}))
        assert "Maya lives in Lisbon" in [h["text"] for h in now["hits"]]
        for when in (before, str(before), moment):
            then = ok(await client.call_tool("as_of", {"query": "where does Maya live",
                                                       "when": when, "k": 5}))
            assert [h["text"] for h in then["hits"]] == ["Maya lives in Berlin"], when
            assert then["seq"] == before
            old = ok(await client.call_tool("get", {"id": maya["id"], "as_of": when}))
            assert old["text"] == "Maya lives in Berlin"
        empty = ok(await client.call_tool("as_of", {"query": "Maya", "when": "2000-01-01"}))
        assert empty == {"namespace": "default", "seq": 0, "hits": []}
        current = ok(await client.call_tool("get", {"id": maya["id"]}))
        assert current["text"] == "Maya lives in Lisbon"

    run(build_server(mem), body)


def test_remember_supersedes_a_changed_fact(mem: Memory) -> None:
    async def body(client: Client) -> None:
        berlin = ok(await client.call_tool("remember", {"text": "Maya lives in Berlin"}))
        before = mem.seq
        lisbon = ok(await client.call_tool("remember", {"text": "Maya lives in Lisbon",
                                                        "supersedes": berlin["id"]}))
        assert (lisbon["created"], lisbon["superseded"]) == (True, [berlin["id"]])
        now = ok(await client.call_tool("recall", {"query": "where does Maya live"}))
        assert [h["text"] for h in now["hits"]] == ["Maya lives in Lisbon"]
        then = ok(await client.call_tool("as_of", {"query": "where does Maya live",
                                                   "when": before}))
        assert [h["text"] for h in then["hits"]] == ["Maya lives in Berlin"]
        head = mem.seq
        again = ok(await client.call_tool("remember", {"text": "Maya lives in Lisbon"}))
        assert (again["id"], again["created"]) == (lisbon["id"], False)
        assert mem.seq == head

    run(build_server(mem), body)


# -- errors --------------------------------------------------------------------


def test_engram_errors_are_tool_errors_and_change_nothing(mem: Memory) -> None:
    known = mem.remember("Deploys moved to Tuesdays").id
    head = mem.seq

    async def body(client: Client) -> None:
        cases: list[tuple[str, dict[str, Any], str]] = [
            ("get", {"id": "no-such-id"}, "not_found"),
            ("history", {"id": "no-such-id"}, "not_found"),
            ("forget", {"id": "no-such-id"}, "not_found"),
            ("relate", {"src": known, "rel": "x", "dst": "no-such-id"}, "not_found"),
            ("relate", {"src": known, "rel": "", "dst": known}, "invalid_input"),
            ("recall", {"query": "deploys", "k": 0}, "invalid_query"),
            ("recall", {"query": "   "}, "invalid_query"),
            ("as_of", {"query": "deploys", "when": "last tuesday"}, "invalid_input"),
            ("get", {"id": known, "as_of": -3}, "invalid_input"),
            ("remember", {"text": "x", "attrs": {"big": "y" * (2 << 20)}}, "payload_too_large"),
            ("remember", {"text": "x", "valid_from": "someday"}, "invalid_input"),
        ]
        for name, args, code in cases:
            assert error_code(await client.call_tool(name, args)) == code, (name, args)
        # arguments that fail the input schema are tool errors too, naming the field
        bad = await client.call_tool("recall", {"query": "deploys", "k": "many"})
        assert bad.is_error and "k" in bad.content[0].text  # type: ignore[union-attr]
        missing = await client.call_tool("remember", {})
        assert missing.is_error and "text" in missing.content[0].text  # type: ignore[union-attr]

    run(build_server(mem), body)
    assert mem.seq == head
    assert mem.get(known).text == "Deploys moved to Tuesdays"


# -- namespaces ------------------------------------------------------------------


def test_namespaces_never_cross_without_a_grant(mem: Memory) -> None:
    alice = mem.namespaced("alice")
    bob = mem.namespaced("bob")
    secret = bob.remember("Bob's locker code is 4711", name="Locker").id
    alice.remember("Alice prefers tea over coffee")
    head = mem.seq

    async def alone(client: Client) -> None:
        hits = ok(await client.call_tool("recall", {"query": "Bob locker code 4711"}))["hits"]
        assert secret not in [h["id"] for h in hits]
        assert all(h["text"].startswith("Alice") for h in hits)
        for name, args in [("get", {"id": secret}), ("history", {"id": secret}),
                           ("forget", {"id": secret})]:
            assert error_code(await client.call_tool(name, args)) == "not_found"
        for name, args in [("recall", {"query": "locker", "namespace": "bob"}),
                           ("get", {"id": secret, "namespace": "bob"}),
                           ("remember", {"text": "planted", "namespace": "bob"}),
                           ("as_of", {"query": "locker", "when": 1, "namespace": "bob"}),
                           ("index", {"namespace": "bob"}),
                           ("recall", {"query": "x", "namespace": "not a namespace!"})]:
            assert error_code(await client.call_tool(name, args)) == "forbidden", name
        with pytest.raises(MCPError, match="forbidden"):
            await client.read_resource("engram://index/bob")

    run(build_server(alice), alone)
    assert mem.seq == head  # the refused write wrote nothing, anywhere
    assert bob.get(secret).text == "Bob's locker code is 4711"

    async def granted(client: Client) -> None:
        hits = ok(await client.call_tool("recall", {"query": "locker code", "namespace": "bob"}))
        assert hits["namespace"] == "bob" and hits["hits"][0]["id"] == secret
        note = ok(await client.call_tool("remember", {"text": "Bob owes Alice lunch",
                                                      "namespace": "bob"}))
        assert ok(await client.call_tool("get", {"id": note["id"], "namespace": "bob"}))
        # the home namespace still sees none of it
        assert error_code(await client.call_tool("get", {"id": note["id"]})) == "not_found"
        assert error_code(await client.call_tool("get", {"id": secret, "namespace": "carol"})) \
            == "forbidden"

    run(build_server(alice, grants=["bob"]), granted)
    assert [h.text for h in alice.recall("Bob owes Alice lunch")] == [
        "Alice prefers tea over coffee"]
    assert bob.recall("Bob owes Alice lunch")[0].text == "Bob owes Alice lunch"


def test_read_only_server_beside_a_writer(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "shared.engram"
    embedder = HashingEmbedder(dim=64)
    with Memory.open(path, embedder=embedder) as writer:
        note = writer.remember("Deploys moved to Tuesdays").id
        writer.snapshot()
        with Memory.open(path, embedder=embedder, read_only=True) as reader:

            async def body(client: Client) -> None:
                hits = ok(await client.call_tool("recall", {"query": "deploys"}))["hits"]
                assert [h["id"] for h in hits] == [note]
                assert error_code(await client.call_tool("remember", {"text": "x"})) == "read_only"
                assert error_code(await client.call_tool("forget", {"id": note})) == "read_only"

            run(build_server(reader), body)
        assert writer.get(note).text == "Deploys moved to Tuesdays"


def test_a_bad_grant_is_rejected(mem: Memory) -> None:
    with pytest.raises(ValueError, match="namespace"):
        build_server(mem, grants=["../etc"])


# -- the compressed index ----------------------------------------------------------


def test_index_tool_and_resource(mem: Memory) -> None:
    maya = mem.remember("Maya lives in Lisbon", name="Maya", domain="people")
    before = mem.seq
    acme = mem.remember("Acme Robotics builds schedulers", name="Acme", domain="companies")
    mem.relate(maya.id, "works_at", acme.id)
    mem.namespaced("team").remember("Team offsite is in May", name="Offsite", domain="events")

    async def body(client: Client) -> None:
        resources = (await client.list_resources()).resources
        assert [str(r.uri) for r in resources] == ["engram://index"]
        assert resources[0].mime_type == "text/markdown"
        text = await read_text(client, "engram://index")
        assert text == mem.index()
        assert "people" in text and "companies" in text and "Maya" in text
        assert "Offsite" not in text
        tool = ok(await client.call_tool("index", {}))
        assert tool == {"namespace": "default", "index": text}
        team = await read_text(client, "engram://index/team")
        assert "Offsite" in team and "Maya" not in team
        small = ok(await client.call_tool("index", {"max_tokens": 64}))["index"]
        assert small == mem.index(max_tokens=64) and len(small) < len(text)
        assert error_code(await client.call_tool("index", {"max_tokens": 3})) == "invalid_input"

        plain = ok(await client.call_tool("recall", {"query": "Maya"}))
        assert "index" not in plain
        both = ok(await client.call_tool("recall", {"query": "Maya", "with_index": True}))
        assert both["index"] == text and both["hits"][0]["id"] == maya.id
        past = ok(await client.call_tool("index", {"as_of": before}))["index"]
        assert past == mem.index(as_of=before) and "Acme" not in past and "Maya" in past
        then = ok(await client.call_tool("as_of", {"query": "Maya", "when": before,
                                                   "with_index": True}))
        assert then["index"] == past and then["seq"] == before

    run(build_server(mem, grants=["team"]), body)


# -- real transports -------------------------------------------------------------


def test_over_stdio_as_a_subprocess(tmp_path: pathlib.Path) -> None:
    """What an MCP client does: launch `engram mcp`, speak JSON-RPC over its pipes."""
    engram = pathlib.Path(sys.executable).parent / "engram"
    assert engram.exists(), "the engram entry point is installed beside the interpreter"
    params = StdioServerParameters(
        command=str(engram),
        args=["mcp", "--store", str(tmp_path / "agent.engram"), "--namespace", "alice",
              "--grant", "team"],
        cwd=str(tmp_path),
    )
    stray: list[BaseException] = []  # anything on stdout that is not JSON-RPC lands here
    seen: dict[str, str] = {}

    async def watch(message: Any) -> None:
        if isinstance(message, BaseException):
            stray.append(message)

    async def main(errlog: Any) -> None:
        async with Client(stdio_client(params, errlog=errlog), message_handler=watch) as client:
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS
            maya = ok(await client.call_tool("remember", {"text": "Maya lives in Berlin",
                                                          "name": "Maya", "domain": "people"}))
            before = maya["seq"] + 1  # the memory and its vector commit together
            ok(await client.call_tool("remember", {"text": "Maya adopted a cat named Tofu"}))
            hits = ok(await client.call_tool("recall", {"query": "Where does Maya live?"}))["hits"]
            assert hits[0]["id"] == maya["id"]
            then = ok(await client.call_tool("as_of", {"query": "Maya", "when": before}))
            assert [h["id"] for h in then["hits"]] == [maya["id"]]
            assert ok(await client.call_tool("get", {"id": maya["id"]}))["text"] == maya["text"]
            trail = ok(await client.call_tool("history", {"id": maya["id"]}))["events"]
            assert trail[0]["type"] == "node.created" and trail[0]["agent"] == "mcp"
            text = await read_text(client, "engram://index")
            assert "Maya" in text
            ok(await client.call_tool("forget", {"id": maya["id"]}))
            assert error_code(await client.call_tool("get", {"id": maya["id"]})) == "not_found"
            assert error_code(await client.call_tool(
                "recall", {"query": "Maya", "namespace": "bob"})) == "forbidden"
            shared = ok(await client.call_tool("remember", {"text": "Standup at 9",
                                                            "namespace": "team"}))
            assert error_code(await client.call_tool("get", {"id": shared["id"]})) == "not_found"
            assert ok(await client.call_tool("get", {"id": shared["id"], "namespace": "team"}))
            seen["shared"] = shared["id"]

    with open(tmp_path / "stderr.txt", "w+") as errlog:
        try:
            anyio.run(main, errlog)
        finally:  # on failure pytest shows the server's stderr
            errlog.seek(0)
            logged = errlog.read()
            print(logged, file=sys.stderr)
    assert stray == [], logged
    with Memory.open(tmp_path / "agent.engram", namespace="team", embedder=None,
                     read_only=True) as after:  # the server wrote to the file, in "team"
        assert after.get(seen["shared"]).text == "Standup at 9"
        assert not after.namespaced("alice").exists(seen["shared"])


@pytest.fixture
def http_server(mem: Memory) -> Iterator[str]:
    yield from serve(build_server(mem).streamable_http_app())


def test_over_streamable_http(http_server: str, mem: Memory) -> None:
    async def main() -> None:
        async with Client(http_server) as client:
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS
            note = ok(await client.call_tool("remember", {"text": "Deploys moved to Tuesdays"}))
            hits = ok(await client.call_tool("recall", {"query": "when do we deploy"}))["hits"]
            assert hits[0]["id"] == note["id"]
            assert error_code(await client.call_tool("get", {"id": "nope"})) == "not_found"
            assert error_code(await client.call_tool(
                "get", {"id": note["id"], "namespace": "other"})) == "forbidden"

    anyio.run(main)
    assert mem.recall("deploy", k=1)[0].text == "Deploys moved to Tuesdays"


# -- CLI and README ------------------------------------------------------------------


def test_cli_rejects_an_unknown_transport(tmp_path: pathlib.Path) -> None:
    result = CliRunner().invoke(app, ["mcp", "--store", str(tmp_path / "x.engram"),
                                      "--transport", "carrier-pigeon"])
    assert result.exit_code == 2
    assert not (tmp_path / "x.engram").exists()


def test_readme_documents_the_mcp_server() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## MCP", 1)[1].split("\n## ", 1)[0]
    configs = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.S)]
    servers = [s for c in configs for s in c["mcpServers"].values()]
    # a desktop client does not search the venv's PATH: every command is an absolute path
    assert all(s["command"].startswith("/") for s in servers)
    assert any(s["command"].endswith("/bin/engram") and s["args"][:1] == ["mcp"]
               for s in servers)  # the installed package's script
    assert any(s["command"].endswith("/engram") and s["args"][:1] == ["mcp"] for s in servers)
    for tool in TOOLS:
        assert f"`{tool}`" in section, tool
