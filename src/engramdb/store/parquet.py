"""The event log as a Parquet file: a lossless export, and its import.

One row per event, in seq order, with every field the log stores::

    seq int64 · id · namespace · stream (strings) · version int64 · type string ·
    schema int32 · recorded_at / valid_from / valid_to timestamp[us, UTC] ·
    payload · meta (JSON strings, exactly the bytes the log holds)

Payloads keep the schema version they were written with (nothing is upcast on
the way out), so importing the file into an empty store reproduces the same
events: same ids, seqs, versions, times and bytes. The file's schema metadata
marks it (``engramdb.format = events/1``) and records the source store's id and
head. Tools such as DuckDB or pandas read it directly.

pyarrow is the ``parquet`` extra (``pip install 'engram-eventdb[parquet]'``).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..errors import EngramError, InvalidInput, NotFound
from ..log import RawEvent

__all__ = ["FORMAT", "write_events", "read_events"]

FORMAT = "events/1"
_BATCH = 50_000
_TIME = ("recorded_at", "valid_from", "valid_to")
_COLUMNS = ("seq", "id", "namespace", "stream", "version", "type", "schema", "recorded_at",
            "valid_from", "valid_to", "payload", "meta")


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise EngramError(
            "Parquet export/import needs pyarrow: pip install 'engram-eventdb[parquet]'"
        ) from None
    return pyarrow


def _schema(pa: Any, metadata: Mapping[str, str]) -> Any:
    ts = pa.timestamp("us", tz="UTC")
    fields = [
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("id", pa.string(), nullable=False),
        pa.field("namespace", pa.string(), nullable=False),
        pa.field("stream", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("schema", pa.int32(), nullable=False),
        pa.field("recorded_at", ts, nullable=False),
        pa.field("valid_from", ts),
        pa.field("valid_to", ts),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("meta", pa.string(), nullable=False),
    ]
    meta = {f"engramdb.{k}": str(v) for k, v in metadata.items()}
    return pa.schema(fields, metadata={"engramdb.format": FORMAT, **meta})


def _text(blob: bytes, seq: int, what: str) -> str:
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError:
        raise EngramError(f"event {seq}'s {what} is not UTF-8 JSON; run `engram check`") from None


def write_events(
    path: str | os.PathLike[str], events: Iterable[RawEvent], *, metadata: Mapping[str, Any]
) -> int:
    """Write ``events`` to a Parquet file at ``path`` (atomically); return the count."""
    pa = _pyarrow()
    path = os.fspath(path)
    schema = _schema(pa, metadata)
    # a fresh name beside the target: never an existing file (``PATH.tmp`` could be one)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp",
                               dir=os.path.dirname(os.path.abspath(path)))
    os.fchmod(fd, 0o600)  # owner-only, whatever the umask: it holds every namespace
    os.close(fd)
    count = 0
    try:
        with pa.parquet.ParquetWriter(tmp, schema, compression="zstd") as writer:
            batch: list[RawEvent] = []
            for raw in events:
                batch.append(raw)
                if len(batch) >= _BATCH:
                    writer.write_batch(_record_batch(pa, schema, batch))
                    count += len(batch)
                    batch = []
            if batch or count == 0:
                writer.write_batch(_record_batch(pa, schema, batch))
                count += len(batch)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return count


def _record_batch(pa: Any, schema: Any, batch: list[RawEvent]) -> Any:
    columns: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
    for raw in batch:
        for name in _COLUMNS[:10]:
            columns[name].append(getattr(raw, name))
        columns["payload"].append(_text(raw.payload, raw.seq, "payload"))
        columns["meta"].append(_text(raw.meta, raw.seq, "meta"))
    arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def read_events(path: str | os.PathLike[str]) -> Iterator[RawEvent]:
    """The events of an export written by :func:`write_events`, in file order.

    Raises :class:`NotFound` for a missing file and :class:`InvalidInput` for
    anything that is not such an export."""
    pa = _pyarrow()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise NotFound(f"no file {path}", path=path)
    try:
        source = pa.parquet.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InvalidInput(f"{path} is not a Parquet file: {exc}") from None
    metadata = source.schema_arrow.metadata or {}
    if metadata.get(b"engramdb.format") != FORMAT.encode():
        raise InvalidInput(f"{path} is not an engramdb event export ({FORMAT})")
    missing = set(_COLUMNS) - set(source.schema_arrow.names)
    if missing:
        raise InvalidInput(f"{path} lacks columns {sorted(missing)}")
    try:
        for batch in source.iter_batches(batch_size=_BATCH, columns=list(_COLUMNS)):
            yield from _rows(pa, batch)
    except pa.ArrowException as exc:
        raise InvalidInput(f"{path} cannot be read: {exc}") from None


def _rows(pa: Any, batch: Any) -> Iterator[RawEvent]:
    cols = {}
    for name in _COLUMNS:
        col = batch.column(name)
        if name in _TIME:
            col = col.cast(pa.int64())
        cols[name] = col.to_pylist()
    for i in range(batch.num_rows):
        row = {name: cols[name][i] for name in _COLUMNS}
        for name in ("payload", "meta"):
            if not isinstance(row[name], str):
                raise InvalidInput(f"row {i}: {name} must be a JSON string")
            row[name] = row[name].encode("utf-8")
        yield RawEvent(**row)
