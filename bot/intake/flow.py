"""The intake questionnaire as a state machine over database rows. No Telegram in here.

Every step loads the patient's row, applies one event (a typed answer, a button, /cancel), saves,
and returns what to show as plain data (`Reply`). Progress lives only in the database, so a
restart, another process, or a patient returning days later continues exactly where they were.

Navigation rule: after any answer the patient goes to the first question (in file order) that
applies and is unanswered; when none is left, to the review. Back shows the previous applicable
question; Edit (from the review) shows that question. Both therefore return naturally.

Callback data (<= 64 bytes; the intake id is re-checked against the pressing patient):
  ik:go                      entry: resume, returning-patient screen, or consent
  ik:cy:<ver> / ik:cn:<ver>  agree / decline consent version <ver>
  ik:<id>:a:<q>:<opt>        answer choice/yes-no question <q> with <opt>
  ik:<id>:t:<q>:<opt>        toggle <opt> of multi-choice <q>;  ik:<id>:d:<q>  done
  ik:<id>:s:<q>              skip optional <q>;  ik:<id>:b  back;  ik:<id>:e:<q>  edit <q>
  ik:<id>:sub                submit;  ik:<id>:x  cancel (asks first when there are answers)
  ik:<id>:xy / ik:<id>:k     cancel confirmed / not: go on where they were
  ik:<id>:r                  back to the review, the answer opened with Edit unchanged
  ik:view / ik:upd / ik:del / ik:delok   returning patient: view, update, delete (confirmed)
  iks:<id>                   staff: show the patient's phone number
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, and_, bindparam, cast, delete, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit, telegram_html
from bot.crypto import CryptoBox, CryptoError
from bot.db.intake_models import ACTIVE, SUBMITTED, SUPERSEDED, Intake, IntakeConsent
from bot.db.models import Patient
from bot.db.privacy_models import AuditEvent
from bot.inputs import is_number
from bot.intake import answers as parse
from bot.intake.spec import IntakeSpec, Question

log = logging.getLogger(__name__)

Button = tuple[str, str]  # (label, callback_data); a label starting "url:" is never used
REVIEW_ANSWER_LIMIT = 300
TYPED_KEPT = 60  # ids of the latest typed answers kept, to recognise an edit of one
STAFF_BLOCK = 3000  # characters per block of the staff summary (a page holds up to 3800)
NOTIFIED = "intake_staff_notified"  # the audit action once a staff chat got the summary
# The submit's own notice may still be on its way: the staff group's rate limit (about 20
# messages a minute) can hold a burst of summaries for minutes.
NOTICE_GRACE = timedelta(minutes=15)
NOTICE_WITHIN = timedelta(days=7)  # older ones: staff find them in the console
_PRELOADED = "intake_preloaded"  # session.info key: patient id -> active row read by with_patient
# Built once: SQLAlchemy then reuses the compiled statement and its result mapping as they are.
# Built per call, it cost about 40 % more CPU per questionnaire transaction (micro-benchmark).
_WITH_PATIENT = (
    select(Patient, Intake)
    .outerjoin(Intake, and_(Intake.patient_id == Patient.id, Intake.status == ACTIVE))
    .where(Patient.telegram_user_id == bindparam("uid")))
# One step of a patient at a time, also across instances: a step reads and rewrites the whole
# encrypted answers, so two at once (quick taps after a backlog, given to two instances) would
# lose one. A statement of its own: one that waited for the lock still reads the questionnaire
# as it was when it began. SQLite (one writer, one process) needs none.
# FOR NO KEY UPDATE: it still keeps out another step or an erasure of this patient, but not the
# foreign-key checks of rows inserted for them (reminders, questions, audit) elsewhere.
_LOCK_PATIENT = (select(Patient.id).where(Patient.telegram_user_id == bindparam("uid"))
                 .with_for_update(key_share=True))


@dataclass
class Out:
    """One message to show. `edit` replaces the pressed message (a button press) if possible."""

    text: str
    rows: list[list[Button]] = field(default_factory=list)
    contact_keyboard: list[list[str]] | None = None  # reply keyboard: first button shares contact
    remove_keyboard: bool = False
    edit: bool = False


@dataclass
class StaffNotice:
    intake_id: int
    patient_telegram_id: int | None
    patient_name: str
    text_parts: list[str]  # HTML fragments, flags first; the handler pages them
    contact_label: str
    chat_label: str


@dataclass
class Reply:
    messages: list[Out] = field(default_factory=list)
    staff: StaffNotice | None = None
    show_menu: bool = False  # the handler follows with the main menu
    toast: str | None = None


@dataclass
class State:
    row: Intake
    answers: dict[str, Any]
    draft: dict[str, list[str]]
    # The open question's id (stage "question"). Encrypted with the answers, since a follow-up
    # question's id ("allergies_detail") tells what the answer before it was.
    current: str | None = None
    # The open question was opened with Edit from the review (every other answer given): it
    # offers "Back to review" (the answer unchanged) instead of Back and Cancel.
    editing: bool = False
    # Said above the next step shown, once (not saved): e.g. why a date is asked again.
    notice: str | None = None
    # [message id, question id] of the latest typed answers: an edit of one is not read, and
    # the patient is told so (encrypted with the answers: a question id tells an answer).
    typed: list[list[Any]] = field(default_factory=list)


class IntakeFlow:
    def __init__(self, spec: IntakeSpec, box: CryptoBox, tz: ZoneInfo) -> None:
        self.spec = spec
        self.box = box
        self.tz = tz

    # ------------------------------------------------------------------ persistence
    @staticmethod
    def _context(patient_id: int) -> str:
        return f"intake:{patient_id}"

    def _load(self, row: Intake) -> State:
        data = self.box.decrypt_json(row.data, context=self._context(row.patient_id))
        # No "current" at stage "question": stored before migration 0013 kept it here. The
        # flow does not guess which question the patient sees (they may have gone back, or a
        # question was added since): a typed reply re-shows the first unanswered question, and
        # a pressed button names its own.
        return State(row, dict(data.get("answers", {})), dict(data.get("draft", {})),
                     data.get("current"), bool(data.get("editing", False)),
                     typed=list(data.get("typed", [])))

    def _save(self, state: State, now: datetime) -> None:
        state.row.data = self.box.encrypt_json(
            {"answers": state.answers, "draft": state.draft, "current": state.current,
             "editing": state.editing, "typed": state.typed},
            context=self._context(state.row.patient_id))
        state.row.updated_at = now

    async def with_patient(self, session: AsyncSession,
                           telegram_user_id: int) -> tuple[Patient | None, Intake | None]:
        """The patient and their open questionnaire (if any) in one query (on PostgreSQL after
        locking the patient row): every intake update starts here. The row is handed to this
        transaction's next `_active`, which then needs no query of its own; nothing is
        decrypted yet."""
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(_LOCK_PATIENT, {"uid": telegram_user_id})
        found = (await session.execute(_WITH_PATIENT, {"uid": telegram_user_id})).first()
        if found is None:
            return None, None
        patient, row = found
        session.info.setdefault(_PRELOADED, {})[patient.id] = row
        return patient, row

    async def still_open(self, session: AsyncSession, telegram_user_id: int) -> str | None:
        """The note /start and /menu add while the user has a questionnaire open (their next
        message would answer it); None when they have none. Nothing is decrypted."""
        found = await session.scalar(
            select(Intake.id).join(Patient, Patient.id == Intake.patient_id)
            .where(Patient.telegram_user_id == telegram_user_id, Intake.status == ACTIVE)
            .limit(1))
        return self.t("still_open") if found is not None else None

    async def _active(self, session: AsyncSession, patient: Patient) -> State | None:
        preloaded = session.info.get(_PRELOADED, {})
        if patient.id in preloaded:  # used once: a later call sees what this step changed
            row = preloaded.pop(patient.id)
        else:
            row = await session.scalar(select(Intake).where(
                Intake.patient_id == patient.id, Intake.status == ACTIVE))
        return self._load(row) if row is not None else None

    async def _submitted(self, session: AsyncSession, patient: Patient) -> Intake | None:
        return await session.scalar(select(Intake).where(
            Intake.patient_id == patient.id, Intake.status == SUBMITTED
        ).order_by(Intake.submitted_at.desc(), Intake.id.desc()))

    def waiting(self, row: Intake | None) -> tuple[str | None, bool]:
        """The kind of the question an open questionnaire waits for (None when none is), and
        whether it asks about the past (Question.history); one decryption for both. One the
        flow cannot name (content changed, position from before 0013, data unreadable) is
        "unknown": the flow deals with it, after the message was checked for a red flag."""
        if row is None or row.stage != "question":
            return None, False
        try:
            question = self.spec.question(self._load(row).current)
        except CryptoError:
            question = None
        return (question.kind, question.history) if question else ("unknown", False)

    # ------------------------------------------------------------------ question order
    def applies(self, question: Question, answers: dict[str, Any]) -> bool:
        if question.ask_if is None:
            return True
        target, values = question.ask_if
        answer = answers.get(target)
        if isinstance(answer, list):  # multi_choice: any chosen option among the values
            return any(a in values for a in answer)
        return answer in values

    def applicable(self, answers: dict[str, Any]) -> list[Question]:
        return [q for q in self.spec.questions if self.applies(q, answers)]

    def _next_unanswered(self, answers: dict[str, Any]) -> Question | None:
        return next((q for q in self.applicable(answers) if q.id not in answers), None)

    def _expire_dates(self, state: State, now: datetime) -> bool:
        """Date answers that have passed since they were given are removed, so the question is
        asked again (with a note why): staff must not get a past "earliest date"."""
        today = now.astimezone(self.tz).date()
        notes = []
        for question in self.applicable(state.answers):
            value = state.answers.get(question.id)
            if question.kind == "date" and value is not None \
                    and parse.date_passed(question, value, today):
                notes.append(self.t("date_passed_again",
                                    date=_plain(self.answer_text(question, value))))
                del state.answers[question.id]
        for other in self.spec.questions:  # follow-ups of a removed answer go too
            if other.id in state.answers and not self.applies(other, state.answers):
                del state.answers[other.id]
        if notes:
            state.notice = "\n".join(notes)
        return bool(notes)

    def _goto_next(self, state: State) -> None:
        nxt = self._next_unanswered(state.answers)
        state.row.stage = "question" if nxt else "review"
        state.current = nxt.id if nxt else None
        state.editing = False

    # ------------------------------------------------------------------ rendering
    def t(self, key: str, **params: object) -> str:
        return self.spec.t(key, **params)

    def answer_text(self, question: Question, value: Any, limit: int | None = None) -> str:
        """The patient-readable answer, HTML-escaped."""
        if value is None:
            return self.t("skipped")
        if question.kind == "yes_no":
            return self.t("button_yes" if value == "yes" else "button_no")
        if question.kind == "choice":
            option = question.option(str(value))
            return html.escape(option.label if option else str(value), quote=False)
        if question.kind == "multi_choice":
            labels = [o.label for o in question.options if o.id in (value or [])]
            return html.escape(", ".join(labels) or "-", quote=False)
        if question.kind == "phone":
            return html.escape(parse.format_phone(str(value)), quote=False)
        if question.kind == "date":
            try:
                return date.fromisoformat(str(value)).strftime("%d %b %Y")
            except ValueError:
                return html.escape(str(value), quote=False)
        text = str(value)
        if limit and len(text) > limit:
            text = text[:limit].rstrip() + "…"
        return html.escape(text, quote=False)

    def _question_out(self, state: State, question: Question, note: str | None = None) -> Out:
        applicable = self.applicable(state.answers)
        ids = [q.id for q in applicable]
        n = ids.index(question.id) + 1 if question.id in ids else 1
        parts = []
        if note:
            parts.append(note)
        parts.append(self.t("progress", n=n, total=len(applicable)))
        parts.append(question.text)
        if question.id in state.answers and question.kind != "multi_choice":
            parts.append(self.t("current_answer",
                                answer=_plain(self.answer_text(question, state.answers[question.id],
                                                               REVIEW_ANSWER_LIMIT))))
        parts.append(self.t("hint_cancel"))
        text = "\n\n".join(parts)
        iid = state.row.id
        rows: list[list[Button]] = []
        if question.kind == "phone":
            nav = [self.t("button_cancel")]
            if n > 1:
                nav.insert(0, self.t("button_back"))
            if state.editing:
                nav = [self.t("button_back_review")]
            keyboard = [[self.t("button_share_phone")], nav]
            return Out(text, contact_keyboard=keyboard)
        if question.kind == "yes_no":
            rows.append([(self.t("button_yes"), f"ik:{iid}:a:{question.id}:yes"),
                         (self.t("button_no"), f"ik:{iid}:a:{question.id}:no")])
        elif question.kind == "choice":
            rows.extend([(o.label, f"ik:{iid}:a:{question.id}:{o.id}")] for o in question.options)
        elif question.kind == "multi_choice":
            selected = state.draft.get(question.id, [])
            rows.extend([(("✅ " if o.id in selected else "▫️ ") + o.label,
                          f"ik:{iid}:t:{question.id}:{o.id}")] for o in question.options)
            rows.append([(self.t("button_done"), f"ik:{iid}:d:{question.id}")])
        if question.optional:
            rows.append([(self.t("button_skip"), f"ik:{iid}:s:{question.id}")])
        nav_row = [(self.t("button_cancel"), f"ik:{iid}:x")]
        if n > 1:
            nav_row.insert(0, (self.t("button_back"), f"ik:{iid}:b"))
        if state.editing:  # opened from the review: back there, never a one-tap Cancel
            nav_row = [(self.t("button_back_review"), f"ik:{iid}:r:{question.id}")]
        rows.append(nav_row)
        return Out(text, rows)

    def _review_out(self, state: State) -> Out:
        lines = [self.t("review_title"), ""]
        rows: list[list[Button]] = []
        pair: list[Button] = []
        for question in self.applicable(state.answers):
            value = state.answers.get(question.id)
            lines.append(self.spec.fill(
                "review_line", label=html.escape(question.short, quote=False),
                answer=self.answer_text(question, value, REVIEW_ANSWER_LIMIT)))
            # A button label is plain text: "Skin & allergies", not "Skin &amp; allergies".
            pair.append((_plain(self.t("button_edit", label=question.short)),
                         f"ik:{state.row.id}:e:{question.id}"))
            if len(pair) == 2:
                rows.append(pair)
                pair = []
        if pair:
            rows.append(pair)
        rows.append([(self.t("button_submit"), f"ik:{state.row.id}:sub")])
        rows.append([(self.t("button_back"), f"ik:{state.row.id}:b"),
                     (self.t("button_cancel"), f"ik:{state.row.id}:x")])
        return Out("\n".join(lines), rows)

    def _consent_out(self, note: str | None = None) -> Out:
        text = self.spec.consent()
        if note:
            text = f"{note}\n\n{text}"
        version = self.spec.consent_version
        return Out(text, [[(self.t("button_agree"), f"ik:cy:{version}")],
                          [(self.t("button_decline"), f"ik:cn:{version}")]])

    def _current_out(self, state: State, note: str | None = None) -> Out:
        if state.row.stage == "question":
            question = self.spec.question(state.current)
            if question is not None and self.applies(question, state.answers):
                return self._question_out(state, question, note)
            self._goto_next(state)  # the content changed under a saved intake
            if state.row.stage == "question":
                return self._current_out(state, note)
        out = self._review_out(state)
        if note:
            out.text = f"{note}\n\n{out.text}"
        return out

    def _show_state(self, state: State, previous: Question | None, now: datetime,
                    pre: list[Out] | None = None, note: str | None = None) -> Reply:
        """Show where the patient now is (closing a share-contact keyboard first), and save it
        (after: showing can move on from a question the content no longer asks)."""
        messages = list(pre or [])
        if state.notice:
            note = f"{note}\n\n{state.notice}" if note else state.notice
            state.notice = None
        out = self._current_out(state, note)
        self._save(state, now)
        if previous is not None and previous.kind == "phone" and out.contact_keyboard is None:
            if not any(m.remove_keyboard for m in messages):
                messages.append(Out(self.t("keyboard_closed"), remove_keyboard=True))
        messages.append(out)
        return Reply(messages)

    # ------------------------------------------------------------------ entry & consent
    async def _record_consent(self, session: AsyncSession, patient: Patient,
                              now: datetime) -> int:
        """The patient agreed to the current consent text now: its record's id."""
        consent = IntakeConsent(patient_id=patient.id, version=self.spec.consent_version,
                                text_sha256=self.spec.consent_sha256, agreed_at=now)
        session.add(consent)
        await session.flush()
        return consent.id

    async def _consent_is_current(self, session: AsyncSession, state: State) -> bool:
        consent = await session.get(IntakeConsent, state.row.consent_id)
        return consent is not None and consent.version == self.spec.consent_version

    async def entry(self, session: AsyncSession, patient: Patient, now: datetime) -> Reply:
        state = await self._active(session, patient)
        if state is not None and not await self._consent_is_current(session, state):
            return Reply([self._consent_out(self.t("consent_changed"))])
        if state is not None:
            return self._show_state(state, None, now, note=self.t("resumed")) \
                if state.answers else self._show_state(state, None, now)
        submitted = await self._submitted(session, patient)
        if submitted is not None:
            return Reply([self._returning_out(submitted)])
        return Reply([self._consent_out()])

    async def current(self, session: AsyncSession, patient: Patient, now: datetime) -> Reply | None:
        """The open step shown again as it is (after a message that was not an answer)."""
        state = await self._active(session, patient)
        return self._show_state(state, None, now) if state is not None else None

    def _local_day(self, at: datetime | None) -> str:
        return at.astimezone(self.tz).strftime("%d %b %Y") if at else "-"

    def _returning_out(self, row: Intake) -> Out:
        return Out(self.t("returning", date=self._local_day(row.submitted_at)), [
            [(self.t("button_review"), "ik:view")],
            [(self.t("button_update"), "ik:upd")],
            [(self.t("button_delete"), "ik:del")],
            [(self.t("button_back"), "home")],  # back to the main menu it was opened from
        ])

    async def consent(self, session: AsyncSession, patient: Patient, version: str, agree: bool,
                      now: datetime) -> Reply:
        state = await self._active(session, patient)
        if not agree:
            if state is not None:  # consent withdrawn mid-way: what was given goes too
                return await self._cancel_state(session, state)
            # Decline collects nothing: no consent row, no questionnaire row. Answers sent
            # before (a new consent text shown on "Update my answers") stay: say so, and how
            # to delete them, rather than "nothing was saved".
            sent = await self._sent_at(session, patient.id)
            text = self.t("declined_kept", date=self._local_day(sent)) if sent \
                else self.t("declined")
            return Reply([Out(text, edit=True)], show_menu=True)
        if version != self.spec.consent_version:
            out = self._consent_out(self.t("consent_changed"))
            out.edit = True
            return Reply([out])
        agreed = Out(self.t("answered", question=_first_line(self.spec.consent()),
                            answer=_label_text(self.t("button_agree"))), edit=True)
        if state is not None and await self._consent_is_current(session, state):
            # Agreed already (a quick double tap, or an older consent message): the question
            # they see is not sent again; the pressed message shows the agreement.
            return Reply([agreed], toast=self.t("already_agreed"))
        if state is not None:
            # Agreed to a text that changed while the questionnaire was open: recorded, and the
            # questionnaire goes on under it.
            state.row.consent_id = await self._record_consent(session, patient, now)
        if state is None:
            consent_id = await self._record_consent(session, patient, now)
            # With a submitted request, consent is reached to update it: after "Update my
            # answers" under a consent text that changed, or from an old Agree button. Either
            # way the patient starts from what they submitted, as an update does; anyone else
            # starts at the first question.
            state = await self._open(session, patient, consent_id,
                                     await self._submitted(session, patient), now)
        return self._show_state(state, None, now, pre=[agreed])

    # ------------------------------------------------------------------ answering
    async def typed(self, session: AsyncSession, patient: Patient, text: str | None,
                    now: datetime, *, is_contact: bool = False,
                    own_contact: bool = True, message_id: int | None = None) -> Reply | None:
        """A message typed (or a contact shared) while a question is open; None: not ours.
        `own_contact`: the shared contact is the sender's own (Telegram's user_id is theirs).
        `message_id`: the message's id in the chat, remembered to recognise an edit of it."""
        state = await self._active(session, patient)
        if state is None or state.row.stage != "question":
            return None
        question = self.spec.question(state.current)
        if question is None or not self.applies(question, state.answers):
            return self._show_state(state, None, now)
        if text is None:
            return self._invalid(state, question, parse.Invalid("error_not_text"), now)
        if not is_contact:
            # The phone question's keyboard sends its labels as text. Whatever question is open
            # (a keyboard can outlive its question), they act as buttons, never as answers.
            label = parse.clean_text(text)
            if label == parse.clean_text(telegram_html.label(self.spec.texts["button_back"])):
                return await self._back(state, now)
            if label == parse.clean_text(telegram_html.label(self.spec.texts["button_cancel"])):
                return await self._ask_cancel(session, state)
            if label == parse.clean_text(
                    telegram_html.label(self.spec.texts["button_back_review"])):
                return self._back_to_review(state, question, now)
            if label == parse.clean_text(telegram_html.label(self.spec.texts["button_share_phone"])):
                if question.kind != "phone":  # a stray keyboard: closed, the open question shown
                    reply = self._show_state(state, None, now)
                    reply.messages.insert(0, Out(self.t("keyboard_closed"), remove_keyboard=True))
                    return reply
                return self._invalid(state, question, parse.Invalid("error_phone_invalid"), now)
        if is_contact and is_number(text.strip()) and not text.strip().startswith("0"):
            # Telegram sends a shared contact's international number without the +; one in
            # national digits ("07911123456", as saved in an address book) is read as typed.
            text = "+" + text.strip()
        if is_contact and question.kind != "phone":
            return self._invalid(state, question, parse.Invalid("error_not_text"), now)
        if is_contact and not own_contact:  # someone else's card, not "your number"
            return self._invalid(state, question, parse.Invalid("error_contact_not_yours"), now)
        result = parse.parse_typed(question, text, now.astimezone(self.tz).date())
        if isinstance(result, parse.Invalid):
            return self._invalid(state, question, result, now)
        pre = [Out(self.t("contact_saved"), remove_keyboard=True)] if question.kind == "phone" else []
        if message_id is not None and not is_contact:  # an answer taken: its edits are told
            state.typed = [*state.typed, [message_id, question.id]][-TYPED_KEPT:]
        return self._record(state, question, result.value, now, pre=pre)

    async def edited(self, session: AsyncSession, patient: Patient, message_id: int,
                     now: datetime) -> tuple[Reply, bool] | None:
        """The patient edited a message that answered a question (None: not one of those).
        The edit is not applied (the answer may have led to other questions, been checked for
        urgency, or gone to staff already): they are told so and how to change the answer.
        Also says whether that question asks about the past (for the urgency check)."""
        state = await self._active(session, patient)
        submitted = await self._submitted(session, patient)
        try:
            sent = self._load(submitted) if submitted is not None else None
        except CryptoError:  # a key removed before rotation: that request cannot tell
            sent = None
        for row_state in (state, sent):
            if row_state is None:
                continue
            qid = next((q for m, q in row_state.typed if m == message_id), None)
            if qid is None:
                continue
            question = self.spec.question(qid)
            history = question.history if question is not None else False
            if state is not None:  # where they are now, under the note
                return self._show_state(state, None, now, note=self.t("edit_not_taken")), history
            out = self._returning_out(submitted)
            out.text = f"{self.t('edit_not_taken_sent')}\n\n{out.text}"
            return Reply([out]), history
        return None

    def _invalid(self, state: State, question: Question, problem: parse.Invalid, now: datetime) -> Reply:
        # Not the question's id: a follow-up's ("allergies_detail") tells an earlier answer.
        log.info("intake %s: invalid answer (%s)", state.row.id, problem.key)
        # A list (option labels) is shown one per line, each quoted: "No, never" must not read
        # as "No" and "never".
        values = {k: "\n".join(self.t("option_line", option=x) for x in v) if isinstance(v, list)
                  else html.escape(str(v), quote=False) for k, v in problem.params.items()}
        note = "⚠️ " + self.spec.fill(
            problem.key, clinic_name=html.escape(self.spec.clinic_name, quote=False), **values)
        self._save(state, now)
        return Reply([self._question_out(state, question, note)])

    def _record(self, state: State, question: Question, value: Any, now: datetime,
                pre: list[Out] | None = None) -> Reply:
        state.answers[question.id] = value
        state.draft.pop(question.id, None)
        # Answers to follow-up questions that no longer apply are dropped (data minimisation).
        for other in self.spec.questions:
            if other.id in state.answers and not self.applies(other, state.answers):
                del state.answers[other.id]
        self._goto_next(state)
        return self._show_state(state, question, now, pre=pre)

    async def press(self, session: AsyncSession, patient: Patient, data: str,
                    now: datetime) -> Reply:
        """Any ik:* button. Unknown, forged or stale data re-shows the current step."""
        if data == "ik:go":
            return await self.entry(session, patient, now)
        if m := re.fullmatch(r"ik:c([yn]):([A-Za-z0-9._-]{1,32})", data):
            return await self.consent(session, patient, m.group(2), m.group(1) == "y", now)
        if data in ("ik:view", "ik:upd", "ik:del", "ik:delok"):
            return await self._returning_action(session, patient, data[3:], now)
        m = re.fullmatch(r"ik:(\d{1,9}):(a|t|d|s|b|e|r|k|sub|xy|x)(?::([a-z0-9_]{1,20}))?"
                         r"(?::([a-z0-9_]{1,20}))?",
                         data)
        state = await self._active(session, patient)
        if m is None or state is None or state.row.id != int(m.group(1)):
            return await self._stale(session, patient, state, now)
        action, qid, opt = m.group(2), m.group(3), m.group(4)
        question = self.spec.question(qid)
        current = self.spec.question(state.current) if state.row.stage == "question" else None
        if (current is None and state.current is None and state.row.stage == "question"
                and question is not None and self.applies(question, state.answers)):
            current = question  # a row from before 0013 (see _load): the button names it
            state.current = question.id
        if action == "x":
            return await self._ask_cancel(session, state, edit=True)
        if action == "xy":
            return await self._cancel_state(session, state)
        if action == "k":  # "No, go on" under the cancel question: where they were
            reply = self._show_state(state, None, now)
            if reply.messages[-1].contact_keyboard is None:
                reply.messages[-1].edit = True
            else:
                # The phone question comes as a new message (its keyboard cannot be edited
                # in): the question answered loses its buttons, or a later "Yes, stop" there
                # would delete every answer without asking.
                reply.messages.insert(0, Out(self.t(
                    "answered", question=_first_line(self.t("cancel_confirm")),
                    answer=_label_text(self.t("button_cancel_keep"))), edit=True))
            return reply
        if action == "r":
            if current is None or question is None or question.id != current.id:
                return await self._stale(session, patient, state, now)
            reply = self._back_to_review(state, current, now)
            reply.messages[-1].edit = True
            return reply
        if action == "b":
            return await self._back(state, now)
        if action == "sub":
            if state.row.stage != "review":
                return await self._stale(session, patient, state, now)
            return await self._submit(session, patient, state, now)
        if action == "e":
            if question is None or not self.applies(question, state.answers):
                return await self._stale(session, patient, state, now)
            state.row.stage, state.current = "question", question.id
            # From a review (nothing else missing): "Back to review" leaves the answer as it is.
            state.editing = self._next_unanswered(state.answers) is None
            self._seed_draft(state, question)
            # Pressed on an older screen while the phone keyboard is up: that closes it first.
            return self._show_state(state, current, now)
        # a, t, d, s act on the open question only
        if question is None or current is None or question.id != current.id:
            return await self._stale(session, patient, state, now)
        if action == "s":
            if not question.optional:
                return await self._stale(session, patient, state, now)
            reply = self._record(state, question, None, now,
                                 pre=[self._answered_out(question, None)])
            return reply
        if action == "a":
            valid = {c.id for c in question.choices} if question.kind in ("choice", "yes_no") else set()
            if opt not in valid:
                return await self._stale(session, patient, state, now)
            return self._record(state, question, opt, now, pre=[self._answered_out(question, opt)])
        if question.kind != "multi_choice":
            return await self._stale(session, patient, state, now)
        if action == "t":
            if question.option(opt or "") is None:
                return await self._stale(session, patient, state, now)
            selected = list(state.draft.get(question.id, []))
            if opt in selected:
                selected.remove(opt)
            else:
                option = question.option(opt or "")
                if option is not None and option.exclusive:
                    selected = []
                else:
                    selected = [s for s in selected if not (question.option(s) and question.option(s).exclusive)]
                selected.append(opt)
            state.draft[question.id] = [o.id for o in question.options if o.id in selected]
            self._save(state, now)
            out = self._question_out(state, question)
            out.edit = True
            return Reply([out])
        # action == "d": done
        selected = state.draft.get(question.id, [])
        problem = parse.check_selection(question, selected)
        if problem is not None:
            reply = self._invalid(state, question, problem, now)
            reply.messages[0].edit = True
            return reply
        return self._record(state, question, list(selected), now,
                            pre=[self._answered_out(question, list(selected))])

    def _answered_out(self, question: Question, value: Any) -> Out:
        return Out(self.t("answered", question=_plain_keep(question.text),
                          answer=_plain(self.answer_text(question, value, REVIEW_ANSWER_LIMIT))),
                   edit=True)

    def _seed_draft(self, state: State, question: Question) -> None:
        if question.kind == "multi_choice" and question.id in state.answers:
            state.draft[question.id] = list(state.answers[question.id] or [])

    async def _back(self, state: State, now: datetime) -> Reply:
        applicable = self.applicable(state.answers)
        ids = [q.id for q in applicable]
        previous_q = self.spec.question(state.current) if state.row.stage == "question" else None
        if state.row.stage == "review":
            target = applicable[-1]
        elif previous_q is not None and previous_q.id in ids and ids.index(previous_q.id) > 0:
            target = applicable[ids.index(previous_q.id) - 1]
        else:
            return self._show_state(state, None, now)
        state.row.stage, state.current = "question", target.id
        state.editing = False
        self._seed_draft(state, target)
        return self._show_state(state, previous_q, now)

    def _back_to_review(self, state: State, question: Question | None, now: datetime) -> Reply:
        """Leave the question opened from the review as it was answered: the choices ticked
        since (a draft) are dropped, and the review (or a question still unanswered) shown."""
        if question is not None:
            state.draft.pop(question.id, None)
        self._goto_next(state)
        return self._show_state(state, question, now)

    async def _stale(self, session: AsyncSession, patient: Patient, state: State | None,
                     now: datetime) -> Reply:
        if state is None:
            reply = await self.entry(session, patient, now)
            reply.messages[-1].text = f"{self.t('stale')}\n\n{reply.messages[-1].text}"
            return reply
        return self._show_state(state, None, now, note=self.t("stale"))

    async def cancel(self, session: AsyncSession, patient: Patient) -> Reply | None:
        state = await self._active(session, patient)
        if state is None:
            return None
        return await self._ask_cancel(session, state)

    async def _sent_at(self, session: AsyncSession, patient_id: int) -> datetime | None:
        """When the patient's answers now with staff were sent (None: none were)."""
        return await session.scalar(select(Intake.submitted_at).where(
            Intake.patient_id == patient_id, Intake.status == SUBMITTED)
            .order_by(Intake.submitted_at.desc()).limit(1))

    async def _ask_cancel(self, session: AsyncSession, state: State, edit: bool = False) -> Reply:
        """Cancel (button, keyboard key or /cancel): with answers given, asked first, since one
        tap would delete them all; with none, done at once."""
        if not state.answers and not any(state.draft.values()):
            return await self._cancel_state(session, state)
        sent = await self._sent_at(session, state.row.patient_id)
        text = self.t("cancel_confirm_update", date=self._local_day(sent)) if sent \
            else self.t("cancel_confirm")
        iid = state.row.id
        messages = []
        question = self.spec.question(state.current) if state.row.stage == "question" else None
        if question is not None and question.kind == "phone":  # its keyboard would stay up
            messages.append(Out(self.t("keyboard_closed"), remove_keyboard=True))
        messages.append(Out(text, [[(self.t("button_cancel_confirm"), f"ik:{iid}:xy")],
                                   [(self.t("button_cancel_keep"), f"ik:{iid}:k")]], edit=edit))
        return Reply(messages)

    async def _cancel_state(self, session: AsyncSession, state: State) -> Reply:
        _drop_preloaded(session, state.row.patient_id)
        await session.delete(state.row)  # the answers go with it
        await session.flush()
        # An update of answers sent before: those stay (saying "deleted" would be untrue).
        sent = await self._sent_at(session, state.row.patient_id)
        text = self.t("cancelled_update", date=self._local_day(sent)) if sent else self.t("cancelled")
        return Reply([Out(text, remove_keyboard=True)], show_menu=True)

    # ------------------------------------------------------------------ submit & staff
    async def _submit(self, session: AsyncSession, patient: Patient, state: State,
                      now: datetime) -> Reply:
        missing = self._next_unanswered(state.answers)
        if missing is not None or self._expire_dates(state, now):
            self._goto_next(state)
            return self._show_state(state, None, now)
        if not await self._consent_is_current(session, state):
            # The consent text changed since they agreed: nothing reaches staff without the
            # current one. Agreeing goes back to the review, where Submit is pressed again.
            return Reply([self._consent_out(self.t("consent_changed"))])
        keep = {q.id for q in self.applicable(state.answers)}
        state.answers = {k: v for k, v in state.answers.items() if k in keep}
        state.draft = {}
        previous = await self._submitted(session, patient)
        if previous is not None:
            previous.status = SUPERSEDED
            previous.data = self.box.encrypt_json({"answers": {}, "draft": {}},
                                                  context=self._context(patient.id))
            previous.updated_at = now
        state.row.status, state.row.stage, state.current = SUBMITTED, "review", None
        state.row.submitted_at = now
        self._save(state, now)
        await session.flush()
        await audit.record(session, now=now, action="intake_submitted",
                           actor_user_id=audit.PATIENT, patient_id=patient.id,
                           subject=f"intake:{state.row.id}")
        phone_q = next((q for q in self.spec.questions if q.kind == "phone"), None)
        phone = self.answer_text(phone_q, state.answers.get(phone_q.id)) if phone_q else "-"
        consent = await session.get(IntakeConsent, state.row.consent_id)
        staff = self._staff_notice(patient, state, consent, is_update=state.row.replaces_id is not None)
        done = Out(self.spec.fill(
            "submitted", clinic_name=html.escape(self.spec.clinic_name, quote=False),
            phone=phone), edit=True)
        return Reply([done], staff=staff, show_menu=True)

    def flags(self, answers: dict[str, Any]) -> list[tuple[Question, Any]]:
        flagged = []
        for question in self.applicable(answers):
            value = answers.get(question.id)
            values = value if isinstance(value, list) else [value]
            if question.flag and any(v in question.flag for v in values if v is not None):
                flagged.append((question, value))
        return flagged

    def _staff_notice(self, patient: Patient, state: State, consent: IntakeConsent | None,
                      is_update: bool) -> StaffNotice:
        name = patient.first_name or "patient"
        title_key = "staff_title_update" if is_update else "staff_title"
        parts = [self.t(title_key, name=name, patient_id=patient.id)]
        flags = self.flags(state.answers)
        if flags:  # contraindication flags FIRST, before anything else
            lines = [self.t("staff_flags", count=len(flags))]
            for q, v in flags:
                answer = self.answer_text(q, v)
                # The follow-up details (e.g. which allergy) belong next to the flag: those
                # asked for a flagged answer (not "Other areas" beside a flagged area).
                for follow in self.applicable(state.answers):
                    if follow.ask_if and follow.ask_if[0] == q.id and \
                            follow.ask_if[1] & q.flag and \
                            state.answers.get(follow.id) is not None:
                        answer += " — " + self.answer_text(follow, state.answers[follow.id],
                                                           REVIEW_ANSWER_LIMIT)
                lines.append(self.spec.fill(
                    "staff_flag_line", note=html.escape(q.flag_note, quote=False),
                    label=html.escape(q.short, quote=False), answer=answer))
            parts.append("\n".join(lines))
        else:
            parts.append(self.t("staff_no_flags"))
        # Answers one per line, in blocks that fit a Telegram message (the handler pages blocks).
        block: list[str] = []
        for question in self.applicable(state.answers):
            line = self.spec.fill(
                "review_line", label=html.escape(question.short, quote=False),
                answer=self.answer_text(question, state.answers.get(question.id)))
            if block and len("\n".join([*block, line])) > STAFF_BLOCK:
                parts.append("\n".join(block))
                block = []
            block.append(line)
        if block:
            parts.append("\n".join(block))
        if consent is not None:
            parts.append(self.t("staff_consent", version=consent.version,
                                when=consent.agreed_at.astimezone(self.tz).strftime("%d %b %Y %H:%M")))
        return StaffNotice(intake_id=state.row.id, patient_telegram_id=patient.telegram_user_id,
                           patient_name=name, text_parts=parts,
                           contact_label=self.t("staff_button_contact"),
                           chat_label=_plain(self.t("staff_button_chat", name=name))[:60])

    async def unnotified(self, session: AsyncSession, now: datetime, *,
                         grace: timedelta = NOTICE_GRACE, within: timedelta = NOTICE_WITHIN,
                         limit: int = 20) -> list[StaffNotice]:
        """Summaries of questionnaires submitted (more than `grace` ago, within `within`) that no
        staff chat received: the submit's own notice failed (Telegram, or the process died
        before it went out). Decrypted here, only to be sent."""
        notified = select(AuditEvent.id).where(
            AuditEvent.patient_id == Intake.patient_id, AuditEvent.action == NOTIFIED,
            AuditEvent.subject == literal("intake:") + cast(Intake.id, String)).exists()
        rows = (await session.execute(
            select(Intake, Patient).join(Patient, Patient.id == Intake.patient_id)
            .where(Intake.status == SUBMITTED, Intake.submitted_at <= now - grace,
                   Intake.submitted_at > now - within, ~notified)
            .order_by(Intake.submitted_at))).all()
        notices = []
        for row, patient in rows:
            try:
                state = self._load(row)
            except CryptoError:  # a key removed before rotation: it must not hold back the rest
                log.error("intake %s cannot be decrypted with ENCRYPTION_KEYS", row.id)
                continue
            consent = await session.get(IntakeConsent, row.consent_id)
            notices.append(self._staff_notice(patient, state, consent,
                                              is_update=row.replaces_id is not None))
            if len(notices) >= limit:
                break
        return notices

    async def audit(self, session: AsyncSession, intake_id: int, actor_user_id: int | None,
                    action: str, now: datetime) -> None:
        row = await session.get(Intake, intake_id)
        if row is not None:
            await audit.record(session, now=now, action=action, actor_user_id=actor_user_id,
                               patient_id=row.patient_id, subject=f"intake:{intake_id}")

    async def staff_recent(self, session: AsyncSession, staff_user_id: int, now: datetime,
                           limit: int = 10) -> list[tuple[int, str, str]]:
        """(intake id, escaped button label, ...) of the latest submitted requests, flags counted.

        Counting flags reads health answers, so each listed request gets an audit row.
        """
        rows = (await session.execute(
            select(Intake, Patient).join(Patient, Patient.id == Intake.patient_id)
            .where(Intake.status == SUBMITTED)
            .order_by(Intake.submitted_at.desc(), Intake.id.desc()).limit(limit))).all()
        listed = []
        for row, patient in rows:
            flags = self._flag_count(row)
            await audit.record(session, now=now, action="intake_flags_read",
                               actor_user_id=staff_user_id, patient_id=row.patient_id,
                               subject=f"intake:{row.id}")
            when = row.submitted_at.astimezone(self.tz).strftime("%d %b %H:%M") \
                if row.submitted_at else "-"
            label = self.spec.fill(
                "staff_list_line", name=html.escape((patient.first_name or "patient")[:24], quote=False),
                when=when, flags="🔒" if flags is None else f"⚠️ {flags}" if flags else "✅")
            listed.append((row.id, _plain(label)[:60], row.patient_id))
        return listed

    def _flag_count(self, row: Intake) -> int | None:
        """Flagged answers of a submitted request; None if its key is gone (one unreadable
        row must not take the staff list or the weekly figures down with it)."""
        try:
            return len(self.flags(self._load(row).answers))
        except CryptoError:
            log.error("intake %s cannot be decrypted with ENCRYPTION_KEYS", row.id)
            return None

    async def staff_view(self, session: AsyncSession, intake_id: int, staff_user_id: int,
                         now: datetime) -> StaffNotice | None:
        """The full summary (flags first) for a staff member; the read is audited."""
        row = await session.get(Intake, intake_id)
        if row is None or row.status != SUBMITTED:
            return None
        patient = await session.get(Patient, row.patient_id)
        consent = await session.get(IntakeConsent, row.consent_id)
        await audit.record(session, now=now, action="intake_read", actor_user_id=staff_user_id,
                           patient_id=row.patient_id, subject=f"intake:{intake_id}")
        return self._staff_notice(patient, self._load(row), consent,
                                  is_update=row.replaces_id is not None)

    async def stats(self, session: AsyncSession, now: datetime) -> list[tuple[str, str]]:
        rows = await session.scalars(select(Intake).where(
            Intake.status == SUBMITTED, Intake.submitted_at >= now - timedelta(days=7)))
        submitted = list(rows)
        flagged = sum(1 for row in submitted if self._flag_count(row))
        return [(self.t("stat_intakes_week"), str(len(submitted))),
                (self.t("stat_intakes_flagged_week"), str(flagged))]

    async def staff_contact(self, session: AsyncSession, intake_id: int, staff_user_id: int | None,
                            now: datetime) -> str:
        row = await session.get(Intake, intake_id)
        patient = await session.get(Patient, row.patient_id) if row is not None else None
        key = "staff_contact"
        if row is not None and row.status == SUPERSEDED and patient is not None:
            # An older summary: the patient updated their answers since (this row's were
            # cleared). Staff get the number from, and are pointed to, the updated request.
            newer = await self._submitted(session, patient)
            if newer is not None:
                row, key = newer, "staff_contact_superseded"
        if row is None or row.status != SUBMITTED:
            return self.t("staff_not_found")
        await audit.record(session, now=now, action="intake_contact_viewed",
                           actor_user_id=staff_user_id, patient_id=row.patient_id,
                           subject=f"intake:{row.id}")
        answers = self._load(row).answers
        phone_q = next((q for q in self.spec.questions if q.kind == "phone"), None)
        phone = self.answer_text(phone_q, answers.get(phone_q.id)) if phone_q else "-"
        name = (patient.first_name if patient else None) or "patient"
        return self.spec.fill(key, name=html.escape(name, quote=False),
                              patient_id=row.patient_id, phone=phone,
                              date=self._local_day(row.submitted_at))

    # ------------------------------------------------------------------ returning patient
    async def _returning_action(self, session: AsyncSession, patient: Patient, action: str,
                                now: datetime) -> Reply:
        submitted = await self._submitted(session, patient)
        active = await self._active(session, patient)
        if action == "delok":
            await self.erase(session, patient, now)
            await audit.record(session, now=now, action="intake_deleted",
                               actor_user_id=audit.PATIENT, patient_id=patient.id)
            return Reply([Out(self.t("deleted"), remove_keyboard=True)], show_menu=True)
        if action == "del":
            if submitted is None and active is None:
                return await self._stale(session, patient, active, now)
            return Reply([Out(self.t("delete_confirm"), [
                [(self.t("button_delete_confirm"), "ik:delok")],
                [(self.t("button_keep"), "ik:go")]], edit=True)])
        if active is not None or submitted is None:
            return await self._stale(session, patient, active, now)
        if action == "view":
            state = self._load(submitted)
            lines = []
            for question in self.applicable(state.answers):
                lines.append(self.spec.fill(
                    "review_line", label=html.escape(question.short, quote=False),
                    answer=self.answer_text(question, state.answers.get(question.id),
                                            REVIEW_ANSWER_LIMIT)))
            out = self._returning_out(submitted)
            out.text = "\n".join(lines) + "\n\n" + out.text
            out.rows = [r for r in out.rows if r[0][1] != "ik:view"]
            return Reply([out])
        # update: a new questionnaire, pre-filled with the submitted answers, opened at the review
        consent_id = submitted.consent_id
        consent = await session.get(IntakeConsent, consent_id)
        if consent is None or consent.version != self.spec.consent_version:
            return Reply([self._consent_out(self.t("consent_changed"))])
        return self._show_state(await self._open(session, patient, consent_id, submitted, now),
                                None, now)

    async def _open(self, session: AsyncSession, patient: Patient, consent_id: int,
                    previous: Intake | None, now: datetime) -> State:
        """A new questionnaire row. Pre-filled from `previous` (an update, which then replaces
        it on submit) and opened at the first unanswered question (questions added since go
        first), else at the review."""
        answers: dict[str, Any] = {}
        if previous is not None:
            try:
                # Only questions the content still asks: one removed (perhaps the reason for a
                # new consent text) is not carried into the new questionnaire.
                answers = {k: v for k, v in self._load(previous).answers.items()
                           if k in self.spec.by_id}
            except CryptoError:
                # Its key was removed before rotation: the patient starts afresh rather than
                # being stuck (they can still delete the old request). No data in the log.
                log.warning("intake %s: earlier answers not readable with ENCRYPTION_KEYS; "
                            "the update starts empty", previous.id)
        _drop_preloaded(session, patient.id)
        row = Intake(patient_id=patient.id, consent_id=consent_id, status=ACTIVE, stage="review",
                     data=b"", replaces_id=previous.id if previous else None,
                     created_at=now, updated_at=now)
        session.add(row)
        await session.flush()
        state = State(row, answers, {})
        self._expire_dates(state, now)  # an update months later: a date sent then has passed
        self._goto_next(state)
        return state

    # ------------------------------------------------------------------ /mydata and /forget
    async def export(self, session: AsyncSession, patient: Patient) -> dict[str, Any]:
        """Everything the intake holds about the patient, answers decrypted, for /mydata."""
        consents = (await session.scalars(select(IntakeConsent).where(
            IntakeConsent.patient_id == patient.id).order_by(IntakeConsent.id))).all()
        rows = (await session.scalars(select(Intake).where(
            Intake.patient_id == patient.id).order_by(Intake.id))).all()
        questionnaires: list[dict[str, Any]] = []
        for row in rows:
            try:
                answers = self._load(row).answers if row.data else {}
            except CryptoError:  # a key removed before rotation: marked, the rest still given
                log.error("intake %s cannot be decrypted with ENCRYPTION_KEYS", row.id)
                questionnaires.append({"status": row.status, "started": row.created_at.isoformat(),
                                       "answers": None, "readable": False})
                continue
            questionnaires.append({
                "status": row.status,
                "started": row.created_at.isoformat(),
                "submitted": row.submitted_at.isoformat() if row.submitted_at else None,
                "answers": {
                    (self.spec.by_id[k].short if k in self.spec.by_id else k):
                        _plain(self.answer_text(self.spec.by_id[k], v)) if k in self.spec.by_id
                        else v
                    for k, v in answers.items()},
            })
        return {"consents": [{"version": c.version, "agreed_at": c.agreed_at.isoformat()}
                             for c in consents],
                "questionnaires": questionnaires}

    async def erase(self, session: AsyncSession, patient: Patient, now: datetime) -> None:
        await erase_intake(session, patient, now)

    # ------------------------------------------------------------------ key rotation
    async def rotate_keys(self, session: AsyncSession) -> int:
        return await rotate_intake_keys(session, self.box)


async def rotate_intake_keys(session: AsyncSession, box: CryptoBox) -> int:
    """Re-encrypt every intake under the primary key; returns how many rows changed. Needs no
    questionnaire file: with the questionnaire switched off, its stored answers still rotate."""
    changed = 0
    for row_id, data in (await session.execute(select(Intake.id, Intake.data))).all():
        if data and box.needs_rotation(data) and box.readable(data):  # unreadable: rotate_all
            # Only if unchanged since read: a patient's answer saved meanwhile (by a running
            # bot) is not overwritten with the older answers (rotate_all counts what is left).
            result = await session.execute(
                update(Intake).where(Intake.id == row_id, Intake.data == data)
                .values(data=box.rotate(data)).execution_options(synchronize_session=False))
            changed += result.rowcount or 0
    return changed


async def intakes_under_old_keys(session: AsyncSession, box: CryptoBox) -> tuple[int, int]:
    """CryptoBox.left_behind of every questionnaire."""
    return box.left_behind((await session.scalars(select(Intake.data))).all())


async def erase_intake(session: AsyncSession, patient: Patient, now: datetime) -> None:
    """Delete every questionnaire and consent record of the patient (no key needed)."""
    _drop_preloaded(session, patient.id)
    await session.execute(delete(Intake).where(Intake.patient_id == patient.id))
    await session.execute(delete(IntakeConsent).where(IntakeConsent.patient_id == patient.id))
    await session.flush()


def _drop_preloaded(session: AsyncSession, patient_id: int) -> None:
    """Where a step creates or removes a questionnaire, a row `with_patient` read before is no
    longer the truth: the next lookup queries."""
    session.info.get(_PRELOADED, {}).pop(patient_id, None)


def _plain(fragment: str) -> str:
    """Visible text of an HTML fragment (for re-escaping inside another template)."""
    from bot import telegram_html

    return telegram_html.plain(fragment)


def _label_text(label_html: str) -> str:
    """A button label without its leading emoji or symbols ("✅ I agree" -> "I agree")."""
    text = _plain(label_html)
    start = next((i for i, ch in enumerate(text) if ch.isalnum()), 0)
    return text[start:]


def _plain_keep(question_html: str) -> str:
    """The question's first line as plain text (its bold title)."""
    return _first_line(question_html)


def _first_line(text_html: str) -> str:
    return (_plain(text_html).strip().split("\n", 1) or [""])[0]
