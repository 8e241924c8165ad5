"""The facade's whole-store operations: Parquet export/import, the integrity
check, and re-embedding under a new model (see :class:`~engramdb.memory.Memory`)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import InvalidQuery, ReadOnly
from ..progress import track
from ..projections import core_projections
from ..recall.index import IndexProjection
from ..recall.models import ReembedReport
from ..recall.projections import TextProjection, VectorProjection
from ..store import CheckReport, Projection
from ..store.check import check_log, default_fresh
from ._base import FacadeBase

if TYPE_CHECKING:
    from ..recall.embed import Embedder


class StoreOps(FacadeBase):
    """Operations on the whole store, every namespace (part of
    :class:`~engramdb.memory.Memory`)."""

    def export_events(
        self, path: str | os.PathLike[str], *, include_forgotten: bool = False,
        overwrite: bool = False,
        allow_damaged: bool = False,
    ) -> int:
        """Write the whole event log (every namespace) to a Parquet file, losslessly;
        returns the number of events. Needs the ``parquet`` extra (pyarrow).

        Forgotten content never leaves the store: unless ``include_forgotten``,
        events a forget covers are written as the redaction markers
        :meth:`compact` would leave, so the file holds what the store holds
        after compaction (same seqs, ids and times; the content is gone).

        An export never replaces a store: a file of this store (by name, symlink
        or hard link) or any SQLite database at ``path`` is
        :class:`~engramdb.errors.TargetIsStore`; any other existing file is
        :class:`~engramdb.errors.TargetExists` unless ``overwrite``.

        Every event's hash chain is checked on the way out: a damaged log raises
        :class:`~engramdb.errors.CorruptStore` naming the first bad seq (and no
        file is left), unless ``allow_damaged`` takes the events as stored.
        """
        from ..store.files import check_export_target
        from ..store.parquet import write_events

        path = os.fspath(path)
        check_export_target(path, store_path=getattr(self._store.log, "path", None),
                            overwrite=overwrite)

        head = self._store.head
        log = self._store.log
        with log.unverified() if allow_damaged else contextlib.nullcontext():
            raw = track("export", log.read_raw(upto=head), total=head)
            if not include_forgotten:
                plan = self._erasure()
                raw = log.redact_raw(raw, set(plan.seqs), plan.renames)
            return write_events(path, raw,
                                metadata={"store_id": self._store.store_id, "head": head})

    def import_events(self, path: str | os.PathLike[str]) -> int:
        """Load a Parquet export into this EMPTY store: the same events (ids, seqs,
        times, payload bytes) and so the same projections. All or nothing."""
        from ..store.parquet import read_events

        if getattr(self._store.log, "read_only", False):
            raise ReadOnly("this store is open read-only")
        return self._store.import_events(track("import", read_events(path), total=None))

    def check(self) -> CheckReport:
        """Verify the store: the log's integrity and hash chain, every projection
        against a full replay, every snapshot file (restored + tail) against the
        same replay."""
        return self._store.check(self._fresh_projection)

    @staticmethod
    def check_file(path: str | os.PathLike[str], *, opening: str | None = None) -> CheckReport:
        """Check the log of the store at ``path`` alone, without opening the store
        (for one too damaged to open: ``opening`` says why that failed). Read-only;
        lists every problem the log has, naming the first bad seq."""
        from ..log import SQLiteLog

        log = SQLiteLog(os.fspath(path), read_only=True, verify_open=False)
        try:
            return check_log(log, opening=opening)
        finally:
            log.close()

    def _fresh_projection(self, name: str) -> Projection | None:
        if name == "text":
            return TextProjection()
        if name == "index":
            return IndexProjection(self._nodes, self._adjacency, self._domains, self._cross)
        if name == "vectors" and self._vectors is not None:
            return VectorProjection(self._vectors.model, self._vectors.dim)
        for proj in core_projections():
            if proj.name == name:
                return proj
        return default_fresh(self._store.projection(name))

    def reembed(
        self, embedder: Embedder, *, batch: int = 256, agent: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ReembedReport:
        """Switch the whole store (every namespace) to ``embedder``'s model, by replay.

        Builds the new model's vectors beside the active ones (logged as
        ``vector.stored`` events, ``batch`` texts per embed call and commit) while
        recall keeps answering with the old model, then appends a
        ``vectors.model_activated`` event whose commit switches recall over in
        one step. Later opens must pass this embedder (see
        :mod:`engramdb.recall.models`). Re-running after an interruption reuses
        the vectors already logged.
        """
        if self._models is None:
            raise InvalidQuery("this store was opened without an embedder (or with recall=False)")
        if getattr(self._store.log, "read_only", False):
            raise ReadOnly("this store is open read-only")

        def text_of(node_id: str) -> tuple[str, str] | None:
            node = self._nodes.get(node_id, self._store.head)
            return None if node is None or node.forgotten else (node.text, node.namespace)

        report = self._models.reembed(
            self._store, embedder, text_of=text_of, namespace=self.namespace,
            meta=self._meta(agent, "reembed", None), batch=batch, progress=progress,
        )
        self._store.snapshot()  # the vectors snapshot on disk was of the old model
        return report
