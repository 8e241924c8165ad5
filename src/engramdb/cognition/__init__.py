"""Agent cognition: salience, supersession, outcomes, reflection queries, contexts, tiers, prefetch.

Sits between :mod:`engramdb.view` and the facade: it reads projections and
views, and the facade (:class:`engramdb.Memory`) calls into it.
"""

from .facts import SUPERSEDES, FactIndex, content_key, slot_of
from .outcomes import Outcome, Outcomes, outcome_stream
from .query import CAUSAL_BACKWARD, CAUSAL_FORWARD, Plan, PlanStep, Query, QueryResult, QuerySources
from .salience import (
    CONTRADICTS,
    AccessBuffer,
    AccessStats,
    SalienceExplanation,
    SalienceSettings,
    explain,
)
from .supersession import Remembered, plan_remember, remembered, superseded_at

__all__ = [
    "SUPERSEDES",
    "CONTRADICTS",
    "CAUSAL_FORWARD",
    "CAUSAL_BACKWARD",
    "FactIndex",
    "Outcome",
    "Outcomes",
    "AccessBuffer",
    "AccessStats",
    "SalienceExplanation",
    "SalienceSettings",
    "Plan",
    "PlanStep",
    "Query",
    "QueryResult",
    "QuerySources",
    "content_key",
    "slot_of",
    "outcome_stream",
    "explain",
    "cognition_projections",
    "Remembered",
    "plan_remember",
    "remembered",
    "superseded_at",
]


def cognition_projections() -> list[FactIndex | Outcomes | AccessStats]:
    """The projections the facade's cognition features read (registered on open)."""
    return [FactIndex(), Outcomes(), AccessStats()]
