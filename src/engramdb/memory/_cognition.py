"""The facade's agent cognition: counted reads, tiers and consolidation, the
working tier and prefetch, outcomes and salience (see :class:`~engramdb.memory.Memory`)."""

from __future__ import annotations

from datetime import datetime

from ..cognition.outcomes import Outcome
from ..cognition.prefetch import PrefetchSettings, PrefetchStats
from ..cognition.salience import SalienceExplanation
from ..cognition.tiers import ConsolidationReport, TierPolicy, run_consolidation, tier_counts
from ..errors import InvalidInput
from ..events import to_us
from ..projections import Node
from ..view import Reader, check_optional_str
from ._base import FacadeBase


class CognitionOps(FacadeBase):
    """Agent cognition over this namespace (part of :class:`~engramdb.memory.Memory`)."""

    def get(self, node_id: str, *, agent: str | None = None,
            min_seq: int | None = None) -> Node:
        """The memory ``node_id`` (:class:`NotFound` if absent or forgotten). The
        read is noted for salience, in batches (see :meth:`flush_accesses`), and,
        with the working tier on (:meth:`configure_working`), goes through
        ``agent``'s working tier and teaches prefetch. ``min_seq``: first wait
        until this process has applied that seq (see :meth:`wait_for`)."""
        check_optional_str(agent, "agent")
        self._min_seq(min_seq)
        node = Reader.get(self, node_id)
        self._cog.touch([node.id])
        self._prefetch.read(self, node, agent)
        return node

    # -- tiers and prefetch ------------------------------------------------------

    @property
    def tier_policy(self) -> TierPolicy:
        """When consolidation moves memories and recall reaches the archival tier."""
        return self._tiers.policy

    @tier_policy.setter
    def tier_policy(self, policy: TierPolicy) -> None:
        if not isinstance(policy, TierPolicy):
            raise InvalidInput("tier_policy must be a TierPolicy")
        self._tiers.policy = policy

    def tier(self, memory_id: str, *, as_of: datetime | int | str | None = None) -> str:
        """``short_term``, ``long_term`` or ``archival`` (now, or ``as_of`` a seq/time)."""
        reader: Reader = self if as_of is None else self.as_of(as_of)
        return self._tiers.projection.tier(Reader.get(reader, memory_id).id, reader.seq)

    def tier_counts(self) -> dict[str, int]:
        """How many live memories of this namespace each durable tier holds."""
        return tier_counts(self.as_of(self._at()), self._tiers.projection)

    def consolidate(
        self, *, now: datetime | int | str | None = None, policy: TierPolicy | None = None,
        agent: str | None = None,
    ) -> ConsolidationReport:
        """Move this namespace's memories between tiers by salience (at ``now``,
        default the clock): one ``tier.changed`` event per move, with its reason,
        all in one commit. Nothing changed, nothing written."""
        if policy is not None and not isinstance(policy, TierPolicy):
            raise InvalidInput("policy must be a TierPolicy")
        self._meta(agent, None, None)  # checks agent
        at = self._cog.clock() if now is None else to_us(now)
        assert at is not None
        return run_consolidation(self, now=at, policy=policy or self._tiers.policy, agent=agent)

    def configure_working(
        self, *, enabled: bool = True, prefetch: bool = True, top_n: int = 3, size: int = 32,
        neighbours: bool = True,
    ) -> None:
        """Turn the per-agent working tier on (``get(id, agent=...)`` goes through
        it) and, with ``prefetch``, warm the ``top_n`` memories predicted to be read
        next (see :mod:`engramdb.cognition.prefetch`). Shared by this store's facades."""
        self._prefetch.configure(PrefetchSettings(
            enabled=enabled, predict=prefetch, top_n=top_n, working_size=size,
            neighbours=neighbours))

    def working(self, agent: str | None = None) -> list[Node]:
        """``agent``'s working tier in this namespace, most recently used first."""
        return self._prefetch.working(self.namespace, check_optional_str(agent, "agent"))

    def prefetch_stats(self, agent: str | None = None) -> PrefetchStats:
        """Working-tier hits and misses of ``agent`` (None: every agent) in this namespace."""
        check_optional_str(agent, "agent")
        return self._prefetch.stats(self.namespace, agent, all_agents=agent is None)

    def flush_accesses(self) -> None:
        """Log the reads noted so far now, as one ``memory.accessed`` event (this
        also happens every 256 reads, at the first read 30 s or more after the
        oldest waiting one (there is no timer thread), and on close).
        Reads are noted only on stores opened with ``record_reads=True``."""
        self._cog.buffer.flush()

    def record_outcome(
        self, memory_id: str, outcome: str, *, goal: str | None = None,
        score: float | None = None, agent: str | None = None,
    ) -> Outcome:
        """Record what came of acting on a memory (``"success"``, ``"failure"``, ...)."""
        node = Reader.get(self, memory_id)
        draft = self._cog.outcome_draft(node.id, outcome, goal=goal, score=score,
                                        meta=self._meta(agent, None, None))
        event = self._append([draft])[0]
        return self._cog.outcomes.of(node.id, event.seq)[-1]

    def outcomes(self, memory_id: str, *, goal: str | None = None) -> list[Outcome]:
        """Every outcome recorded for ``memory_id`` (for ``goal`` if given), oldest first."""
        return self._cog.outcomes_of(self, memory_id, check_optional_str(goal, "goal"))

    def salience(self, memory_id: str) -> float:
        """How much a memory matters now (see :meth:`explain_salience`)."""
        return self._cog.explain(self, memory_id).score

    def explain_salience(self, memory_id: str) -> SalienceExplanation:
        """Each component of a memory's salience and the formula combining them."""
        return self._cog.explain(self, memory_id)
