"""content/intake.yaml -> IntakeSpec, validated at start; any problem is a ContentError file:line."""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import phonenumbers
import yaml

from bot.content import BUTTON_LIMIT, ContentError, ContentLoader, check_text, fill, not_a_text

KINDS = ("choice", "multi_choice", "yes_no", "text", "phone", "date")
_ID = re.compile(r"^[a-z][a-z0-9_]{0,19}$")
REQUIRED_TEXTS = (
    "menu_button", "button_agree", "button_decline", "button_back", "button_skip", "button_done",
    "button_yes", "button_no", "button_cancel", "button_submit", "button_edit", "button_review",
    "button_update", "button_delete", "button_delete_confirm", "button_keep",
    "button_share_phone", "button_continue", "button_back_review", "button_cancel_confirm",
    "button_cancel_keep", "cancel_confirm", "cancel_confirm_update", "keyboard_closed", "declined",
    "cancelled", "cancelled_update", "error_contact_not_yours", "date_passed_again",
    "declined_kept", "error_choose_ambiguous", "option_line",
    "staff_contact_superseded", "edit_not_taken", "edit_not_taken_sent",
    "already_agreed",
    "nothing_to_cancel",
    "progress", "current_answer", "hint_cancel", "resumed", "still_open", "answered", "skipped",
    "none_selected", "review_title", "review_line", "submitted", "returning", "deleted",
    "delete_confirm", "stale", "consent_changed", "contact_saved", "unavailable",
    "error_choose", "error_choose_multi", "error_select_one", "error_too_many", "error_exclusive",
    "error_yes_no", "error_text_empty", "error_text_short", "error_text_long",
    "error_text_symbols", "error_phone_letters", "error_phone_short", "error_phone_long",
    "error_phone_country", "error_phone_invalid", "error_date_format", "error_date_invalid",
    "error_date_past", "error_date_far", "error_not_text", "staff_title", "staff_title_update",
    "staff_flags", "staff_flag_line", "staff_no_flags", "staff_consent", "staff_button_chat",
    "staff_button_contact", "staff_contact", "staff_not_found", "staff_only",
    "staff_console_button", "staff_list_title", "staff_list_line", "staff_list_empty",
    "stat_intakes_week", "stat_intakes_flagged_week",
)
# The {placeholders} the code fills in for intake.yaml texts (IntakeSpec.t gives clinic_name; the
# rest are the names bot/intake passes to t/fill). The consent gets only {clinic_name}.
PLACEHOLDERS = frozenset({
    "clinic_name", "answer", "count", "date", "earliest", "example", "flags", "label", "latest",
    "length", "max", "min", "n", "name", "note", "option", "options", "patient_id", "phone",
    "question", "total", "typed", "version", "when"})


class _Map(dict):
    line: int = 1


class _LineLoader(ContentLoader):
    """Content's SafeLoader (no key twice) whose mappings remember the line they start on."""


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    result = _Map(loader.construct_mapping(node, deep=True))
    result.line = node.start_mark.line + 1
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)


@dataclass(frozen=True)
class Option:
    id: str
    label: str
    exclusive: bool = False


@dataclass
class Question:
    id: str
    short: str
    text: str
    kind: str
    options: list[Option] = field(default_factory=list)
    flag: frozenset[str] = frozenset()
    flag_note: str = ""
    optional: bool = False
    # The answer tells what happened before (allergy history): a one-word red flag in it
    # ("hives", "anaphylaxis") names the past; only an urgent phrase alerts (bot/qa.py).
    history: bool = False
    ask_if: tuple[str, frozenset[str]] | None = None
    validation: dict[str, Any] = field(default_factory=dict)
    line: int = 0

    def option(self, option_id: str) -> Option | None:
        return next((o for o in self.options if o.id == option_id), None)

    @property
    def choices(self) -> list[Option]:
        """Buttons for the kinds answered by tapping (yes/no included)."""
        if self.kind == "yes_no":
            return [Option("yes", ""), Option("no", "")]
        return self.options


@dataclass
class IntakeSpec:
    consent_version: str
    consent_text: str  # a template: {clinic_name}
    questions: list[Question]
    texts: dict[str, str]
    path: Path
    clinic_name: str = "the clinic"

    def __post_init__(self) -> None:
        self.by_id = {q.id: q for q in self.questions}

    @property
    def consent_sha256(self) -> str:
        return hashlib.sha256(self.consent_text.encode()).hexdigest()

    def t(self, key: str, **params: object) -> str:
        """A text with its placeholders filled in, each value HTML-escaped."""
        values = {"clinic_name": html.escape(self.clinic_name, quote=False)}
        values.update({k: html.escape(str(v), quote=False) for k, v in params.items()})
        return fill(self.texts[key], values, f"intake.yaml:{key}")

    def fill(self, key: str, **values: object) -> str:
        """A text filled with values the caller has already escaped (HTML fragments)."""
        return fill(self.texts[key], values, f"intake.yaml:{key}")

    def consent(self) -> str:
        return fill(self.consent_text, {"clinic_name": html.escape(self.clinic_name, quote=False)},
                    "intake.yaml:consent")

    def question(self, qid: str | None) -> Question | None:
        return self.by_id.get(qid or "")


def _check_html(path: Path, line: int, what: str, template: str,
                names: frozenset[str] = PLACEHOLDERS) -> None:
    plain = check_text(path, line, what, template, names)
    if not plain.strip():
        raise ContentError(path, line, f"{what}: empty")


def _str(path: Path, line: int, data: dict, key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        hint = not_a_text(key, value) if value is not None else None
        raise ContentError(path, line, f"{what}: {hint or repr(key) + ' must be a non-empty text'}")
    return value


def _parse_question(path: Path, raw: Any, seen: dict[str, Question], index: int) -> Question:
    if not isinstance(raw, dict):
        raise ContentError(path, 1, f"question {index + 1} must be a mapping")
    line = getattr(raw, "line", 1)
    unknown = set(raw) - {"id", "short", "text", "kind", "options", "flag", "flag_note",
                          "optional", "history", "ask_if", "validation"}
    if unknown:
        raise ContentError(path, line, f"unknown field(s) {sorted(unknown)}")
    qid = raw.get("id")
    if not isinstance(qid, str) or not _ID.match(qid):
        raise ContentError(path, line, "id: 1-20 of a-z, 0-9 and _, starting with a letter")
    if qid in seen:
        raise ContentError(path, line, f"duplicate question id {qid!r}")
    what = f"question {qid!r}"
    kind = raw.get("kind")
    if kind not in KINDS:
        raise ContentError(path, line, f"{what}: kind must be one of {', '.join(KINDS)}")
    text = _str(path, line, raw, "text", what)
    if "{" in text or "}" in text:  # shown as written: {clinic_name} would reach patients as is
        raise ContentError(path, line, f"{what}: question texts take no {{placeholders}} or braces")
    _check_html(path, line, what, text, frozenset())
    short = _str(path, line, raw, "short", what)
    if len(short) > 40:
        raise ContentError(path, line, f"{what}: short label longer than 40 characters")
    options: list[Option] = []
    if kind in ("choice", "multi_choice"):
        raw_options = raw.get("options")
        if not isinstance(raw_options, list) or len(raw_options) < 2:
            raise ContentError(path, line, f"{what}: needs at least two options")
        for opt in raw_options:
            oline = getattr(opt, "line", line)
            if not isinstance(opt, dict) or not isinstance(opt.get("id"), str) \
                    or not _ID.match(opt["id"]):
                raise ContentError(path, oline, f"{what}: each option needs an id (a-z, 0-9, _)")
            label = _str(path, oline, opt, "label", f"{what} option {opt['id']!r}")
            if len(label) > BUTTON_LIMIT - 4:
                raise ContentError(path, oline, f"{what}: option label too long for a button")
            if any(o.id == opt["id"] for o in options):
                raise ContentError(path, oline, f"{what}: duplicate option {opt['id']!r}")
            options.append(Option(opt["id"], label, bool(opt.get("exclusive", False))))
    elif "options" in raw:
        raise ContentError(path, line, f"{what}: only choice questions have options")
    flag_raw = raw.get("flag")
    flag: frozenset[str] = frozenset()
    if flag_raw is not None:
        values = flag_raw if isinstance(flag_raw, list) else [flag_raw]
        values = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
        values = ["yes" if v == "true" else "no" if v == "false" else v for v in values]
        allowed = {"yes", "no"} if kind == "yes_no" else {o.id for o in options}
        if kind not in ("choice", "multi_choice", "yes_no"):
            raise ContentError(path, line, f"{what}: only choice and yes/no answers can flag")
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ContentError(path, line, f"{what}: flag {bad} is not one of {sorted(allowed)}")
        flag = frozenset(values)
        _str(path, line, raw, "flag_note", what)
    ask_if = None
    if raw.get("ask_if") is not None:
        cond = raw["ask_if"]
        if not isinstance(cond, dict) or cond.get("question") not in seen or "is" not in cond:
            raise ContentError(path, line, f"{what}: ask_if needs an earlier question and 'is'")
        target = seen[cond["question"]]
        values = cond["is"] if isinstance(cond["is"], list) else [cond["is"]]
        values = ["yes" if v is True else "no" if v is False else str(v) for v in values]
        allowed = {"yes", "no"} if target.kind == "yes_no" else {o.id for o in target.options}
        if target.kind not in ("choice", "multi_choice", "yes_no") or any(
                v not in allowed for v in values):
            raise ContentError(path, line, f"{what}: ask_if must name answers of a choice, "
                               "multi_choice or yes/no question")
        ask_if = (target.id, frozenset(values))
    validation = raw.get("validation") or {}
    if not isinstance(validation, dict):
        raise ContentError(path, line, f"{what}: validation must be a mapping")
    allowed_rules = {"text": {"min_length", "max_length"}, "phone": {"region"},
                     "date": {"not_before_days", "not_after_days"},
                     "multi_choice": {"max_selected"}}.get(kind, set())
    if set(validation) - allowed_rules:
        raise ContentError(path, line, f"{what}: validation for {kind} allows only {sorted(allowed_rules)}")
    for key in ("min_length", "max_length", "not_before_days", "not_after_days", "max_selected"):
        if key in validation and (not isinstance(validation[key], int) or validation[key] < 0):
            raise ContentError(path, line, f"{what}: {key} must be a whole number >= 0")
    if kind == "text":
        validation.setdefault("min_length", 1)
        validation.setdefault("max_length", 1000)
        if not 1 <= validation["min_length"] <= validation["max_length"] <= 3000:
            raise ContentError(path, line, f"{what}: need 1 <= min_length <= max_length <= 3000")
    if kind == "phone":
        region = validation.setdefault("region", "GB")
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ContentError(path, line, f"{what}: unknown phone region {region!r}")
    return Question(id=qid, short=short, text=text, kind=kind, options=options, flag=flag,
                    flag_note=str(raw.get("flag_note") or ""), optional=bool(raw.get("optional")),
                    history=bool(raw.get("history")), ask_if=ask_if, validation=validation, line=line)


def load_intake(path: Path, clinic_name: str = "the clinic") -> IntakeSpec:
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ContentError(path, 0, f"cannot read: {exc.strerror}") from None
    try:
        data = yaml.load(source, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ContentError(path, mark.line + 1 if mark else 1,
                           getattr(exc, "problem", None) or "invalid YAML") from None
    if not isinstance(data, dict):
        raise ContentError(path, 1, "must be a mapping with consent, questions and texts")
    consent = data.get("consent")
    if not isinstance(consent, dict):
        raise ContentError(path, 1, "missing 'consent' (version and text)")
    cline = getattr(consent, "line", 1)
    version = str(consent.get("version") or "")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,32}", version):
        raise ContentError(path, cline, "consent version: 1-32 of letters, digits, . _ -")
    consent_text = _str(path, cline, consent, "text", "consent")
    _check_html(path, cline, "consent", consent_text, frozenset({"clinic_name"}))
    raw_questions = data.get("questions")
    if not isinstance(raw_questions, list) or not raw_questions:
        raise ContentError(path, 1, "missing 'questions' (a list)")
    seen: dict[str, Question] = {}
    questions = []
    for index, raw in enumerate(raw_questions):
        question = _parse_question(path, raw, seen, index)
        seen[question.id] = question
        questions.append(question)
    if not any(q.kind == "phone" for q in questions):
        raise ContentError(path, 1, "the questionnaire needs a phone question (staff call back)")
    texts = data.get("texts")
    if not isinstance(texts, dict):
        raise ContentError(path, 1, "missing 'texts'")
    tline = getattr(texts, "line", 1)
    for key in REQUIRED_TEXTS:
        if key not in texts:  # a value that is not text, or empty, fails below at its line
            raise ContentError(path, tline, f"texts: missing {key!r}")
    lines = source.splitlines()
    for key, value in texts.items():
        line = next((i for i, x in enumerate(lines, 1) if x.strip().startswith(f"{key}:")), tline)
        problem = not_a_text(str(key), value)
        if problem:
            raise ContentError(path, line, f"texts: {problem}")
        _check_html(path, line, f"texts: {key}", value)
        if key.startswith("button_") or key == "menu_button":
            if len(value) > BUTTON_LIMIT - 20:
                raise ContentError(path, line, f"texts: {key} is too long for a button")
    return IntakeSpec(consent_version=version, consent_text=consent_text, questions=questions,
                      texts={str(k): v for k, v in texts.items()}, path=path,
                      clinic_name=clinic_name)
