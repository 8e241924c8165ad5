"""/metrics (Prometheus text, parsed by prometheus_client's parser), request ids on
every response and error, and the request log lines."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from engramdb import Memory
from engramdb.adapters.auth import TokenStore, check_serve_config
from engramdb.adapters.http import create_app
from engramdb.adapters.http_obs import JsonFormatter, TaskRecorder
from engramdb.errors import InvalidInput
from engramdb.progress import watch
from engramdb.recall.embed import HashingEmbedder

from ._http import Env, make_env

A = "/v1/namespaces/a"


@pytest.fixture
def env() -> Iterator[Env]:
    yield from make_env()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(env: Env, who: str = "all") -> dict[Any, float]:
    r = env.call("GET", "/metrics", as_=who)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return samples(r.text)


def test_metrics_by_route_template_with_no_tenant_in_labels(env: Env) -> None:
    maya = env.ids["maya"]
    env.call("GET", f"{A}/memories/{maya}")
    env.call("GET", f"{A}/memories/missing")
    env.call("POST", f"{A}/recall", json={"query": "Berlin"})
    env.call("GET", "/nowhere/at/all")
    r = env.call("GET", "/metrics", as_="all")
    text = r.text
    for leak in (maya, env.ids["secret_b"], "/v1/namespaces/a/", "/v1/namespaces/b/",
                 "missing", "nowhere"):
        assert leak not in text, leak
    got = samples(text)
    route = "/v1/namespaces/{namespace}/memories/{memory_id}"
    key = (("method", "GET"), ("route", route), ("status", "2xx"))
    assert got[("engram_http_requests_total", key)] >= 1
    assert got[("engram_http_requests_total", (("method", "GET"), ("route", route),
                                               ("status", "4xx")))] == 1
    assert got[("engram_http_requests_total", (("method", "GET"), ("route", "unmatched"),
                                               ("status", "4xx")))] == 1
    count = got[("engram_http_request_duration_seconds_count",
                 (("method", "POST"), ("route", "/v1/namespaces/{namespace}/recall")))]
    recall = "/v1/namespaces/{namespace}/recall"
    inf = got[("engram_http_request_duration_seconds_bucket",
               (("le", "+Inf"), ("method", "POST"), ("route", recall)))]
    assert count == inf == 1
    # the seed wrote 3 memories + 1 edge: node.created x3 (and their vectors), edge.added
    assert got[("engram_events_appended_total", (("type", "node.created"),))] == 3
    assert got[("engram_events_appended_total", (("type", "edge.added"),))] == 1
    head = got[("engram_store_head_seq", ())]
    assert head == env.mem.seq
    assert got[("engram_log_head_seq", ())] == head
    assert got[("engram_projection_lag_events", ())] == 0


def test_metrics_need_a_token_for_all_namespaces(env: Env) -> None:
    assert env.call("GET", "/metrics", as_=None).status_code == 401
    for tenant in ("write_a", "read_a", "write_b"):
        r = env.call("GET", "/metrics", as_=tenant)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    reader = env.tokens.create(namespaces="*", scope="read")[0]
    r = env.client.get("/metrics", headers={"Authorization": f"Bearer {reader}"})
    assert r.status_code == 200 and "engram_store_head_seq" in r.text


def test_metrics_no_auth_is_loopback_only() -> None:
    tokens = TokenStore()
    tokens.create(namespaces=["a"], scope="read")
    with Memory.open(":memory:", embedder=None) as mem:
        app = create_app(mem, tokens=tokens, metrics_no_auth=True)
        with TestClient(app) as client:
            assert client.get("/metrics").status_code == 200
            assert client.get(f"{A}/stats").status_code == 401  # the rest still needs one
    check_serve_config(host="127.0.0.1", tokens=tokens, tls=False, metrics_no_auth=True)
    with pytest.raises(InvalidInput, match="loopback"):
        check_serve_config(host="0.0.0.0", tokens=tokens, tls=True, metrics_no_auth=True)


def test_request_id_echoed_generated_and_in_every_error(env: Env) -> None:
    r = env.call("GET", f"{A}/stats", headers={"X-Request-Id": "trace-42.a"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "trace-42.a"
    bad = env.call("GET", f"{A}/stats", headers={"X-Request-Id": "x" * 200})
    assert bad.headers["x-request-id"] != "x" * 200 and len(bad.headers["x-request-id"]) == 32
    errors = [
        env.call("GET", f"{A}/memories/nope"),                          # 404
        env.call("GET", f"{A}/stats", as_=None),                        # 401
        env.call("POST", f"{A}/memories", as_="read_a", json={"text": "x"}),  # 403
        env.call("POST", f"{A}/memories", json={"text": 5}),            # 422
        env.call("POST", f"{A}/memories", content=b"{", headers={"content-type":
                                                                 "application/json"}),  # 400
        env.call("POST", f"{A}/memories", content=b"x" * 70_000,
                 headers={"content-type": "application/json"}),        # 413, BodyLimit
    ]
    assert [r.status_code for r in errors] == [404, 401, 403, 422, 400, 413]
    ids = set()
    for r in errors:
        rid = r.json()["error"]["request_id"]
        assert rid == r.headers["x-request-id"]
        ids.add(rid)
    assert len(ids) == len(errors)
    given = env.call("GET", f"{A}/memories/nope", headers={"X-Request-Id": "mine"})
    assert given.json()["error"]["request_id"] == "mine"


def test_a_500_carries_its_id_and_logs_the_traceback(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(self: Memory, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Memory, "stats", broken)
    with caplog.at_level(logging.INFO, logger="engramdb.http"):
        r = env.call("GET", f"{A}/stats", headers={"X-Request-Id": "boom-1"})
    assert r.status_code == 500
    assert r.json()["error"] == {"code": "internal_error", "message": "internal error",
                                 "details": {}, "request_id": "boom-1"}
    assert r.headers["x-request-id"] == "boom-1"
    records = [rec for rec in caplog.records if getattr(rec, "engram", {}).get(
        "request_id") == "boom-1"]
    assert len(records) == 1 and records[0].levelno == logging.ERROR
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["status"] == 500 and line["route"] == "/v1/namespaces/{namespace}/stats"
    assert "disk on fire" in line["error"] and line["request_id"] == "boom-1"


def test_replay_on_open_and_rebuilds_show_as_tasks(tmp_path: Any) -> None:
    store = str(tmp_path / "t.engram")
    with Memory.open(store, embedder=HashingEmbedder(dim=32)) as mem:
        mem.remember_many([{"text": f"memory {i}"} for i in range(300)])
        head = mem.seq
    for snap in (tmp_path / "t.engram.snapshots").iterdir():
        snap.unlink()  # the next open replays the whole log
    tasks = TaskRecorder()
    with watch(tasks):
        mem = Memory.open(store, embedder=HashingEmbedder(dim=32))
    with mem:
        app = create_app(mem, tokens=None, tasks=tasks)
        with TestClient(app) as client:
            got = samples(client.get("/metrics").text)
            phase = (("phase", "replay"),)
            assert got[("engram_task_items_done", phase)] == head
            assert got[("engram_task_items_total", phase)] == head
            assert got[("engram_task_running", phase)] == 0
            mem.forget(mem.list(limit=1)[0].id)
            mem.compact()  # while serving: the rebuild is reported
            got = samples(client.get("/metrics").text)
            assert got[("engram_task_runs_total", (("phase", "rebuild"),))] == 1
            assert got[("engram_task_items_done", (("phase", "rebuild"),))] == mem.seq


def test_projection_lag_is_log_head_minus_applied(tmp_path: Any) -> None:
    store = str(tmp_path / "lag.engram")
    with Memory.open(store, embedder=None) as writer:
        writer.remember("first")
        with Memory.open(store, embedder=None, read_only=True) as reader:
            writer.remember_many([{"text": f"more {i}"} for i in range(3)])
            with TestClient(create_app(reader, tokens=None)) as client:
                got = samples(client.get("/metrics").text)
            logged = got[("engram_log_head_seq", ())]
            applied = got[("engram_store_head_seq", ())]
            assert logged == writer.seq and applied <= logged
            assert got[("engram_projection_lag_events", ())] == logged - applied


def test_engram_serve_log_json_and_metrics_no_auth(tmp_path: Any) -> None:
    """The real process: every stderr line is JSON, the request's line has its id."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    store = str(tmp_path / "s.engram")
    TokenStore(store + ".tokens").create(namespaces=["a"], scope="write")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "engramdb.adapters.cli", "serve", "--store", store,
         "--port", str(port), "--embedder", "none", "--log-json", "--metrics-no-auth"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        r = httpx.get(base + "/metrics", headers={"X-Request-Id": "scrape-7"}, timeout=30)
        assert r.status_code == 200 and r.headers["x-request-id"] == "scrape-7"
        assert samples(r.text)[("engram_store_head_seq", ())] == 0
        denied = httpx.get(base + f"{A}/stats", timeout=30)
        assert denied.status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out == ""
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    scrape = [x for x in lines if x.get("request_id") == "scrape-7"]
    assert scrape and scrape[0]["route"] == "/metrics" and scrape[0]["status"] == 200
    rid = denied.headers["x-request-id"]
    assert [x["status"] for x in lines if x.get("request_id") == rid] == [401]
