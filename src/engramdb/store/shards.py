"""Namespace shards: which namespaces one process builds projections for.

A deployment with many tenants splits them across servers that all tail the
same log. Each server keeps projections (memory, graph, vectors, full text) for
its own namespaces only, so its memory and replay time scale with its share,
not with the whole store. A :class:`Shard` says which share:

* an explicit list (``--namespaces a,b``), for a router that pins tenants, or
* a stable hash part (``--shard 1/4``): namespace ``ns`` belongs to part
  ``1 + H(ns) mod 4`` where ``H`` is the first 8 bytes of SHA-256 of the name,
  big-endian. A router computes the same function (:func:`shard_of`), so no
  table of who-serves-what needs to be kept in step.

Both together mean "listed AND in the part". Events of another namespace are
skipped by the projections (the seq still advances: reads stay at one seq), and
a request for another namespace is refused with
:class:`~engramdb.errors.NamespaceNotServed` (``namespace_not_served``, HTTP 421).
The one store-wide event, a switch of the embedding model, is applied
everywhere. Snapshots of a shard live in a directory of their own
(:attr:`Shard.key`), so a server restarted with another share never restores
projections built for a different one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import InvalidInput, NamespaceNotServed
from ..events import Event, check_namespace
from ..events.types import VECTORS_ACTIVATED

__all__ = ["Shard", "shard_of", "STORE_WIDE_TYPES"]

#: event types every shard applies whatever their namespace
STORE_WIDE_TYPES = frozenset({VECTORS_ACTIVATED})


def shard_of(namespace: str, parts: int) -> int:
    """The part (1..``parts``) that ``namespace`` belongs to: stable across
    processes, machines and releases (SHA-256, not Python's salted ``hash``)."""
    digest = hashlib.sha256(namespace.encode("utf-8")).digest()
    return 1 + int.from_bytes(digest[:8], "big") % parts


@dataclass(frozen=True, slots=True)
class Shard:
    """The namespaces a process serves: ``namespaces`` (None: any) and the hash
    part ``part`` of ``parts`` (``parts == 1``: every namespace)."""

    namespaces: frozenset[str] | None = None
    part: int = 1
    parts: int = 1

    @classmethod
    def parse(cls, namespaces: Iterable[str] | str | None = None,
              shard: str | None = None) -> Shard | None:
        """``namespaces`` ("a,b" or a list) and ``shard`` ("K/N"); None if neither."""
        names: frozenset[str] | None = None
        if namespaces is not None:
            items = namespaces.split(",") if isinstance(namespaces, str) else list(namespaces)
            names = frozenset(check_namespace(n.strip()) for n in items if n.strip())
            if not names:
                raise InvalidInput("namespaces: give at least one namespace")
        part, parts = 1, 1
        if shard is not None:
            part, parts = _parse_part(shard)
        if names is None and parts == 1:
            return None
        return cls(names, part, parts)

    def serves(self, namespace: str) -> bool:
        if self.namespaces is not None and namespace not in self.namespaces:
            return False
        return self.parts == 1 or shard_of(namespace, self.parts) == self.part

    def accepts(self, event: Event) -> bool:
        """Whether this shard's projections apply ``event``."""
        return event.type in STORE_WIDE_TYPES or self.serves(event.namespace)

    def check(self, namespace: str) -> None:
        if not self.serves(namespace):
            raise NamespaceNotServed(
                f"namespace {namespace[:80]!r} is not served here (this server serves"
                f" {self.describe()}): send it to the server of its shard",
                namespace=namespace, shard=self.describe())

    def describe(self) -> str:
        """For messages and /stats: ``namespaces a, b`` / ``shard 1/4`` / both."""
        said = []
        if self.namespaces is not None:
            said.append("namespaces " + ", ".join(sorted(self.namespaces)))
        if self.parts > 1:
            said.append(f"shard {self.part}/{self.parts}")
        return " and ".join(said)

    @property
    def key(self) -> str:
        """A file-name-safe name of this share (its snapshots' directory)."""
        out = []
        if self.namespaces is not None:
            joined = "\n".join(sorted(self.namespaces)).encode("utf-8")
            out.append("ns-" + hashlib.sha256(joined).hexdigest()[:16])
        if self.parts > 1:
            out.append(f"part-{self.part}of{self.parts}")
        return "-".join(out)


def _parse_part(text: str) -> tuple[int, int]:
    head, sep, tail = text.partition("/")
    if sep and head.strip().isdigit() and tail.strip().isdigit():
        part, parts = int(head), int(tail)
        if 1 <= part <= parts <= 4096:
            return part, parts
    raise InvalidInput(f"shard must be K/N with 1 <= K <= N (e.g. 1/4), not {text!r}")
