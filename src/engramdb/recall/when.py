"""Dates as people and chat exports write them, and time phrases in questions.

:func:`parse_when` reads the date strings conversation datasets and chat
exports carry (ISO 8601, ``2023/05/20 (Sat) 02:21``, ``8:56 pm on 20 July,
2023``, ``20 July 2023``, ``July 20, 2023``, ``05/20/2023``...) and raises
:class:`~engramdb.errors.InvalidInput` naming the accepted forms otherwise.

:func:`query_window` finds a time phrase in a question ("last week", "in May",
"yesterday", "3 days ago", "on July 12, 2022", "in 2022", "before June",
"since March") and
resolves it against the asking time into a ``[start, end)`` window of
microseconds; recall boosts memories whose valid time falls inside it.
Nothing here guesses a time zone: naive times are UTC, as everywhere else.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import InvalidInput

__all__ = ["ACCEPTED", "entities", "parse_when", "query_window"]

ACCEPTED = (
    "ISO 8601 (2023-05-20, 2023-05-20T14:21:00+02:00), '2023/05/20 (Sat) 02:21', "
    "'8:56 pm on 20 July, 2023', '20 July 2023', 'July 20, 2023', '05/20/2023', "
    "a datetime or microseconds since the epoch"
)

_MONTHS = {
    name: i
    for i, names in enumerate(
        [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"),
         ("may",), ("jun", "june"), ("jul", "july"), ("aug", "august"),
         ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
         ("dec", "december")],
        start=1,
    )
    for name in names
}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAYNAME = r"(?:\(?(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?\)?,?)"
_CLOCK = r"(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?(?::(?P<second>\d{2}))?\s*(?P<ampm>[ap]\.?m\.?)?"

# each pattern is matched against the whole (lower-cased, squeezed) string
_FORMS = [
    # 2023/05/20 (Sat) 02:21  |  2023/05/20 02:21  |  2023.05.20
    re.compile(rf"(?P<year>\d{{4}})[/.](?P<mon>\d{{1,2}})[/.](?P<day>\d{{1,2}})"
               rf"(?:\s*{_DAYNAME})?(?:\s+(?:at\s+)?{_CLOCK})?"),
    # 8:56 pm on 20 July, 2023
    re.compile(rf"{_CLOCK}\s+on\s+(?:{_DAYNAME}\s*)?(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+{_MONTH},?"
               rf"\s+(?P<year>\d{{4}})"),
    # 20 July 2023 [, 8:56 pm]  |  Sat 20 July, 2023
    re.compile(rf"(?:{_DAYNAME}\s*)?(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?"
               rf"\s+(?P<year>\d{{4}})(?:,?\s+(?:at\s+)?{_CLOCK})?"),
    # July 20, 2023 [8:56 pm]  |  Saturday, July 20th 2023
    re.compile(rf"(?:{_DAYNAME}\s*)?{_MONTH}\s+(?P<day>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<year>\d{{4}})"
               rf"(?:,?\s+(?:at\s+)?{_CLOCK})?"),
    # 05/20/2023 [14:21] (month first, as US exports write it; day first when month > 12)
    re.compile(rf"(?P<a>\d{{1,2}})/(?P<b>\d{{1,2}})/(?P<year>\d{{4}})(?:,?\s+{_CLOCK})?"),
]


def parse_when(value: Any, *, label: str = "time") -> datetime | int | None:
    """``value`` as a datetime (or microseconds, passed through), else :class:`InvalidInput`.

    Strings are tried as ISO 8601 first, then as the forms in :data:`ACCEPTED`.
    """
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidInput(f"{label}: not a time ({type(value).__name__}); use {ACCEPTED}")
    if isinstance(value, (int, float)):
        return int(value) if isinstance(value, int) else value  # type: ignore[return-value]
    text = value.strip()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    squeezed = re.sub(r"\s+", " ", text.lower())
    for form in _FORMS:
        m = form.fullmatch(squeezed)
        if m:
            try:
                return _build(m.groupdict())
            except ValueError:
                break
    raise InvalidInput(f"{label}: cannot read {text[:80]!r} as a date; use {ACCEPTED}")


def _build(g: dict[str, str | None]) -> datetime:
    if g.get("a") is not None:
        a, b = int(g["a"] or 0), int(g["b"] or 0)
        month, day = (a, b) if a <= 12 else (b, a)
    else:
        month = int(g["mon"]) if g.get("mon") else _MONTHS[str(g["month"])]
        day = int(g["day"] or 0)
    hour = int(g["hour"]) if g.get("hour") else 0
    ampm = (g.get("ampm") or "").replace(".", "")
    if ampm:
        if not 1 <= hour <= 12:
            raise ValueError("12-hour clock out of range")
        hour = hour % 12 + (12 if ampm == "pm" else 0)
    return datetime(int(g["year"] or 0), month, day, hour, int(g.get("minute") or 0),
                    int(g.get("second") or 0))


# -- time phrases in questions ------------------------------------------------------

_DAY = timedelta(days=1)
_UNITS = {"day": 1, "week": 7, "month": 30, "year": 365}
_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
            "seven": 7, "eight": 8, "nine": 9, "ten": 10, "couple of": 2, "few": 3}


_AGO = re.compile(r"\b(\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|couple of|few)"
                  r" (day|week|month|year)s? ago\b")
_IN_MONTH = re.compile(rf"\b(in|during|since|after|before|by|until) (?:early |late |mid[- ])?"
                       rf"{_MONTH}(?: (?P<year>\d{{4}}))?\b")


_ON_DATE = [
    re.compile(rf"\b{_MONTH} (?P<day>\d{{1,2}})(?:st|nd|rd|th)?(?:,? (?P<year>\d{{4}}))?\b"),
    re.compile(rf"\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)? (?:of )?{_MONTH}"
               r"(?:,? (?P<year>\d{4}))?\b"),
    re.compile(r"\b(?P<year>\d{4})-(?P<mon>\d{2})-(?P<day>\d{2})\b"),
]
# a day named in a question: what was said that day or in the week after it (people
# report what they did a few days later)
_DAY_BEFORE, _DAYS_AFTER = timedelta(days=1), timedelta(days=8)


def _named_day(q: str, now: datetime) -> tuple[datetime, datetime] | None:
    for form in _ON_DATE:
        m = form.search(q)
        if m is None:
            continue
        g = m.groupdict()
        month = int(g["mon"]) if g.get("mon") else _MONTHS[g["month"]]
        try:
            if g.get("year"):
                day = datetime(int(g["year"]), month, int(g["day"]))
            else:
                day = datetime(now.year, month, int(g["day"]))
                if day > now:
                    day = day.replace(year=now.year - 1)
        except ValueError:
            continue
        return day - _DAY_BEFORE, day + _DAYS_AFTER
    return None


def _day_start(t: datetime) -> datetime:
    return t.replace(hour=0, minute=0, second=0, microsecond=0)


def _month_span(year: int, month: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, 1)
    end = datetime(year + (month == 12), month % 12 + 1, 1)
    return start, end


def _us(t: datetime) -> int:
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int((t - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))


def query_window(query: str, now: datetime) -> tuple[int, int] | None:
    """The ``[start, end)`` (µs) a time phrase in ``query`` means, asked at ``now``; or None.

    Relative phrases count back from ``now``; a bare month ("in May") is the
    latest May not after ``now``; "before X" / "since X" open the window on one
    side (bounded by ``now``).
    """
    if now.tzinfo is not None:
        now = now.astimezone(UTC).replace(tzinfo=None)
    q = " " + re.sub(r"\s+", " ", query.lower()) + " "
    today = _day_start(now)
    span: tuple[datetime, datetime] | None = None
    if re.search(r"\b(yesterday|last night)\b", q):
        span = (today - _DAY, today)
    elif re.search(r"\b(today|tonight|this morning|this evening)\b", q):
        span = (today, today + _DAY)
    elif m := re.search(_AGO, q):
        n = int(m.group(1)) if m.group(1).isdigit() else _NUMBERS[m.group(1)]
        back = timedelta(days=n * _UNITS[m.group(2)])
        slack = timedelta(days=max(1, _UNITS[m.group(2)] // 2 + n // 2))
        span = (today - back - slack, today - back + slack + _DAY)
    elif m := re.search(r"\b(last|past|previous|this) (week|weekend|month|year)\b", q):
        unit = m.group(2)
        if m.group(1) == "this":
            days = {"week": 7, "weekend": 7, "month": 31, "year": 366}[unit]
            span = (today - timedelta(days=days), now + _DAY)
        elif unit in ("week", "weekend"):
            span = (today - timedelta(days=14), today + _DAY)
        elif unit == "month":
            span = (today - timedelta(days=62), today + _DAY)
        else:
            span = (datetime(now.year - 1, 1, 1), datetime(now.year, 1, 1))
    elif (named := _named_day(q, now)) is not None:
        span = named
    elif m := re.search(_IN_MONTH, q):
        month = _MONTHS[m.group("month")]
        if m.group("month") == "may" and m.group(1) in ("by", "until"):
            return None  # "by may": too likely the verb
        year = int(m.group("year")) if m.group("year") else (
            now.year if month <= now.month else now.year - 1)
        start, end = _month_span(year, month)
        span = _side(m.group(1), start, end, now)
    elif m := re.search(r"\b(in|during|since|after|before) (?P<year>(?:19|20)\d{2})\b", q):
        year = int(m.group("year"))
        span = _side(m.group(1), datetime(year, 1, 1), datetime(year + 1, 1, 1), now)
    if span is None or span[0] >= span[1]:
        return None
    return _us(span[0]), _us(span[1])


def _side(word: str, start: datetime, end: datetime, now: datetime) -> tuple[datetime, datetime]:
    if word == "before":
        return datetime(1970, 1, 2), start
    if word in ("since", "after"):
        return (start if word == "since" else end), max(now + _DAY, end)
    return start, end


# -- names, dates and numbers a text mentions (no LLM) ------------------------------

_SPEAKER = re.compile(r"^[^:\n]{1,40}:\s+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*|\d[\d,.:/]*")
_NOT_NAMES = {"i", "i'm", "i've", "i'll", "i'd", "ok", "okay", "oh", "hey", "hi", "wow", "yes",
              "no", "thanks", "thank", "the", "a", "an", "and", "but", "so", "it", "it's",
              "that", "this", "my", "you", "we", "he", "she", "they", "what", "when"}


def entities(text: str) -> list[str]:
    """Names (capitalised words not opening a sentence), months, years and numbers in
    ``text``, lower-cased, in order, each once. The ``Speaker:`` prefix is skipped."""
    body = _SPEAKER.sub("", text, count=1)
    found: dict[str, None] = {}
    opening = True
    for m in _WORD.finditer(body):
        word = m.group(0).rstrip(",.:/")
        before = body[max(0, m.start() - 2): m.start()]
        if opening or any(c in before for c in ".!?"):
            opening = False
            if word.lower() not in _MONTHS and not word[:1].isdigit():
                continue
        low = word.lower()
        if word[:1].isdigit():
            if len(word) >= 2:
                found[low] = None
        elif low in _MONTHS or (word[:1].isupper() and low not in _NOT_NAMES):
            found[low] = None
    return list(found)
