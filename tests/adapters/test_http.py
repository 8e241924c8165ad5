"""The HTTP server in process: every facade operation over JSON, pagination, the
OpenAPI schema, error mapping, health, concurrency (httpx ASGI transport) and the
``serve`` / ``token`` commands."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from engramdb import Memory
from engramdb.adapters.auth import TokenStore
from engramdb.adapters.cli import app as cli_app
from engramdb.adapters.http import create_app
from engramdb.adapters.http_models import EventOut, NodeOut, RecallOut
from engramdb.errors import InvalidInput
from engramdb.recall.embed import HashingEmbedder

from ._http import Env, make_env


@pytest.fixture
def env() -> Iterator[Env]:
    yield from make_env()

A = "/v1/namespaces/a"


def test_remember_get_update_time_travel_provenance(env: Env) -> None:
    maya = env.ids["maya"]
    node = env.call("GET", f"{A}/memories/{maya}").json()
    NodeOut.model_validate(node)
    assert node["text"] == "Maya lives in Berlin" and node["attrs"] == {"tags": ["x"]}
    before = env.mem.seq
    r = env.call("PATCH", f"{A}/memories/{maya}",
                 json={"text": "Maya lives in Lisbon", "agent": "extractor", "session": "s3"})
    assert r.status_code == 200 and r.json()["text"] == "Maya lives in Lisbon"
    old = env.call("GET", f"{A}/memories/{maya}", params={"as_of": before}).json()
    assert old["text"] == "Maya lives in Berlin" and old["name"] == "Maya"
    prov = env.call("GET", f"{A}/memories/{maya}/provenance", params={"field": "text"}).json()
    assert (prov["session"], prov["agent"]) == ("s3", "extractor")
    assert env.call("GET", f"{A}/find", params={"name": "maya"}).json()["id"] == maya


def test_update_changes_only_the_fields_sent(env: Env) -> None:
    maya = env.ids["maya"]
    r = env.call("PATCH", f"{A}/memories/{maya}", json={"domain": None, "attrs": {"k": 1}})
    assert r.status_code == 200
    node = r.json()
    assert node["domain"] is None and node["text"] == "Maya lives in Berlin"
    assert node["attrs"] == {"tags": ["x"], "k": 1} and node["name"] == "Maya"
    assert env.call("PATCH", f"{A}/memories/{maya}", json={"text": None}).status_code == 422
    stale = env.call("PATCH", f"{A}/memories/{maya}", json={"text": "t", "expected_version": 1})
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "version_conflict"


def test_history_is_paginated_at_one_seq(env: Env) -> None:
    maya = env.ids["maya"]
    for i in range(4):
        env.call("PATCH", f"{A}/memories/{maya}", json={"attrs": {"i": i}})
    first = env.call("GET", f"{A}/memories/{maya}/history", params={"limit": 3}).json()
    assert len(first["items"]) == 3 and first["next_cursor"]
    env.call("PATCH", f"{A}/memories/{maya}", json={"attrs": {"late": True}})  # after page 1
    events, cursor = list(first["items"]), first["next_cursor"]
    while cursor:
        page = env.call("GET", f"{A}/memories/{maya}/history",
                        params={"limit": 3, "cursor": cursor}).json()
        assert page["seq"] == first["seq"]
        events += page["items"]
        cursor = page["next_cursor"]
    for e in events:
        EventOut.model_validate(e)
    assert [e["type"] for e in events].count("node.updated") == 4  # not the late one
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    bad = env.call("GET", f"{A}/memories/{maya}/history", params={"cursor": "zz"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"


def test_batch_domains_and_domain_listing(env: Env) -> None:
    items = [{"text": f"ops note {i}", "domain": "ops"} for i in range(5)]
    r = env.call("POST", f"{A}/memories/batch", json={"items": items})
    assert r.status_code == 201 and len(r.json()) == 5
    domains = env.call("GET", f"{A}/domains").json()["items"]
    assert {d["domain"]: d["count"] for d in domains}["ops"] == 5
    page = env.call("GET", f"{A}/memories", params={"domain": "ops", "limit": 2}).json()
    seen = [n["text"] for n in page["items"]]
    while page["next_cursor"]:
        page = env.call("GET", f"{A}/memories",
                        params={"domain": "ops", "limit": 2, "cursor": page["next_cursor"]}).json()
        seen += [n["text"] for n in page["items"]]
    assert sorted(seen) == sorted(i["text"] for i in items)


def test_graph_relate_neighbors_bridges_unrelate(env: Env) -> None:
    maya, acme = env.ids["maya"], env.ids["acme"]
    out = env.call("GET", f"{A}/memories/{maya}/neighbors").json()["items"]
    assert [(n["edge"]["rel"], n["node"]["id"]) for n in out] == [("works_at", acme)]
    incoming = env.call("GET", f"{A}/memories/{acme}/neighbors",
                        params={"direction": "in"}).json()["items"]
    assert [n["node"]["id"] for n in incoming] == [maya]
    bridges = env.call("GET", f"{A}/bridges").json()["items"]
    assert [(b["src_domain"], b["dst_domain"]) for b in bridges] == [("people", "companies")]
    r = env.call("DELETE", f"{A}/edges", params={"src": maya, "rel": "works_at", "dst": acme})
    assert r.status_code == 200
    assert env.call("GET", f"{A}/memories/{maya}/neighbors").json()["items"] == []
    again = env.call("DELETE", f"{A}/edges", params={"src": maya, "rel": "works_at", "dst": acme})
    assert again.status_code == 404


def test_recall_with_filters_index_and_as_of(env: Env) -> None:
    body = {"query": "Where does Maya live?", "k": 3}
    r = env.call("POST", f"{A}/recall", json=body, as_="read_a")
    assert r.status_code == 200
    result = RecallOut.model_validate(r.json())
    assert result.hits[0].id == env.ids["maya"] and result.index is None
    assert result.hits[0].provenance is not None and result.hits[0].signals
    only = env.call("POST", f"{A}/recall", json={**body, "domains": ["companies"]}).json()
    assert [h["id"] for h in only["hits"]] == [env.ids["acme"]]
    with_index = env.call("POST", f"{A}/recall", json={**body, "with_index": True}).json()
    assert "Maya" in with_index["index"] and with_index["seq"] == env.mem.seq
    index = env.call("GET", f"{A}/index").json()
    assert index["index"] == with_index["index"]
    before = env.mem.seq
    env.call("POST", f"{A}/memories", json={"text": "Maya moved to Porto"})
    past = env.call("POST", f"{A}/recall", json={**body, "as_of": before, "k": 10}).json()
    assert "Maya moved to Porto" not in [h["text"] for h in past["hits"]]
    bad = env.call("POST", f"{A}/recall", json={**body, "filters": {"colour": "red"}})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_query"
    # Maya's "tags" attribute is a list: a filter on it matches nothing, and fails nothing.
    listed = env.call("POST", f"{A}/recall", json={**body, "filters": {"attrs.tags": "x"}})
    assert listed.status_code == 200 and listed.json()["hits"] == []


def test_forget_then_404_and_masked_history(env: Env) -> None:
    maya = env.ids["maya"]
    r = env.call("DELETE", f"{A}/memories/{maya}", params={"reason": "user asked"})
    assert r.status_code == 200 and r.json()["id"] == maya
    gone = env.call("GET", f"{A}/memories/{maya}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    events = env.call("GET", f"{A}/memories/{maya}/history").json()["items"]
    assert "Berlin" not in json.dumps(events) and events[-1]["type"] == "node.forgotten"


def test_ingest_conversation_links_turns(env: Env) -> None:
    turns = [{"speaker": "Ana", "text": "Shall we ship on Friday?"},
             {"speaker": "Ben", "text": "Tuesday is safer", "id": "D1:2"}]
    r = env.call("POST", f"{A}/conversations", json={"session": "s9", "turns": turns})
    assert r.status_code == 201
    first, second = r.json()
    assert second["attrs"]["dia_id"] == "D1:2" and first["text"].startswith("Ana:")
    out = env.call("GET", f"{A}/memories/{first['id']}/neighbors").json()["items"]
    assert [n["node"]["id"] for n in out] == [second["id"]]


def test_stats_health_and_readiness(env: Env) -> None:
    stats = env.call("GET", f"{A}/stats").json()
    assert stats["namespace"] == "a" and stats["seq"] == env.mem.seq
    assert env.client.get("/healthz").json() == {"status": "ok", "seq": None}
    assert env.client.get("/readyz").json() == {"status": "ready", "seq": env.mem.seq}


def test_not_ready_after_shutdown() -> None:
    with Memory.open(":memory:", embedder=None) as mem:
        app = create_app(mem, tokens=None)
        with TestClient(app) as client:  # runs the lifespan
            assert client.get("/readyz").status_code == 200
        late = TestClient(app).get("/readyz")
        assert late.status_code == 503 and late.json()["error"]["code"] == "not_ready"


def test_openapi_documents_every_route_with_models(env: Env) -> None:
    schema = env.client.get("/openapi.json").json()
    ops = {(m.upper(), p) for p, item in schema["paths"].items() for m in item}
    one = f"{A}/memories/{{memory_id}}"
    for method, path in {("POST", f"{A}/memories"), ("POST", f"{A}/memories/batch"),
                         ("GET", one), ("PATCH", one), ("DELETE", one), ("POST", f"{A}/edges"),
                         ("DELETE", f"{A}/edges"), ("POST", f"{A}/recall"),
                         ("GET", f"{A}/memories/{{memory_id}}/history"),
                         ("GET", f"{A}/memories/{{memory_id}}/provenance"),
                         ("GET", f"{A}/memories/{{memory_id}}/neighbors"), ("GET", f"{A}/domains"),
                         ("GET", f"{A}/bridges"), ("GET", f"{A}/stats"), ("GET", f"{A}/index"),
                         ("POST", f"{A}/conversations"), ("GET", "/healthz"), ("GET", "/readyz")}:
        assert (method, path.replace("/a/", "/{namespace}/")) in ops
    remember = schema["paths"]["/v1/namespaces/{namespace}/memories"]["post"]
    assert remember["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "RememberRequest")
    assert remember["security"] == [{"HTTPBearer": []}]
    assert "ErrorBody" in schema["components"]["schemas"]


def test_errors_share_one_shape(env: Env) -> None:
    cases = [
        env.call("GET", f"{A}/memories/nope"),
        env.call("GET", "/v1/nowhere"),
        env.call("PUT", f"{A}/memories/x", json={}),
        env.call("POST", f"{A}/memories", json={"text": 5}),
        env.call("GET", "/v1/namespaces/bad!ns/stats", as_="all"),
    ]
    assert [r.status_code for r in cases] == [404, 404, 405, 422, 422]
    assert [r.json()["error"]["code"] for r in cases] == [
        "not_found", "not_found", "method_not_allowed", "invalid_request", "invalid_namespace"]
    for r in cases:
        assert set(r.json()) == {"error"} and set(r.json()["error"]) == {
            "code", "message", "details", "request_id"}
        assert r.json()["error"]["request_id"] == r.headers["x-request-id"]


def test_no_auth_app_needs_no_token() -> None:
    with Memory.open(":memory:", embedder=None) as mem:
        client = TestClient(create_app(mem, tokens=None))
        assert client.post(f"{A}/memories", json={"text": "hi"}).status_code == 201
        assert "security" not in client.get("/openapi.json").json()["paths"][
            "/v1/namespaces/{namespace}/memories"]["post"]
    with pytest.raises(InvalidInput):
        create_app(mem, tokens=None, max_body=0)


def test_concurrent_readers_and_writers_over_asgi_transport() -> None:
    tokens = TokenStore()
    token = tokens.create(namespaces=["a"], scope="write")[0]
    with Memory.open(":memory:", embedder=HashingEmbedder(dim=64)) as mem:
        app = create_app(mem, tokens=tokens)
        statuses: list[int] = []
        written: list[tuple[str, str]] = []

        async def main() -> None:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t",
                                         headers={"Authorization": f"Bearer {token}"}) as c:
                async def write(i: int) -> None:
                    r = await c.post(f"{A}/memories", json={"text": f"note {i} about deploys"})
                    statuses.append(r.status_code)
                    written.append((r.json()["id"], f"note {i} about deploys"))

                async def read(i: int) -> None:
                    r = await c.post(f"{A}/recall", json={"query": f"deploys {i}", "k": 5})
                    statuses.append(r.status_code)

                async with anyio.create_task_group() as tg:
                    for i in range(30):
                        tg.start_soon(write, i)
                        tg.start_soon(read, i)
                for memory_id, text in written:
                    assert (await c.get(f"{A}/memories/{memory_id}")).json()["text"] == text

        anyio.run(main)
        assert sorted(set(statuses)) == [200, 201] and len(written) == 30


# -- the commands --------------------------------------------------------------------

runner = CliRunner()


def test_serve_refuses_without_tokens_and_no_auth_only_on_loopback(tmp_path: Path) -> None:
    store = str(tmp_path / "s.engram")
    result = runner.invoke(cli_app, ["serve", "--store", store])
    assert isinstance(result.exception, InvalidInput) and "no live tokens" in str(result.exception)
    result = runner.invoke(cli_app, ["serve", "--store", store, "--no-auth", "--host", "0.0.0.0"])
    assert isinstance(result.exception, InvalidInput) and "loopback" in str(result.exception)
    assert not os.path.exists(store)  # refused before opening anything


def test_token_commands(tmp_path: Path) -> None:
    store = str(tmp_path / "t.engram")
    result = runner.invoke(cli_app, ["token", "create", "-s", store, "-n", "a", "-n", "b",
                                     "--scope", "write", "--expires-in", "30d", "--label", "ci"])
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    assert secret.startswith("eng_")
    path = store + ".tokens"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and secret not in Path(path).read_text()
    listed = json.loads(runner.invoke(cli_app, ["token", "list", "-s", store, "--json"]).stdout)
    assert [(g["namespaces"], g["scope"], g["label"]) for g in listed] == [(["a", "b"], "write",
                                                                          "ci")]
    assert TokenStore(path).verify(secret).id == listed[0]["id"]
    assert runner.invoke(cli_app, ["token", "create", "-s", store]).exit_code != 0
    assert runner.invoke(cli_app, ["token", "revoke", listed[0]["id"], "-s", store]).exit_code == 0
    assert TokenStore(path).list() == []


def test_remember_supersedes_and_is_idempotent(env: Env) -> None:
    maya = env.ids["maya"]
    r = env.call("POST", f"{A}/memories", json={"text": "Maya lives in Porto", "name": "Maya",
                                                "domain": "people", "supersedes": maya})
    assert r.status_code == 201 and r.json()["superseded"] == [maya]
    assert env.call("GET", f"{A}/memories/{maya}").json()["valid_to"] is not None
    again = env.call("POST", f"{A}/memories", json={"text": "Maya lives in Porto",
                                                    "name": "Maya", "domain": "people"})
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["id"] == r.json()["id"]


def test_outcomes_and_salience(env: Env) -> None:
    maya = env.ids["maya"]
    r = env.call("POST", f"{A}/memories/{maya}/outcomes",
                 json={"outcome": "success", "goal": "find Maya", "score": 0.9})
    assert r.status_code == 201 and r.json()["outcome"] == "success"
    listed = env.call("GET", f"{A}/memories/{maya}/outcomes", as_="read_a").json()
    assert [(o["outcome"], o["goal"]) for o in listed] == [("success", "find Maya")]
    explained = env.call("GET", f"{A}/memories/{maya}/salience", as_="read_a").json()
    assert explained["memory_id"] == maya and isinstance(explained["score"], float)
    denied = env.call("POST", f"{A}/memories/{maya}/outcomes", as_="read_a",
                      json={"outcome": "failure"})
    assert denied.status_code == 403


def test_reads_noted_for_salience_survive_across_requests() -> None:
    """One facade per namespace: reads noted by different requests are all logged."""
    with Memory.open(":memory:", embedder=None, record_reads=True) as mem:
        node = mem.namespaced("a").remember("x")
        with TestClient(create_app(mem, tokens=None)) as client:
            for _ in range(3):
                assert client.get(f"{A}/memories/{node.id}").status_code == 200
        assert mem.namespaced("a").explain_salience(node.id).accesses == 3


def test_store_wide_operations_need_an_all_namespaces_write_token(env: Env) -> None:
    maya = env.ids["maya"]
    assert env.call("DELETE", f"{A}/memories/{maya}").status_code == 200
    for who in ("write_a", "read_a", None):
        r = env.call("POST", "/v1/admin/compact", as_=who)
        assert r.status_code == (401 if who is None else 403)
    done = env.call("POST", "/v1/admin/compact", as_="all").json()
    assert done["redacted"] >= 1
    report = env.call("GET", "/v1/admin/check", as_="all").json()
    assert report["ok"] is True and report["seq"] == env.mem.seq
