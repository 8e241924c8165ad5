"""What a user meets at once (issue 11 item 12): full ids in CLI tables, no base64
vectors in history, "1 memory" in the index, a new memory at version 1 in every
edge, a clear message for a missing benchmark dataset, and a locked store reported
to the MCP client instead of a closed connection."""

from __future__ import annotations

import json
import os
import pathlib
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from typer.testing import CliRunner

from engramdb import Memory
from engramdb.adapters.cli import app, main
from engramdb.adapters.http import create_app
from engramdb.adapters.mcp import build_server
from engramdb.recall.embed import HashingEmbedder

runner = CliRunner()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ENGRAM_EMBEDDER", "hashing")
    return str(tmp_path / "ux.engram")


def test_cli_tables_show_whole_ids_and_no_vectors(store: str) -> None:
    with Memory.open(store, embedder=HashingEmbedder()) as mem:
        ids = [mem.remember("Deploys moved to Tuesdays after the incident review " * 3).id,
               mem.remember("Deploys on Tuesdays need two approvals", id="a-chosen-id-that-"
                            "is-much-longer-than-usual-0123456789").id]
    table = runner.invoke(app, ["recall", "deploys Tuesdays", "-s", store], terminal_width=80)
    assert table.exit_code == 0, table.output
    for node_id in ids:
        assert node_id in table.output, table.output
    as_of = runner.invoke(app, ["as-of", "99", "deploys", "-s", store], terminal_width=80)
    assert all(node_id in as_of.output for node_id in ids), as_of.output
    history = runner.invoke(app, ["history", ids[0], "-s", store], terminal_width=120)
    assert "vector.stored" in history.output and "dims" in history.output
    payloads = json.loads(runner.invoke(app, ["history", ids[0], "--json", "-s", store]).output)
    vector = next(e["payload"] for e in payloads if e["type"] == "vector.stored")
    assert vector["vector"].endswith(" bytes>") and vector["dim"] > 0


def test_the_index_counts_in_the_singular(store: str) -> None:
    with Memory.open(store, embedder=None) as mem:
        mem.remember("Maya lives in Lisbon", name="Maya", domain="people")
        one = mem.index()
        assert "1 memory, 1 named entity, 1 domain, 0 cross-domain links" in one, one
        assert "people: 1 memory" in one and "memories" not in one
        mem.remember("Bob lives in Porto", name="Bob", domain="people")
        assert "2 memories, 2 named entities, 1 domain" in mem.index()


def test_a_new_memory_is_version_1_everywhere(store: str) -> None:
    with Memory.open(store, embedder=HashingEmbedder()) as mem:
        lib = mem.remember("library memory")
        assert lib.version == 1
        with TestClient(create_app(mem, tokens=None)) as client:
            base = "/v1/namespaces/default/memories"
            made = client.post(base, json={"text": "http memory"}).json()
            assert made["version"] == 1 and "stream_version" not in made
            moved = client.patch(f"{base}/{made['id']}",
                                 json={"text": "http memory, changed", "expected_version": 1})
            assert moved.status_code == 200 and moved.json()["version"] == 2
            stale = client.patch(f"{base}/{made['id']}",
                                 json={"text": "lost", "expected_version": 1})
            assert stale.status_code == 409 and stale.json()["error"]["code"] == "version_conflict"
        got: dict[str, Any] = {}

        async def body() -> None:
            async with Client(build_server(mem)) as client:
                result = await client.call_tool("remember", {"text": "mcp memory"})
                got.update(result.structured_content or {})

        anyio.run(body)
        assert got["version"] == 1
    cli = json.loads(runner.invoke(app, ["get", lib.id, "-s", store]).output)
    assert cli["version"] == 1 and "stream_version" not in cli


def test_bench_without_its_dataset_says_where_to_get_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "locomo10.json")
    for args in (["bench", "locomo", missing], ["bench", "longmemeval", missing],
                 ["bench", "cognition", "--path", missing]):
        monkeypatch.setattr(sys, "argv", ["engram", *args])
        with pytest.raises(SystemExit) as info:
            main()
        err = capsys.readouterr().err
        assert info.value.code == 3 and "not_found" in err and "download" in err, err
        assert "Traceback" not in err


def test_an_engram_mcp_on_a_locked_store_tells_the_client(tmp_path: Path) -> None:
    """A store held exclusively (a compaction, an import) when ``engram mcp``
    starts: the server still serves its tools, and each answers store_locked."""
    path = str(tmp_path / "locked.engram")
    engram = pathlib.Path(sys.executable).parent / "engram"
    params = StdioServerParameters(command=str(engram), args=["mcp", "--store", path],
                                   cwd=str(tmp_path),
                                   env={**os.environ, "ENGRAM_EMBEDDER": "hashing"})
    seen: dict[str, Any] = {}

    async def body(errlog: Any) -> None:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            seen["tools"] = {t.name for t in (await client.list_tools()).tools}
            for tool, args in (("remember", {"text": "x"}), ("recall", {"query": "x"})):
                result = await client.call_tool(tool, args)
                assert result.is_error
                seen[tool] = json.loads(result.content[0].text)  # type: ignore[union-attr]

    with Memory.open(path, embedder=None) as first, \
            first.store.log.exclusive("compact"), \
            open(tmp_path / "stderr.txt", "w+") as errlog:
        anyio.run(body, errlog)
        assert first.seq == 0
        errlog.seek(0)
        logged = errlog.read()
    assert {"remember", "recall", "get"} <= seen["tools"]
    for tool in ("remember", "recall"):
        assert seen[tool]["error"]["code"] == "store_locked", seen
        assert f"process {os.getpid()}" in seen[tool]["error"]["message"], seen
    assert "store_locked" in logged


def test_two_engram_mcp_servers_on_one_store_both_take_writes(tmp_path: Path) -> None:
    """Fails on old main (the second got store_locked): two ``engram mcp`` processes
    on one store both remember, and each reads the other's memory (min_seq)."""
    path = str(tmp_path / "shared.engram")
    engram = pathlib.Path(sys.executable).parent / "engram"
    params = StdioServerParameters(command=str(engram), args=["mcp", "--store", path],
                                   cwd=str(tmp_path),
                                   env={**os.environ, "ENGRAM_EMBEDDER": "hashing"})
    seen: dict[str, Any] = {}

    async def body() -> None:
        async with Client(stdio_client(params)) as one, Client(stdio_client(params)) as two:
            a = (await one.call_tool("remember", {"text": "Maya lives in Lisbon"}))
            b = (await two.call_tool("remember", {"text": "Omar lives in Porto"}))
            seen["a"], seen["b"] = a.structured_content, b.structured_content
            for name, client, other in (("one", one, seen["b"]), ("two", two, seen["a"])):
                got = await client.call_tool("get", {"id": other["id"],
                                                     "min_seq": other["seq"]})
                seen[name] = got.structured_content
                hits = await client.call_tool("recall", {"query": "who lives where",
                                                         "min_seq": max(seen["a"]["seq"],
                                                                        seen["b"]["seq"])})
                seen[name + "_hits"] = {h["id"] for h in hits.structured_content["hits"]}

    anyio.run(body)
    assert seen["one"]["text"] == "Omar lives in Porto"
    assert seen["two"]["text"] == "Maya lives in Lisbon"
    assert seen["a"]["seq"] != seen["b"]["seq"]
    for name in ("one", "two"):
        assert {seen["a"]["id"], seen["b"]["id"]} <= seen[name + "_hits"], seen
    with Memory.open(path, embedder=None, read_only=True) as mem:
        assert sorted(n.text for n in mem.list()) == ["Maya lives in Lisbon",
                                                      "Omar lives in Porto"]
