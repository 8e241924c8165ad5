"""``engram serve`` records agents' reads for salience (``--record-reads``, the
default) and flushes them on shutdown; a batch can supersede, like a single
remember."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from engramdb import Memory
from engramdb.adapters import http as http_adapter
from engramdb.adapters.cli import app
from engramdb.adapters.http import create_app
from engramdb.events.types import MEMORY_ACCESSED
from engramdb.recall.embed import HashingEmbedder

from ._http import Env, make_env


@pytest.fixture
def env() -> Iterator[Env]:
    yield from make_env()


def accessed(path: pathlib.Path) -> list[str]:
    with Memory.open(path, embedder=None, read_only=True) as mem:
        return [memory_id for e in mem.store.log.read(upto=mem.seq) if e.type == MEMORY_ACCESSED
                for memory_id, _ in e.payload.accesses]


def seed(path: pathlib.Path) -> str:
    with Memory.open(path, embedder=HashingEmbedder(dim=64)) as mem:
        return mem.namespaced("a").remember("Deploys moved to Tuesdays").id


def test_reads_through_the_server_are_flushed_at_shutdown(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "a.engram"
    note = seed(path)
    with Memory.open(path, embedder=HashingEmbedder(dim=64), record_reads=True) as mem:
        with TestClient(create_app(mem, tokens=None)) as client:
            assert client.get(f"/v1/namespaces/a/memories/{note}").status_code == 200
            hits = client.post("/v1/namespaces/a/recall", json={"query": "deploys"}).json()
            assert [h["id"] for h in hits["hits"]] == [note]
            assert accessed(path) == []  # batched: nothing written per read
        assert accessed(path) == [note, note]  # the app's shutdown flushed them


@pytest.mark.parametrize(("flag", "expected"), [([], 1), (["--no-record-reads"], 0)])
def test_engram_serve_records_reads_unless_told_not_to(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, flag: list[str], expected: int
) -> None:
    path = tmp_path / "a.engram"
    note = seed(path)

    def fake_serve(mem: Memory, **_: Any) -> None:  # what a request would do, then stop
        mem.namespaced("a").get(note)

    monkeypatch.setattr(http_adapter, "serve", fake_serve)
    result = CliRunner().invoke(app, ["serve", "--store", str(path), "--no-auth",
                                      "--embedder", "hashing", *flag])
    assert result.exit_code == 0, result.output
    assert accessed(path) == [note] * expected


def test_a_batch_item_can_supersede(env: Env) -> None:
    old = env.ids["maya"]
    r = env.call("POST", "/v1/namespaces/a/memories/batch",
                 json={"items": [{"text": "Maya lives in Lisbon", "supersedes": old}]})
    assert r.status_code == 201, r.text
    [new] = r.json()
    assert new["superseded"] == [old] and new["created"] is True
    hits = env.call("POST", "/v1/namespaces/a/recall",
                    json={"query": "where does Maya live", "k": 5}).json()["hits"]
    assert old not in [h["id"] for h in hits]
    head = env.mem.seq
    bad = env.call("POST", "/v1/namespaces/a/memories/batch",
                   json={"items": [{"text": "x", "supersedes": "no-such-id"}]})
    assert bad.status_code == 404 and env.mem.seq == head
