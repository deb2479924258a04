"""content/reminders.yaml: reminder plans, engine tunables and texts, validated at start."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from rapidfuzz.distance import Levenshtein

from bot.content import BUTTON_LIMIT, ContentError, check_text, fill, load_yaml, not_a_text

KINDS = ("confirmation", "preparation", "same_day", "aftercare", "checkin", "next_session")
ANCHORS = ("booking", "start", "end")
# A plan's fields: any other (a typo such as only_if_course_incomplte) would be ignored and its
# rule silently dropped.
PLAN_FIELDS = {"anchor", "offset", "expires", "valid_for", "quiet_hours", "evening_fallback",
               "only_if_course_incomplete", "treatment_only"}
# The {placeholders} the code fills in for reminders.yaml texts (Texts.get always gives
# clinic_name and contact_line; the rest are the names passed to texts.get(key, name=...)).
PLACEHOLDERS = frozenset({
    "clinic_name", "contact_line", "appointments", "area", "count", "course_size", "date", "days",
    "error", "id", "link", "m", "minutes", "n", "patient", "previous", "problem", "reminder",
    "reminders",
    "session", "session_no", "status", "text", "when", "who"})
_PART = re.compile(r"([+-]?)\s*(\d+)\s*([wdhms])")
# Every text of content/reminders.yaml: a clinic may reword them, not remove one.
REQUIRED_TEXTS = tuple(f"reminder_{k}" for k in KINDS) + (
    "reminder_cancelled", "reminder_moved", "reminder_push_before", "reminder_push_after", "reminder_broadcast",
    "button_my_appointments", "button_confirm", "button_reschedule", "button_cancel",
    "button_cancel_yes", "button_cancel_no", "button_calendar", "button_all_fine",
    "button_concern", "button_book_next", "button_push_anyway", "button_push_not_now",
    "staff_push_not_sent", "button_staff_upcoming",
    "my_appointments_title", "my_appointments_none", "appointment_line", "session_of",
    "status_confirmed", "confirm_done", "reschedule_requested", "cancel_question", "cancel_done",
    "cancel_kept", "appointment_gone", "checkin_fine", "checkin_concern", "concern_question",
    "reschedule_question", "next_session_question", "next_session_requested", "next_session_already", "confirm_moved", "reminder_changed", "calendar_caption",
    "calendar_summary", "link_done", "link_invalid", "staff_book_usage", "staff_reschedule_usage",
    "staff_cancel_usage", "staff_cancel_hint", "staff_retry_usage", "staff_retried", "staff_push_usage",
    "staff_bad_input", "staff_not_done", "staff_booked", "staff_same_name", "staff_invite", "staff_rescheduled", "staff_cancelled",
    "staff_cancel_confirm", "button_staff_cancel_yes", "button_staff_cancel_no", "staff_cancel_kept",
    "staff_cancel_changed",
    "staff_no_appointment", "staff_pushed", "staff_push_quiet", "staff_upcoming_title",
    "staff_upcoming_title_from", "staff_upcoming_none_from", "staff_upcoming_more",
    "staff_upcoming_none", "staff_upcoming_line", "staff_unreachable", "staff_retry_unreachable",
    "staff_retry_not_linked", "staff_dead_letter", "staff_push_unreachable",
    "staff_push_not_linked", "staff_link_usage", "staff_link_not_needed",
    "staff_push_over", "staff_unlink_usage", "staff_unlinked", "staff_unlinked_none_back",
    "staff_patient_confirmed", "staff_patient_reschedule", "staff_patient_cancelled",
    "staff_forget_appointments", "staff_patient_concern", "staff_patient_next",
    "stat_reminders_pending", "stat_reminders_sent_week", "stat_reminders_dead",
    "stat_appointments_upcoming", "staff_patient_linked", "staff_patient_linked_existing",
)


@dataclass(frozen=True)
class Offset:
    """Calendar days (local wall clock) plus an elapsed duration."""

    days: int = 0
    elapsed: timedelta = timedelta(0)

    @property
    def approx(self) -> timedelta:
        return timedelta(days=self.days) + self.elapsed


def parse_offset(text: str) -> Offset:
    """'-1d', '+3w', '-2h', '1d 2h', '0' -> Offset. Raises ValueError."""
    raw = str(text).strip().replace(" ", "")
    if raw in ("0", "+0", "-0", ""):
        return Offset()
    pos, days, elapsed = 0, 0, timedelta(0)
    sign_all = 1
    if raw[0] in "+-":
        sign_all = -1 if raw[0] == "-" else 1
        raw = raw[1:]
    while pos < len(raw):
        match = _PART.match(raw, pos)
        if not match:
            raise ValueError(f"bad offset {text!r}: use e.g. -1d, 3w, -2h, 30m")
        sign = -1 if match.group(1) == "-" else 1
        sign *= sign_all
        n, unit = int(match.group(2)) * sign, match.group(3)
        if unit == "w":
            days += 7 * n
        elif unit == "d":
            days += n
        elif unit == "h":
            elapsed += timedelta(hours=n)
        elif unit == "m":
            elapsed += timedelta(minutes=n)
        else:
            elapsed += timedelta(seconds=n)
        pos = match.end()
    return Offset(days, elapsed)


def parse_duration(text: str) -> timedelta:
    off = parse_offset(text)
    total = off.approx
    if total < timedelta(0):
        raise ValueError(f"duration {text!r} must not be negative")
    return total


@dataclass(frozen=True)
class Plan:
    kind: str
    anchor: str
    offset: Offset
    expires_anchor: str | None  # None: valid_for counts from the planned moment
    expires_offset: Offset
    valid_for: timedelta | None
    quiet_ok: bool
    evening_fallback: bool = False
    only_if_course_incomplete: bool = False
    treatment_only: bool = False  # not for a consultation (ReminderContent.is_consultation)


@dataclass(frozen=True)
class Engine:
    interval_seconds: float = 5
    batch_size: int = 100
    max_per_second: float = 28
    per_chat_seconds: float = 1
    concurrency: int = 8
    max_attempts: int = 5
    backoff: tuple[timedelta, ...] = (timedelta(seconds=30), timedelta(minutes=2),
                                      timedelta(minutes=8), timedelta(minutes=30))
    sending_lease: timedelta = timedelta(minutes=2)
    invite_valid_for: timedelta = timedelta(days=30)
    upcoming_days: int = 7
    send_timeout: float = 10.0  # seconds to wait for Telegram's answer; then TimedOut


class Texts:
    """Templates; placeholder values are HTML-escaped, the templates are trusted HTML."""

    def __init__(self, data: dict[str, str], clinic_name: str, contact_line: str = "") -> None:
        self._data = data
        self.clinic_name = clinic_name
        # "\n📞 ..." (messages.yaml contact_line, already HTML) or "": {contact_line} ends advice
        # to contact the clinic, and shows nothing until the clinic fills clinic_contact in.
        self.contact_line = f"\n{contact_line}" if contact_line else ""

    def get(self, key: str, **params: object) -> str:
        values = {"clinic_name": html.escape(self.clinic_name), "contact_line": self.contact_line}
        values.update({k: html.escape(str(v), quote=False) for k, v in params.items()})
        return fill(self._data[key], values, f"reminders.yaml:{key}")

    def has(self, key: str) -> bool:
        return key in self._data

    def items(self) -> dict[str, str]:
        return dict(self._data)


@dataclass
class ReminderContent:
    plans: dict[str, Plan]
    engine: Engine
    texts: Texts
    push_valid_for: timedelta
    path: Path = field(default=Path("reminders.yaml"))
    consultation_words: frozenset[str] = frozenset()

    def is_consultation(self, area: str) -> bool:
        """An appointment whose area names a consultation word ("consultation", "scalp
        consultation") has no procedure: it gets no preparation, aftercare or check-in."""
        return any(w in self.consultation_words for w in re.findall(r"\w+", area.casefold()))

    def near_consultation(self, area: str) -> str | None:
        """A word of the area one or two letters from a consultation word ("consultaton"): the
        typo would book a consultation as a treatment, with a procedure's preparation and
        aftercare. That word, or None."""
        if self.is_consultation(area):
            return None
        for word in re.findall(r"\w+", area.casefold()):
            if len(word) >= 6 and any(Levenshtein.distance(word, c) <= 2
                                      for c in self.consultation_words):
                return word
        return None


def _line(path: Path, needle: str, after: int = 0) -> int:
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if i > after and line.strip().startswith(f"{needle}:"):
            return i
    return after or 1


def load_reminder_content(content_dir: Path, clinic_name: str = "the clinic",
                          contact_line: str = "") -> ReminderContent:
    path = Path(content_dir) / "reminders.yaml"
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise ContentError(path, 1, "must be a mapping with engine, plans and texts")

    def fail(where: str, problem: str) -> ContentError:
        return ContentError(path, _line(path, where), problem)

    known = {"engine", "plans", "push_valid_for", "texts", "consultation_words"}
    unknown = sorted(set(map(str, data)) - known)
    if unknown:
        raise fail(unknown[0], f"unknown section(s) {unknown} (known: {', '.join(sorted(known))})")
    words = data.get("consultation_words") or []
    if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
        raise fail("consultation_words", "consultation_words: a list of words, e.g. "
                   "[consultation, consult]")

    plans_raw = data.get("plans")
    if not isinstance(plans_raw, dict):
        raise fail("plans", "plans: a mapping of reminder kind -> plan is required")
    plans: dict[str, Plan] = {}
    for kind in KINDS:
        if kind not in plans_raw:
            raise fail("plans", f"plans: missing plan {kind!r}")
    for kind, raw in plans_raw.items():
        if kind not in KINDS:
            raise fail(str(kind), f"unknown reminder kind {kind!r} (known: {', '.join(KINDS)})")
        if not isinstance(raw, dict):
            raise fail(kind, f"{kind}: must be a mapping")
        unknown = sorted(set(map(str, raw)) - PLAN_FIELDS)
        if unknown:
            raise ContentError(path, _line(path, unknown[0], after=_line(path, kind)),
                               f"{kind}: unknown field(s) {unknown} (known: "
                               f"{', '.join(sorted(PLAN_FIELDS))})")
        try:
            anchor = raw.get("anchor")
            if anchor not in ANCHORS:
                raise ValueError(f"anchor must be one of {', '.join(ANCHORS)}")
            offset = parse_offset(str(raw.get("offset", "0")))
            expires = raw.get("expires")
            valid_for = raw.get("valid_for")
            if (expires is None) == (valid_for is None):
                raise ValueError("give exactly one of expires or valid_for")
            if expires is not None:
                if not isinstance(expires, dict) or expires.get("anchor") not in ANCHORS:
                    raise ValueError("expires needs an anchor (booking, start or end)")
                if set(expires) - {"anchor", "offset"}:
                    raise ValueError(f"expires: unknown field(s) "
                                     f"{sorted(set(expires) - {'anchor', 'offset'})} (known: "
                                     "anchor, offset)")
                exp_anchor, exp_offset, vf = expires["anchor"], parse_offset(
                    str(expires.get("offset", "0"))), None
            else:
                exp_anchor, exp_offset, vf = None, Offset(), parse_duration(str(valid_for))
                if vf <= timedelta(0):
                    raise ValueError("valid_for must be positive")
            if exp_anchor == anchor and exp_offset.days <= offset.days \
                    and exp_offset.elapsed <= offset.elapsed:
                # The planner writes nothing when expiry is not after the moment: never sent.
                raise ValueError("expires is never after the reminder's moment, so it would "
                                 "never be sent: make expires.offset later than offset")
            quiet = raw.get("quiet_hours")
            if quiet not in ("send", "defer"):
                raise ValueError("quiet_hours must be send or defer")
            plans[kind] = Plan(kind, anchor, offset, exp_anchor, exp_offset, vf, quiet == "send",
                               bool(raw.get("evening_fallback", False)),
                               bool(raw.get("only_if_course_incomplete", False)),
                               bool(raw.get("treatment_only", False)))
        except ValueError as exc:
            raise fail(kind, f"{kind}: {exc}") from None

    eng_raw = data.get("engine") or {}
    if not isinstance(eng_raw, dict):
        raise fail("engine", "engine: must be a mapping")
    unknown = sorted(set(map(str, eng_raw)) - set(Engine.__dataclass_fields__))
    if unknown:
        raise fail(unknown[0], f"engine: unknown setting(s) {unknown} (known: "
                   f"{', '.join(Engine.__dataclass_fields__)})")
    try:
        defaults = Engine()
        engine = Engine(
            interval_seconds=float(eng_raw.get("interval_seconds", defaults.interval_seconds)),
            batch_size=int(eng_raw.get("batch_size", defaults.batch_size)),
            max_per_second=float(eng_raw.get("max_per_second", defaults.max_per_second)),
            per_chat_seconds=float(eng_raw.get("per_chat_seconds", defaults.per_chat_seconds)),
            concurrency=int(eng_raw.get("concurrency", defaults.concurrency)),
            max_attempts=int(eng_raw.get("max_attempts", defaults.max_attempts)),
            backoff=tuple(parse_duration(str(b)) for b in eng_raw.get("backoff", ["30s"]))
            if "backoff" in eng_raw else defaults.backoff,
            sending_lease=parse_duration(str(eng_raw["sending_lease"]))
            if "sending_lease" in eng_raw else defaults.sending_lease,
            invite_valid_for=parse_duration(str(eng_raw["invite_valid_for"]))
            if "invite_valid_for" in eng_raw else defaults.invite_valid_for,
            upcoming_days=int(eng_raw.get("upcoming_days", defaults.upcoming_days)),
            send_timeout=float(eng_raw.get("send_timeout", defaults.send_timeout)),
        )
        if engine.batch_size < 1 or engine.concurrency < 1 or engine.max_per_second <= 0 \
                or engine.max_attempts < 1 or not engine.backoff or engine.interval_seconds <= 0:
            raise ValueError("batch_size, concurrency, max_per_second, max_attempts, interval "
                             "must be positive and backoff non-empty")
    except (ValueError, TypeError) as exc:
        raise fail("engine", f"engine: {exc}") from None
    try:
        push_valid_for = parse_duration(str(data.get("push_valid_for", "1h")))
    except ValueError as exc:
        raise fail("push_valid_for", str(exc)) from None

    texts_raw = data.get("texts")
    if not isinstance(texts_raw, dict):
        raise fail("texts", "texts: a mapping of text keys is required")
    for key in REQUIRED_TEXTS:
        if key not in texts_raw:
            raise fail("texts", f"texts: missing {key!r}")
    for key, value in texts_raw.items():
        key = str(key)
        problem = not_a_text(key, value)
        if problem or not value.strip():
            raise fail(key, problem or f"{key}: must be a non-empty text")
        sample = check_text(path, _line(path, key), key, value, PLACEHOLDERS,
                            caption=key.endswith("_caption"))
        if key.startswith("button_") and len(sample) > BUTTON_LIMIT:
            raise fail(key, f"{key}: button label longer than {BUTTON_LIMIT}")
    return ReminderContent(plans, engine, Texts(dict(texts_raw), clinic_name, contact_line),
                           push_valid_for, path,
                           frozenset(w.strip().casefold() for w in words))


def content_from_messages(content_dir: Path, messages: Any) -> ReminderContent:
    try:
        clinic = str(messages.raw("clinic_name"))
    except KeyError:
        clinic = "the clinic"
    return load_reminder_content(content_dir, clinic, messages.contact_line())
