"""The facade's listing, counting and erasing by scope: :meth:`list` with cursor
pages, :meth:`stats` per tier, domain and user, :meth:`forget_where` and
:meth:`drop_namespace` (see :class:`~engramdb.memory.Memory`).

Listing walks the namespace's nodes in creation order (newest first by
default) at one seq: a page's ``cursor`` names that seq and the position
reached, so every later page reads the same state (nothing written meanwhile
shifts, repeats or skips an item) and costs only the items it passes.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from ..cognition.supersession import reopen_drafts
from ..errors import InvalidInput, InvalidQuery
from ..events import NODE_FORGOTTEN, Draft, NodeForgotten, to_us
from ..events.types import NAMESPACE_DROPPED, NamespaceDropped
from ..projections import Node, is_superseded
from ..recall.engine import compile_filters
from ..view import Reader, View, check_bool, check_mapping, check_optional_str, resolve_seq
from ._base import FacadeBase
from ._recall import scope_filters

__all__ = ["Page", "ListOps"]

_MAX_LIMIT = 1000
_ORDERS = ("newest", "oldest")


class Page(builtins.list[Node]):
    """One page of :meth:`Memory.list`: the nodes (a plain list), ``cursor`` for
    the next page (None on the last), and the ``seq`` every page reads at."""

    __slots__ = ("cursor", "seq")

    def __init__(self, nodes: Iterable[Node], *, cursor: str | None, seq: int) -> None:
        super().__init__(nodes)
        self.cursor = cursor
        self.seq = seq


class _Cursor(msgspec.Struct, array_like=True):
    seq: int
    pos: int  # the next position to look at, in creation order
    fingerprint: str  # the namespace, order and filters it was made for


def _fingerprint(namespace: str, order: str, spec: Any) -> str:
    blob = msgspec.json.encode([namespace, order, spec], enc_hook=str, order="sorted")
    return hashlib.blake2b(blob, digest_size=8).hexdigest()


def _encode_cursor(cursor: _Cursor) -> str:
    return base64.urlsafe_b64encode(msgspec.msgpack.encode(cursor)).decode().rstrip("=")


def _decode_cursor(text: Any) -> _Cursor:
    if not isinstance(text, str) or len(text) > 200:
        raise InvalidQuery("cursor must be a string from a previous page")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return msgspec.msgpack.decode(raw, type=_Cursor)
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
        raise InvalidQuery("not a cursor from a previous page") from None


def _positions(order: str, start: int, size: int) -> Iterator[int]:
    if order == "newest":
        return iter(range(min(start, size - 1), -1, -1))
    return iter(range(start, size))


class ListOps(FacadeBase):
    """Listing, counting and erasing by scope (part of :class:`~engramdb.memory.Memory`)."""

    def _matcher(
        self, *, filters: Mapping[str, Any] | None, domains: Sequence[str] | str | None,
        user_id: Any, agent_id: Any, run_id: Any, created_after: Any, created_before: Any,
        valid_at: Any = None,
    ) -> tuple[Callable[[Node], bool] | None, Any]:
        spec = scope_filters(check_mapping(filters, "filters", error=InvalidQuery),
                             user_id=user_id, agent_id=agent_id, run_id=run_id)
        accept = compile_filters(domains=domains, filters=spec, valid_at=to_us(valid_at),
                                 created_after=created_after, created_before=created_before)
        return accept, [spec, domains, created_after, created_before, valid_at]

    def list(
        self,
        *,
        filters: Mapping[str, Any] | None = None,
        domains: Sequence[str] | str | None = None,
        user_id: str | Sequence[str] | None = None,
        agent_id: str | Sequence[str] | None = None,
        run_id: str | Sequence[str] | None = None,
        created_after: datetime | int | str | None = None,
        created_before: datetime | int | str | None = None,
        valid_at: datetime | int | str | None = None,
        current: bool = False,
        limit: int = 50,
        cursor: str | None = None,
        order: str = "newest",
        as_of: datetime | int | str | None = None,
        min_seq: int | None = None,
    ) -> Page:
        """The memories (and entities) of this namespace matching the filters, a
        page of at most ``limit`` at a time, ``newest`` (created) first or
        ``oldest``. Filters are :meth:`recall`'s (no domain needed). ``current``
        leaves out memories a live memory supersedes. Pass the page's ``cursor``
        to get the next one: every page reads at the first page's seq (or
        ``as_of``), so paging is stable while writes go on. ``min_seq``: first
        wait until this process has applied that seq (see :meth:`wait_for`)."""
        self._min_seq(min_seq)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= _MAX_LIMIT:
            raise InvalidQuery(f"limit must be an integer from 1 to {_MAX_LIMIT}")
        if order not in _ORDERS:
            raise InvalidQuery("order must be 'newest' or 'oldest'")
        check_bool(current, "current")
        accept, spec = self._matcher(
            filters=filters, domains=domains, user_id=user_id, agent_id=agent_id, run_id=run_id,
            created_after=created_after, created_before=created_before, valid_at=valid_at)
        fingerprint = _fingerprint(self.namespace, order, [*spec, current])
        ids = self._nodes.created_order(self.namespace)
        size = len(ids)  # the list only grows: later entries are newer than any seq read
        if cursor is not None:
            if as_of is not None:
                raise InvalidQuery("a cursor already names the seq it reads at: drop as_of")
            found = _decode_cursor(cursor)
            if found.fingerprint != fingerprint:
                raise InvalidQuery("this cursor was made for other filters, order or namespace")
            at, start = min(found.seq, self._at()), found.pos
        else:
            at = self._at() if as_of is None else resolve_seq(self._store, as_of)
            start = size - 1 if order == "newest" else 0
        nodes, get = [], self._nodes.get
        next_pos: int | None = None
        for pos in _positions(order, start, size):
            node = get(ids[pos], at)
            if node is None or node.forgotten or node.namespace != self.namespace:
                continue
            if accept is not None and not accept(node):
                continue
            if current and is_superseded(self._nodes, self._adjacency, node.id, at):
                continue
            if len(nodes) == limit:
                next_pos = pos
                break
            nodes.append(node)
        more = None if next_pos is None else _encode_cursor(_Cursor(at, next_pos, fingerprint))
        return Page(nodes, cursor=more, seq=at)

    def count(self, **filters: Any) -> int:
        """How many memories :meth:`list` with these filters would return in all."""
        total, cursor = 0, None
        while True:
            page = self.list(**filters, limit=_MAX_LIMIT, cursor=cursor)
            total += len(page)
            if page.cursor is None:
                return total
            cursor = page.cursor

    def stats(self) -> dict[str, Any]:
        """:meth:`Reader.stats` (memories per kind, domain and user) plus per tier."""
        out = Reader.stats(self)
        at = self._at()
        tier_of = self._tiers.projection.tier
        tiers: dict[str, int] = {}
        for node_id in self._namespace_ids():
            node = self._nodes.get(node_id, at)
            if node is not None and not node.forgotten and node.namespace == self.namespace:
                tier = tier_of(node_id, at)
                tiers[tier] = tiers.get(tier, 0) + 1
        out["by_tier"] = tiers
        return out

    # -- erasing by scope --------------------------------------------------------

    def forget_where(
        self,
        *,
        filters: Mapping[str, Any] | None = None,
        user_id: str | Sequence[str] | None = None,
        agent_id: str | Sequence[str] | None = None,
        run_id: str | Sequence[str] | None = None,
        domains: Sequence[str] | str | None = None,
        created_after: datetime | int | str | None = None,
        created_before: datetime | int | str | None = None,
        reason: str | None = None,
        agent: str | None = None,
        dry_run: bool = False,
    ) -> builtins.list[str]:
        """Forget, in one commit, every live memory of this namespace matching the
        filters (:meth:`list`'s): e.g. everything of ``user_id="u-42"``, a run,
        an agent or ``filters={"attrs.case": "c-7"}``. Returns the ids forgotten
        (with ``dry_run``, the ids that would be, writing nothing). An empty filter
        is an error, never "everything": use :meth:`drop_namespace` for that.
        Content leaves the disk at the next :meth:`compact`."""
        check_optional_str(reason, "reason")
        check_bool(dry_run, "dry_run")
        accept, _ = self._matcher(
            filters=filters, domains=domains, user_id=user_id, agent_id=agent_id, run_id=run_id,
            created_after=created_after, created_before=created_before)
        if accept is None:
            raise InvalidInput("forget_where needs at least one filter (to erase a whole "
                               "namespace, use drop_namespace)")
        return self._forget_all(accept, reason=reason, agent=agent, dry_run=dry_run)

    def drop_namespace(
        self, namespace: str, *, reason: str | None = None, agent: str | None = None,
        dry_run: bool = False,
    ) -> builtins.list[str]:
        """Forget every memory and entity of this namespace, in one commit, and
        discard its open contexts. ``namespace`` must repeat this facade's
        namespace (a guard against dropping the wrong one). Returns the ids
        forgotten (with ``dry_run``, those that would be). :meth:`compact` then
        erases the content, metadata and vectors from disk."""
        if namespace != self.namespace:
            raise InvalidInput(f"drop_namespace({namespace!r}) on a facade of namespace "
                               f"{self.namespace!r}: name the namespace you mean to drop")
        check_optional_str(reason, "reason")
        check_bool(dry_run, "dry_run")
        if not dry_run:
            for info in self.contexts():  # type: ignore[attr-defined]
                self.context(info.name).discard()  # type: ignore[attr-defined]
        return self._forget_all(None, reason=reason, agent=agent, dry_run=dry_run,
                                drop=True)

    def _forget_all(
        self, accept: Callable[[Node], bool] | None, *, reason: str | None,
        agent: str | None, dry_run: bool, drop: bool = False,
    ) -> builtins.list[str]:
        meta = self._meta(agent, None, None)
        at = self._at()
        ids = []
        for node_id in builtins.list(self._nodes.created_order(self.namespace)):
            node = self._nodes.get(node_id, at)
            if node is None or node.forgotten or node.namespace != self.namespace:
                continue
            if accept is None or accept(node):
                ids.append(node_id)
        if dry_run or not (ids or drop):
            return ids
        gone = set(ids)
        drafts: builtins.list[Draft] = [
            Draft(type=NODE_FORGOTTEN, stream=i, namespace=self.namespace,
                  payload=NodeForgotten(reason=reason), meta=meta)
            for i in ids
        ]
        # memories they superseded that stay are current again: each forget's
        # reopening is planned as if all the others were already forgotten
        view = View(self, at)
        view._nodes = _Gone(self._nodes, gone)  # type: ignore[assignment]
        for i in ids:
            drafts.extend(reopen_drafts(view, i, meta))
        if drop:
            drafts.append(Draft(type=NAMESPACE_DROPPED, stream=f"drop:{self.namespace}",
                                namespace=self.namespace,
                                payload=NamespaceDropped(forgotten=len(ids), reason=reason),
                                meta=meta))
        self._append(drafts)
        return ids


class _Gone:
    """Node state in which ``gone`` are already forgotten (for planning one commit
    that forgets them all)."""

    def __init__(self, nodes: Any, gone: set[str]) -> None:
        self._nodes, self._gone = nodes, gone

    def get(self, node_id: str, at: int) -> Node | None:
        node = self._nodes.get(node_id, at)
        if node is not None and node_id in self._gone and not node.forgotten:
            return msgspec.structs.replace(node, forgotten=True)
        return node

    def __getattr__(self, name: str) -> Any:
        return getattr(self._nodes, name)
