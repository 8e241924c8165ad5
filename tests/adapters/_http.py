"""Shared set-up for the HTTP adapter tests: an app over an in-memory store, tokens for
two namespaces and every scope, and a clock the tests can move."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engramdb import Memory
from engramdb.adapters.auth import TokenStore
from engramdb.adapters.http import create_app
from engramdb.recall.embed import HashingEmbedder

MAX_BODY = 64 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Env:
    mem: Memory
    client: TestClient
    clock: Clock
    tokens: TokenStore
    token: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token[name]}"}

    def call(self, method: str, path: str, *, as_: str | None = "write_a",
             **kwargs: Any) -> Any:
        headers = {**(self.auth(as_) if as_ else {}), **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)


def make_env() -> Iterator[Env]:
    clock = Clock()
    tokens = TokenStore(clock=clock)
    with Memory.open(":memory:", embedder=HashingEmbedder(dim=64)) as mem:
        app = create_app(mem, tokens=tokens, max_body=MAX_BODY)
        with TestClient(app, raise_server_exceptions=False) as client:
            env = Env(mem=mem, client=client, clock=clock, tokens=tokens)
            grants = {
                "write_a": (["a"], "write", None), "read_a": (["a"], "read", None),
                "write_b": (["b"], "write", None), "all": ("*", "write", None),
                "expiring": (["a"], "write", 60.0), "revoked": (["a"], "write", None),
            }
            for name, (names, scope, expires) in grants.items():
                env.token[name] = tokens.create(namespaces=names, scope=scope,
                                                expires_in=expires, label=name)[0]
            revoked = [g for g in tokens.list() if g.label == "revoked"][0]
            tokens.revoke(revoked.id)
            _seed(env)
            yield env


def _seed(env: Env) -> None:
    """Two memories and an edge in namespace a, one memory in b."""
    def post(ns: str, who: str, body: dict[str, Any]) -> str:
        r = env.call("POST", f"/v1/namespaces/{ns}/memories", as_=who, json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    env.ids["maya"] = post("a", "write_a", {"text": "Maya lives in Berlin", "name": "Maya",
                                            "domain": "people", "attrs": {"tags": ["x"]}})
    env.ids["acme"] = post("a", "write_a", {"text": "Acme Robotics builds schedulers",
                                            "name": "Acme", "domain": "companies"})
    r = env.call("POST", "/v1/namespaces/a/edges",
                 json={"src": env.ids["maya"], "rel": "works_at", "dst": env.ids["acme"]})
    assert r.status_code == 201, r.text
    env.ids["secret_b"] = post("b", "write_b", {"text": "B's secret plan", "domain": "plans"})


@pytest.fixture
def env() -> Iterator[Env]:
    yield from make_env()
