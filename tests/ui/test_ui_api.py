"""The explorer's server side: the page's files, and the reads it adds to the HTTP API
(whoami, timeline, graph, working), with the same tokens and namespace seals."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from engramdb import Memory
from engramdb.adapters.http import create_app
from engramdb.adapters.ui import STATIC
from engramdb.recall.embed import HashingEmbedder
from tests.adapters._http import Env, make_env

A = "/v1/namespaces/a"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env() -> Iterator[Env]:
    yield from make_env()


# -- the page's files ------------------------------------------------------------------


def test_the_page_and_its_modules_are_served_offline_with_a_strict_policy(env: Env) -> None:
    page = env.client.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "http" not in policy
    assert env.client.get("/ui", follow_redirects=False).headers["location"] == "/ui/"
    for name in ("app.mjs", "logic.mjs", "api.mjs", "vendor/cytoscape.esm.min.mjs"):
        r = env.client.get(f"/ui/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
        assert r.headers["x-content-type-options"] == "nosniff"
    html = page.text
    # every script and stylesheet is the server's own: nothing from another host
    assert "http://" not in html and "https://" not in html and "//cdn" not in html


def test_only_the_packaged_files_are_served(env: Env) -> None:
    for path in ("/ui/nope.js", "/ui/../pyproject.toml", "/ui/%2e%2e/http.py", "/ui/vendor/"):
        r = env.client.get(path)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "not_found"


def test_the_vendored_graph_library_matches_its_recorded_hash() -> None:
    record = json.loads(STATIC.joinpath("vendor/VENDORED.json").read_text())["cytoscape"]
    data = STATIC.joinpath("vendor", record["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == record["sha256"]
    assert f'version="{record["version"]}"' in data.decode()[-300:]
    licence = STATIC.joinpath("vendor", record["license_file"]).read_text()
    assert "Permission is hereby granted" in licence and record["license"] == "MIT"
    script = (ROOT / "scripts" / "vendor-ui-assets.sh").read_text()
    assert record["version"] in script  # the script's default is what is vendored


def test_package_data_covers_every_static_folder() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    root = Path(str(STATIC))
    folders = {p.parent.relative_to(root.parent.parent.parent) for p in root.rglob("*")
               if p.is_file()}
    for folder in folders:
        assert f'"{folder.as_posix()}/*"' in pyproject, folder


# -- whoami ----------------------------------------------------------------------------------


def test_whoami_tells_a_token_its_grant_and_refuses_bad_tokens(env: Env) -> None:
    r = env.call("GET", "/v1/whoami", as_="read_a")
    assert r.status_code == 200
    assert r.json()["scope"] == "read" and r.json()["namespaces"] == ["a"]
    assert r.json()["auth"] is True and r.json()["label"] == "read_a"
    assert env.call("GET", "/v1/whoami", as_="all").json()["namespaces"] == "*"
    for headers in ({}, {"Authorization": "Bearer eng_" + "x" * 43}):
        r = env.client.get("/v1/whoami", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"].startswith("Bearer")
    assert env.call("GET", "/v1/whoami", as_="revoked").status_code == 401


def test_whoami_without_auth_says_so() -> None:
    with Memory.open(":memory:", embedder=HashingEmbedder(dim=32)) as mem:
        client = TestClient(create_app(mem, tokens=None))
        body = client.get("/v1/whoami").json()
        assert body == {"auth": False, "id": None, "scope": "write", "namespaces": "*",
                        "label": None, "expires_at": None}


# -- timeline ----------------------------------------------------------------------------------


def test_timeline_lists_a_window_of_the_namespace_events(env: Env) -> None:
    maya = env.ids["maya"]
    before = env.mem.seq
    r = env.call("PATCH", f"{A}/memories/{maya}", json={"text": "Maya lives in Lisbon"})
    assert r.status_code == 200
    everything = env.call("GET", f"{A}/timeline", as_="read_a").json()
    types = [e["type"] for e in everything["items"]]
    assert types == ["node.created", "node.created", "edge.added", "node.updated"]
    assert everything["more"] is False and everything["seq"] == env.mem.seq
    assert all(e["namespace"] == "a" for e in everything["items"])
    window = env.call("GET", f"{A}/timeline", params={"after": before}).json()["items"]
    assert [e["payload"].get("text") for e in window] == ["Maya lives in Lisbon"]
    past = env.call("GET", f"{A}/timeline", params={"as_of": before}).json()
    assert [e["type"] for e in past["items"]] == types[:3] and past["seq"] == before
    last = env.call("GET", f"{A}/timeline", params={"newest": True, "limit": 2}).json()
    assert [e["type"] for e in last["items"]] == ["edge.added", "node.updated"]
    assert last["more"] is True
    first = env.call("GET", f"{A}/timeline", params={"limit": 1}).json()
    assert first["items"][0]["stream"] == maya and first["more"] is True
    past_head = env.call("GET", f"{A}/timeline", params={"after": 4611686018427388000}).json()
    assert past_head == {"items": [], "seq": env.mem.seq, "more": False}  # how pages find it
    only = env.call("GET", f"{A}/timeline", params={"type": "edge.added"}).json()["items"]
    assert [e["payload"]["rel"] for e in only] == ["works_at"]


def test_timeline_masks_what_was_forgotten_and_skips_internal_events(env: Env) -> None:
    maya = env.ids["maya"]
    assert env.call("DELETE", f"{A}/memories/{maya}").status_code == 200
    items = env.call("GET", f"{A}/timeline").json()["items"]
    assert "Berlin" not in json.dumps(items)
    mine = [e for e in items if e["stream"] == maya]
    assert [e["type"] for e in mine] == ["event.redacted", "node.forgotten"]
    edge = [e for e in items if e["stream"].startswith("edge:")]
    assert [e["type"] for e in edge] == ["event.redacted"]
    assert not any(e["type"].startswith(("vector.", "memory.", "context.")) for e in items)
    env.call("POST", "/v1/admin/compact", as_="all")
    after = env.call("GET", f"{A}/timeline").json()["items"]
    assert [e["type"] for e in after] == [e["type"] for e in items]  # vectors stay hidden


def test_timeline_is_sealed_per_namespace_and_checks_its_input(env: Env) -> None:
    r = env.call("GET", "/v1/namespaces/b/timeline", as_="read_a")
    assert r.status_code == 403
    theirs = env.call("GET", "/v1/namespaces/b/timeline", as_="write_b").json()["items"]
    assert [e["payload"]["text"] for e in theirs] == ["B's secret plan"]
    assert "secret" not in json.dumps(env.call("GET", f"{A}/timeline").json())
    for params in ({"type": "vector.stored"}, {"type": "context.staged"}, {"limit": 0},
                   {"after": -1}, {"as_of": "yesterday-ish"}):
        r = env.call("GET", f"{A}/timeline", params=params)
        assert r.status_code == 422, (params, r.text)
    assert env.client.get(f"{A}/timeline").status_code == 401


def test_timeline_library_call_checks_arguments(env: Env) -> None:
    from engramdb import InvalidInput

    mem = env.mem.namespaced("a")
    for kwargs in ({"after": "1"}, {"limit": 0}, {"types": "node.created"}, {"types": []},
                   {"newest": 1}):
        with pytest.raises(InvalidInput):
            mem.timeline(**kwargs)


# -- graph -------------------------------------------------------------------------------------


def _seed_graph(env: Env) -> dict[str, str]:
    ids = dict(env.ids)

    def post(body: dict[str, object]) -> str:
        r = env.call("POST", f"{A}/memories", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    ids["ben"] = post({"text": "Ben is Maya's colleague", "name": "Ben", "domain": "people"})
    ids["v2"] = post({"text": "Scheduler v2 launch", "name": "v2", "domain": "projects"})
    for src, rel, dst in (("ben", "knows", "maya"), ("acme", "ships", "v2")):
        r = env.call("POST", f"{A}/edges", json={"src": ids[src], "rel": rel, "dst": ids[dst]})
        assert r.status_code == 201
    return ids


def test_graph_of_a_domain_shows_its_members_and_bridges_out(env: Env) -> None:
    ids = _seed_graph(env)
    g = env.call("GET", f"{A}/graph", as_="read_a", params={"domain": "people"}).json()
    names = {n["name"] for n in g["nodes"]}
    assert names == {"Maya", "Ben", "Acme"}  # Acme: the other end of a bridge
    edges = {(e["src"], e["rel"], e["dst"]): e["bridge"] for e in g["edges"]}
    assert edges == {(ids["maya"], "works_at", ids["acme"]): True,
                     (ids["ben"], "knows", ids["maya"]): False}
    assert g["truncated"] is False and g["seq"] == env.mem.seq


def test_graph_around_a_memory_grows_with_depth_and_stops_at_the_limit(env: Env) -> None:
    ids = _seed_graph(env)
    one = env.call("GET", f"{A}/graph", params={"center": ids["maya"]}).json()
    assert {n["name"] for n in one["nodes"]} == {"Maya", "Ben", "Acme"}
    two = env.call("GET", f"{A}/graph", params={"center": ids["maya"], "depth": 2}).json()
    assert {n["name"] for n in two["nodes"]} == {"Maya", "Ben", "Acme", "v2"}
    assert sum(e["bridge"] for e in two["edges"]) == 2
    capped = env.call("GET", f"{A}/graph",
                      params={"center": ids["maya"], "depth": 2, "limit": 2}).json()
    assert len(capped["nodes"]) == 2 and capped["truncated"] is True
    assert all(e["src"] in {n["id"] for n in capped["nodes"]} for e in capped["edges"])


def test_graph_as_of_the_past_and_its_errors(env: Env) -> None:
    ids = env.ids
    before = env.mem.seq
    ids = _seed_graph(env)
    past = env.call("GET", f"{A}/graph", params={"domain": "people", "as_of": before}).json()
    assert {n["name"] for n in past["nodes"]} == {"Maya", "Acme"} and past["seq"] == before
    r = env.call("GET", f"{A}/graph", params={"center": ids["v2"], "as_of": before})
    assert r.status_code == 404
    for params in ({}, {"domain": "people", "center": ids["maya"]}, {"domain": "p", "depth": 9},
                   {"domain": "p", "limit": 501}):
        r = env.call("GET", f"{A}/graph", params=params)
        assert r.status_code == 422, params
    assert env.call("GET", "/v1/namespaces/b/graph", as_="write_a",
                    params={"domain": "plans"}).status_code == 403
    other = env.call("GET", "/v1/namespaces/a/graph", as_="write_a",
                     params={"center": env.ids["secret_b"]})
    assert other.status_code == 404  # b's memory is not in a


def test_working_route_reports_an_agents_working_tier(env: Env) -> None:
    r = env.call("GET", f"{A}/working", as_="read_a", params={"agent": "planner"})
    assert r.status_code == 200
    assert r.json()["nodes"] == [] and r.json()["stats"]["enabled"] is False
    env.mem.configure_working()
    try:
        hits = env.call("POST", f"{A}/recall", json={"query": "Maya Berlin", "k": 2,
                                                      "agent": "planner"}).json()["hits"]
        assert hits
        work = env.call("GET", f"{A}/working", params={"agent": "planner"}).json()
        assert work["stats"]["enabled"] is True
        assert hits[0]["id"] in [n["id"] for n in work["nodes"]]
        assert env.call("GET", f"{A}/working", params={"agent": "other"}).json()["nodes"] == []
    finally:
        env.mem.configure_working(enabled=False)
    assert env.call("GET", "/v1/namespaces/b/working", as_="read_a").status_code == 403


# -- engram ui ---------------------------------------------------------------------------------


def test_engram_ui_serves_a_local_store_on_loopback_with_a_token_of_its_own(
        tmp_path: Path) -> None:
    store = str(tmp_path / "local.engram")
    with Memory.open(store, namespace="notes", embedder=HashingEmbedder()) as mem:
        mem.remember("Deploys moved to Tuesdays", domain="ops")
    argv = [sys.executable, "-m", "engramdb.adapters.cli", "ui", "--store", store,
            "--namespace", "notes"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          env={**os.environ, "ENGRAM_EMBEDDER": "hashing"}) as proc:
        try:
            _check_local_ui(proc)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _check_local_ui(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("engram explorer at http://127.0.0.1:"), line
    url = urllib.parse.urlsplit(line.split(" at ", 1)[1].strip())
    fragment = dict(urllib.parse.parse_qsl(url.fragment))
    assert fragment["ns"] == "notes" and fragment["token"].startswith("eng_")
    base = f"{url.scheme}://{url.netloc}"
    auth = {"Authorization": f"Bearer {fragment['token']}"}
    deadline = time.monotonic() + 60
    while True:
        try:
            page = httpx.get(f"{base}/ui/", timeout=5)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline and proc.poll() is None, "no server"
            time.sleep(0.1)
    assert page.status_code == 200 and "engramdb explorer" in page.text
    listed = httpx.get(f"{base}/v1/namespaces/notes/timeline", headers=auth, timeout=10)
    assert [e["payload"]["text"] for e in listed.json()["items"]] == [
        "Deploys moved to Tuesdays"]
    assert httpx.get(f"{base}/v1/whoami", timeout=10).status_code == 401  # token needed


def test_recall_takes_the_tiers_to_search(env: Env) -> None:
    later = int((time.time() + 3 * 365 * 86_400) * 1_000_000)  # years on: cold memories
    report = env.call("POST", f"{A}/consolidate", json={"now": later}).json()
    archived = {m["memory_id"] for m in report["moves"] if m["to_tier"] == "archival"}
    assert env.ids["maya"] in archived, report
    body = {"query": "Maya lives in Berlin", "k": 5}
    ids = {t: [h["id"] for h in env.call("POST", f"{A}/recall", as_="read_a",
                                         json={**body, "tiers": t}).json()["hits"]]
           for t in ("warm", "all")}
    assert env.ids["maya"] not in ids["warm"] and env.ids["maya"] in ids["all"]
    r = env.call("POST", f"{A}/recall", json={**body, "tiers": "cold"})
    assert r.status_code == 422
