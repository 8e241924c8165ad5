"""Quantized vector storage for cold (archival) memories.

:class:`ColdVectorStore` keeps vectors as float16 (2 bytes a dimension) or as
int8 with one float32 scale per row (1 byte a dimension + 4 bytes a row), with
no float32 copy and no graph: the archival tier is large and rarely searched,
so it trades a little recall and a linear scan for 2-4x less memory than the
float32 matrix :class:`~engramdb.recall.vectors.VectorIndex` always keeps.

Search is exact over the *quantized* vectors (dequantized chunk by chunk, so
no full float32 copy is ever materialised); scores are therefore approximate
(int8: within ~1e-2 of the float32 cosine) and near-ties can swap. Measured
recall@10 against float32 exact search is reported by ``engram bench vectors``
and held above a floor by ``tests/recall/test_vectors_cold.py``.

Which memories are cold is the tiering policy's decision (the cognition layer);
this class is only the mechanism. It is thread-safe: one lock guards all state.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from ..errors import InvalidInput
from .vectors import Allowed, _check_k, _check_keys, _check_query, _check_vectors, _Filter

__all__ = ["ColdVectorStore", "COLD_DTYPES"]

COLD_DTYPES = ("f32", "f16", "i8")
_CHUNK_ROWS = 8192  # rows dequantized at a time during a scan


class ColdVectorStore:
    """Keys -> quantized unit vectors, searched by a chunked exact scan.

    Args:
        dim: vector dimensionality.
        dtype: ``"i8"`` (default), ``"f16"``, or ``"f32"`` (no quantization;
            the baseline the others are measured against).
    """

    def __init__(self, dim: int, *, dtype: str = "i8") -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise InvalidInput(f"dim must be a positive integer, got {dim!r}")
        if dtype not in COLD_DTYPES:
            raise InvalidInput(f"dtype must be one of {COLD_DTYPES}, got {dtype!r}")
        self.dim = dim
        self.dtype = dtype
        store = {"f32": np.float32, "f16": np.float16, "i8": np.int8}[dtype]
        self._codes = np.empty((0, dim), store)
        self._scales = np.empty(0, np.float32)  # int8 only: per-row dequantization scale
        self._keys = np.empty(0, np.int64)
        self._pos: dict[int, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._keys.size

    def __contains__(self, key: object) -> bool:
        return key in self._pos

    # -- writing ---------------------------------------------------------------

    def add(self, keys: Sequence[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Store (or replace) unit vectors under ``keys``; a repeated key keeps its last."""
        key_arr = _check_keys(keys)
        vecs = _check_vectors(vectors, key_arr.size, self.dim)
        if key_arr.size == 0:
            return
        last = {k: i for i, k in enumerate(key_arr.tolist())}
        idx = np.fromiter(last.values(), np.int64, count=len(last))
        key_arr, vecs = key_arr[idx], vecs[idx]
        codes, scales = self._quantize(vecs)
        with self._lock:
            fresh = [i for i, k in enumerate(key_arr.tolist()) if k not in self._pos]
            for i, k in enumerate(key_arr.tolist()):
                row = self._pos.get(k)
                if row is not None:
                    self._codes[row] = codes[i]
                    if self.dtype == "i8":
                        self._scales[row] = scales[i]
            if fresh:
                start = self._keys.size
                self._codes = np.concatenate([self._codes, codes[fresh]])
                if self.dtype == "i8":
                    self._scales = np.concatenate([self._scales, scales[fresh]])
                self._keys = np.concatenate([self._keys, key_arr[fresh]])
                for offset, k in enumerate(key_arr[fresh].tolist()):
                    self._pos[k] = start + offset

    def remove(self, keys: Sequence[int] | np.ndarray) -> int:
        """Delete ``keys`` (absent ones are ignored); returns how many were removed."""
        wanted = set(_check_keys(keys).tolist())
        with self._lock:
            rows = [self._pos[k] for k in wanted if k in self._pos]
            if not rows:
                return 0
            keep = np.ones(self._keys.size, bool)
            keep[rows] = False
            self._codes = self._codes[keep]
            if self.dtype == "i8":
                self._scales = self._scales[keep]
            self._keys = self._keys[keep]
            self._pos = {k: i for i, k in enumerate(self._keys.tolist())}
            return len(rows)

    def _quantize(self, vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.dtype == "f32":
            return vecs.astype(np.float32), np.empty(0, np.float32)
        if self.dtype == "f16":
            return vecs.astype(np.float16), np.empty(0, np.float32)
        peak = np.abs(vecs).max(axis=1)
        scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        codes = np.clip(np.rint(vecs / scales[:, None]), -127, 127).astype(np.int8)
        return codes, scales

    # -- reading ---------------------------------------------------------------

    def get(self, key: int) -> np.ndarray | None:
        """The dequantized vector of ``key`` (float32), or None."""
        with self._lock:
            row = self._pos.get(key)
            if row is None:
                return None
            return self._dequantize(row, row + 1)[0]

    def _dequantize(self, start: int, end: int) -> np.ndarray:
        block = self._codes[start:end].astype(np.float32)
        if self.dtype == "i8":
            block *= self._scales[start:end, None]
        return block

    def search(
        self, query: np.ndarray, k: int, *, allowed: Allowed | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` best keys by (approximate) cosine, best first (``allowed``: as VectorIndex)."""
        q = _check_query(query, self.dim)
        k = _check_k(k)
        flt = None if allowed is None else _Filter(allowed)
        with self._lock:
            n = self._keys.size
            if k == 0 or n == 0:
                return []
            scores = np.empty(n, np.float32)
            for start in range(0, n, _CHUNK_ROWS):
                end = min(n, start + _CHUNK_ROWS)
                scores[start:end] = self._dequantize(start, end) @ q
            keys = self._keys
            if flt is None:
                top = _top(scores, k)
            elif flt.predicate is None:
                top = np.flatnonzero(flt.mask(keys))
                top = top[_top(scores[top], k)]
            else:
                top = _first_accepted(scores, keys, k, flt)
            return list(zip(keys[top].tolist(), scores[top].astype(np.float64).tolist(),
                            strict=True))

    def memory_bytes(self) -> int:
        """Resident footprint: codes + scales + keys + key map."""
        with self._lock:
            return (
                self._codes.nbytes + self._scales.nbytes + self._keys.nbytes
                + len(self._pos) * 64 + 64
            )

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the keys and their dequantized float32 vectors."""
        with self._lock:
            return self._keys.copy(), self._dequantize(0, self._keys.size)

    def export_codes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copies of the keys, the stored codes and the int8 scales, by ascending
        key: what :meth:`load_codes` restores bit for bit (no requantization)."""
        with self._lock:
            order = np.argsort(self._keys, kind="stable")
            scales = self._scales[order] if self.dtype == "i8" else self._scales.copy()
            return self._keys[order], self._codes[order], scales

    def load_codes(self, keys: np.ndarray, codes: np.ndarray, scales: np.ndarray) -> None:
        """Replace the whole content with :meth:`export_codes` output of the same dtype."""
        store = {"f32": np.float32, "f16": np.float16, "i8": np.int8}[self.dtype]
        keys = np.asarray(keys, np.int64)
        codes = np.asarray(codes, store).reshape(keys.size, self.dim)
        scales = np.asarray(scales, np.float32)
        if self.dtype == "i8" and scales.shape != (keys.size,):
            raise InvalidInput("int8 codes need one scale per row")
        with self._lock:
            self._keys, self._codes = keys.copy(), codes.copy()
            self._scales = scales.copy() if self.dtype == "i8" else np.empty(0, np.float32)
            self._pos = {k: i for i, k in enumerate(keys.tolist())}


def _first_accepted(scores: np.ndarray, keys: np.ndarray, k: int, flt: _Filter) -> np.ndarray:
    """Rows of the k best-scoring keys the predicate accepts, testing in score order
    (a window of max(4k, 64) best rows, growing 4x), never every key."""
    n = scores.shape[0]
    window = min(n, max(4 * k, 64))
    while True:
        order = _top(scores, window)
        hits = [row for row, key in zip(order.tolist(), keys[order].tolist(), strict=True)
                if flt.accepts(key)][:k]
        if len(hits) == k or window == n:
            return np.asarray(hits, np.int64)
        window = min(n, window * 4)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    n = scores.shape[0]
    if n == 0:
        return np.empty(0, np.int64)
    if k < n:
        part = np.argpartition(scores, n - k)[n - k :]
    else:
        part = np.arange(n)
    return part[np.argsort(-scores[part], kind="stable")]
