"""Forgiving parsers for staff input: dates and times in the clinic's zone, /book arguments."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import phonenumbers

from bot.reminders.planner import is_nonexistent, resolve_local

MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}
WEEKDAYS = {d: i for i, d in enumerate(["mon", "tue", "wed", "thu", "fri", "sat", "sun"])}


class InputError(ValueError):
    """Staff input that cannot be read; str() says what was expected."""


def _month(word: str) -> int | None:
    word = word.lower().rstrip(".")
    if len(word) >= 3 and word[:3] in MONTHS:
        full = ["january", "february", "march", "april", "may", "june", "july", "august",
                "september", "october", "november", "december"][MONTHS[word[:3]] - 1]
        if full.startswith(word) or word == "sept":
            return MONTHS[word[:3]]
    return None


def _weekday(word: str) -> int | None:
    word = word.lower().rstrip(".,")
    names = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    for i, name in enumerate(names):
        if len(word) >= 3 and name.startswith(word):
            return i
    return None


def _make_date(y: int, m: int, d: int) -> date:
    try:
        return date(y, m, d)
    except ValueError:
        raise InputError(f"{d:02d}.{m:02d}.{y} is not a calendar date") from None


def _year(text: str) -> int:
    y = int(text)
    return y + 2000 if y < 100 else y


def parse_date(tokens: list[str], today: date) -> tuple[date, int]:
    """Read a date from the start of tokens; returns (date, tokens used).

    A date without a year is the next such date from today on, unless it passed this year
    within RECENT_PAST_DAYS (refused: the year must be given)."""
    if not tokens:
        raise InputError("a date is missing")
    first = tokens[0].lower().rstrip(",")
    if first == "today":
        return today, 1
    if first == "tomorrow":
        return today + timedelta(days=1), 1
    wd = _weekday(first)
    if wd is not None and _month(first) is None:
        ahead = (wd - today.weekday()) % 7 or 7
        return today + timedelta(days=ahead), 1
    m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", first)
    if m:
        return _make_date(int(m.group(1)), int(m.group(2)), int(m.group(3))), 1
    m = re.fullmatch(r"(\d{1,2})[./](\d{1,2})(?:[./](\d{2}|\d{4}))?\.?", first)
    if m:
        d, mo = int(m.group(1)), int(m.group(2))
        if m.group(3):
            return _make_date(_year(m.group(3)), mo, d), 1
        return _next_date(today, mo, d), 1
    # 3 Dec [2026] | Dec 3 [2026] | 3rd December
    m = re.fullmatch(r"(\d{1,2})(?:st|nd|rd|th)?", first)
    if m and len(tokens) >= 2 and _month(tokens[1].rstrip(",")) is not None:
        d, mo = int(m.group(1)), _month(tokens[1].rstrip(","))
        return _with_optional_year(tokens, 2, today, mo, d)  # type: ignore[arg-type]
    mo = _month(first)
    if mo is not None and len(tokens) >= 2:
        m = re.fullmatch(r"(\d{1,2})(?:st|nd|rd|th)?,?", tokens[1])
        if m:
            return _with_optional_year(tokens, 2, today, mo, int(m.group(1)))
    raise InputError(f"cannot read the date {tokens[0]!r} (try 2026-12-03, 3.12, 3 Dec, tomorrow)")


def _with_optional_year(tokens: list[str], used: int, today: date, mo: int, d: int) -> tuple[date, int]:
    if len(tokens) > used and re.fullmatch(r"\d{4},?", tokens[used]):
        return _make_date(int(tokens[used].rstrip(",")), mo, d), used + 1
    return _next_date(today, mo, d), used


# A yearless date that passed this recently is a slip (or a past date), not next year's: "24.11"
# typed on 25 Nov would book a year ahead, and the patient's real appointment lose its reminders.
RECENT_PAST_DAYS = 90


def _next_date(today: date, mo: int, d: int) -> date:
    for y in (today.year, today.year + 1):
        try:
            candidate = date(y, mo, d)
        except ValueError:
            continue
        if candidate >= today:
            return candidate
        if (today - candidate).days <= RECENT_PAST_DAYS:
            raise InputError(f"{d:02d}.{mo:02d} has passed this year; for next year, give the year "
                             f"({d:02d}.{mo:02d}.{y + 1})")
    raise InputError(f"{d:02d}.{mo:02d} is not a calendar date in {today.year} or {today.year + 1}")


# "1:00" to "6:59" without am/pm, written with one digit for the hour: refused as ambiguous.
EARLY_AMBIGUOUS_UNTIL = 6


def parse_time(tokens: list[str]) -> tuple[time, int]:
    if not tokens:
        raise InputError("a time is missing (e.g. 14:30)")
    first = tokens[0].lower()
    suffix = None
    used = 1
    if len(tokens) >= 2 and tokens[1].lower() in ("am", "pm", "a.m.", "p.m."):
        suffix, used = tokens[1].lower()[0], 2
    # "14:30:00": spreadsheets export times with seconds (whole minutes only).
    m = re.fullmatch(r"(\d{1,2})(?:[:.h](\d{2})(?::00)?)?\s*(am|pm|a\.m\.|p\.m\.)?", first)
    if not m or (m.group(2) is None and m.group(3) is None and suffix is None):
        raise InputError(f"cannot read the time {tokens[0]!r} (try 14:30 or 2:30pm)")
    h, mi = int(m.group(1)), int(m.group(2) or 0)
    suffix = suffix or (m.group(3)[0] if m.group(3) else None)
    if suffix:
        if not 1 <= h <= 12:
            raise InputError(f"{tokens[0]!r}: with am/pm the hour is 1-12")
        h = h % 12 + (12 if suffix == "p" else 0)
    if not (0 <= h <= 23 and 0 <= mi <= 59):
        raise InputError(f"{tokens[0]!r} is not a time of day")
    if suffix is None and len(m.group(1)) == 1 and 1 <= h <= EARLY_AMBIGUOUS_UNTIL:
        # "3:00" is far more often 3 pm typed in haste than a 3 a.m. appointment, and a wrong
        # start sends every reminder at the wrong time: the hour must be written out.
        minutes = f":{mi:02d}" if mi else ""
        raise InputError(f"{tokens[0]!r} could be morning or afternoon: write {h + 12}:{mi:02d} "
                         f"or {h}{minutes}pm (later in the day), 0{h}:{mi:02d} or {h}{minutes}am "
                         "(early morning)")
    return time(h, mi), used


def parse_when(tokens: list[str], now: datetime, tz: ZoneInfo) -> tuple[datetime, int]:
    """DATE TIME (clinic time) -> aware UTC datetime, and how many tokens were read."""
    today = now.astimezone(tz).date()
    day, used = parse_date(tokens, today)
    at, used_t = parse_time(tokens[used:])
    return resolve_local(local_start(day, at, tz), tz), used + used_t


def local_start(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The naive clinic-time start, refused when the clocks skip it."""
    naive = datetime.combine(day, at)
    if is_nonexistent(naive, tz):
        raise InputError(f"{day} {at:%H:%M} does not exist in {tz.key} (the clocks go forward)")
    return naive


def parse_area(text: str, default: str = "treatment") -> str:
    area = " ".join(text.split()) or default
    if len(area) > 64:
        raise InputError("the treatment area is longer than 64 characters")
    return area


def parse_session(text: str) -> tuple[int, int] | None:
    """"2/4" (or "2 / 4", "2 of 4") -> (2, 4); None when it is not N/M."""
    m = re.fullmatch(r"(\d{1,2})\s*(?:/|of)\s*(\d{1,2})", text.strip(), re.IGNORECASE)
    if m is None:
        return None
    session_no, course_size = int(m.group(1)), int(m.group(2))
    if not 1 <= session_no <= course_size:
        raise InputError("session must be N/M with 1 <= N <= M")
    return session_no, course_size


@dataclass
class Who:
    telegram_id: int | None = None
    patient_id: int | None = None
    phone: str | None = None
    name: str | None = None


def parse_who(token: str, region: str = "GB") -> Who:
    token = token.strip()
    if not token:
        raise InputError("the patient is missing")
    if re.fullmatch(r"#\d{1,9}", token):
        return Who(patient_id=int(token[1:]))
    if token.startswith("+") or re.fullmatch(r"0[\d\s-]{9,14}", token):
        try:
            number = phonenumbers.parse(token, region)
        except phonenumbers.NumberParseException:
            raise InputError(f"{token!r} is not a phone number") from None
        if not phonenumbers.is_possible_number(number):
            raise InputError(f"{token!r} is not a valid phone number")
        return Who(phone=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    if re.fullmatch(r"\d{1,15}", token):
        return Who(telegram_id=int(token))
    if len(token) > 100 or not re.search(r"[^\W\d_]", token):
        raise InputError("a name must contain letters (quote names with spaces)")
    return Who(name=" ".join(token.split()))


@dataclass
class BookRequest:
    who: Who
    starts_at: datetime
    duration_min: int
    area: str
    session_no: int
    course_size: int


# Phones turn typed quotes into curly ones; they quote a name all the same.
_CURLY_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"',
                               "\u00bb": '"'})


def split_args(text: str) -> list[str]:
    """Words, with "double quotes" grouping a name. Only double quotes: an apostrophe is part
    of a word ("crow's feet", O'Brien)."""
    lexer = shlex.shlex(text.translate(_CURLY_QUOTES), posix=True)
    lexer.whitespace_split, lexer.quotes, lexer.escape, lexer.commenters = True, '"', "", ""
    try:
        return list(lexer)
    except ValueError:
        raise InputError("a quote is not closed (quote a name with spaces like \"Anna Smith\")") \
            from None


_MINUTE_WORDS = {"m", "min", "mins", "minute", "minutes"}
_HOUR_WORDS = {"h", "hr", "hrs", "hour", "hours"}


def parse_duration_tokens(tokens: list[str]) -> tuple[int | None, int]:
    """A duration at the start of `tokens` ("60", "60min", "90 min", "1h", "1h30", "2 hours"):
    (minutes, tokens used), or (None, 0) when there is none."""
    if not tokens:
        return None, 0
    token = tokens[0].lower()
    following = tokens[1].lower() if len(tokens) > 1 else ""
    hours: int | None = None
    used = 0
    if re.fullmatch(r"\d{1,2}", token) and following in _HOUR_WORDS:
        hours, used = int(token) * 60, 2
    elif m := re.fullmatch(r"(\d)[.,](\d)(?:h|hrs?|hours?)", token):  # "1.5h"
        return int(m.group(1)) * 60 + int(m.group(2)) * 6, 1
    elif m := re.fullmatch(r"(\d{1,3})(m|mins?|minutes?)?", token):
        unit_word = m.group(2) is None and following in _MINUTE_WORDS
        return int(m.group(1)), 2 if unit_word else 1
    elif m := re.fullmatch(r"(\d{1,2})(?:h|hrs?|hours?)(?:(\d{1,2})(?:m|mins?)?)?", token):
        if m.group(2):
            return int(m.group(1)) * 60 + int(m.group(2)), 1
        hours, used = int(m.group(1)) * 60, 1
    if hours is None:
        return None, 0
    # "1h 30m", "1 hour 30 min": the minutes after the hours belong to them.
    rest = tokens[used:]
    if rest and (m := re.fullmatch(r"(\d{1,2})(m|mins?|minutes?)?", rest[0].lower())) and (
            m.group(2) or (len(rest) > 1 and rest[1].lower() in _MINUTE_WORDS)):
        return hours + int(m.group(1)), used + (1 if m.group(2) else 2)
    return hours, used


_DURATION_LIKE = re.compile(r"\d+(?:[.,]\d+)?(?:m|mins?|minutes?|h|hrs?|hours?)")


def duration_in_area(words: list[str]) -> bool:
    """A duration among the area's words ("face 90min", "face 45 min"): minutes typed in the
    wrong place, which would otherwise book the default length."""
    lowered = [w.lower() for w in words]
    return any(_DURATION_LIKE.fullmatch(w) or (w.isdigit() and i + 1 < len(lowered)
                                               and lowered[i + 1] in _MINUTE_WORDS | _HOUR_WORDS)
               for i, w in enumerate(lowered))


def _spaced_phone(args: list[str], region: str = "GB") -> int:
    """How many leading tokens make the patient: a phone written with spaces takes the
    longest run of digit groups that is a possible number ("+44 7700 900123", but not the "3" of
    a following "3 Dec"); anything else one token."""
    if not re.fullmatch(r"\+?\d{1,6}", args[0]) or not (args[0].startswith(("+", "0"))):
        return 1
    for taken in range(min(len(args) - 2, 6), 1, -1):
        if not all(re.fullmatch(r"\d{1,6}", a) for a in args[1:taken]):
            continue
        try:
            number = phonenumbers.parse("".join(args[:taken]), region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(number):  # as parse_who judges a phone
            return taken
    return 1


def parse_book(args: list[str], now: datetime, tz: ZoneInfo, *, default_minutes: int = 60,
               default_area: str = "treatment") -> BookRequest:
    """PATIENT DATE TIME [MINUTES] [AREA words] [N/M]."""
    if len(args) < 3:
        raise InputError("need at least PATIENT DATE TIME")
    taken = _spaced_phone(args)  # "+44 7700 900123": the phone as it is usually written
    who = parse_who(" ".join(args[:taken]))
    starts_at, used = parse_when(args[taken:], now, tz)
    rest = args[taken + used:]
    session_no = course_size = 1
    for tail in (3, 2, 1):  # "2/4"; typed as "2 / 4", "2/ 4", "2 of 4" or "2of4" too
        if len(rest) >= tail and (session := parse_session(" ".join(rest[-tail:]))) is not None:
            session_no, course_size = session
            rest = rest[:-tail]
            break
    minutes, used = parse_duration_tokens(rest)  # after the session: "14:30 2 / 4" has none
    minutes = default_minutes if minutes is None else minutes
    rest = rest[used:]
    if duration_in_area(rest):  # "face 90min", "face 45 min": booked as the default length
        raise InputError(f"the area holds a duration ({' '.join(rest)!r}): the minutes go "
                         "right after the time (e.g. 14:30 90 face)")
    if rest and rest[-1].isdigit() and 15 <= int(rest[-1]) <= 600 and int(rest[-1]) % 5 == 0:
        # "face 60": minutes typed after the area would silently become part of it ("Morpheus
        # 8", a product's number, is no duration).
        raise InputError(f"the area ends with a number ({' '.join(rest)!r}): the minutes go "
                         "right after the time, a course session is written N/M (e.g. 2/4)")
    return BookRequest(who, starts_at, minutes, parse_area(" ".join(rest), default_area),
                       session_no, course_size)
