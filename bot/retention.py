"""Retention: a daily job purges, for patients with no appointment in the last
INTAKE_RETENTION_MONTHS (nor any later one), what is older than that period:

- questionnaires last touched (submitted, updated or abandoned) before the cutoff, with the
  consent records they used;
- free-text questions (and staff replies) whose last activity (asked, handed off, alerted,
  replied) is before the cutoff, with any staff Reply in progress on them. A question staff
  still owe an answer (handed off or red flag, not replied) is never purged.

Each purge leaves an audit row per patient and kind ("retention_purge", the patient id and
"intakes:N" or "questions:N"; never any content).
"""

from __future__ import annotations

import calendar
import logging
from datetime import datetime, time

from sqlalchemy import ColumnElement, and_, delete, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.db.appointment_models import Appointment
from bot.db.intake_models import Intake, IntakeConsent
from bot.db.qa_models import HANDED_OFF, RED_FLAG, Question, StaffReplyTarget

log = logging.getLogger(__name__)
RUN_AT = time(3, 30)  # clinic time: a quiet moment

# Never purged, however old: questions staff still owe an answer (the statuses of the staff
# console's open questions, bot/questions.py open_questions; a reply makes them REPLIED).
# Deleting one would silently drop a patient's request or red flag from staff's list. Once
# replied, a question ages from replied_at; UNANSWERED (handoff offered, not taken), ANSWERED
# and CLOSED (staff acted on the request) wait for nobody.
WAITING_FOR_STAFF = (HANDED_OFF, RED_FLAG)


class Purged(dict[int, int]):
    """{patient id: questionnaires purged}, as `purge` always returned; `questions` is
    {patient id: questions purged}."""

    def __init__(self) -> None:
        super().__init__()
        self.questions: dict[int, int] = {}


def months_before(now: datetime, months: int) -> datetime:
    """The same moment `months` calendar months earlier (the day clamped to the month's end)."""
    total = now.year * 12 + (now.month - 1) - months
    year, month = divmod(total, 12)
    day = min(now.day, calendar.monthrange(year, month + 1)[1])
    return now.replace(year=year, month=month + 1, day=day)


def _no_appointment_since(patient_id: ColumnElement[int], cutoff: datetime) -> ColumnElement[bool]:
    """No appointment (past or future) starting at or after the cutoff."""
    return ~exists().where(Appointment.patient_id == patient_id, Appointment.starts_at >= cutoff)


async def purge(session: AsyncSession, now: datetime, months: int) -> Purged:
    """Delete old questionnaires and questions; returns {patient id: questionnaires purged},
    with `.questions` {patient id: questions purged}."""
    cutoff = months_before(now, months)
    purged = Purged()
    purged.update(await _purge_intakes(session, now, cutoff))
    await _purge_orphan_consents(session, now, cutoff)
    purged.questions = await _purge_questions(session, now, cutoff)
    await session.flush()
    return purged


async def _purge_intakes(session: AsyncSession, now: datetime, cutoff: datetime) -> dict[int, int]:
    rows = (await session.execute(
        select(Intake.id, Intake.patient_id, Intake.consent_id)
        .where(Intake.updated_at < cutoff, _no_appointment_since(Intake.patient_id, cutoff)))).all()
    purged: dict[int, int] = {}
    if not rows:
        return purged
    # Count what this transaction deleted, not what it selected: two instances' jobs can select
    # the same rows, and the second's DELETE then finds them gone (no second audit row).
    # The DELETE repeats the conditions: a questionnaire the patient answered (or an
    # appointment booked) since the SELECT stays.
    rows = (await session.execute(
        delete(Intake).where(Intake.id.in_([r.id for r in rows]), Intake.updated_at < cutoff,
                             _no_appointment_since(Intake.patient_id, cutoff))
        .returning(Intake.id, Intake.patient_id, Intake.consent_id)
        .execution_options(synchronize_session=False))).all()
    if not rows:
        return purged
    consent_ids = {r.consent_id for r in rows}
    still_used = set((await session.scalars(select(Intake.consent_id).where(
        Intake.consent_id.in_(consent_ids)))).all())
    unused = consent_ids - still_used
    if unused:
        await session.execute(delete(IntakeConsent).where(IntakeConsent.id.in_(unused),
                                                          IntakeConsent.agreed_at < cutoff))
    for r in rows:
        purged[r.patient_id] = purged.get(r.patient_id, 0) + 1
    for patient_id, count in sorted(purged.items()):
        await audit.record(session, now=now, action="retention_purge", actor_user_id=None,
                           patient_id=patient_id, subject=f"intakes:{count}")
    return purged


async def _purge_orphan_consents(session: AsyncSession, now: datetime, cutoff: datetime) -> None:
    """Consents given before the cutoff whose questionnaire is gone (cancelled, or purged in
    an earlier run): nothing else ever removed them. A consent is never taken up again by a
    new questionnaire (agreeing records a new one), so none in use can go."""
    rows = (await session.execute(
        delete(IntakeConsent).where(IntakeConsent.agreed_at < cutoff,
                                    ~exists().where(Intake.consent_id == IntakeConsent.id))
        .returning(IntakeConsent.patient_id).execution_options(synchronize_session=False))).all()
    counts: dict[int, int] = {}
    for (patient_id,) in rows:
        counts[patient_id] = counts.get(patient_id, 0) + 1
    for patient_id, count in sorted(counts.items()):
        await audit.record(session, now=now, action="retention_purge", actor_user_id=None,
                           patient_id=patient_id, subject=f"consents:{count}")


def _question_purgeable(cutoff: datetime) -> ColumnElement[bool]:
    """Not waiting for staff, nothing happened to it since the cutoff (asked, handed off,
    alerted, replied: every one of them before it), and the patient has no appointment since."""
    return and_(
        Question.status.not_in(WAITING_FOR_STAFF),
        Question.created_at < cutoff,
        *(or_(at.is_(None), at < cutoff)
          for at in (Question.handed_off_at, Question.alerted_at, Question.replied_at)),
        _no_appointment_since(Question.patient_id, cutoff))


async def _purge_questions(session: AsyncSession, now: datetime,
                           cutoff: datetime) -> dict[int, int]:
    purgeable = _question_purgeable(cutoff)
    ids = list((await session.scalars(select(Question.id).where(purgeable))).all())
    purged: dict[int, int] = {}
    if not ids:
        return purged
    # The DELETEs repeat the conditions: a question handed off or replied to since the SELECT
    # (on PostgreSQL, rechecked once its row lock is free) stays. A staff Reply in progress on
    # a purged question goes first, as bot/questions.py erase_for does.
    chosen = and_(Question.id.in_(ids), purgeable)
    await session.execute(delete(StaffReplyTarget).where(
        StaffReplyTarget.question_id.in_(select(Question.id).where(chosen))))
    # As for questionnaires: count and audit what this transaction deleted (RETURNING); a
    # second instance's job finds the rows gone and audits nothing.
    rows = (await session.execute(
        delete(Question).where(chosen).returning(Question.id, Question.patient_id)
        .execution_options(synchronize_session=False))).all()
    for r in rows:
        purged[r.patient_id] = purged.get(r.patient_id, 0) + 1
    for patient_id, count in sorted(purged.items()):
        await audit.record(session, now=now, action="retention_purge", actor_user_id=None,
                           patient_id=patient_id, subject=f"questions:{count}")
    return purged


async def retention_job(context) -> None:  # noqa: ANN001 - a PTB CallbackContext
    svc = context.application.bot_data["services"]
    try:
        async with svc.db.session() as session:
            purged = await purge(session, svc.clock.now(), svc.settings.intake_retention_months)
    except Exception:  # noqa: BLE001 - tomorrow's run tries again; never kill the scheduler
        log.exception("retention purge failed")
        return
    if purged or purged.questions:  # counts only: never a patient or any content
        log.info("retention: purged %d questionnaire(s) and %d question(s) of %d patient(s)",
                 sum(purged.values()), sum(purged.questions.values()),
                 len(purged.keys() | purged.questions.keys()))


def schedule(application, svc) -> None:  # noqa: ANN001
    if application.job_queue is None:  # pragma: no cover - the job-queue extra is a dependency
        log.error("PTB JobQueue unavailable: the retention purge will not run")
        return
    application.job_queue.run_daily(
        retention_job, time=RUN_AT.replace(tzinfo=svc.settings.tz), name="intake-retention",
        job_kwargs={"misfire_grace_time": None, "coalesce": True, "max_instances": 1})
