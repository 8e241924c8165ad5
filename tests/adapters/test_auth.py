"""Token storage and checking: random tokens, hashed at rest, scoped, expiring, revocable."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from engramdb.adapters.auth import Grant, TokenStore, bearer_grant, parse_duration, tokens_path
from engramdb.errors import CorruptStore, Forbidden, InvalidInput, NotFound, Unauthorized


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_tokens_are_random_and_stored_only_hashed(tmp_path: Path) -> None:
    path = str(tmp_path / "s.engram.tokens")
    store = TokenStore(path)
    secrets = [store.create(namespaces=["a"], scope="read")[0] for _ in range(3)]
    assert len(set(secrets)) == 3 and all(len(s) >= 40 for s in secrets)
    text = Path(path).read_text()
    assert not any(s in text or s[4:] in text for s in secrets)
    data = json.loads(text)
    assert len(bytes.fromhex(data["salt"])) == 32
    assert all(len(r["hash"]) == 64 and "token" not in r for r in data["tokens"])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.engram.tokens", "s.engram.tokens.lock"]


def test_verify_returns_the_grant(tmp_path: Path) -> None:
    store = TokenStore(str(tmp_path / "t"))
    secret, grant = store.create(namespaces=["a", "b", "a"], scope="write", label="agent-7")
    assert store.verify(secret) == grant
    assert grant.namespaces == ("a", "b") and grant.label == "agent-7"


@pytest.mark.parametrize("token", [None, "", "eng_nope", "x" * 5000, "\u00e9\u00e9"])
def test_unknown_or_missing_tokens_are_unauthorized(token: str | None) -> None:
    store = TokenStore()
    store.create(namespaces=["a"], scope="write")
    with pytest.raises(Unauthorized) as info:
        store.verify(token)
    assert info.value.status == 401


def test_a_token_from_another_store_is_unknown() -> None:
    secret = TokenStore().create(namespaces=["a"], scope="write")[0]
    with pytest.raises(Unauthorized):
        TokenStore().verify(secret)


def test_expiry_uses_the_clock() -> None:
    clock = Clock()
    store = TokenStore(clock=clock)
    secret, grant = store.create(namespaces=["a"], scope="read", expires_in=60)
    assert grant.expires_at == clock.now + 60
    clock.now += 59
    store.verify(secret)
    clock.now += 1
    with pytest.raises(Unauthorized) as info:
        store.verify(secret)
    assert info.value.details["reason"] == "expired"


def test_revoke(tmp_path: Path) -> None:
    store = TokenStore(str(tmp_path / "t"))
    secret, grant = store.create(namespaces="*", scope="write")
    keep, _ = store.create(namespaces="*", scope="read")
    assert store.revoke(grant.id) == grant
    with pytest.raises(Unauthorized):
        store.verify(secret)
    store.verify(keep)
    with pytest.raises(NotFound):
        store.revoke(grant.id)


def test_changes_by_another_process_are_picked_up(tmp_path: Path) -> None:
    path = str(tmp_path / "t")
    server = TokenStore(path)
    assert len(server) == 0
    admin = TokenStore(path)  # as `engram token create` in another process would
    secret, grant = admin.create(namespaces=["a"], scope="write")
    assert server.verify(secret).id == grant.id
    TokenStore(path).revoke(grant.id)
    with pytest.raises(Unauthorized):
        server.verify(secret)


def test_grant_checks_namespace_and_scope() -> None:
    read = Grant(id="r", namespaces=("a",), scope="read", created_at=0)
    read.check("a", write=False)
    with pytest.raises(Forbidden):
        read.check("a", write=True)
    with pytest.raises(Forbidden):
        read.check("b", write=False)
    every = Grant(id="w", namespaces="*", scope="write", created_at=0)
    every.check("anything", write=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"namespaces": ["a"], "scope": "admin"},
        {"namespaces": [], "scope": "read"},
        {"namespaces": ["bad namespace!"], "scope": "read"},
        {"namespaces": ["a"], "scope": "read", "expires_in": 0},
        {"namespaces": ["a"], "scope": "read", "label": "x\n" * 5},
    ],
)
def test_bad_grants_are_rejected(kwargs: dict[str, object], tmp_path: Path) -> None:
    store = TokenStore(str(tmp_path / "t"))
    with pytest.raises(InvalidInput):
        store.create(**kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("body", ["", "{", '{"salt": "zz", "tokens": []}',
                                  '{"salt": "00", "tokens": [{"id": "x"}]}'])
def test_a_garbled_token_file_is_an_error_not_an_open_door(tmp_path: Path, body: str) -> None:
    path = tmp_path / "t"
    path.write_text(body)
    with pytest.raises(CorruptStore):
        TokenStore(str(path))


def test_a_token_file_others_can_write_is_refused(tmp_path: Path) -> None:
    """Whoever can write the file can add a token of their own."""
    path = tmp_path / "t"
    token, _ = TokenStore(str(path)).create(namespaces=["a"], scope="write")
    os.chmod(path, 0o620)
    with pytest.raises(CorruptStore, match="chmod 600"):
        TokenStore(str(path))
    os.chmod(path, 0o640)  # readable is fine: it holds salted hashes of random tokens
    assert TokenStore(str(path)).verify(token).scope == "write"


def test_a_broken_token_file_names_no_server_path_to_a_client(tmp_path: Path) -> None:
    path = tmp_path / "t"
    tokens = TokenStore(str(path))
    token, _ = tokens.create(namespaces=["a"], scope="read")
    path.write_text("{")
    with pytest.raises(CorruptStore) as caught:
        bearer_grant(tokens, f"Bearer {token}")
    assert str(tmp_path) not in str(caught.value)


def test_a_non_ascii_hash_is_a_corrupt_file_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_text('{"salt": "00", "tokens": [{"id": "x", "namespaces": "*", "scope": "read",'
                    ' "created_at": 1, "hash": "\u00e9"}]}')
    with pytest.raises(CorruptStore):
        TokenStore(str(path))


def test_durations_and_paths() -> None:
    assert parse_duration("90s") == 90 and parse_duration("12h") == 43_200
    assert parse_duration("30d") == 30 * 86_400 and parse_duration("2w") == 14 * 86_400
    for bad in ("", "10", "0d", "-1d", "1y", "1.5h"):
        with pytest.raises(InvalidInput):
            parse_duration(bad)
    assert tokens_path(":memory:") is None and tokens_path("a/b.engram") == "a/b.engram.tokens"


def test_concurrent_creators_lose_no_token(tmp_path: Path) -> None:
    """Each creator re-reads the file under a lock, so parallel admins never drop a token."""
    import threading

    path = str(tmp_path / "t")
    stores = [TokenStore(path) for _ in range(4)]  # as separate processes would
    made: list[str] = []

    def create(store: TokenStore) -> None:
        for _ in range(5):
            made.append(store.create(namespaces=["a"], scope="read")[0])

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = TokenStore(path)
    assert len(final) == 20 and all(final.verify(secret) for secret in made)
