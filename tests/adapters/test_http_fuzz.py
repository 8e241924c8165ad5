"""Fuzzing the HTTP API from its own OpenAPI schema with Hypothesis.

For every operation the server documents, Hypothesis draws path parameters, query
parameters, a body (usually shaped by the operation's request schema, sometimes
arbitrary JSON) and credentials (right, read-only, other namespace, none, junk).
Whatever it sends: no 5xx, an error body of the documented shape, and a request
that was refused (4xx) or only reads left the store's head seq where it was.

``ENGRAM_FUZZ_EXAMPLES`` (default 30) sets the requests drawn per operation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engramdb import Memory
from engramdb.adapters.http import create_app

from ._http import Env, make_env

with Memory.open(":memory:", embedder=None, recall=False) as _mem:
    _SCHEMA = create_app(_mem, tokens=None).openapi()
OPERATIONS = sorted(
    (method.upper(), path, op)
    for path, item in _SCHEMA["paths"].items()
    for method, op in item.items()
)
DEFS = _SCHEMA["components"]["schemas"]
EXAMPLES = max(1, int(os.environ.get("ENGRAM_FUZZ_EXAMPLES", "30")))
INT64 = 2**63 - 1
STRINGS = ["", "a", "b", "..", "../../etc/passwd", "%2e%2e", "1", "0", "-1", "2026-03-01",
           "2026-03-01T12:00:00+02:00", "text", "attrs.tags", "kind", "people", "works_at",
           "next", "*", "\x00", "\ud800", "x" * 300, "Maya", "out", "in", "both", "1.2", "\u00b2",
           "\u0663", "1.\u00b2", "\u00b2.1", "warm", "all", "success", "plan"]


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    yield from make_env()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)


def strings(schema: dict[str, Any], ids: list[str]) -> st.SearchStrategy[str]:
    lo, hi = schema.get("minLength", 0), min(schema.get("maxLength", 40), 40)
    return st.text(min_size=lo, max_size=max(lo, hi)) | st.sampled_from(STRINGS + ids)


def from_schema(schema: dict[str, Any], ids: list[str], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values for (the subset of) JSON Schema that FastAPI emits; sometimes off-schema."""
    if "$ref" in schema:
        return from_schema(DEFS[schema["$ref"].rsplit("/", 1)[-1]], ids, depth)
    if "anyOf" in schema or "oneOf" in schema:  # oneOf: a discriminated union (query steps)
        return st.one_of([from_schema(s, ids, depth)
                          for s in schema.get("anyOf") or schema["oneOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        return strings(schema, ids)
    if kind == "integer":
        lo, hi = int(schema.get("minimum", -INT64)), min(int(schema.get("maximum", INT64)), INT64)
        return st.integers(lo, hi) | st.sampled_from([lo, hi, 0, -1, 1, lo - 1, hi + 1])
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array" and depth < 3:
        lo, hi = schema.get("minItems", 0), min(schema.get("maxItems", 4), 4)
        return st.lists(from_schema(schema.get("items", {}), ids, depth + 1), min_size=lo,
                        max_size=max(lo, hi))
    if kind == "object" and depth < 3:
        props = schema.get("properties", {})
        if props:
            required = set(schema.get("required", ()))
            return st.fixed_dictionaries(
                {k: from_schema(v, ids, depth + 1) for k, v in props.items() if k in required},
                optional={k: from_schema(v, ids, depth + 1) for k, v in props.items()
                          if k not in required},
            )
        extra = schema.get("additionalProperties", {})
        values = from_schema(extra, ids, depth + 1) if isinstance(extra, dict) else json_values
        return st.dictionaries(st.sampled_from(["kind", "attrs.tags", "attrs.k"]) | st.text(
            max_size=10), values, max_size=3)
    return json_values


def _quote(value: Any) -> str:
    """Percent-encode anything, lone surrogates included (as the bytes they would be)."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    return quote(str(value).encode("utf-8", "surrogatepass"), safe="")


def build(data: st.DataObject, env: Env, method: str, path: str, op: dict[str, Any]
          ) -> dict[str, Any]:
    ids = list(env.ids.values())
    url = path
    # Most requests get past auth, so the bodies and parameters reach the facade.
    authorized = data.draw(st.integers(0, 9), label="authorized") < 8
    params: list[str] = []
    for p in op.get("parameters", []):
        if p["in"] == "path":
            if p["name"] == "namespace":
                value = "a" if authorized else data.draw(
                    st.sampled_from(["a", "b", "bad ns", ".."]) | st.text(max_size=10),
                    label="namespace")
            else:
                value = data.draw(st.sampled_from(ids) | strings({}, ids), label=p["name"])
            url = url.replace("{" + p["name"] + "}", _quote(value) or "%20")
        elif p.get("required") or data.draw(st.booleans()):
            value = data.draw(from_schema(p["schema"], ids), label=p["name"])
            for item in value[:3] if isinstance(value, list) else [value]:
                if item is not None:
                    params.append(f"{p['name']}={_quote(item)}")
    if params:
        url += "?" + "&".join(params)
    request: dict[str, Any] = {"method": method, "url": url}
    body_schema = op.get("requestBody", {}).get("content", {}).get("application/json")
    if body_schema is not None:
        body = data.draw(from_schema(body_schema["schema"], ids) | json_values, label="body")
        request["content"] = json.dumps(body).encode("utf-8", "surrogatepass")
        request["headers"] = {"content-type": "application/json"}
    who = data.draw(st.sampled_from(["write_a", "all"] if authorized else
                                    ["read_a", "write_b", None, "junk", "write_a"]), label="token")
    auth = {"Authorization": "Bearer eng_junk"} if who == "junk" else (
        env.auth(who) if who else {})
    request["headers"] = {**request.get("headers", {}), **auth}
    return request


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS,
                         ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_no_5xx_and_refusals_change_nothing(env: Env, method: str, path: str,
                                            op: dict[str, Any], data: st.DataObject) -> None:
    request = build(data, env, method, path, op)
    before = env.mem.seq
    response = env.client.request(**request)
    assert response.status_code < 500, (request, response.text)
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"code", "message", "details", "request_id"} and error["code"]
        assert env.mem.seq == before, (request, response.text)
    if method == "GET":
        assert env.mem.seq == before


def test_the_schema_covers_every_route() -> None:
    assert len(OPERATIONS) >= 42  # fails loudly if routes stop being documented
    paths = {p.removeprefix("/v1/namespaces/{namespace}") for _, p, _ in OPERATIONS}
    assert {"/query", "/contexts", "/contexts/{name}/commit", "/contexts/{name}/rebase",
            "/consolidate", "/memories/{memory_id}/tier"} <= paths
