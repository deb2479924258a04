"""Typed answers -> stored values, or a specific reason (a text key + params) to ask again.

Pure functions of the text (and `today` for dates): no Telegram, no database, no clock.
Stored values: choice -> option id; multi_choice -> list of option ids; yes_no -> "yes"/"no";
text -> the cleaned text; phone -> E.164 ("+447946000958"); date -> ISO "2027-01-15".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import phonenumbers
from phonenumbers import NumberParseException, ValidationResult

from bot.inputs import is_number
from bot.intake.spec import Question


@dataclass(frozen=True)
class Invalid:
    key: str  # a text key in intake.yaml, e.g. "error_phone_short"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Valid:
    value: Any


Parsed = Valid | Invalid

YES = {"yes", "y", "yeah", "yep", "да", "oui", "si", "sí", "ja", "true", "1"}
NO = {"no", "n", "nope", "нет", "non", "nein", "false", "0"}
_SPACE = re.compile(r"\s+")
_CONTROL = {"Cc", "Cf", "Cs", "Co", "Cn"}
# Format characters that are part of the text: the zero-width non-joiner (Persian "می‌خواهم")
# and joiner (emoji sequences such as "👩‍⚕️"). Other format characters (bidi overrides,
# zero-width spaces) still go.
_KEEP = "\n\u200c\u200d"


def clean_text(raw: str) -> str:
    """Unicode-normalised, control characters removed (newlines, ZWNJ and ZWJ kept), spaces
    trimmed."""
    text = unicodedata.normalize("NFC", raw)
    text = "".join(ch for ch in text if ch in _KEEP or unicodedata.category(ch) not in _CONTROL)
    lines = [_SPACE.sub(" ", line).strip() for line in text.split("\n")]
    return "\n".join(line for line in lines if line).strip()


def _key(text: str) -> str:
    return _SPACE.sub(" ", clean_text(text).casefold()).strip(" .!")


def _labels(question: Question) -> list[str]:
    """The options' labels, for a hint that lists them (the flow shows one per line)."""
    return [o.label for o in question.options]


def _match_option(question: Question, token: str) -> str | Invalid | None:
    """The option `token` names: its number, its label or id, or the start of exactly one
    label, ending at a word's end ("no" -> "No, never", "facial" -> "Facial rejuvenation").
    Invalid when it starts several labels ("yes": "Yes, mesotherapy", "Yes, other ...")."""
    key = _key(token)
    if not key:
        return None
    if is_number(key) and 1 <= int(key) <= len(question.options):
        return question.options[int(key) - 1].id
    for option in question.options:
        if key in (_key(option.label), option.id):
            return option.id
    starting = [o for o in question.options
                if (label := _key(o.label)).startswith(key) and not label[len(key)].isalnum()]
    if len(starting) == 1:
        return starting[0].id
    if starting:
        return Invalid("error_choose_ambiguous",
                       {"typed": clean_text(token), "options": [o.label for o in starting]})
    return None


def parse_choice(question: Question, text: str) -> Parsed:
    option = _match_option(question, text)
    if isinstance(option, Invalid):
        return option
    if option is None:
        return Invalid("error_choose", {"options": _labels(question)})
    return Valid(option)


def check_selection(question: Question, selected: list[str]) -> Invalid | None:
    if not selected:
        return Invalid("error_select_one")
    limit = question.validation.get("max_selected")
    if limit and len(selected) > limit:
        return Invalid("error_too_many", {"max": limit})
    if len(selected) > 1:
        for option_id in selected:
            option = question.option(option_id)
            if option is not None and option.exclusive:
                return Invalid("error_exclusive", {"option": option.label})
    return None


def parse_multi(question: Question, text: str) -> Parsed:
    tokens = [t for t in re.split(r"[,;\n]+|\s+and\s+|\s+&\s+", text) if t.strip()]
    chosen: list[str] = []
    for token in tokens:
        option = _match_option(question, token)
        if isinstance(option, Invalid):
            return option
        if option is None:
            return Invalid("error_choose_multi", {"options": _labels(question)})
        if option not in chosen:
            chosen.append(option)
    problem = check_selection(question, chosen)
    if problem is not None:
        if not chosen:
            return Invalid("error_choose_multi", {"options": _labels(question)})
        return problem
    return Valid([o.id for o in question.options if o.id in chosen])  # in the file's order


def parse_yes_no(text: str) -> Parsed:
    key = _key(text)
    if key in YES:
        return Valid("yes")
    if key in NO:
        return Valid("no")
    return Invalid("error_yes_no")


def parse_text(question: Question, text: str) -> Parsed:
    cleaned = clean_text(text)
    if not cleaned:
        return Invalid("error_text_empty")
    if not any(unicodedata.category(ch)[0] in "LN" for ch in cleaned):
        return Invalid("error_text_symbols")
    max_length = question.validation.get("max_length", 1000)
    if len(cleaned) > max_length:
        return Invalid("error_text_long", {"length": len(cleaned), "max": max_length})
    min_length = question.validation.get("min_length", 1)
    if len(cleaned) < min_length:
        return Invalid("error_text_short", {"min": min_length})
    return Valid(cleaned)


_PHONE_CHARS = re.compile(r"^\+?[\d\s().\-/]+$")


def parse_phone(text: str, region: str = "GB") -> Parsed:
    raw = clean_text(text).replace("\n", " ")
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    if not raw or not _PHONE_CHARS.match(raw) or raw.count("+") > 1:
        return Invalid("error_phone_letters")
    digits = re.sub(r"\D", "", raw)
    if len(digits) < 6:
        return Invalid("error_phone_short")
    if len(digits) > 15:
        return Invalid("error_phone_long")
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException as exc:
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE:
            return Invalid("error_phone_country")
        if exc.error_type in (NumberParseException.TOO_SHORT_NSN,
                              NumberParseException.TOO_SHORT_AFTER_IDD):
            return Invalid("error_phone_short")
        if exc.error_type == NumberParseException.TOO_LONG:
            return Invalid("error_phone_long")
        return Invalid("error_phone_invalid")
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason == ValidationResult.INVALID_COUNTRY_CODE:
        return Invalid("error_phone_country" if raw.startswith("+") else "error_phone_invalid")
    if reason == ValidationResult.TOO_SHORT:
        return Invalid("error_phone_short")
    if reason == ValidationResult.TOO_LONG:
        return Invalid("error_phone_long")
    if not phonenumbers.is_valid_number(number):
        return Invalid("error_phone_invalid")
    return Valid(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def format_phone(e164: str) -> str:
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


_MONTHS = {m: i for i, names in enumerate(
    [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",),
     ("jun", "june"), ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"),
     ("oct", "october"), ("nov", "november"), ("dec", "december")], 1) for m in names}
_NUMERIC = re.compile(r"^(\d{1,2})[./\-\s](\d{1,2})(?:[./\-\s](\d{2}|\d{4}))?$")
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_WORDY = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?\s+([a-z]+)\.?(?:\s+(\d{4}))?$")
_WORDY_US = re.compile(r"^([a-z]+)\.?\s+(\d{1,2})(?:st|nd|rd|th)?(?:,?\s+(\d{4}))?$")


def parse_date(question: Question, text: str, today: date) -> Parsed:
    """Day-first dates (the clinic's convention): 15/01/2027, 15.1, 2027-01-15, 15 Jan, today."""
    key = _key(text)
    example = (today + timedelta(days=14)).strftime("%d/%m/%Y")
    year_given = True
    try:
        if key in ("today", "now"):
            value = today
        elif key == "tomorrow":
            value = today + timedelta(days=1)
        elif m := _ISO.match(key):
            value = date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        elif m := _NUMERIC.match(key):
            day, month, year = int(m.group(1)), int(m.group(2)), m.group(3)
            year_given = year is not None
            year_n = (int(year) + 2000 if len(year) == 2 else int(year)) if year else today.year
            value = date(year_n, month, day)
        elif (m := _WORDY.match(key)) and m.group(2) in _MONTHS:
            year_given = m.group(3) is not None
            value = date(int(m.group(3) or today.year), _MONTHS[m.group(2)], int(m.group(1)))
        elif (m := _WORDY_US.match(key)) and m.group(1) in _MONTHS:
            year_given = m.group(3) is not None
            value = date(int(m.group(3) or today.year), _MONTHS[m.group(1)], int(m.group(2)))
        else:
            return Invalid("error_date_format", {"example": example})
    except ValueError:
        return Invalid("error_date_invalid")
    earliest = today + timedelta(days=question.validation.get("not_before_days", 0))
    if value < earliest and not year_given:
        try:
            value = value.replace(year=value.year + 1)  # "15 Jan" in December means next year
        except ValueError:
            return Invalid("error_date_invalid")
    if value < earliest:
        return Invalid("error_date_past", {"earliest": earliest.strftime("%d/%m/%Y")})
    latest_days = question.validation.get("not_after_days")
    if latest_days is not None and value > today + timedelta(days=latest_days):
        return Invalid("error_date_far",
                       {"latest": (today + timedelta(days=latest_days)).strftime("%d/%m/%Y")})
    return Valid(value.isoformat())


def date_passed(question: Question, value: Any, today: date) -> bool:
    """A stored date answer that is now earlier than the question allows: days went by since
    it was given (a patient back a month later, an update opened months later)."""
    try:
        stored = date.fromisoformat(str(value))
    except ValueError:
        return False
    return stored < today + timedelta(days=question.validation.get("not_before_days", 0))


def parse_typed(question: Question, text: str, today: date) -> Parsed:
    if question.kind == "choice":
        return parse_choice(question, text)
    if question.kind == "multi_choice":
        return parse_multi(question, text)
    if question.kind == "yes_no":
        return parse_yes_no(text)
    if question.kind == "text":
        return parse_text(question, text)
    if question.kind == "phone":
        return parse_phone(text, question.validation.get("region", "GB"))
    if question.kind == "date":
        return parse_date(question, text, today)
    raise ValueError(f"unknown kind {question.kind}")
