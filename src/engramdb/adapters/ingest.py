"""``engram ingest``: load a file of memories or conversations into a store.

Formats (``detect_format`` tells them apart by content when not named):

* ``jsonl`` — one JSON object per line. An object with ``speaker`` or ``role``
  is a conversation turn (``text``/``content``, optional ``session``, ``time``,
  ``id``, ``attrs``); consecutive turns of one session become one conversation
  (:meth:`Memory.ingest_conversation`). Any other object holds the keyword
  arguments of :meth:`Memory.remember` (``text`` required); runs of them are
  stored with :meth:`Memory.remember_many`.
* ``locomo`` — the LoCoMo benchmark file: every session of every sample, at its
  session date, turn ids kept as ``dia_id``, shared photos' captions appended.
* ``longmemeval`` — LongMemEval (``longmemeval_s/m/oracle.json``): every
  distinct haystack session once, at its date, turns as ``user``/``assistant``.

The whole file is parsed and checked (JSON, keys, types, times, ids) before
anything is written, so a malformed line changes nothing. Each unit (a session,
or a run of up to 256 memories) is one commit; what only the store can judge
(an ``id`` that already exists) stops the ingest at that commit, keeping the
commits before it.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import InvalidInput, NotFound
from ..events import check_stream, to_us
from ..memory import Memory

__all__ = ["FORMATS", "IngestSummary", "Unit", "detect_format", "ingest_file", "load_units"]

FORMATS = ("jsonl", "locomo", "longmemeval")
BATCH = 256
_REMEMBER_KEYS = {"text", "domain", "kind", "name", "attrs", "valid_from", "valid_to", "source",
                  "agent", "session", "id"}
_TURN_KEYS = {"speaker", "role", "text", "content", "session", "time", "date", "id", "attrs"}


@dataclass(frozen=True, slots=True)
class Unit:
    """One commit: a conversation session, or a batch of plain memories."""

    session: str | None  # None: a batch of remember() keyword dicts
    items: list[dict[str, Any]]
    at: datetime | str | None = None
    source: str | None = None


@dataclass(slots=True)
class IngestSummary:
    format: str
    memories: int = 0
    sessions: int = 0
    commits: int = 0
    seconds: float = 0.0
    first_seq: int = 0
    last_seq: int = 0
    skipped: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.memories / self.seconds if self.seconds > 0 else 0.0


def _read(path: str) -> str:
    if not os.path.isfile(path):
        raise NotFound(f"no file {path}", path=path)
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{path} is not UTF-8 text: {exc}") from None


def detect_format(path: str, text: str | None = None) -> str:
    """``jsonl``, ``locomo`` or ``longmemeval``, judged by the file's content."""
    text = _read(path) if text is None else text
    head = text.lstrip()[:1]
    if head == "{":
        return "jsonl"
    if head == "[":
        data = _json(path, text)
        first = data[0] if isinstance(data, list) and data else None
        if isinstance(first, dict) and "conversation" in first:
            return "locomo"
        if isinstance(first, dict) and "haystack_sessions" in first:
            return "longmemeval"
    raise InvalidInput(
        f"cannot tell the format of {path}: expected JSON lines, a LoCoMo file or a"
        " LongMemEval file (name it with --format)"
    )


def _json(path: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path} is not valid JSON: {exc}") from None


def load_units(path: str, fmt: str | None = None) -> tuple[str, list[Unit]]:
    """Parse and check the whole file; returns (format, units to commit in order)."""
    text = _read(path)
    fmt = fmt or detect_format(path, text)
    if fmt == "jsonl":
        return fmt, list(_jsonl(path, text))
    if fmt == "locomo":
        return fmt, list(_locomo(path, _json(path, text)))
    if fmt == "longmemeval":
        return fmt, list(_longmemeval(path, _json(path, text)))
    raise InvalidInput(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")


# -- JSON lines ----------------------------------------------------------------


def _jsonl(path: str, text: str) -> Iterator[Unit]:
    batch: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    session: str | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{where}: not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise InvalidInput(f"{where}: each line must be a JSON object")
        if "speaker" in obj or "role" in obj:
            turn, turn_session = _turn_line(obj, where)
            if batch:
                yield Unit(None, batch)
                batch = []
            if turns and turn_session != session:
                yield Unit(session, turns, at=turns[0].get("time"))
                turns = []
            session = turn_session
            turns.append(turn)
            continue
        if turns:
            yield Unit(session, turns, at=turns[0].get("time"))
            turns = []
        batch.append(_memory_line(obj, where))
        if len(batch) >= BATCH:
            yield Unit(None, batch)
            batch = []
    if turns:
        yield Unit(session, turns, at=turns[0].get("time"))
    if batch:
        yield Unit(None, batch)


def _memory_line(obj: dict[str, Any], where: str) -> dict[str, Any]:
    unknown = set(obj) - _REMEMBER_KEYS
    if unknown:
        raise InvalidInput(f"{where}: unknown keys {sorted(unknown)} (a memory takes"
                           f" {', '.join(sorted(_REMEMBER_KEYS))})")
    if not isinstance(obj.get("text"), str):
        raise InvalidInput(f"{where}: a memory needs a 'text' string")
    for key in ("domain", "kind", "name", "source", "agent", "session", "id"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise InvalidInput(f"{where}: {key!r} must be a string")
    if obj.get("attrs") is not None and not isinstance(obj["attrs"], dict):
        raise InvalidInput(f"{where}: 'attrs' must be an object")
    for key in ("valid_from", "valid_to"):
        _check_time(obj.get(key), where, key)
    if obj.get("id") is not None:
        _check_id(obj["id"], where)
    return obj


def _check_time(value: Any, where: str, key: str) -> None:
    if value is None:
        return
    try:
        to_us(value)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {key!r}: {exc.message}") from None


def _check_id(value: Any, where: str) -> None:
    try:
        check_stream(value)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc.message}") from None


def _turn_line(obj: dict[str, Any], where: str) -> tuple[dict[str, Any], str]:
    unknown = set(obj) - _TURN_KEYS
    if unknown:
        raise InvalidInput(f"{where}: unknown keys {sorted(unknown)} in a conversation turn")
    text = obj.get("text", obj.get("content"))
    speaker = obj.get("speaker", obj.get("role"))
    if not isinstance(text, str) or not isinstance(speaker, str):
        raise InvalidInput(f"{where}: a turn needs 'speaker'/'role' and 'text'/'content' strings")
    session = obj.get("session", "jsonl")
    if not isinstance(session, str) or not session:
        raise InvalidInput(f"{where}: 'session' must be a non-empty string")
    if obj.get("attrs") is not None and not isinstance(obj["attrs"], dict):
        raise InvalidInput(f"{where}: 'attrs' must be an object")
    turn: dict[str, Any] = {"speaker": speaker, "text": text}
    when = obj.get("time", obj.get("date"))
    _check_time(when, where, "time")
    if when is not None:
        turn["time"] = when
    for key in ("id", "attrs"):
        if obj.get(key) is not None:
            turn[key] = obj[key]
    return turn, session


# -- LoCoMo ----------------------------------------------------------------------


def _locomo(path: str, data: Any) -> Iterator[Unit]:
    if not isinstance(data, list) or not all(isinstance(s, dict) for s in data):
        raise InvalidInput(f"{path}: a LoCoMo file is a list of samples")
    for index, sample in enumerate(data):
        convo = sample.get("conversation")
        if not isinstance(convo, dict):
            raise InvalidInput(f"{path}: sample {index} has no 'conversation' object")
        name = str(sample.get("sample_id", index))
        found = []
        for key, turns in convo.items():
            m = re.fullmatch(r"session_(\d+)", key)
            if m and isinstance(turns, list):
                found.append((int(m.group(1)), key, turns))
        for _, key, turns in sorted(found):
            when = _date(convo.get(f"{key}_date_time"), "%I:%M %p on %d %B, %Y")
            yield Unit(f"{name}:{key}", [_locomo_turn(t, path, name) for t in turns], at=when,
                       source="locomo")


def _locomo_turn(turn: Any, path: str, sample: str) -> dict[str, Any]:
    if not isinstance(turn, dict) or not isinstance(turn.get("text"), str):
        raise InvalidInput(f"{path}: sample {sample} has a turn without a 'text' string")
    text = turn["text"]
    if turn.get("blip_caption"):
        text = f"{text} [shares a photo: {turn['blip_caption']}]"
    out: dict[str, Any] = {"speaker": str(turn.get("speaker") or "?"), "text": text,
                           "attrs": {"sample": sample}}
    if turn.get("dia_id") is not None:
        out["id"] = str(turn["dia_id"])
    return out


# -- LongMemEval -----------------------------------------------------------------


def _longmemeval(path: str, data: Any) -> Iterator[Unit]:
    if not isinstance(data, list) or not all(isinstance(q, dict) for q in data):
        raise InvalidInput(f"{path}: a LongMemEval file is a list of question instances")
    seen: set[str] = set()
    for q in data:
        ids, dates, sessions = (q.get(k) for k in ("haystack_session_ids", "haystack_dates",
                                                    "haystack_sessions"))
        if not (isinstance(ids, list) and isinstance(sessions, list) and len(ids) == len(sessions)):
            raise InvalidInput(f"{path}: question {q.get('question_id')!r} has mismatched"
                               " haystack_session_ids / haystack_sessions")
        dates = dates if isinstance(dates, list) and len(dates) == len(ids) else [None] * len(ids)
        for sid, date, turns in zip(ids, dates, sessions, strict=True):
            sid = str(sid)
            if sid in seen:
                continue
            seen.add(sid)
            yield Unit(sid, [_lme_turn(t, path, sid) for t in turns],
                       at=_date(date, "%Y/%m/%d (%a) %H:%M"), source="longmemeval")


def _lme_turn(turn: Any, path: str, sid: str) -> dict[str, Any]:
    if not isinstance(turn, dict) or not isinstance(turn.get("content"), str):
        raise InvalidInput(f"{path}: session {sid} has a turn without a 'content' string")
    out: dict[str, Any] = {"speaker": str(turn.get("role") or "?"), "text": turn["content"]}
    if turn.get("has_answer"):
        out["attrs"] = {"has_answer": True}
    return out


def _date(text: Any, pattern: str) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text.strip(), pattern)
    except ValueError:
        return None


# -- writing -----------------------------------------------------------------------


def ingest_file(
    mem: Memory,
    path: str,
    *,
    fmt: str | None = None,
    domain: str | None = None,
    progress: Callable[[int, int, int], None] = lambda _done, _total, _memories: None,
) -> IngestSummary:
    """Ingest ``path`` into ``mem``; ``progress(units done, units, memories so far)``
    is called after each commit. ``domain`` applies to conversation turns (default
    ``conversation``) and to memories that name none."""
    fmt, units = load_units(path, fmt)
    summary = IngestSummary(format=fmt, first_seq=mem.seq + 1)
    start = time.perf_counter()
    for done, unit in enumerate(units, start=1):
        summary.memories += _commit(mem, unit, domain)
        summary.sessions += unit.session is not None
        summary.commits += 1
        progress(done, len(units), summary.memories)
    summary.seconds = time.perf_counter() - start
    summary.last_seq = mem.seq
    return summary


def _commit(mem: Memory, unit: Unit, domain: str | None) -> int:
    if unit.session is None:
        items = [{**item, "domain": item.get("domain", domain)} for item in unit.items]
        return len(mem.remember_many(items))
    nodes = mem.ingest_conversation(unit.items, session=unit.session, at=unit.at,
                                    domain=domain or "conversation", source=unit.source)
    return len(nodes)
