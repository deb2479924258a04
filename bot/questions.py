"""Questions as rows: recording, handoff to staff, and staff replies (no Telegram here).

Every state lives in the database, so a restart (or another instance) loses nothing: which
question a staff member is answering after pressing Reply is a row too.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.crypto import CryptoBox, CryptoError
from bot.db.models import Patient
from bot.db.qa_models import (
    ANSWERED,
    CLOSED,
    HANDED_OFF,
    RED_FLAG,
    REPLIED,
    TYPED,
    UNANSWERED,
    Question,
    StaffReplyTarget,
)
from bot.qa import Result

MAX_TEXT = 4096  # Telegram's own limit for a message; anything longer is not from Telegram

# Question.red_flag: only whether the message raised a red flag, never which one. The category
# ("allergic_reaction", "infection", ...) is medical detail: it is found in the message when staff
# are alerted (QAEngine.ask), found again in the decrypted text on a re-alert
# (handlers/questions.py), and never stored in clear beside the patient; migration 0012 replaced
# the categories stored before. Not the status: a staff reply turns a red flag's status into
# "replied", and the weekly figures still count it as a red flag.
FLAGGED = "flagged"

log = logging.getLogger(__name__)


def _context(question: Question, part: str) -> str:
    return f"question:{question.patient_id}:{part}"


def question_text(crypto: CryptoBox, question: Question) -> str:
    return crypto.decrypt_json(question.text_enc, context=_context(question, "text"))


def reply_text(crypto: CryptoBox, question: Question) -> str | None:
    if question.reply_enc is None:
        return None
    return crypto.decrypt_json(question.reply_enc, context=_context(question, "reply"))


async def record(session: AsyncSession, patient: Patient, text: str, result: Result,
                 now: datetime, crypto: CryptoBox, message_id: int | None = None) -> Question:
    if result.kind == "red_flag":
        status = RED_FLAG
    elif result.kind == "answer":
        status = ANSWERED
    else:
        status = UNANSWERED
    best = result.best
    question = Question(
        patient_id=patient.id, status=status,
        node_id=best.node.id if best and status == ANSWERED else None,
        confidence=round(result.confidence, 4) if best else None,
        # Whether, not which: the category is health data (see FLAGGED).
        red_flag=FLAGGED if result.red_flag else None,
        created_at=now,
        handed_off_at=now if status == RED_FLAG else None,
        message_id=message_id,
    )
    question.text_enc = crypto.encrypt_json(text[:MAX_TEXT], context=_context(question, "text"))
    session.add(question)
    await session.flush()
    return question


async def record_request(session: AsyncSession, patient_id: int, appointment_id: int,
                         source: str, text: str, now: datetime,
                         crypto: CryptoBox) -> tuple[Question, bool]:
    """A request the patient pressed about an appointment (a concern, to reschedule, the next
    session), handed to staff at once as a row: it stays among the open questions until staff
    reply, even if no staff chat got the alert. The second of the same while the first is open
    is that first one: (question, False), and nobody is alerted again."""
    open_one = await session.scalar(select(Question).where(
        Question.patient_id == patient_id, Question.appointment_id == appointment_id,
        Question.source == source, Question.status == HANDED_OFF))
    if open_one is not None:
        return open_one, False
    question = Question(patient_id=patient_id, status=HANDED_OFF, created_at=now,
                        handed_off_at=now, source=source, appointment_id=appointment_id)
    question.text_enc = crypto.encrypt_json(text[:MAX_TEXT], context=_context(question, "text"))
    session.add(question)
    await session.flush()
    return question, True


async def close_requests(session: AsyncSession, *, source: str,
                         appointment_id: int | None = None, patient_id: int | None = None) -> int:
    """Staff did what open requests asked (moved or cancelled the appointment, booked the next
    session): they leave the open questions, and a new request alerts staff again."""
    query = update(Question).where(Question.status == HANDED_OFF, Question.source == source)
    if appointment_id is not None:
        query = query.where(Question.appointment_id == appointment_id)
    if patient_id is not None:
        query = query.where(Question.patient_id == patient_id)
    result = await session.execute(query.values(status=CLOSED)
                                   .execution_options(synchronize_session=False))
    return result.rowcount or 0


async def of_patient(session: AsyncSession, question_id: int, telegram_user_id: int) -> Question | None:
    """The question, only if it belongs to this Telegram user (callback data is untrusted)."""
    return await session.scalar(
        select(Question).join(Patient, Patient.id == Question.patient_id)
        .where(Question.id == question_id, Patient.telegram_user_id == telegram_user_id)
    )


async def hand_off(session: AsyncSession, question_id: int, now: datetime) -> bool:
    """Mark as handed off; False if it already was (a double press must not alert twice)."""
    result = await session.execute(
        update(Question)
        .where(Question.id == question_id, Question.status.in_((ANSWERED, UNANSWERED)))
        .values(status=HANDED_OFF, handed_off_at=now)
    )
    return result.rowcount == 1


async def mark_alerted(session: AsyncSession, question_id: int, now: datetime) -> None:
    """A staff chat got this question's alert: the resend job leaves it alone."""
    await session.execute(update(Question).where(Question.id == question_id)
                          .values(alerted_at=now))


async def unalerted(session: AsyncSession, now: datetime, *, grace: timedelta,
                    within: timedelta, limit: int = 20) -> list[tuple[Question, Patient]]:
    """Questions waiting for staff whose alert reached no staff chat: handed off (or red
    flags) between `within` and `grace` ago, still open, red flags first."""
    rows = await session.execute(
        select(Question, Patient).join(Patient, Patient.id == Question.patient_id)
        .where(Question.status.in_((HANDED_OFF, RED_FLAG)), Question.alerted_at.is_(None),
               Question.handed_off_at <= now - grace, Question.handed_off_at > now - within)
        .order_by((Question.status == RED_FLAG).desc(), Question.id).limit(limit))
    return [(q, p) for q, p in rows.all()]


async def alerted_for(session: AsyncSession, telegram_user_id: int, message_id: int) -> bool:
    """Whether this chat message of the patient raised a red flag already."""
    return await session.scalar(
        select(Question.id).join(Patient, Patient.id == Question.patient_id)
        .where(Patient.telegram_user_id == telegram_user_id, Question.message_id == message_id,
               Question.red_flag.is_not(None)).limit(1)) is not None


async def with_patient(session: AsyncSession, question_id: int) -> tuple[Question, Patient] | None:
    row = (await session.execute(
        select(Question, Patient).join(Patient, Patient.id == Question.patient_id)
        .where(Question.id == question_id)
    )).first()
    return (row[0], row[1]) if row else None


async def start_reply(session: AsyncSession, staff_user_id: int, question_id: int, chat_id: int,
                      now: datetime, prompt_message_id: int | None = None) -> None:
    await session.execute(delete(StaffReplyTarget)
                          .where(StaffReplyTarget.staff_user_id == staff_user_id))
    session.add(StaffReplyTarget(staff_user_id=staff_user_id, question_id=question_id,
                                 chat_id=chat_id, started_at=now,
                                 prompt_message_id=prompt_message_id))
    await session.flush()


async def set_reply_prompt(session: AsyncSession, staff_user_id: int, question_id: int,
                           prompt_message_id: int) -> None:
    """In a group: only a reply to this prompt answers the question."""
    await session.execute(update(StaffReplyTarget).where(
        StaffReplyTarget.staff_user_id == staff_user_id,
        StaffReplyTarget.question_id == question_id).values(prompt_message_id=prompt_message_id))


class ReplyTarget(NamedTuple):
    question_id: int
    expired: bool  # pressed longer than the window ago: the message is not the reply
    prompt_message_id: int | None = None


async def take_reply_target(session: AsyncSession, staff_user_id: int, chat_id: int,
                            now: datetime, window: timedelta,
                            replied_to: int | None = None) -> ReplyTarget | None:
    """The question this staff member pressed Reply for in this chat, if any; taken (deleted)
    as it is read, so one message answers it even if the same staff member's next message
    reaches another instance at the same moment. An expired one is taken too, and said so:
    the staff member may need telling that their answer went nowhere. Where the Reply has a
    prompt (a group), only a message replying to that prompt (`replied_to`) takes it."""
    taken = (await session.execute(
        delete(StaffReplyTarget).where(
            StaffReplyTarget.staff_user_id == staff_user_id, StaffReplyTarget.chat_id == chat_id,
            or_(StaffReplyTarget.prompt_message_id.is_(None),
                StaffReplyTarget.prompt_message_id == (replied_to or -1)))
        .returning(StaffReplyTarget.question_id, StaffReplyTarget.started_at,
                   StaffReplyTarget.prompt_message_id))).first()
    if taken is None:
        return None
    return ReplyTarget(taken.question_id, taken.started_at + window < now,
                       taken.prompt_message_id)


async def clear_reply(session: AsyncSession, staff_user_id: int,
                      chat_id: int | None = None) -> int | None:
    """Forget the staff member's pending Reply (only the one in `chat_id`, if given): its
    question id, or None if there was none."""
    target = await session.get(StaffReplyTarget, staff_user_id)
    if target is None or (chat_id is not None and target.chat_id != chat_id):
        return None
    await session.delete(target)
    return target.question_id


class EarlierReply(NamedTuple):
    staff_user_id: int | None
    at: datetime


async def record_reply(session: AsyncSession, question: Question, staff_user_id: int, text: str,
                       now: datetime, crypto: CryptoBox) -> EarlierReply | None:
    """Record a staff reply. A question answered before keeps that answer too (two staff
    members replying at once, or a follow-up): the replies are kept one after the other, and
    the earlier one is returned so the staff member learns theirs was not the first.

    A guarded UPDATE (the reply read is still the stored one), read again and retried when
    another reply landed in between: two handled at once must not overwrite each other."""
    earlier = None
    for _ in range(5):
        earlier, combined = None, text
        if question.reply_enc is not None and question.replied_at is not None:
            earlier = EarlierReply(question.replied_by, question.replied_at)
            try:
                combined = f"{reply_text(crypto, question)}\n\n{text}"
            except CryptoError:  # under a removed key: the new reply is what can be kept
                log.error("question %s: earlier reply cannot be decrypted", question.id)
        sealed = crypto.encrypt_json(combined[-MAX_TEXT:], context=_context(question, "reply"))
        unchanged = Question.replied_at.is_(None) if question.replied_at is None \
            else Question.replied_at == question.replied_at
        result = await session.execute(
            update(Question).where(Question.id == question.id, unchanged)
            .values(status=REPLIED, reply_enc=sealed, replied_by=staff_user_id, replied_at=now,
                    handed_off_at=func.coalesce(Question.handed_off_at, now))
            .execution_options(synchronize_session=False))
        if result.rowcount:
            break
        await session.refresh(question)  # a colleague's reply landed meanwhile: keep it too
    await session.refresh(question)
    await session.execute(delete(StaffReplyTarget)
                          .where(StaffReplyTarget.staff_user_id == staff_user_id))
    return earlier


# ------------------------------------------------------------------ staff console and /stats

async def count_open_questions(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Question).where(
        Question.status.in_((HANDED_OFF, RED_FLAG)))) or 0)


async def open_questions(session: AsyncSession, limit: int = 10) -> list[tuple[Question, Patient]]:
    """Questions staff still owe an answer: handed off or red-flagged, not yet replied; the
    red flags first, then oldest first."""
    rows = await session.execute(
        select(Question, Patient).join(Patient, Patient.id == Question.patient_id)
        .where(Question.status.in_((HANDED_OFF, RED_FLAG)))
        .order_by((Question.status == RED_FLAG).desc(), Question.created_at, Question.id)
        .limit(limit))
    return [(q, p) for q, p in rows.all()]


async def weekly_stats(session: AsyncSession, now: datetime) -> tuple[int, int, int]:
    """(typed, handed to staff, red flags) of the questions typed over the last 7 days."""
    since = and_(Question.created_at >= now - timedelta(days=7), Question.source == TYPED)
    total = await session.scalar(select(func.count()).select_from(Question).where(since))
    handed = await session.scalar(select(func.count()).select_from(Question).where(
        since, Question.handed_off_at.is_not(None)))
    flagged = await session.scalar(select(func.count()).select_from(Question).where(
        since, Question.red_flag.is_not(None)))
    return total or 0, handed or 0, flagged or 0


# ------------------------------------------------------------------ privacy (/mydata, /forget)

async def export_for(session: AsyncSession, patient: Patient,
                     crypto: CryptoBox) -> list[dict[str, object]]:
    rows = await session.scalars(select(Question).where(Question.patient_id == patient.id)
                                 .order_by(Question.id))
    # `urgent`: the stored marker (a staff reply turns the status into "replied", the marker
    # stays), as a yes/no rather than the column's internal value.
    return [{"asked_at": q.created_at.isoformat(), "source": q.source,
             **_readable(crypto, q), "status": q.status, "urgent": q.red_flag is not None,
             "replied_at": q.replied_at.isoformat() if q.replied_at else None} for q in rows]


def _readable(crypto: CryptoBox, question: Question) -> dict[str, object]:
    """The question's texts; a row under a key the clinic removed is marked, not fatal: the
    patient still gets everything else."""
    try:
        return {"question": question_text(crypto, question),
                "clinic_reply": reply_text(crypto, question)}
    except CryptoError:
        log.error("question %s cannot be decrypted with ENCRYPTION_KEYS", question.id)
        return {"question": None, "clinic_reply": None, "readable": False}


async def erase_for(session: AsyncSession, patient: Patient, now: datetime) -> None:
    ids = select(Question.id).where(Question.patient_id == patient.id)
    await session.execute(delete(StaffReplyTarget).where(StaffReplyTarget.question_id.in_(ids)))
    await session.execute(delete(Question).where(Question.patient_id == patient.id))


# ------------------------------------------------------------------ key rotation

async def rotate_keys(session: AsyncSession, crypto: CryptoBox) -> int:
    """Re-encrypt every question text and staff reply under the primary key; returns how many
    fields changed. The context inside each ciphertext (question:<patient>:text|reply) is kept."""
    changed = 0
    rows = (await session.execute(select(Question.id, Question.text_enc, Question.reply_enc)
                                  .order_by(Question.id))).all()
    for question_id, text_enc, reply_enc in rows:
        for column, value in ((Question.text_enc, text_enc), (Question.reply_enc, reply_enc)):
            if value and crypto.needs_rotation(value) and crypto.readable(value):
                # Only if unchanged since read: a staff reply saved meanwhile stays as written.
                result = await session.execute(
                    update(Question).where(Question.id == question_id, column == value)
                    .values({column: crypto.rotate(value)})
                    .execution_options(synchronize_session=False))
                changed += result.rowcount or 0
    return changed


async def fields_under_old_keys(session: AsyncSession, crypto: CryptoBox) -> tuple[int, int]:
    """CryptoBox.left_behind of every question text and staff reply."""
    rows = (await session.execute(select(Question.text_enc, Question.reply_enc))).all()
    return crypto.left_behind(value for row in rows for value in row)
