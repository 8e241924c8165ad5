"""HTTP routes for reflection queries, contexts and tiers, in process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from ._http import Env, make_env

A = "/v1/namespaces/a"


@pytest.fixture
def env() -> Iterator[Env]:
    yield from make_env()


def _outcomes(env: Env) -> dict[str, str]:
    """Two deploy notes with opposite outcomes in namespace a."""
    ids = {}
    for key, text, outcome in (("ok", "deploy to staging with blue green", "success"),
                               ("bad", "deploy to staging with big bang", "failure")):
        r = env.call("POST", f"{A}/memories", json={"text": text, "domain": "ops"})
        assert r.status_code == 201, r.text
        ids[key] = r.json()["id"]
        r = env.call("POST", f"{A}/memories/{ids[key]}/outcomes", json={"outcome": outcome})
        assert r.status_code == 201, r.text
    return ids


def _query(env: Env, steps: list[dict[str, Any]], **kw: Any) -> Any:
    return env.call("POST", f"{A}/query", json={"steps": steps}, **kw)


# -- reflection queries -----------------------------------------------------------------


def test_query_runs_the_plan_with_scores_and_reasons(env: Env) -> None:
    ids = _outcomes(env)
    r = _query(env, [{"op": "in_domain", "domain": "ops"},
                     {"op": "with_outcome", "outcome": "success"}, {"op": "limit", "n": 5}],
               as_="read_a")
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["id"] for x in results] == [ids["ok"]]
    assert results[0]["outcome"] == "success" and results[0]["reasons"]
    assert results[0]["similarity"] is None and r.json()["plan"] is None
    assert isinstance(results[0]["score"], float) and results[0]["node"]["domain"] == "ops"


def test_query_similar_and_contrasting(env: Env) -> None:
    ids = _outcomes(env)
    r = _query(env, [{"op": "contrasting_with", "id": ids["bad"], "min_score": 0.0}])
    assert r.status_code == 200, r.text
    assert [x["id"] for x in r.json()["results"]] == [ids["ok"]]
    r = _query(env, [{"op": "similar_to", "text": "deploy staging", "min_score": 0.1},
                     {"op": "within", "days": 1}, {"op": "limit", "n": 1}])
    assert r.status_code == 200, r.text
    (hit,) = r.json()["results"]
    assert hit["id"] in ids.values() and hit["similarity"] >= 0.1


def test_query_explain_returns_the_plan_without_running(env: Env) -> None:
    ids = _outcomes(env)
    r = env.call("POST", f"{A}/query?explain=true", json={"steps": [
        {"op": "in_domain", "domain": "ops"}, {"op": "caused_by", "id": ids["ok"], "depth": 2},
        {"op": "as_of", "when": env.mem.seq}, {"op": "tiers", "which": "warm"}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["results"] is None
    plan = body["plan"]
    assert plan["tiers"] == "warm" and plan["seq"] == env.mem.seq
    ops = {(s["op"], s["role"]) for s in plan["steps"]}
    assert ("caused_by", "candidates") in ops and ("in_domain", "filter") in ops
    assert plan["text"].startswith("plan at seq")


@pytest.mark.parametrize(("steps", "status", "code"), [
    ([{"op": "nonsense"}], 422, "invalid_request"),
    ([{"op": "limit", "n": 5, "extra": 1}], 422, "invalid_request"),
    ([{"op": "similar_to", "text": "x", "min_score": 2}], 422, "invalid_query"),
    ([{"op": "limit", "n": 0}], 422, "invalid_query"),
    ([{"op": "in_domain", "domain": "x"}, {"op": "in_domain", "domain": "y"}], 422,
     "invalid_query"),
    ([{"op": "tiers", "which": "auto"}], 422, "invalid_query"),
    ([{"op": "within", "days": 0}], 422, "invalid_query"),
    ([{"op": "caused_by", "id": "no-such-id"}], 404, "not_found"),
])
def test_query_bad_plans_are_4xx(env: Env, steps: list[dict[str, Any]], status: int,
                                 code: str) -> None:
    before = env.mem.seq
    r = _query(env, steps)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert env.mem.seq == before


def test_query_is_namespaced_and_needs_a_grant(env: Env) -> None:
    r = env.call("POST", "/v1/namespaces/b/query", json={"steps": []}, as_="write_b")
    assert [x["id"] for x in r.json()["results"]] == [env.ids["secret_b"]]
    assert env.call("POST", "/v1/namespaces/b/query", json={"steps": []},
                    as_="read_a").status_code == 403
    assert env.call("POST", f"{A}/query", json={"steps": []}, as_=None).status_code == 401


# -- tiers ------------------------------------------------------------------------------


def test_tier_and_consolidate(env: Env) -> None:
    maya = env.ids["maya"]
    r = env.call("GET", f"{A}/memories/{maya}/tier", as_="read_a")
    assert r.status_code == 200 and r.json() == {"id": maya, "tier": "short_term"}
    before = env.mem.seq
    assert env.call("POST", f"{A}/consolidate", as_="read_a").status_code == 403
    assert env.mem.seq == before
    later = int((time.time() + 400 * 86_400) * 1_000_000)  # over a year on: cold memories
    r = env.call("POST", f"{A}/consolidate", json={"agent": "janitor", "now": later})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["moved"] == len(report["moves"]) >= 1 and report["seq"] == env.mem.seq
    moved = {m["memory_id"]: m["to_tier"] for m in report["moves"]}
    r = env.call("GET", f"{A}/memories/{maya}/tier", as_="read_a")
    assert r.json()["tier"] == moved.get(maya, "short_term")
    counts = env.call("GET", f"{A}/tiers", as_="read_a").json()
    assert sum(counts.values()) == 2
    r = env.call("GET", f"{A}/memories/{maya}/tier?as_of={before}", as_="read_a")
    assert r.json()["tier"] == "short_term"


def test_tier_of_another_namespaces_memory_is_404(env: Env) -> None:
    r = env.call("GET", f"{A}/memories/{env.ids['secret_b']}/tier")
    assert r.status_code == 404


def test_recall_passes_the_agent_through(env: Env) -> None:
    env.mem.configure_working(enabled=True)
    r = env.call("POST", f"{A}/recall", json={"query": "Maya Berlin", "k": 1,
                                              "agent": "planner"}, as_="read_a")
    assert r.status_code == 200, r.text
    hit = r.json()["hits"][0]["id"]
    assert hit in [n.id for n in env.mem.namespaced("a").working("planner")]
    r = env.call("POST", f"{A}/recall", json={"query": "Maya", "agent": "x" * 300})
    assert r.status_code == 422


# -- contexts ---------------------------------------------------------------------------


def _ctx(name: str = "plan", ns: str = "a") -> str:
    return f"/v1/namespaces/{ns}/contexts/{name}"


def test_context_lifecycle(env: Env) -> None:
    r = env.call("POST", f"{A}/contexts", json={"name": "plan", "agent": "planner"})
    assert r.status_code == 200 and r.json()["durable"] is False
    before = env.mem.seq
    r = env.call("POST", f"{_ctx()}/memories", json={"text": "Draft: Acme may slip to Q3",
                                                      "domain": "plans"})
    assert r.status_code == 201, r.text
    draft = r.json()["id"]
    assert env.call("GET", f"{A}/memories/{draft}").status_code == 404  # private
    r = env.call("PATCH", f"{_ctx()}/memories/{env.ids['acme']}", json={"attrs": {"risk": "high"}})
    assert r.status_code == 200 and r.json()["attrs"]["risk"] == "high"
    r = env.call("POST", f"{_ctx()}/edges", json={"src": draft, "rel": "about",
                                                  "dst": env.ids["acme"]})
    assert r.status_code == 201, r.text
    assert env.call("GET", f"{A}/memories/{env.ids['acme']}").json()["attrs"] == {}
    r = env.call("GET", _ctx(), as_="read_a")
    info = r.json()
    assert info["durable"] and info["pending"] >= 3 and info["read_seq"] == before
    assert info["agent"] == "planner"
    assert [c["name"] for c in env.call("GET", f"{A}/contexts", as_="read_a").json()] == ["plan"]
    r = env.call("GET", f"{_ctx()}/memories/{draft}", as_="read_a")
    assert r.status_code == 200 and r.json()["text"].startswith("Draft")
    r = env.call("POST", f"{_ctx()}/recall", json={"query": "Acme slip Q3", "k": 3},
                 as_="read_a")
    assert r.status_code == 200 and draft in [h["id"] for h in r.json()["hits"]]
    changes = env.call("GET", f"{_ctx()}/changes", as_="read_a").json()
    assert {"node.created", "node.updated", "edge.added"} <= {e["type"] for e in changes}
    r = env.call("POST", f"{_ctx()}/commit")
    assert r.status_code == 200, r.text
    assert r.json()["published"] == len(changes) and draft in r.json()["ids"]
    assert env.call("GET", f"{A}/memories/{draft}").status_code == 200
    assert env.call("GET", f"{A}/memories/{env.ids['acme']}").json()["attrs"]["risk"] == "high"
    assert env.call("GET", f"{A}/contexts").json() == []
    assert env.call("GET", _ctx()).json()["agent"] is None  # the name starts afresh


def test_context_forget_and_discard(env: Env) -> None:
    r = env.call("DELETE", f"{_ctx()}/memories/{env.ids['maya']}?reason=stale")
    assert r.status_code == 200, r.text
    assert env.call("GET", f"{_ctx()}/memories/{env.ids['maya']}").status_code == 404
    assert env.call("GET", f"{A}/memories/{env.ids['maya']}").status_code == 200
    r = env.call("POST", f"{_ctx()}/discard")
    assert r.status_code == 200 and r.json()["status"] == "discarded"
    assert env.call("GET", f"{A}/contexts").json() == []
    assert env.call("GET", f"{_ctx()}/memories/{env.ids['maya']}").status_code == 200


def test_context_commit_conflict_is_409_with_streams_then_rebase(env: Env) -> None:
    acme = env.ids["acme"]
    r = env.call("PATCH", f"{_ctx()}/memories/{acme}", json={"text": "Acme ships in Q3"})
    assert r.status_code == 200, r.text
    r = env.call("PATCH", f"{A}/memories/{acme}", json={"text": "Acme ships in Q2"})
    assert r.status_code == 200
    before = env.mem.seq
    r = env.call("POST", f"{_ctx()}/commit")
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "version_conflict" and error["details"]["streams"] == [acme]
    assert env.mem.seq == before
    r = env.call("POST", f"{_ctx()}/rebase")
    assert r.status_code == 200 and r.json()["read_seq"] == before
    r = env.call("POST", f"{_ctx()}/commit")
    assert r.status_code == 200, r.text
    assert env.call("GET", f"{A}/memories/{acme}").json()["text"] == "Acme ships in Q3"


def test_read_token_reads_a_context_but_cannot_stage_or_commit(env: Env) -> None:
    r = env.call("POST", f"{_ctx()}/memories", json={"text": "private note"})
    assert r.status_code == 201
    before = env.mem.seq
    for method, path, body in (
        ("POST", f"{_ctx()}/memories", {"text": "sneaky"}),
        ("PATCH", f"{_ctx()}/memories/{env.ids['maya']}", {"text": "x"}),
        ("POST", f"{_ctx()}/edges", {"src": env.ids["maya"], "rel": "r", "dst": env.ids["acme"]}),
        ("DELETE", f"{_ctx()}/memories/{env.ids['maya']}", None),
        ("POST", f"{_ctx()}/commit", None), ("POST", f"{_ctx()}/discard", None),
        ("POST", f"{_ctx()}/rebase", None),
    ):
        r = env.call(method, path, json=body, as_="read_a")
        assert r.status_code == 403, (path, r.text)
        assert r.json()["error"]["code"] == "forbidden"
    assert env.mem.seq == before
    assert env.call("GET", _ctx(), as_="read_a").json()["pending"] == len(
        env.call("GET", f"{_ctx()}/changes", as_="read_a").json()) > 0
    assert env.call("GET", _ctx(), as_=None).status_code == 401


def test_contexts_are_per_namespace(env: Env) -> None:
    r = env.call("POST", f"{_ctx()}/memories", json={"text": "only in a's context"})
    staged = r.json()["id"]
    assert env.call("GET", "/v1/namespaces/b/contexts", as_="write_b").json() == []
    r = env.call("GET", f"{_ctx(ns='b')}/memories/{staged}", as_="write_b")
    assert r.status_code == 404
    assert env.call("GET", _ctx(ns="b"), as_="write_b").json()["durable"] is False
    assert env.call("GET", _ctx(), as_="write_b").status_code == 403
    r = env.call("POST", f"{_ctx(ns='b')}/commit", as_="write_b")
    assert r.status_code == 200 and r.json()["published"] == 0
    assert env.call("GET", f"{A}/contexts").json()[0]["pending"] > 0


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("POST", "/contexts/plan/memories", {"text": "x", "supersedes": "no-such"}, 404),
    ("POST", "/contexts/plan/memories", {"text": 5}, 422),
    ("POST", "/contexts/plan/memories", {"text": "x", "id": "bad id/"}, 422),
    ("PATCH", "/contexts/plan/memories/no-such", {"text": "x"}, 404),
    ("PATCH", "/contexts/plan/memories/MAYA", {"text": "x", "expected_version": 1}, 422),
    ("POST", "/contexts/plan/edges", {"src": "MAYA", "rel": "", "dst": "MAYA"}, 422),
    ("POST", "/contexts", {"name": ""}, 422),
    ("POST", "/contexts", {"name": "x" * 101}, 422),
    ("POST", "/consolidate", {"now": "not a time"}, 422),
    ("POST", "/consolidate", {"bogus": 1}, 422),
])
def test_bad_input_is_4xx_and_writes_nothing(env: Env, method: str, path: str,
                                             body: dict[str, Any], status: int) -> None:
    path = path.replace("MAYA", env.ids["maya"])
    body = {k: (env.ids["maya"] if v == "MAYA" else v) for k, v in body.items()}
    before = env.mem.seq
    r = env.call(method, f"{A}{path}", json=body)
    assert r.status_code == status, r.text
    assert set(r.json()["error"]) == {"code", "message", "details", "request_id"}
    assert env.mem.seq == before
    assert env.call("GET", f"{A}/contexts").json() == []
