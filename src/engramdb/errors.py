"""The engramdb exception tree.

Every error the library raises on purpose derives from :class:`EngramError` and
carries a stable ``code`` (a short snake_case string that never changes between
releases) and the HTTP ``status`` an adapter should answer with. Each subclass
also inherits the builtin exception it means, so ``except KeyError`` still
catches a missing memory::

    EngramError(Exception)
    ├── InvalidInput(EngramError, ValueError)        code=invalid_input      422
    │   ├── UnknownEventType                          code=unknown_event_type 422
    │   ├── InvalidPayload                            code=invalid_payload    422
    │   ├── PayloadTooLarge                           code=payload_too_large  413
    │   ├── InvalidNamespace                          code=invalid_namespace  422
    │   ├── InvalidQuery                              code=invalid_query      422
    │   └── InvalidStorePath                          code=invalid_store_path 422
    ├── NotFound(EngramError, KeyError)               code=not_found          404
    ├── Conflict(EngramError)                         code=conflict           409
    │   ├── ConcurrencyConflict                       code=version_conflict   409
    │   └── TargetExists(Conflict, FileExistsError)   code=target_exists      409
    │       └── TargetIsStore                         code=target_is_store    409
    ├── ReadOnly(EngramError, PermissionError)        code=read_only          403
    ├── Forbidden(EngramError, PermissionError)       code=forbidden          403
    ├── Unauthorized(EngramError, PermissionError)    code=unauthorized       401
    ├── StoreLocked(EngramError, BlockingIOError)     code=store_locked       423
    ├── StoreClosed(EngramError, RuntimeError)        code=store_closed       503
    ├── StoreUnavailable(EngramError, ConnectionError) code=store_unavailable 503
    ├── StorageError(EngramError)                     code=storage_error      500
    │   └── StorageFull                               code=storage_full       507
    ├── NotYetApplied(EngramError, TimeoutError)      code=seq_not_applied    504
    ├── NamespaceNotServed(EngramError, LookupError)  code=namespace_not_served 421
    ├── LlmError(EngramError)                         code=llm_error          502
    │   ├── LlmUnavailable                            code=llm_unavailable    503
    │   └── LlmBadOutput                              code=llm_bad_output     502
    ├── CorruptStore(EngramError)                     code=corrupt_store      500
    ├── ModelMismatch(EngramError)                    code=model_mismatch     500
    └── MissingDependency(EngramError, ImportError)   code=missing_dependency 500

Adapters map errors to transport codes with :func:`error_info` and nothing else.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "EngramError",
    "InvalidInput",
    "UnknownEventType",
    "InvalidPayload",
    "PayloadTooLarge",
    "InvalidNamespace",
    "InvalidQuery",
    "InvalidStorePath",
    "NotFound",
    "Conflict",
    "ConcurrencyConflict",
    "TargetExists",
    "TargetIsStore",
    "ReadOnly",
    "Forbidden",
    "Unauthorized",
    "StoreLocked",
    "StoreClosed",
    "StoreUnavailable",
    "StorageError",
    "StorageFull",
    "NotYetApplied",
    "NamespaceNotServed",
    "LlmError",
    "LlmUnavailable",
    "LlmBadOutput",
    "CorruptStore",
    "ModelMismatch",
    "MissingDependency",
    "error_info",
]


class EngramError(Exception):
    """Root of every error engramdb raises on purpose."""

    code: str = "engram_error"
    status: int = 500
    exit_code: int = 1

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.message


class InvalidInput(EngramError, ValueError):
    code = "invalid_input"
    status = 422
    exit_code = 2


class UnknownEventType(InvalidInput):
    code = "unknown_event_type"


class InvalidPayload(InvalidInput):
    code = "invalid_payload"


class PayloadTooLarge(InvalidInput):
    code = "payload_too_large"
    status = 413


class InvalidNamespace(InvalidInput):
    code = "invalid_namespace"


class InvalidQuery(InvalidInput):
    code = "invalid_query"


class InvalidStorePath(InvalidInput):
    """No store can live at this path (empty, a directory, not a store file, not
    writable); nothing was created."""

    code = "invalid_store_path"


class NotFound(EngramError, KeyError):
    code = "not_found"
    status = 404
    exit_code = 3


class Conflict(EngramError):
    code = "conflict"
    status = 409
    exit_code = 4


class ConcurrencyConflict(Conflict):
    """An append named an ``expected_version`` that is no longer the stream's."""

    code = "version_conflict"


class TargetExists(Conflict, FileExistsError):
    """A file is already where an export would be written (``overwrite=True`` /
    ``--force`` replaces an earlier export)."""

    code = "target_exists"


class TargetIsStore(TargetExists):
    """An export would replace a store's file: refused, whatever ``overwrite`` says."""

    code = "target_is_store"


class ReadOnly(EngramError, PermissionError):
    code = "read_only"
    status = 403
    exit_code = 5


class Forbidden(EngramError, PermissionError):
    """The caller has no grant for what it asked (e.g. a namespace outside its grants)."""

    code = "forbidden"
    status = 403
    exit_code = 9


class Unauthorized(EngramError, PermissionError):
    """No credentials, or credentials that are invalid, expired or revoked."""

    code = "unauthorized"
    status = 401
    exit_code = 10


class StoreLocked(EngramError, BlockingIOError):
    """Another process holds the store open for writing."""

    code = "store_locked"
    status = 423
    exit_code = 6


class StoreClosed(EngramError, RuntimeError):
    code = "store_closed"
    status = 503
    exit_code = 7


class StoreUnavailable(EngramError, ConnectionError):
    """The storage server (PostgreSQL) cannot be reached or dropped the connection."""

    code = "store_unavailable"
    status = 503
    exit_code = 12


class StorageError(EngramError):
    """The storage engine failed in a way engramdb has no more specific error for
    (the engine's own message is kept in ``message``)."""

    code = "storage_error"
    status = 500
    exit_code = 13


class StorageFull(StorageError):
    """The disk (or the database's size limit) has no room for the write; nothing
    of it was stored. Free space and retry: the store itself is intact."""

    code = "storage_full"
    status = 507


class NotYetApplied(EngramError, TimeoutError):
    """A read asked for ``min_seq`` and this process had not applied it in time;
    ``details`` carry ``min_seq`` and the ``seq`` it is at."""

    code = "seq_not_applied"
    status = 504
    exit_code = 14


class NamespaceNotServed(EngramError, LookupError):
    """This process builds projections only for some namespaces (``--namespaces`` or
    ``--shard``) and the request named another: route it to the server that owns
    it. ``details`` carry the ``namespace`` and the ``shard`` served here."""

    code = "namespace_not_served"
    status = 421  # Misdirected Request: the right server is another one
    exit_code = 15


class LlmError(EngramError):
    """An optional LLM backend failed: an error status or an unusable reply."""

    code = "llm_error"
    status = 502
    exit_code = 11


class LlmUnavailable(LlmError):
    """The LLM server could not be reached (connection refused, timeout)."""

    code = "llm_unavailable"
    status = 503


class LlmBadOutput(LlmError):
    """The model answered, but not in the shape asked for (e.g. malformed JSON)."""

    code = "llm_bad_output"


class CorruptStore(EngramError):
    code = "corrupt_store"
    status = 500
    exit_code = 8


class ModelMismatch(EngramError):
    """A model file (weights or tokenizer) is not the one this release pins by sha256.

    Vectors are only comparable when they come from the exact same files, so a
    swapped or damaged model is refused instead of silently changing recall.
    """

    code = "model_mismatch"
    status = 500
    exit_code = 16


class MissingDependency(EngramError, ImportError):
    """An optional feature's packages are not installed; the message names the extra."""

    code = "missing_dependency"
    status = 500
    exit_code = 17


def error_info(exc: BaseException) -> dict[str, Any]:
    """The one mapping from an exception to what adapters report.

    Returns ``{"code", "message", "status", "exit_code", "details"}``; anything
    that is not an :class:`EngramError` is an internal error (500, exit 1) whose
    message is not leaked.
    """
    if isinstance(exc, EngramError):
        return {
            "code": exc.code,
            "message": exc.message,
            "status": exc.status,
            "exit_code": exc.exit_code,
            "details": exc.details,
        }
    return {
        "code": "internal_error",
        "message": "internal error",
        "status": 500,
        "exit_code": 1,
        "details": {},
    }
