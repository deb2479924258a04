"""Retention: questionnaires older than INTAKE_RETENTION_MONTHS are purged by a daily job,
for patients with no appointment in that period (nor any later one).

"Older" means last touched (submitted, updated or abandoned) before the cutoff. The consent
records those questionnaires used go with them. Each purge leaves an audit row
("retention_purge", the patient id and how many questionnaires; never any content).
"""

from __future__ import annotations

import calendar
import logging
from datetime import datetime, time

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.db.appointment_models import Appointment
from bot.db.intake_models import Intake, IntakeConsent

log = logging.getLogger(__name__)
RUN_AT = time(3, 30)  # clinic time: a quiet moment


def months_before(now: datetime, months: int) -> datetime:
    """The same moment `months` calendar months earlier (the day clamped to the month's end)."""
    total = now.year * 12 + (now.month - 1) - months
    year, month = divmod(total, 12)
    day = min(now.day, calendar.monthrange(year, month + 1)[1])
    return now.replace(year=year, month=month + 1, day=day)


async def purge(session: AsyncSession, now: datetime, months: int) -> dict[int, int]:
    """Delete old questionnaires; returns {patient id: questionnaires purged}."""
    cutoff = months_before(now, months)
    recent_appt = exists().where(Appointment.patient_id == Intake.patient_id,
                                 Appointment.starts_at >= cutoff)
    rows = (await session.execute(
        select(Intake.id, Intake.patient_id, Intake.consent_id)
        .where(Intake.updated_at < cutoff, ~recent_appt))).all()
    purged: dict[int, int] = {}
    if not rows:
        return purged
    # Count what this transaction deleted, not what it selected: two instances' jobs can select
    # the same rows, and the second's DELETE then finds them gone (no second audit row).
    rows = (await session.execute(
        delete(Intake).where(Intake.id.in_([r.id for r in rows]))
        .returning(Intake.id, Intake.patient_id, Intake.consent_id))).all()
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
    await session.flush()
    return purged


async def retention_job(context) -> None:  # noqa: ANN001 - a PTB CallbackContext
    svc = context.application.bot_data["services"]
    try:
        async with svc.db.session() as session:
            purged = await purge(session, svc.clock.now(), svc.settings.intake_retention_months)
    except Exception:  # noqa: BLE001 - tomorrow's run tries again; never kill the scheduler
        log.exception("retention purge failed")
        return
    if purged:
        log.info("retention: purged %d questionnaire(s) of %d patient(s)",
                 sum(purged.values()), len(purged))


def schedule(application, svc) -> None:  # noqa: ANN001
    if application.job_queue is None:  # pragma: no cover - the job-queue extra is a dependency
        log.error("PTB JobQueue unavailable: the retention purge will not run")
        return
    application.job_queue.run_daily(
        retention_job, time=RUN_AT.replace(tzinfo=svc.settings.tz), name="intake-retention",
        job_kwargs={"misfire_grace_time": None, "coalesce": True, "max_instances": 1})
