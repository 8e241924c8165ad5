"""Event types, their schema versions, upcasters, and the payload codec.

Every event type is registered with a payload struct and a schema version.
Payloads are stored as JSON together with the schema version they were written
with. Reading an older version runs the registered upcasters in order
(``v1 -> v2 -> ... -> current``) on the raw dict before it is typed, so a store
written by an older release opens with no migration::

    registry.register("node.created", NodeCreatedV3, schema=3)
    registry.upcaster("node.created", 1, lambda p: {**p, "kind": "memory"})
    registry.upcaster("node.created", 2, lambda p: rename(p, "body", "text"))
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..errors import CorruptStore, InvalidPayload, PayloadTooLarge, UnknownEventType
from .model import INT64_MAX, INT64_MIN

__all__ = ["EventType", "Registry", "Upcaster", "DEFAULT_MAX_PAYLOAD", "check_storable"]

#: Largest encoded payload accepted by default (bytes).
DEFAULT_MAX_PAYLOAD = 1 << 20

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_encoder = msgspec.json.Encoder()
_dict_decoder = msgspec.json.Decoder(dict[str, Any])


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    payload: type[msgspec.Struct]
    schema: int = 1
    decoder: msgspec.json.Decoder[Any] = field(repr=False, compare=False, default=None)  # type: ignore[assignment]


class Registry:
    """Known event types. Copy it with :meth:`copy` to add types per store."""

    def __init__(self, *, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self._types: dict[str, EventType] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self.max_payload = max_payload

    def register(self, name: str, payload: type[msgspec.Struct], *, schema: int = 1) -> EventType:
        if schema < 1:
            raise ValueError("schema versions start at 1")
        et = EventType(name, payload, schema, msgspec.json.Decoder(payload))
        self._types[name] = et
        return et

    def upcaster(self, name: str, from_schema: int, fn: Upcaster) -> None:
        """Register ``fn`` to turn a ``from_schema`` payload of ``name`` into
        ``from_schema + 1``."""
        self._upcasters[(name, from_schema)] = fn

    def copy(self) -> Registry:
        other = Registry(max_payload=self.max_payload)
        other._types = dict(self._types)
        other._upcasters = dict(self._upcasters)
        return other

    def get(self, name: str) -> EventType:
        try:
            return self._types[name]
        except KeyError:
            raise UnknownEventType(f"unknown event type {name!r}", type=str(name)[:100]) from None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def names(self) -> list[str]:
        return sorted(self._types)

    # -- writing ---------------------------------------------------------------

    def coerce(self, name: str, payload: Any) -> tuple[Any, bytes, int]:
        """Validate ``payload`` for ``name``; return (typed payload, encoded bytes, schema).

        The payload returned is exactly what a replay decodes from the bytes (so
        projections fed at append time and by a replay agree): it is re-read
        from its encoding, which also type-checks a struct built by hand (msgspec
        does not check a constructor's arguments) and turns a tuple into a list,
        a datetime into its ISO string. Values JSON or the snapshots cannot hold
        (see :func:`check_storable`) are refused before anything is written.
        """
        et = self.get(name)
        if not isinstance(payload, et.payload):
            try:
                payload = msgspec.convert(payload, et.payload, strict=True)
            except (msgspec.ValidationError, TypeError) as exc:
                raise InvalidPayload(f"bad payload for {name}: {exc}", type=name) from None
        # Every failure below first runs the full check, so its message wins.
        try:
            blob = _encoder.encode(payload)
        except (TypeError, ValueError, OverflowError) as exc:
            check_storable(payload, name)
            raise InvalidPayload(f"payload for {name} cannot be stored: {exc}", type=name) from None
        if len(blob) > self.max_payload:
            check_storable(payload, name)
            raise PayloadTooLarge(
                f"payload of {len(blob)} bytes exceeds the {self.max_payload}-byte limit",
                size=len(blob),
                limit=self.max_payload,
            )
        try:
            decoded = et.decoder.decode(blob)
        except msgspec.ValidationError as exc:
            check_storable(payload, name)
            raise InvalidPayload(f"bad payload for {name}: {exc}", type=name) from None
        # Fast path (no walk in Python): a payload equal to its own decoding holds
        # no NaN/infinity (encoded as null; NaN is not even equal to itself) and
        # no non-string key (encoded as a string), and an integer beyond 64 bits
        # needs 19 digits in a row. Anything else gets the full check.
        if decoded != payload or _long_digit_run(blob):
            check_storable(payload, name)
        return decoded, blob, et.schema

    # -- reading ---------------------------------------------------------------

    def decode(self, name: str, schema: int, blob: bytes | str) -> Any:
        """Typed payload from stored bytes, upcasting older schema versions."""
        et = self._types.get(name)
        if et is None:
            raise CorruptStore(f"the log holds an event of unknown type {name!r}", type=name)
        if schema == et.schema:
            return et.decoder.decode(blob)
        if schema > et.schema:
            raise CorruptStore(
                f"{name} schema {schema} is newer than this engramdb understands ({et.schema})",
                type=name,
            )
        raw = _dict_decoder.decode(blob)
        for version in range(schema, et.schema):
            fn = self._upcasters.get((name, version))
            if fn is None:
                raise CorruptStore(f"no upcaster for {name} from schema {version}", type=name)
            raw = fn(raw)
        try:
            return msgspec.convert(raw, et.payload)
        except msgspec.ValidationError as exc:
            raise CorruptStore(f"upcast {name} payload does not fit: {exc}", type=name) from None


#: Every digit as "0", anything else as " ": a blob with no run of 19 zeros then
#: holds no integer beyond int64 (2**63 = 9223372036854775808 has 19 digits).
#: (``bytes.translate`` and ``in`` are several times faster than a regex here.)
_DIGITS_AS_ZERO = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_RUN = b"0" * 19


def _long_digit_run(blob: bytes) -> bool:
    return _RUN in blob.translate(_DIGITS_AS_ZERO)


_PLAIN = frozenset({str, bool, bytes, type(None), type(msgspec.UNSET)})  # always storable


def check_storable(payload: Any, name: str = "payload") -> None:
    """Raise :class:`InvalidPayload` for a value the log cannot hold losslessly:
    an integer beyond 64 bits (SQLite and the snapshots store int64), a NaN or
    infinite float (JSON has neither; it would come back as null), or a mapping
    key that is not a string (JSON would turn it into one)."""
    stack = [payload]
    pop, push = stack.pop, stack.extend
    while stack:
        item = pop()
        kind = type(item)
        if kind in _PLAIN:
            continue
        if kind is int:
            if not INT64_MIN <= item <= INT64_MAX:
                raise InvalidPayload(f"{name}: integer {str(item)[:40]} does not fit in 64 bits",
                                     type=name)
        elif kind is float:
            if not math.isfinite(item):
                raise InvalidPayload(f"{name}: {item} is not a storable number (not finite)",
                                     type=name)
        elif kind is dict:
            for key in item:
                if not isinstance(key, str):
                    raise InvalidPayload(f"{name}: mapping keys must be strings", type=name)
            push(item.values())
        elif kind is list or kind is tuple:
            push(item)
        elif isinstance(item, msgspec.Struct):
            push(msgspec.structs.astuple(item))
        elif isinstance(item, (bool, int, float, dict, list, tuple)):  # subclasses (IntEnum ...)
            push([_base(item)])


def _base(item: Any) -> Any:
    """A subclass instance as its builtin base type, to check like one."""
    for kind in (bool, int, float, dict, list, tuple):
        if isinstance(item, kind):
            return kind(item)
    return item  # pragma: no cover


def encode_meta(meta: Any) -> bytes:
    return _encoder.encode(meta)
