"""LLM enrichment as events: index prose, entity/fact extraction, and reverting them.

Each function here turns a model's answer into :class:`~engramdb.events.Draft`
objects for the facade to append; nothing is written when the answer is unusable.
Every enrichment lives in its own stream ``enrichment:<id>`` whose first event
(``index.enriched`` or ``enrichment.extracted``) has that same ``<id>`` as its
event id and names the model; ``enrichment.reverted`` is appended to the same
stream (with an expected version, so one enrichment is reverted once).

Extraction writes ordinary nodes (``kind="entity"``) and edges — a memory
``mentions`` each entity, facts become typed edges between entities — whose
``meta.agent`` is the model id, ``meta.source`` is ``"llm"`` and
``meta.correlation_id`` is the enrichment id. Reverting forgets the entities it
created and removes the edges it added.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import Conflict, InvalidInput, LlmBadOutput, NotFound
from ..events import (
    EDGE_ADDED,
    EDGE_REMOVED,
    NO_STREAM,
    NODE_CREATED,
    NODE_FORGOTTEN,
    Draft,
    EdgeAdded,
    EdgeRemoved,
    Event,
    Meta,
    NodeForgotten,
    edge_stream,
    new_id,
)
from ..events.types import (
    ENRICHMENT_EXTRACTED,
    ENRICHMENT_REVERTED,
    INDEX_ENRICHED,
    EnrichmentExtracted,
    EnrichmentReverted,
    IndexEnriched,
)
from .index import IndexProjection, fit_text
from .llm import LlmBackend, parse_json

if TYPE_CHECKING:
    from ..view import Reader

__all__ = [
    "MENTIONS_REL",
    "index_draft",
    "extraction_drafts",
    "revert_drafts",
    "enrichment_stream",
    "parse_extraction",
]

#: The relation from a memory to each entity extracted from it.
MENTIONS_REL = "mentions"
_MAX_ENTITIES = 50
_MAX_FACTS = 100

_INDEX_SYSTEM = (
    "You turn a markdown index of an AI agent's memory store into a short prose briefing "
    "for another language model. Use only what the index says; keep every name exactly as "
    "written; say how the domains relate. Answer with the briefing only."
)

_EXTRACT_SYSTEM = (
    "You extract entities and facts from one memory of an AI agent. Answer with one JSON "
    "object and nothing else."
)

_EXTRACT_PROMPT = """Memory{where}:
\"\"\"{text}\"\"\"

Answer with JSON of this shape:
{{"entities": [{{"name": "...", "type": "person|place|organization|event|thing",
  "summary": "one short sentence"}}],
 "facts": [{{"subject": "entity name", "relation": "snake_case_verb", "object": "entity name"}}]}}
Use names exactly as they appear in the memory. At most 20 entities and 30 facts."""


def enrichment_stream(enrichment_id: str) -> str:
    return f"enrichment:{enrichment_id}"


def _meta(llm: LlmBackend, enrichment_id: str, cause: str | None = None) -> Meta:
    return Meta(agent=llm.model_id, source="llm", causation_id=cause,
                correlation_id=enrichment_id)


def _model_id(llm: Any) -> str:
    model = getattr(llm, "model_id", None)
    if not isinstance(model, str) or not model or not callable(getattr(llm, "complete", None)):
        raise InvalidInput("llm must be an LlmBackend (a model_id string and complete())")
    return model


# --------------------------------------------------------------------------- index prose


def index_draft(
    reader: Reader, index: IndexProjection, llm: LlmBackend, *, max_tokens: int | None = None
) -> Draft:
    """Ask ``llm`` to rewrite the heuristic index of ``reader`` as prose; the
    ``index.enriched`` draft that stores the answer (cut to the budget)."""
    model = _model_id(llm)
    at, ns = reader.seq, reader.namespace
    budget = index.budget(ns, at, max_tokens)
    heuristic = index.render(ns, at, max_tokens=budget)
    words = max(50, budget * 3 // 5)
    prompt = f"Rewrite this index as prose of at most {words} words:\n\n{heuristic}"
    answer = llm.complete(prompt, system=_INDEX_SYSTEM, max_tokens=budget)
    text = answer.strip() if isinstance(answer, str) else ""
    if not text:
        raise LlmBadOutput("the model returned no text for the index", model=model)
    eid = new_id()
    return Draft(
        type=INDEX_ENRICHED, stream=enrichment_stream(eid), id=eid, namespace=ns,
        payload=IndexEnriched(model=model, text=fit_text(text, budget), covers_seq=at,
                              max_tokens=budget),
        meta=_meta(llm, eid), expected_version=NO_STREAM,
    )


# --------------------------------------------------------------------------- extraction


class _Entity(msgspec.Struct):
    name: str
    type: str = "thing"
    summary: str = ""
    domain: str | None = None


class _Fact(msgspec.Struct):
    subject: str
    relation: str
    object: str


class _Extraction(msgspec.Struct):
    entities: list[_Entity] = []
    facts: list[_Fact] = []


def _one_line(value: str, limit: int) -> str:
    return " ".join(value.split())[:limit]


def _relation(value: str) -> str | None:
    rel = re.sub(r"[^0-9a-z]+", "_", value.casefold()).strip("_")[:64]
    return rel or None


def parse_extraction(answer: str, *, model: str) -> _Extraction:
    """The model's JSON answer as validated entities and facts (:class:`LlmBadOutput` if not)."""
    raw = parse_json(answer, model=model)
    try:
        found = msgspec.convert(raw, _Extraction)
    except msgspec.ValidationError as exc:
        raise LlmBadOutput(f"the model's JSON does not fit: {exc}", model=model) from None
    entities = []
    for e in found.entities[:_MAX_ENTITIES]:
        name = _one_line(e.name, 200)
        if name:
            entities.append(_Entity(
                name=name, type=_one_line(e.type, 40) or "thing",
                summary=_one_line(e.summary, 300),
                domain=_one_line(e.domain, 64) or None if e.domain else None,
            ))
    return _Extraction(entities=entities, facts=found.facts[:_MAX_FACTS])


def extraction_drafts(reader: Reader, llm: LlmBackend, memory_id: str) -> list[Draft]:
    """Drafts for what ``llm`` extracts from memory ``memory_id``: new entity nodes,
    ``mentions`` edges, fact edges, then the ``enrichment.extracted`` record."""
    model = _model_id(llm)
    memory = reader.get(memory_id)
    cause = reader._store.log.get(memory.seq).id
    where = f" (domain: {memory.domain})" if memory.domain else ""
    answer = llm.complete(_EXTRACT_PROMPT.format(where=where, text=memory.text),
                          system=_EXTRACT_SYSTEM, max_tokens=1024)
    found = parse_extraction(answer if isinstance(answer, str) else "", model=model)
    eid = new_id()
    meta = _meta(llm, eid, cause)
    ids: dict[str, str] = {}  # casefolded name -> node id
    created: list[str] = []
    linked: list[str] = []
    drafts: list[Draft] = []
    for entity in found.entities:
        key = entity.name.casefold()
        if key in ids:
            continue
        existing = _named(reader, entity.name)
        if existing is not None:
            ids[key] = existing
            linked.append(existing)
            continue
        node_id = new_id()
        ids[key] = node_id
        created.append(node_id)
        drafts.append(Draft(
            type=NODE_CREATED, stream=node_id, namespace=reader.namespace, meta=meta,
            expected_version=NO_STREAM,
            payload={"kind": "entity", "name": entity.name, "text": entity.summary or entity.name,
                     "domain": entity.domain or memory.domain,
                     "attrs": {"type": entity.type, "extracted_from": memory.id}},
        ))
    edges: list[tuple[str, str, str]] = []
    for node_id in ids.values():
        edges.append((memory.id, MENTIONS_REL, node_id))
    for fact in found.facts:
        src = ids.get(fact.subject.casefold()) or _named(reader, fact.subject)
        dst = ids.get(fact.object.casefold()) or _named(reader, fact.object)
        rel = _relation(fact.relation)
        if src and dst and rel:
            edges.append((src, rel, dst))
    new_edges = []
    for src, rel, dst in dict.fromkeys(edges):
        if src != dst and not _live_edge(reader, src, rel, dst):
            new_edges.append((src, rel, dst))
            drafts.append(Draft(
                type=EDGE_ADDED, stream=edge_stream(src, rel, dst), namespace=reader.namespace,
                payload=EdgeAdded(src=src, rel=rel, dst=dst), meta=meta,
            ))
    drafts.append(Draft(
        type=ENRICHMENT_EXTRACTED, stream=enrichment_stream(eid), id=eid,
        namespace=reader.namespace, meta=meta, expected_version=NO_STREAM,
        payload=EnrichmentExtracted(model=model, memory=memory.id, memory_seq=memory.seq,
                                    created=created, linked=linked, edges=new_edges),
    ))
    return drafts


def _named(reader: Reader, name: str) -> str | None:
    try:
        return reader.find(name).id
    except (NotFound, AttributeError):
        return None


def _live_edge(reader: Reader, src: str, rel: str, dst: str) -> bool:
    return any(e.dst == dst for e in reader._adjacency.edges(src, reader.seq, rel=rel))


# --------------------------------------------------------------------------- revert


def revert_drafts(reader: Reader, enrichment_id: str, *, reason: str | None = None) -> list[Draft]:
    """Drafts that withdraw enrichment ``enrichment_id`` (the id of the event that
    wrote it): forget the entities it created, remove the edges it added, and
    record ``enrichment.reverted``. :class:`Conflict` if already reverted."""
    if not isinstance(enrichment_id, str):
        raise InvalidInput("an enrichment id is a string")
    if reason is not None and not isinstance(reason, str):
        raise InvalidInput("reason must be a string")
    stream = enrichment_stream(enrichment_id)
    try:
        events = reader.history(stream)
    except (NotFound, InvalidInput):
        raise NotFound(f"no enrichment {enrichment_id[:80]!r}") from None
    first: Event = events[0]
    if first.type not in (INDEX_ENRICHED, ENRICHMENT_EXTRACTED):
        raise NotFound(f"no enrichment {enrichment_id[:80]!r}")
    if any(e.type == ENRICHMENT_REVERTED for e in events):
        raise Conflict(f"enrichment {enrichment_id[:80]!r} is already reverted")
    meta = Meta(source="revert", causation_id=first.id, correlation_id=enrichment_id)
    why = reason or f"reverted enrichment {enrichment_id}"
    drafts: list[Draft] = []
    if first.type == ENRICHMENT_EXTRACTED:
        gone = set()
        for node_id in first.payload.created:
            if reader.exists(node_id):
                gone.add(node_id)
                drafts.append(Draft(type=NODE_FORGOTTEN, stream=node_id,
                                    namespace=reader.namespace, meta=meta,
                                    payload=NodeForgotten(reason=why)))
        for src, rel, dst in first.payload.edges:
            if src not in gone and dst not in gone and _live_edge(reader, src, rel, dst):
                drafts.append(Draft(type=EDGE_REMOVED, stream=edge_stream(src, rel, dst),
                                    namespace=reader.namespace, meta=meta,
                                    payload=EdgeRemoved(src=src, rel=rel, dst=dst)))
    drafts.append(Draft(
        type=ENRICHMENT_REVERTED, stream=stream, namespace=reader.namespace, meta=meta,
        payload=EnrichmentReverted(target=enrichment_id, reason=reason),
        expected_version=events[-1].version,
    ))
    return drafts

