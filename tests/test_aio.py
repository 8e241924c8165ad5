"""The async facade never blocks the event loop on embedding or disk."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import engramdb
from engramdb import AsyncMemory, AsyncView, Memory, NotFound
from engramdb.recall.embed import HashingEmbedder


class GatedEmbedder:
    """Embeds only once the event loop has run a task meanwhile.

    ``embed`` blocks its thread until ``gate`` is set, and only a coroutine on the loop
    sets it. If the facade ran ``embed`` on the loop's own thread, the loop could not
    run that coroutine and ``embed`` would give up waiting (``timed_out``).
    """

    def __init__(self) -> None:
        self.inner = HashingEmbedder(dim=32)
        self.model_id, self.dim = self.inner.model_id, self.inner.dim
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.timed_out = False
        self.threads: set[int] = set()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if texts:
            self.threads.add(threading.get_ident())
            self.entered.set()
            if not self.gate.wait(timeout=30):
                self.timed_out = True
            self.gate.clear()
        return self.inner.embed(texts)


async def _ticker(embedder: GatedEmbedder, ticks: list[int], stop: asyncio.Event) -> None:
    """Runs on the loop: counts ticks and opens the gate once embedding has started."""
    while not stop.is_set():
        ticks.append(1)
        if embedder.entered.is_set():
            embedder.entered.clear()
            embedder.gate.set()
        await asyncio.sleep(0.001)


def test_loop_stays_responsive_while_embedding(tmp_path: Path) -> None:
    embedder = GatedEmbedder()

    async def main() -> tuple[list[int], str, str]:
        ticks: list[int] = []
        stop = asyncio.Event()
        mem = await engramdb.aopen(str(tmp_path / "a.engram"), embedder=embedder)
        async with mem:
            ticker = asyncio.create_task(_ticker(embedder, ticks, stop))
            node = await mem.remember("Maya lives in Lisbon", name="Maya")
            hits = await mem.recall("where does Maya live", k=1)
            stop.set()
            await ticker
            return ticks, node.text, hits[0].text

    ticks, written, found = asyncio.run(main())
    assert not embedder.timed_out  # the loop ran the ticker while embed() was blocked
    assert threading.get_ident() not in embedder.threads  # never on the loop's thread
    assert len(ticks) >= 2 and written == found == "Maya lives in Lisbon"


def test_every_method_is_awaitable_and_views_are_wrapped(tmp_path: Path) -> None:
    async def main() -> None:
        async with await engramdb.aopen(":memory:", embedder=HashingEmbedder(dim=32)) as mem:
            assert isinstance(mem, AsyncMemory)
            maya = await mem.remember("Maya lives in Berlin", name="Maya", domain="people")
            before = mem.seq
            await mem.update(maya.id, text="Maya lives in Lisbon")
            past = await mem.as_of(before)
            assert isinstance(past, AsyncView) and past.seq == before
            assert (await past.get(maya.id)).text == "Maya lives in Berlin"
            assert [e.type for e in await mem.history(maya.id)][0] == "node.created"
            other = await mem.namespaced("b")
            assert isinstance(other, AsyncMemory)
            with pytest.raises(NotFound):
                await other.get(maya.id)  # still sealed per namespace
            await mem.forget(maya.id)
            with pytest.raises(NotFound):  # the library's exceptions, from the await
                await mem.get(maya.id)
            assert "memor" in await mem.index()

    asyncio.run(main())


def test_wraps_an_open_memory_and_closes_it(tmp_path: Path) -> None:
    memory = Memory.open(str(tmp_path / "b.engram"), embedder=None)

    async def main() -> None:
        async with AsyncMemory(memory) as mem:
            await mem.remember("kept", name="k")
        with pytest.raises(engramdb.StoreClosed):
            memory.remember("after close")

    asyncio.run(main())
    with Memory.open(str(tmp_path / "b.engram"), embedder=None) as again:
        assert again.find("k").text == "kept"
