"""``engram update`` and the MCP ``update`` tool: only the fields given change, the
earlier version stays readable, ``expected_version`` is optimistic, errors carry
the library's codes (the library and HTTP had update already)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.client import Client
from typer.testing import CliRunner

from engramdb import Memory
from engramdb.adapters.cli import app, main
from engramdb.adapters.mcp import build_server
from engramdb.recall.embed import HashingEmbedder

runner = CliRunner()


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    monkeypatch.setenv("ENGRAM_EMBEDDER", "hashing")
    path = str(tmp_path / "u.engram")
    with Memory.open(path, embedder=HashingEmbedder()) as mem:
        node = mem.remember("Maya lives in Berln", name="Maya", domain="people",
                            attrs={"city": "Berlin", "age": 30})
    return path, node.id


def cli_json(*args: str) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_engram_update_changes_only_what_is_given(store: tuple[str, str],
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path, node_id = store
    before = cli_json("get", node_id, "-s", path)
    after = cli_json("update", node_id, "--text", "Maya lives in Berlin", "--attr", "age=31",
                     "--attr", 'tags=["friend"]', "--unset", "city", "--clear-domain",
                     "--agent", "fixer", "--json", "-s", path)
    assert after["text"] == "Maya lives in Berlin" and after["name"] == "Maya"
    assert after["domain"] is None and after["attrs"] == {"age": 31, "tags": ["friend"]}
    assert after["version"] > before["version"]
    old = cli_json("get", node_id, "--as-of", str(before["seq"]), "-s", path)
    assert old["text"] == "Maya lives in Berln"
    trail = cli_json("history", node_id, "--json", "-s", path)
    assert trail[-1]["meta"]["agent"] == "fixer"

    plain = runner.invoke(app, ["update", node_id, "--name", "Maya K.", "-s", path])
    assert plain.exit_code == 0 and node_id in plain.output and "version" in plain.output

    def code(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["engram", *args])
        with pytest.raises(SystemExit) as info:
            main()
        return int(info.value.code or 0), capsys.readouterr().err

    stale = str(before["version"])
    assert code("update", node_id, "--text", "x", "--expected-version", stale, "-s", path)[0] \
        == 4  # version_conflict: nothing written
    assert cli_json("get", node_id, "-s", path)["text"] == "Maya lives in Berlin"
    assert code("update", "nope", "--text", "x", "-s", path)[0] == 3
    status, err = code("update", node_id, "--attr", "novalue", "-s", path)
    assert status == 2 and "invalid_input" in err
    assert code("update", node_id, "--name", "a", "--clear-name", "-s", path)[0] == 2


def test_mcp_update_tool(store: tuple[str, str]) -> None:
    path, node_id = store
    results: list[Any] = []

    async def body(client: Client) -> None:
        got = (await client.call_tool("get", {"id": node_id})).structured_content
        assert got is not None
        calls = [
            {"id": node_id, "text": "Maya lives in Berlin", "attrs": {"age": 31},
             "unset": ["city"], "clear": ["domain"], "session": "s9"},
            {"id": node_id, "text": "late", "expected_version": got["version"]},
            {"id": node_id, "name": "M", "clear": ["name"]},
            {"id": "missing", "text": "x"},
            {"id": node_id, "text": "x", "namespace": "elsewhere"},
        ]
        for args in calls:
            result = await client.call_tool("update", args)
            results.append((result.is_error, result.structured_content))
        results.append((await client.call_tool("history", {"id": node_id})).structured_content)

    with Memory.open(path, embedder=HashingEmbedder()) as mem:
        async def main_() -> None:
            async with Client(build_server(mem)) as client:
                await body(client)

        anyio.run(main_)
        assert mem.get(node_id).text == "Maya lives in Berlin"
    (ok, changed), *errors, history = results
    assert not ok and changed["attrs"] == {"age": 31} and "domain" not in changed
    assert changed["name"] == "Maya" and changed["updated_at"] >= changed["created_at"]
    assert [e[1]["error"]["code"] for e in errors] == ["version_conflict", "invalid_input",
                                                       "not_found", "forbidden"]
    assert all(e[0] for e in errors)
    assert history["events"][-1]["session"] == "s9" and history["events"][-1]["agent"] == "mcp"
