"""Recall: embeddings, vector and BM25 indexes, fusion.

onnxruntime is imported before anything imports usearch: loading usearch's
native library first and onnxruntime second segfaults the process (seen with
usearch 2.26 and onnxruntime 1.31; the other order is fine).
"""

import contextlib

with contextlib.suppress(ImportError):
    import onnxruntime  # noqa: F401
