"""``engram mcp --transport http`` is guarded like ``engram serve``: a bearer token
whose grant covers every namespace served, loopback-only without one, and a
non-loopback address only with ``--allow-remote``. Reads are logged for salience
and flushed when the server stops."""

from __future__ import annotations

import pathlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from typer.testing import CliRunner

from engramdb import Memory
from engramdb.adapters import mcp as mcp_adapter
from engramdb.adapters.auth import TokenStore
from engramdb.adapters.cli import app
from engramdb.adapters.mcp import build_server, check_http_config, http_app
from engramdb.errors import InvalidInput
from engramdb.events.types import MEMORY_ACCESSED
from engramdb.recall.embed import HashingEmbedder

from ._mcp import serve

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "t", "version": "1"}}}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture
def mem() -> Iterator[Memory]:
    with Memory.open(":memory:", embedder=HashingEmbedder(dim=64)) as m:
        yield m


@pytest.fixture
def tokens() -> TokenStore:
    return TokenStore()


@pytest.fixture
def guarded(mem: Memory, tokens: TokenStore) -> Iterator[str]:
    server = build_server(mem, grants=["team"])
    yield from serve(http_app(server, tokens=tokens, namespaces=["default", "team"], write=True))


def post(url: str, token: str | None) -> httpx2.Response:
    headers = dict(HEADERS, **({"Authorization": f"Bearer {token}"} if token else {}))
    return httpx2.post(url, json=INIT, headers=headers, timeout=30)


def test_every_request_needs_a_token_covering_what_is_served(
    guarded: str, tokens: TokenStore, mem: Memory
) -> None:
    head = mem.seq
    missing = post(guarded, None)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    assert missing.headers["www-authenticate"] == 'Bearer realm="engramdb"'
    wrong = post(guarded, "eng_not-a-token")
    assert wrong.status_code == 401 and "invalid_token" in wrong.headers["www-authenticate"]
    basic = httpx2.post(guarded, json=INIT, headers=dict(HEADERS, Authorization="Basic eDp5"))
    assert basic.status_code == 401
    home_only, _ = tokens.create(namespaces=["default"], scope="write")
    reader, _ = tokens.create(namespaces=["default", "team"], scope="read")
    for token in (home_only, reader):
        refused = post(guarded, token)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "forbidden"
        assert token not in refused.text  # a secret is never echoed
    assert mem.seq == head


def test_a_granted_token_uses_the_tools(guarded: str, tokens: TokenStore, mem: Memory) -> None:
    token, grant = tokens.create(namespaces=["default", "team"], scope="write")
    assert post(guarded, token).status_code == 200

    async def main() -> None:
        client_http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"},
                                         timeout=30)
        async with client_http, Client(streamable_http_client(
                guarded, http_client=client_http)) as client:
            note = await client.call_tool("remember", {"text": "Deploys moved to Tuesdays"})
            assert not note.is_error
            hits = await client.call_tool("recall", {"query": "deploys", "namespace": "team"})
            assert not hits.is_error

    anyio.run(main)
    assert mem.recall("deploys", k=1)[0].text == "Deploys moved to Tuesdays"
    tokens.revoke(grant.id)  # takes effect at once
    assert post(guarded, token).status_code == 401


def test_a_read_only_server_takes_a_read_token(mem: Memory, tokens: TokenStore) -> None:
    token, _ = tokens.create(namespaces=["default"], scope="read")
    app_ = http_app(build_server(mem), tokens=tokens, namespaces=["default"], write=False)
    for url in serve(app_):
        assert post(url, token).status_code == 200


def test_without_tokens_a_loopback_server_refuses_foreign_hosts(mem: Memory) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.x must not get in,
    on any loopback address (the SDK guards only 127.0.0.1, localhost and ::1)."""
    app_ = http_app(build_server(mem), tokens=None, namespaces=["default"], write=True,
                    host="127.0.0.2")
    for url in serve(app_):
        port = url.split(":")[2].split("/")[0]
        for host in ("evil.example", f"evil.example:{port}"):
            refused = httpx2.post(url, json=INIT, headers=dict(HEADERS, Host=host))
            assert refused.status_code in (400, 403, 421), (host, refused.status_code)
        assert httpx2.post(url, json=INIT,
                           headers=dict(HEADERS, Host=f"127.0.0.2:{port}")).status_code == 200
        assert post(url, None).status_code == 200  # Host 127.0.0.1:port


def test_http_config_refuses_what_would_expose_the_store(tokens: TokenStore) -> None:
    with pytest.raises(InvalidInput, match="--allow-remote"):
        check_http_config(host="0.0.0.0", tokens=tokens, allow_remote=False)
    with pytest.raises(InvalidInput, match="loopback only"):
        check_http_config(host="0.0.0.0", tokens=None, allow_remote=True)
    with pytest.raises(InvalidInput, match="no live tokens"):
        check_http_config(host="127.0.0.1", tokens=tokens, allow_remote=False)
    assert "OFF" in check_http_config(host="127.0.0.1", tokens=None, allow_remote=False)[0]
    tokens.create(namespaces=["default"], scope="write")
    assert check_http_config(host="127.0.0.1", tokens=tokens, allow_remote=False) == []
    warning = check_http_config(host="0.0.0.0", tokens=tokens, allow_remote=True)
    assert "clear text" in warning[0]


def test_cli_refuses_before_opening_the_store(tmp_path: pathlib.Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[dict[str, Any]] = []
    monkeypatch.setattr(mcp_adapter, "run", lambda store, **kw: ran.append(kw))
    store = str(tmp_path / "a.engram")
    cases = [
        ["--transport", "http", "--host", "0.0.0.0", "--no-auth", "--allow-remote"],
        ["--transport", "http", "--host", "0.0.0.0"],  # remote needs --allow-remote
        ["--transport", "http"],  # no token created yet, and no --no-auth
    ]
    for args in cases:
        result = CliRunner().invoke(app, ["mcp", "--store", store, *args])
        assert isinstance(result.exception, InvalidInput), (args, result.output)
    assert ran == [] and not (tmp_path / "a.engram").exists()

    CliRunner().invoke(app, ["token", "create", "-n", "default", "--scope", "write",
                             "--store", store])
    result = CliRunner().invoke(app, ["mcp", "--store", store, "--transport", "http"])
    assert result.exit_code == 0, result.output
    assert isinstance(ran[-1]["tokens"], TokenStore) and ran[-1]["record_reads"] is True
    result = CliRunner().invoke(app, ["mcp", "--store", store, "--no-record-reads"])
    assert result.exit_code == 0 and ran[-1]["tokens"] is None
    assert ran[-1]["record_reads"] is False


def test_reads_are_recorded_and_flushed_on_close(tmp_path: pathlib.Path) -> None:
    """What ``engram mcp`` opens (``record_reads`` on): the agent's gets and recall
    hits become ``memory.accessed`` events when the store closes."""
    path = tmp_path / "a.engram"
    embedder = HashingEmbedder(dim=64)
    with Memory.open(path, embedder=embedder) as writer:
        note = writer.remember("Deploys moved to Tuesdays").id
    with Memory.open(path, embedder=embedder, record_reads=True) as served:

        async def body(client: Client) -> None:
            assert not (await client.call_tool("get", {"id": note})).is_error
            assert not (await client.call_tool("recall", {"query": "deploys"})).is_error

        async def main() -> None:
            async with Client(build_server(served)) as client:
                await body(client)

        anyio.run(main)
    with Memory.open(path, embedder=None, read_only=True) as after:
        accessed = [e for e in after.store.log.read(upto=after.seq)
                    if e.type == MEMORY_ACCESSED]
        assert [a for e in accessed for a, _ in e.payload.accesses] == [note, note]
        assert after.explain_salience(note).accesses == 2


def test_engram_mcp_http_process(tmp_path: pathlib.Path) -> None:
    """``engram mcp --transport http`` as its own process: token required, tools work,
    SIGINT stops it cleanly with the write durable and the read logged."""
    import os
    import signal
    import subprocess
    import sys

    from engramdb.adapters.auth import tokens_path

    store = str(tmp_path / "proc.engram")
    token = TokenStore(tokens_path(store)).create(namespaces=["default"], scope="write")[0]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/mcp"
    log = tmp_path / "mcp.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engramdb.adapters.cli", "mcp", "--store", store,
             "--transport", "http", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "ENGRAM_EMBEDDER": "hashing"})
    seen: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "engram mcp did not start"
            try:
                if post(url, None).status_code == 401:
                    break
            except httpx2.HTTPError:
                time.sleep(0.1)

        async def main() -> None:
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
            async with http, Client(streamable_http_client(url, http_client=http)) as client:
                note = await client.call_tool("remember", {"text": "Deploys moved to Tuesdays"})
                assert not note.is_error, note.content
                seen["id"] = note.structured_content["id"]  # type: ignore[index]
                got = await client.call_tool("get", {"id": seen["id"]})
                assert not got.is_error

        anyio.run(main)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.returncode == 0, log.read_text()
    with Memory.open(store, embedder=None, read_only=True) as mem:
        assert mem.get(seen["id"]).text == "Deploys moved to Tuesdays"
        assert mem.explain_salience(seen["id"]).accesses == 1
