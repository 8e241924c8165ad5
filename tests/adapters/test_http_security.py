"""The security suite: each hostile or broken request gets the right status and code,
and leaves the store exactly as it was (same head seq, same data)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ._http import MAX_BODY, Env, make_env

A, B = "/v1/namespaces/a", "/v1/namespaces/b"
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    """One store for the module: every test here checks that it changes nothing."""
    yield from make_env()


def snapshot(env: Env) -> tuple[int, str, int]:
    maya = env.mem.namespaced("a").get(env.ids["maya"])
    return env.mem.seq, maya.text, len(env.mem.namespaced("b").domains())


def expect(env: Env, response: Any, status: int, code: str, before: tuple[int, str, int]) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert snapshot(env) == before


WRITES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/memories", {"json": {"text": "intruder"}}),
    ("POST", "/memories/batch", {"json": {"items": [{"text": "intruder"}]}}),
    ("PATCH", "/memories/{maya}", {"json": {"text": "hacked"}}),
    ("DELETE", "/memories/{maya}", {}),
    ("POST", "/edges", {"json": {"src": "{maya}", "rel": "r", "dst": "{acme}"}}),
    ("DELETE", "/edges", {"params": {"src": "{maya}", "rel": "works_at", "dst": "{acme}"}}),
    ("POST", "/conversations", {"json": {"session": "s", "turns": [{"text": "hi"}]}}),
    ("POST", "/memories/{maya}/outcomes", {"json": {"outcome": "success"}}),
]
READS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/memories/{maya}", {}),
    ("GET", "/memories/{maya}/history", {}),
    ("GET", "/memories/{maya}/provenance", {}),
    ("GET", "/memories/{maya}/neighbors", {}),
    ("GET", "/memories", {"params": {"domain": "people"}}),
    ("GET", "/find", {"params": {"name": "Maya"}}),
    ("POST", "/recall", {"json": {"query": "Maya"}}),
    ("GET", "/domains", {}),
    ("GET", "/bridges", {}),
    ("GET", "/stats", {}),
    ("GET", "/index", {}),
    ("GET", "/memories/{maya}/outcomes", {}),
    ("GET", "/memories/{maya}/salience", {}),
]


def fill(env: Env, value: Any) -> Any:
    if isinstance(value, str):
        return value.format(**env.ids)
    if isinstance(value, dict):
        return {k: fill(env, v) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(env, v) for v in value]
    return value


def request(env: Env, ns: str, op: tuple[str, str, dict[str, Any]], who: str | None,
            headers: dict[str, str] | None = None) -> Any:
    method, path, kwargs = op
    return env.call(method, ns + fill(env, path), as_=who, headers=headers or {},
                    **fill(env, kwargs))


# -- authentication: 401 ------------------------------------------------------------

@pytest.mark.parametrize("op", WRITES + READS, ids=lambda op: f"{op[0]} {op[1]}")
def test_missing_token(env: Env, op: tuple[str, str, dict[str, Any]]) -> None:
    before = snapshot(env)
    r = request(env, A, op, None)
    expect(env, r, 401, "unauthorized", before)
    assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer eng_not-a-real-token", "Bearer", "Bearer   ",
                                    "Basic YWxpY2U6c2VjcmV0", "eng_token-without-scheme",
                                    "Bearer " + "A" * 4000])
def test_invalid_token(env: Env, header: str) -> None:
    before = snapshot(env)
    for op in (WRITES[0], READS[0]):
        r = request(env, A, op, None, headers={"Authorization": header})
        expect(env, r, 401, "unauthorized", before)
        assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_expired_and_revoked_tokens(env: Env) -> None:
    before = snapshot(env)
    assert request(env, A, READS[0], "expiring").status_code == 200
    env.clock.now += 61
    try:
        for who in ("expiring", "revoked"):
            for op in (WRITES[0], READS[0]):
                expect(env, request(env, A, op, who), 401, "unauthorized", before)
    finally:
        env.clock.now -= 61


def test_auth_comes_before_body_parsing(env: Env) -> None:
    before = snapshot(env)
    r = env.call("POST", f"{A}/memories", as_=None, content=b"{not json", headers=JSON)
    expect(env, r, 401, "unauthorized", before)
    r = env.call("POST", f"{B}/memories", as_="write_a", content=b"{not json", headers=JSON)
    expect(env, r, 403, "forbidden", before)


# -- authorization: 403 -------------------------------------------------------------

@pytest.mark.parametrize("op", WRITES, ids=lambda op: f"{op[0]} {op[1]}")
def test_read_only_token_cannot_write(env: Env, op: tuple[str, str, dict[str, Any]]) -> None:
    before = snapshot(env)
    expect(env, request(env, A, op, "read_a"), 403, "forbidden", before)


@pytest.mark.parametrize("op", WRITES + READS, ids=lambda op: f"{op[0]} {op[1]}")
def test_cross_namespace_is_forbidden(env: Env, op: tuple[str, str, dict[str, Any]]) -> None:
    before = snapshot(env)
    expect(env, request(env, B, op, "write_a"), 403, "forbidden", before)  # a's token on b
    expect(env, request(env, A, op, "write_b"), 403, "forbidden", before)  # b's token on a


def test_ids_do_not_cross_namespaces_even_with_a_grant_for_both(env: Env) -> None:
    """An all-namespaces token still sees each namespace alone: a's ids are 404 in b."""
    before = snapshot(env)
    maya, secret = env.ids["maya"], env.ids["secret_b"]
    for path in (f"{B}/memories/{maya}", f"{B}/memories/{maya}/history",
                 f"{B}/memories/{maya}/neighbors", f"{A}/memories/{secret}"):
        expect(env, env.call("GET", path, as_="all"), 404, "not_found", before)
    r = env.call("POST", f"{A}/edges", as_="all", json={"src": maya, "rel": "r", "dst": secret})
    expect(env, r, 404, "not_found", before)
    r = env.call("PATCH", f"{B}/memories/{maya}", as_="all", json={"text": "moved"})
    expect(env, r, 404, "not_found", before)
    r = env.call("DELETE", f"{B}/memories/{maya}", as_="all")
    expect(env, r, 404, "not_found", before)
    hits = env.call("POST", f"{B}/recall", as_="all", json={"query": "Maya Berlin"}).json()
    assert maya not in [h["id"] for h in hits["hits"]]


# -- bodies: 413, 415, 400, 422 -----------------------------------------------------

def test_oversized_body_by_content_length(env: Env) -> None:
    before = snapshot(env)
    body = b'{"text": "' + b"x" * MAX_BODY + b'"}'
    r = env.call("POST", f"{A}/memories", content=body, headers=JSON)
    expect(env, r, 413, "payload_too_large", before)


def test_oversized_body_streamed_without_length(env: Env) -> None:
    before = snapshot(env)

    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(MAX_BODY // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    r = env.call("POST", f"{A}/memories", content=chunks(), headers=JSON)
    assert "content-length" not in r.request.headers
    expect(env, r, 413, "payload_too_large", before)


def test_oversized_body_is_refused_before_auth(env: Env) -> None:
    before = snapshot(env)
    r = env.call("POST", f"{A}/memories", as_=None, content=b"x" * (MAX_BODY + 1), headers=JSON)
    expect(env, r, 413, "payload_too_large", before)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "malformed_json"),
        (b'{"text": "a"', 400, "malformed_json"),
        (b'{"text": NaN}', 400, "malformed_json"),
        (b'{"text": "a", "attrs": {"x": Infinity}}', 400, "malformed_json"),
        (b"\xff\xfe garbage", 400, "malformed_json"),
        (b'{"text": "a", "attrs": {"x": 1e999}}', 400, "malformed_json"),
        (b'{"text": "a", "attrs": {"x": 100000000000000000000000000000}}', 422, "invalid_input"),
        (b'{"text": "a", "valid_from": 100000000000000000000000000000}', 422, "invalid_input"),
        (b'{"text": "a", "attrs": ' + b'{"x": ' * 100 + b"1" + b"}" * 101, 422, "invalid_input"),
        (b"[" * 5000 + b"]" * 5000, 400, "malformed_json"),
        (b'"just a string"', 422, "invalid_request"),
        (b"[]", 422, "invalid_request"),
        (b"null", 422, "invalid_request"),
        (b'{"text": 12}', 422, "invalid_request"),
        (b'{"text": "a", "unknown": 1}', 422, "invalid_request"),
        (b'{"text": "a", "id": "../../etc/passwd"}', 422, "invalid_input"),
        (b'{"text": "a\\ud800b"}', 400, "malformed_json"),  # lone surrogate
    ],
)
def test_malformed_bodies(env: Env, body: bytes, status: int, code: str) -> None:
    before = snapshot(env)
    r = env.call("POST", f"{A}/memories", content=body, headers=JSON)
    expect(env, r, status, code, before)


def test_bodies_must_be_json(env: Env) -> None:
    before = snapshot(env)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        r = env.call("POST", f"{A}/memories", content=b'{"text": "a"}',
                     headers={"content-type": content_type})
        expect(env, r, 415, "unsupported_media_type", before)
    r = env.call("POST", f"{A}/memories", content=b"")
    expect(env, r, 422, "invalid_request", before)


def test_bad_batch_writes_nothing(env: Env) -> None:
    before = snapshot(env)
    items = [{"text": "fine"}, {"text": "also fine", "id": "bad id!"}]
    r = env.call("POST", f"{A}/memories/batch", json={"items": items})
    expect(env, r, 422, "invalid_input", before)


# -- ids, paths, namespaces -----------------------------------------------------------

PATH_IDS = ["..", "...", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc", "a%00b", "%00",
            "C:%5CWindows%5Csystem32", "%252e%252e%252f", "x" * 5000, "%F0%9F%92%A5",
            "%ED%A0%80", "a%0D%0ASet-Cookie:%20x=y", "~root", "*", "$(rm -rf)"]


@pytest.mark.parametrize("raw", PATH_IDS)
def test_path_like_ids_are_just_missing(env: Env, raw: str) -> None:
    before = snapshot(env)
    for method, suffix in (("GET", ""), ("GET", "/history"), ("GET", "/neighbors"),
                           ("PATCH", ""), ("DELETE", "")):
        kwargs: dict[str, Any] = {"json": {"text": "x"}} if method == "PATCH" else {}
        r = env.call(method, f"{A}/memories/{raw}{suffix}", as_="all", **kwargs)
        assert r.status_code in (404, 405, 422), (method, raw, r.status_code, r.text)
        assert r.json()["error"]["code"] in ("not_found", "method_not_allowed", "invalid_input")
        assert snapshot(env) == before


@pytest.mark.parametrize("raw", ["..", "bad ns", "-x", "a%2Fb", "%00", "x" * 300, "%ED%A0%80"])
def test_invalid_namespaces(env: Env, raw: str) -> None:
    before = snapshot(env)
    for op in (WRITES[0], READS[0]):
        r = request(env, f"/v1/namespaces/{raw}", op, "all")
        assert r.status_code in (404, 422), r.text
        assert r.json()["error"]["code"] in ("not_found", "invalid_namespace")
        assert snapshot(env) == before


def test_query_parameters_are_validated(env: Env) -> None:
    before = snapshot(env)
    maya = env.ids["maya"]
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        (f"/memories/{maya}", {"as_of": "-1"}, 422, "invalid_input"),
        (f"/memories/{maya}", {"as_of": "not a time"}, 422, "invalid_input"),
        (f"/memories/{maya}", {"as_of": "\u00b2"}, 422, "invalid_input"),  # a digit, not ASCII
        (f"/memories/{maya}/history", {"cursor": "\u00b2.1"}, 422, "invalid_input"),
        (f"/memories/{maya}/history", {"limit": "0"}, 422, "invalid_request"),
        (f"/memories/{maya}/history", {"limit": "1001"}, 422, "invalid_request"),
        (f"/memories/{maya}/history", {"cursor": "1.-1"}, 422, "invalid_input"),
        (f"/memories/{maya}/neighbors", {"direction": "sideways"}, 422, "invalid_request"),
        (f"/memories/{maya}/provenance", {"field": "../secret"}, 404, "not_found"),
        ("/memories", {"order": "sideways"}, 422, "invalid_request"),
        ("/memories", {"filters": "[1]"}, 422, "invalid_query"),
    ]
    for path, params, status, code in cases:
        expect(env, env.call("GET", A + path, params=params), status, code, before)


def make_checks() -> list[Callable[[Env], Any]]:
    return [
        lambda e: e.call("POST", f"{A}/recall", json={"query": "x", "k": 0}),
        lambda e: e.call("POST", f"{A}/recall", json={"query": ""}),
        lambda e: e.call("POST", f"{A}/recall", json={"query": "x", "signals": ["psychic"]}),
        lambda e: e.call("POST", f"{A}/recall", json={"query": "x", "filters": {"a": {"b": 1}}}),
        lambda e: e.call("POST", f"{A}/edges", json={"src": e.ids["maya"], "rel": "",
                                                     "dst": e.ids["acme"]}),
    ]


@pytest.mark.parametrize("check", make_checks())
def test_invalid_recall_and_edges_are_422(env: Env, check: Callable[[Env], Any]) -> None:
    before = snapshot(env)
    r = check(env)
    assert r.status_code == 422 and r.json()["error"]["code"] in ("invalid_request",
                                                                  "invalid_query")
    assert snapshot(env) == before
