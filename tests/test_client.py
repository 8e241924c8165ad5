"""engramdb.connect(): the Memory methods apps use, against a real `engram serve` process.

The same small program runs on an embedded Memory and on a served one; the results
must be the same (only ids, which are random, differ). Errors come back as the
library's own exception classes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import engramdb
from engramdb import (
    ConcurrencyConflict,
    EngramError,
    Forbidden,
    InvalidInput,
    Memory,
    NotFound,
    StoreClosed,
    Unauthorized,
)
from engramdb.adapters.auth import TokenStore, tokens_path
from engramdb.client import RemoteMemory, error_from_response
from engramdb.recall.embed import HashingEmbedder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str]]:
    """`engram serve` on 127.0.0.1 (hashing embedder); yields (url, token a+b, token a)."""
    tmp = tmp_path_factory.mktemp("served")
    store = str(tmp / "served.engram")
    tokens = TokenStore(tokens_path(store))
    both = tokens.create(namespaces=["a", "b"], scope="write")[0]
    only_a = tokens.create(namespaces=["a"], scope="write")[0]
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engramdb.adapters.cli", "serve", "--store", store,
             "--port", str(port), "--embedder", "hashing", "--log-level", "warning",
             "--no-record-reads"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "engram serve did not become ready"
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url, both, only_a
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.returncode == 0, log.read_text()


def program(mem: Any) -> dict[str, Any]:
    """What an app does, written once against the Memory interface."""
    maya = mem.remember("Maya lives in Berlin", name="Maya", domain="people", session="s1",
                        user_id="maya")
    acme, launch = mem.remember_many([
        {"text": "Acme Robotics builds schedulers", "name": "Acme", "domain": "companies"},
        "The v2 launch is planned for May",
    ])
    edge = mem.relate(maya.id, "works_at", acme.id)
    before = mem.seq
    updated = mem.update(maya.id, text="Maya lives in Lisbon", agent="extractor")
    hits = mem.recall("Where does Maya live?", k=2)
    forgotten = mem.forget(launch.id, reason="wrong date")
    try:
        mem.get(launch.id)
        gone = "still there"
    except NotFound as exc:
        gone = type(exc).__name__
    past = mem.as_of(before)
    return {
        "created": [maya.created, acme.created],
        "edge": (edge.rel, edge.src == maya.id, edge.dst == acme.id),
        "updated": (updated.text, updated.version > maya.version),
        "get": mem.get(maya.id).text,
        "find": mem.find("Maya").text,
        "past": past.get(maya.id).text,
        "top hit": hits[0].text,
        "hit has node": hits[0].node.domain,
        "history": [e.type for e in mem.history(maya.id)],
        "history agents": [e.meta.agent for e in mem.history(maya.id)],
        "forget event": forgotten.type,
        "gone": gone,
        "listed": sorted(n.text for n in mem.in_domain("people")),
        "list page": [n.text for n in mem.list(limit=2)],
        "list next": [n.text for n in mem.list(limit=2, cursor=mem.list(limit=2).cursor)],
        "list by user": [n.text for n in mem.list(user_id="maya")],
        "index mentions Maya": "Maya" in mem.index(),
        "times are µs": isinstance(mem.get(maya.id).created_at, int),
    }


def test_the_same_program_runs_embedded_and_served(served: tuple[str, str, str]) -> None:
    url, token, _ = served
    with Memory.open(":memory:", namespace="a", embedder=HashingEmbedder()) as embedded:
        local = program(embedded)
    with engramdb.connect(url, token=token, namespace="a") as remote:
        assert isinstance(remote, RemoteMemory)
        got = program(remote)
        page = remote.list(domains="people")  # GET /memories
        assert sorted(n.text for n in page) == got["listed"] and page.seq >= 1
    assert got == local
    assert got["past"] == "Maya lives in Berlin" and got["gone"] == "NotFound"


def test_errors_come_back_as_the_library_classes(served: tuple[str, str, str]) -> None:
    url, token, only_a = served
    with engramdb.connect(url, token=token, namespace="a") as mem:
        with pytest.raises(NotFound):
            mem.get("no-such-memory")
        with pytest.raises(KeyError):  # NotFound is a KeyError, as in the library
            mem.get("no-such-memory")
        node = mem.remember("versioned", name="versioned-1")
        with pytest.raises(ConcurrencyConflict) as conflict:
            mem.update(node.id, text="b", expected_version=node.version + 5)
        assert conflict.value.code == "version_conflict"
        before = mem.seq
        with pytest.raises(InvalidInput):
            mem.remember("x", valid_from="not a time")  # refused by the server
        with pytest.raises(InvalidInput):
            mem.as_of(-1)
        assert mem.seq == before  # nothing was written
    other = engramdb.connect(url, token=only_a, namespace="b")
    with other, pytest.raises(Forbidden):
        other.recall("anything")
    bad = engramdb.connect(url, token="not-a-token", namespace="a")
    with bad, pytest.raises(Unauthorized):
        bad.get("x")
    nowhere = engramdb.connect(f"http://127.0.0.1:{_free_port()}", timeout=2)
    with nowhere, pytest.raises(StoreClosed):
        nowhere.get("x")
    with pytest.raises(InvalidInput):
        engramdb.connect("ftp://example.invalid")


def test_namespaces_share_one_http_client_and_stay_sealed(served: tuple[str, str, str]) -> None:
    url, token, _ = served
    with engramdb.connect(url, token=token, namespace="a") as a:
        b = a.namespaced("b")
        assert b._http is a._http  # one httpx client for the connection
        secret = a.remember("a's secret plan", name="secret-a")
        with pytest.raises(NotFound):
            b.get(secret.id)
        assert all(h.id != secret.id for h in b.recall("secret plan", k=10))
        b.close()  # a view does not own the connection
        assert a.get(secret.id).text == "a's secret plan"


def test_recall_with_index_and_as_of_a_time(served: tuple[str, str, str]) -> None:
    url, token, _ = served
    with engramdb.connect(url, token=token, namespace="a") as mem:
        mem.remember("The office plant is a fern", name="plant")
        result = mem.recall("office plant", k=1, with_index=True)
        assert result[0].text == "The office plant is a fern"
        assert "memor" in result.index and result.seq >= 1  # type: ignore[attr-defined]
        view = mem.as_of(time_iso_now())
        assert view.seq == mem.seq and view.find("plant").text.endswith("fern")
        assert mem.remember_many([]) == []


def time_iso_now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()


def test_unknown_error_codes_keep_the_servers_code() -> None:
    exc = error_from_response(409, {"error": {"code": "brand_new_conflict", "message": "m"}})
    assert isinstance(exc, EngramError) and exc.code == "brand_new_conflict"
    assert exc.status == 409
    plain = error_from_response(502, "not json")
    assert isinstance(plain, EngramError) and "502" in str(plain)
