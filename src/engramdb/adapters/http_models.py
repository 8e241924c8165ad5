"""Request and response bodies of the HTTP API (Pydantic, so the OpenAPI schema is real).

A point in the log (``as_of``, ``seq``, an edge's ``start``/``end``) is a seq, an
integer. A point in the world is ISO 8601: every response reports it with its UTC
offset (``2026-03-01T14:30:00.123456+00:00``, the format MCP and ``engram ...
--json`` use too), and every request takes an ISO-8601 string (an offset, or
none for UTC) or, as before, an integer of microseconds since the epoch
(``valid_from``, ``valid_to``, ``valid_at``, ``time``, ``at``, ``now``).
"""

# No ``from __future__ import annotations``: FastAPI and Pydantic read these at runtime.

from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BatchItem",
    "Bound",
    "BridgeOut",
    "ConsolidateRequest",
    "ContextOpenRequest",
    "ContextOut",
    "ContextRecallRequest",
    "CommitOut",
    "ConversationRequest",
    "DomainOut",
    "EdgeOut",
    "EdgeRequest",
    "ErrorBody",
    "EventOut",
    "ForgetOut",
    "HitOut",
    "IndexOut",
    "NeighborOut",
    "NodeOut",
    "OutcomeRequest",
    "Page",
    "PlanOut",
    "ProvenanceOut",
    "QueryOut",
    "QueryRequest",
    "QueryStep",
    "RecallOut",
    "RecallRequest",
    "RememberManyRequest",
    "RememberOut",
    "RememberRequest",
    "StatusOut",
    "TierOut",
    "UpdateRequest",
]

#: Integers the log can store (SQLite INTEGER / msgpack int64).
Bound = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
Seq = Annotated[int, Field(ge=0, le=2**63 - 1)]
Time = Annotated[
    Bound | Annotated[str, Field(max_length=64)],
    Field(description="ISO 8601 (e.g. 2026-03-01T14:30:00+01:00; no offset: UTC), or"
                      " microseconds since the epoch.",
          examples=["2026-03-01T14:30:00+00:00"]),
]
#: A time in a response: ISO 8601 with the UTC offset.
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"},
                                 examples=["2026-03-01T14:30:00.123456+00:00"])]
Short = Annotated[str, Field(max_length=256)]
Text = Annotated[str, Field(max_length=1_000_000)]
Scalar = str | Bound | float | bool | None
#: A filter value: equality, a list ("one of"), or operators
#: (``eq``, ``ne``, ``in``, ``not_in``, ``gt``, ``gte``, ``lt``, ``lte``).
FilterValue = Scalar | list[Scalar] | dict[str, Scalar | list[Scalar]]
Filters = Annotated[dict[str, FilterValue] | None, Field(
    None, description="`kind`, `domain`, `name`, `user_id`, `agent_id`, `run_id`, `created_at`,"
    " `updated_at`, `valid_from`, `valid_to` or `attrs.<key>`: a value, a list of values, or"
    ' operators such as {"gte": 18, "lt": 65} (numbers or ISO-8601 times).')]
#: ``user_id`` / ``agent_id`` / ``run_id`` as filters: one value or a list.
ScopeFilter = Short | list[Short] | None


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Provenance(_In):
    source: Short | None = Field(None, description="Where it came from.")
    agent: Short | None = Field(None, description="Who is writing.")
    session: Short | None = Field(None, description="The session it belongs to (= run_id).")
    user_id: Short | None = Field(None, description="Whom the memory is about or for.")
    agent_id: Short | None = Field(None, description="Which agent writes (= agent).")
    run_id: Short | None = Field(None, description="The run or session (= session).")


class BatchItem(_Provenance):
    text: Text
    domain: Short | None = None
    kind: Short = "memory"
    name: Short | None = None
    attrs: dict[str, Any] = Field(default_factory=dict)
    valid_from: Time | None = None
    valid_to: Time | None = None
    id: Short | None = Field(None, description="Choose the id (default: a new one).")
    supersedes: Short | list[Short] | None = Field(
        None, description="Ids of memories this one replaces (they stop being valid now).")


class RememberRequest(BatchItem):
    """One memory. Unlike a batch item, an exact duplicate of a current memory writes
    nothing, and a memory with ``attrs`` ``subject`` + ``predicate`` supersedes the
    current one of that slot."""


class OutcomeRequest(_In):
    outcome: Annotated[str, Field(min_length=1, max_length=128,
                                  description='e.g. "success", "failure"')]
    goal: Short | None = None
    score: float | None = Field(None, allow_inf_nan=False)
    agent: Short | None = None


class RememberManyRequest(_In):
    items: list[BatchItem] = Field(min_length=1, max_length=1000)


class UpdateRequest(_Provenance):
    """Only the fields present change; ``null`` clears ``name`` or ``domain``."""

    text: Text = None  # type: ignore[assignment]  # absent: unchanged; null is invalid
    name: Short | None = None
    domain: Short | None = None
    kind: Short = None  # type: ignore[assignment]
    attrs: dict[str, Any] = Field(default_factory=dict)
    unset: list[Short] = Field(default_factory=list, max_length=1000)
    valid_from: Time | None = None
    valid_to: Time | None = None
    expected_version: Annotated[int, Field(ge=1, le=2**62)] | None = None


class EdgeRequest(_Provenance):
    src: Short
    rel: Annotated[str, Field(min_length=1, max_length=128)]
    dst: Short
    attrs: dict[str, Any] = Field(default_factory=dict)


class Turn(_In):
    text: Text
    speaker: Short | None = None
    id: Short | None = None
    time: Time | None = None
    attrs: dict[str, Any] = Field(default_factory=dict)


class ConversationRequest(_In):
    session: Short | None = Field(None, description="The session (or give run_id).")
    run_id: Short | None = None
    user_id: Short | None = None
    agent_id: Short | None = None
    turns: list[Turn] = Field(min_length=1, max_length=5000)
    at: Time | None = None
    domain: Short | None = "conversation"
    source: Short | None = None
    agent: Short | None = None


class RecallRequest(_In):
    query: Annotated[str, Field(min_length=1, max_length=10_000)]
    k: Annotated[int, Field(ge=1, le=1000)] = 10
    domains: list[Short] | None = Field(None, max_length=100)
    filters: Filters = None
    user_id: ScopeFilter = None
    agent_id: ScopeFilter = Field(None, description="Only memories written by this agent"
                                  " (`agent` is who is asking).")
    run_id: ScopeFilter = None
    created_after: Time | None = Field(None, description="Created at or after this time.")
    created_before: Time | None = Field(None, description="Created before this time.")
    min_score: float | None = Field(None, allow_inf_nan=False,
                                    description="Drop hits scoring below this.")
    as_of: Seq | Annotated[str, Field(max_length=64)] | None = Field(
        None, description="Answer from the store as it was then: a seq or an ISO time."
    )
    valid_at: Time | None = Field(None, description="Only memories true in the world then.")
    signals: list[Literal["vector", "text", "graph", "recency"]] | None = None
    with_index: bool = Field(False, description="Also return the compressed index.")
    agent: Short | None = Field(None, description="Who is asking: with the working tier on,"
                                " the top hits feed this agent's working tier and prefetch.")
    tiers: Literal["auto", "warm", "all"] = Field(
        "auto", description="auto: the archival tier only when too few warm memories match;"
        " warm: never; all: always.")


class ContextRecallRequest(_In):
    """Recall in a context: shared memory as of the context's ``read_seq`` plus its
    staged writes (no ``as_of``: a context reads at one seq)."""

    query: Annotated[str, Field(min_length=1, max_length=10_000)]
    k: Annotated[int, Field(ge=1, le=1000)] = 10
    domains: list[Short] | None = Field(None, max_length=100)
    filters: dict[str, Scalar | list[Scalar]] | None = None
    valid_at: Time | None = None
    signals: list[Literal["vector", "text", "graph", "recency"]] | None = None


class ContextOpenRequest(_In):
    name: Annotated[str, Field(min_length=1, max_length=100)]
    agent: Short | None = Field(None, description="The agent the context belongs to"
                                " (recorded on its events).")


class ConsolidateRequest(_In):
    now: Time | None = Field(None, description="Judge salience as of this time"
                             " (default: the server's clock).")
    agent: Short | None = None


# -- reflection query plans: one object per builder step (see Memory.query) ----------


class _Step(_In):
    pass


class SimilarTo(_Step):
    op: Literal["similar_to"]
    text: Annotated[str, Field(max_length=10_000)]
    min_score: float = Field(0.0, allow_inf_nan=False, description="Cosine floor in [0, 1].")


class WithOutcome(_Step):
    op: Literal["with_outcome"]
    outcome: Short


class ContrastingWith(_Step):
    op: Literal["contrasting_with"]
    id: Short
    min_score: float = Field(0.5, allow_inf_nan=False)


class Within(_Step):
    op: Literal["within"]
    days: float = Field(0, allow_inf_nan=False)
    hours: float = Field(0, allow_inf_nan=False)


class InDomain(_Step):
    op: Literal["in_domain"]
    domain: Short


class CausedBy(_Step):
    op: Literal["caused_by"]
    id: Short
    depth: Bound = 3


class ForGoal(_Step):
    op: Literal["for_goal"]
    goal: Short


class AsOfStep(_Step):
    op: Literal["as_of"]
    when: Seq | Annotated[str, Field(max_length=64)] = Field(
        description="A seq or an ISO-8601 time.")


class TiersStep(_Step):
    op: Literal["tiers"]
    which: Short = Field(description='"all" (the default) or "warm".')


class LimitStep(_Step):
    op: Literal["limit"]
    n: Bound


QueryStep = Annotated[
    SimilarTo | WithOutcome | ContrastingWith | Within | InDomain | CausedBy | ForGoal
    | AsOfStep | TiersStep | LimitStep,
    Field(discriminator="op"),
]


class QueryRequest(_In):
    """A reflection query: the builder's steps, each at most once (``limit`` defaults
    to 10). Ranges and contradictions are checked by the builder (422 ``invalid_query``)."""

    steps: list[QueryStep] = Field(default_factory=list, max_length=20)


# -- responses -----------------------------------------------------------------


class NodeOut(BaseModel):
    id: str
    namespace: str
    kind: str
    text: str
    name: str | None
    domain: str | None
    attrs: dict[str, Any]
    created_at: Timestamp
    updated_at: Timestamp
    version: int
    seq: int
    valid_from: Timestamp | None = None
    valid_to: Timestamp | None = None
    user_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None


class RememberOut(NodeOut):
    created: bool = Field(True, description="False: an identical live memory existed;"
                          " nothing was written (status 200 instead of 201).")
    superseded: list[str] = Field(default_factory=list)


class EdgeOut(BaseModel):
    namespace: str
    src: str
    rel: str
    dst: str
    attrs: dict[str, Any]
    start: int
    end: int


class NeighborOut(BaseModel):
    edge: EdgeOut
    node: NodeOut


class BridgeOut(BaseModel):
    namespace: str
    src: str
    rel: str
    dst: str
    src_domain: str
    dst_domain: str
    start: int
    end: int


class MetaOut(BaseModel):
    agent: str | None = None
    source: str | None = None
    session: str | None = None
    causation_id: str | None = None
    correlation_id: str | None = None


class EventOut(BaseModel):
    seq: int
    id: str
    namespace: str
    stream: str
    version: int
    type: str
    schema_: int = Field(alias="schema")
    recorded_at: Timestamp
    payload: Any = Field(description="The event's content; a stored vector shows as its"
                         " size, e.g. \"<1536 bytes>\" (the payload names model and dim).")
    meta: MetaOut
    valid_from: Timestamp | None = None
    valid_to: Timestamp | None = None

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class ProvenanceOut(BaseModel):
    node_id: str
    field: str
    value: Any
    event_id: str
    seq: int
    type: str
    recorded_at: Timestamp
    agent: str | None
    source: str | None
    session: str | None


class HitProvenanceOut(BaseModel):
    event_id: str
    seq: int
    recorded_at: Timestamp
    agent: str | None
    source: str | None
    session: str | None


class HitOut(BaseModel):
    id: str
    score: float
    text: str
    node: NodeOut
    signals: dict[str, dict[str, float]]
    provenance: HitProvenanceOut | None = None


class RecallOut(BaseModel):
    hits: list[HitOut]
    index: str | None = Field(None, description="The compressed index, with `with_index`.")
    seq: int | None = Field(None, description="The seq hits and index were read at"
                            " (with `with_index`).")


class IndexOut(BaseModel):
    index: str
    seq: int


class DomainOut(BaseModel):
    domain: str
    count: int


class ForgetOut(BaseModel):
    id: str
    seq: int
    event_id: str


class ForgetWhereRequest(_In):
    """Forget every memory of the namespace that matches (at least one filter)."""

    filters: Filters = None
    user_id: ScopeFilter = None
    agent_id: ScopeFilter = None
    run_id: ScopeFilter = None
    domains: list[Short] | None = Field(None, max_length=100)
    created_after: Time | None = None
    created_before: Time | None = None
    reason: Annotated[str, Field(max_length=1000)] | None = None
    dry_run: bool = Field(False, description="Only say what would be forgotten.")


class DropRequest(_In):
    """Drop the namespace of the path: every memory forgotten, its contexts discarded."""

    confirm: Short = Field(description="The namespace's name again: nothing is dropped"
                           " unless it matches the path's.")
    reason: Annotated[str, Field(max_length=1000)] | None = None
    dry_run: bool = Field(False, description="Only say what would be forgotten.")


class ForgottenOut(BaseModel):
    forgotten: list[str] = Field(description="The ids forgotten (or, with dry_run, that"
                                 " would be).")
    count: int
    dry_run: bool
    seq: int


class StatusOut(BaseModel):
    status: str
    seq: int | None = None


class QueryResultOut(BaseModel):
    id: str
    score: float
    text: str
    node: NodeOut
    reasons: list[str]
    similarity: float | None
    outcome: str | None
    salience: float


class PlanStepOut(BaseModel):
    op: str
    role: str
    source: str
    estimate: int | None
    detail: str


class PlanOut(BaseModel):
    seq: int
    tiers: str
    steps: list[PlanStepOut]
    text: str = Field(description="The plan, one step a line.")


class QueryOut(BaseModel):
    results: list[QueryResultOut] | None = Field(None, description="Null with `explain`.")
    plan: PlanOut | None = Field(None, description="With `explain=true`: the plan (nothing"
                                 " is run); else null.")


class ContextOut(BaseModel):
    name: str
    namespace: str
    agent: str | None
    read_seq: int = Field(description="The shared seq the context reads at.")
    pending: int = Field(description="Staged events a commit would publish.")
    durable: bool = Field(description="False until the first staged write: until then"
                          " nothing is logged and each request reads at the head.")


class CommitOut(BaseModel):
    name: str
    published: int
    seq: int | None = Field(None, description="The seq of the last published event.")
    ids: list[str] = Field(default_factory=list, description="Streams written.")


class TierOut(BaseModel):
    id: str
    tier: str


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a list. Pass ``next_cursor`` back as ``cursor`` for the next page;
    every page of one listing is read at the same ``seq``, so none shifts under writes."""

    items: list[T]
    seq: int
    next_cursor: str | None = None


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)
    request_id: str | None = Field(None, description="The request's X-Request-Id, also in"
                                   " the response header and the server's log line.")


class ErrorBody(BaseModel):
    error: ErrorDetail
