"""Which optional extra brings which package, and the error that says so.

engramdb's core install is the library, the default embedder, recall and the
CLI. Servers, PostgreSQL, Parquet and the framework integrations are extras of
the ``engram-eventdb`` distribution (the import name stays ``engramdb``).
"""

from __future__ import annotations

import importlib.util

from .errors import MissingDependency

__all__ = ["DISTRIBUTION", "EXTRA_OF", "missing_extra", "require_extra"]

#: The name to ``pip install``; ``engramdb`` itself is too close to an existing one.
DISTRIBUTION = "engram-eventdb"

#: top-level module -> the extra that installs it
EXTRA_OF = {
    "fastapi": "server",
    "starlette": "server",
    "uvicorn": "server",
    "mcp": "mcp",
    "mcp_types": "mcp",
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
    "pyarrow": "parquet",
    "langgraph": "langgraph",
    "agents": "openai-agents",
}


def _error(extra: str, module: str, purpose: str) -> MissingDependency:
    return MissingDependency(
        f"{purpose} needs the '{extra}' extra ({module} is not installed): "
        f"pip install '{DISTRIBUTION}[{extra}]'",
        extra=extra,
        module=module,
    )


def missing_extra(exc: ModuleNotFoundError, purpose: str = "this command") -> MissingDependency:
    """The :class:`MissingDependency` for an import that failed, or ``exc`` is re-raised.

    Only modules that an extra provides are translated; any other missing module
    is a real bug and keeps its traceback.
    """
    top = (exc.name or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        raise exc
    return _error(extra, top, purpose)


def require_extra(extra: str, purpose: str) -> None:
    """Raise :class:`MissingDependency` unless every module of ``extra`` is importable."""
    for module, owner in EXTRA_OF.items():
        if owner == extra and importlib.util.find_spec(module) is None:
            raise _error(extra, module, purpose)
