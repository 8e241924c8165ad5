"""An asyncio facade: every :class:`~engramdb.Memory` method, awaitable, off the event loop.

Embedding a text and writing to disk block for milliseconds to seconds; an async
server or agent framework must not stall its event loop on them. ``AsyncMemory``
runs each call on a small thread pool of its own and awaits the result, so the
loop keeps serving other tasks meanwhile::

    async with await engramdb.aopen("agent.engram") as mem:
        node = await mem.remember("Maya lives in Lisbon", name="Maya")
        hits = await mem.recall("where does Maya live?", k=3)
        past = await mem.as_of(node.seq)      # an AsyncView: its reads are awaitable too
        text = (await past.get(node.id)).text

Any method of the wrapped object works (``remember``, ``recall``, ``update``,
``forget``, ``list``, ``history``, ``index`` ...). A result that is
itself a store reader (``as_of``, ``namespaced``) comes back wrapped, sharing the
same pool. It wraps a :class:`~engramdb.client.RemoteMemory` just as well.
Exceptions are the library's, raised from the ``await``.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .memory import Memory
from .view import Reader

__all__ = ["AsyncMemory", "AsyncView", "aopen"]

# Plain attributes, read without a thread (cheap, never touch disk).
_PLAIN = frozenset({"namespace", "read_only", "path", "embedder"})


class _Async:
    """Wraps ``target`` so that each method call runs on ``pool`` and is awaited."""

    def __init__(self, target: Any, pool: ThreadPoolExecutor) -> None:
        self._target = target
        self._pool = pool

    @property
    def wrapped(self) -> Any:
        """The synchronous object underneath (for code that runs in a thread anyway)."""
        return self._target

    async def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        return self._wrap(result)

    def _wrap(self, result: Any) -> Any:
        if isinstance(result, Memory) or _is_remote(result):
            return AsyncMemory(result, pool=self._pool, owner=False)
        if isinstance(result, Reader):
            return AsyncView(result, self._pool)
        return result

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        attr = getattr(type(self._target), name, None)
        if isinstance(attr, property) or name in _PLAIN:
            return getattr(self._target, name)  # a property may read state: still cheap
        value = getattr(self._target, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def call(*args: Any, **kwargs: Any) -> Awaitable[Any]:
            return self._run(value, *args, **kwargs)

        return call


def _is_remote(obj: Any) -> bool:
    from .client import RemoteMemory

    return isinstance(obj, RemoteMemory)


class AsyncView(_Async):
    """A read-only view (``as_of``) whose reads are awaitable."""

    @property
    def seq(self) -> int:
        return int(self._target.seq)


class AsyncMemory(_Async):
    """:class:`~engramdb.Memory` (or a remote one) with awaitable methods.

    ``threads`` sizes the pool (default: 4, or the CPU count if smaller); the pool
    is this object's own, so a slow embedding never waits behind unrelated work in
    the loop's default executor. ``await mem.aclose()`` (or ``async with``) closes
    the store in a thread, then the pool.
    """

    def __init__(self, memory: Any, *, threads: int | None = None,
                 pool: ThreadPoolExecutor | None = None, owner: bool = True) -> None:
        if pool is None:
            workers = threads or min(4, os.cpu_count() or 1)
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engramdb-aio")
        super().__init__(memory, pool)
        self._owner = owner

    @property
    def seq(self) -> int:
        """The head seq (an in-memory counter for a local store)."""
        return int(self._target.seq)

    async def aclose(self) -> None:
        """Close the store off the loop; the object that opened it also stops its pool."""
        if not self._owner:
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._pool, self._target.close)
        finally:
            self._pool.shutdown(wait=False)

    async def __aenter__(self) -> AsyncMemory:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncMemory({self._target!r})"


async def aopen(path: str | os.PathLike[str] = ":memory:", *, threads: int | None = None,
                **options: Any) -> AsyncMemory:
    """:meth:`Memory.open` in a thread (opening replays the log), as an :class:`AsyncMemory`."""
    workers = threads or min(4, os.cpu_count() or 1)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engramdb-aio")
    loop = asyncio.get_running_loop()
    try:
        memory = await loop.run_in_executor(pool, functools.partial(Memory.open, path, **options))
    except BaseException:
        pool.shutdown(wait=False)
        raise
    return AsyncMemory(memory, pool=pool)
