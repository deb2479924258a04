"""Write audit rows. Called in the same transaction as the read, export or erasure it records."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.privacy_models import AuditEvent

# The actor of what patients do with their own data (export, submit, delete). Not their
# Telegram id: beside the patient number it would say who the patient was after an erasure.
PATIENT = 0


async def record(session: AsyncSession, *, now: datetime, action: str, actor_user_id: int | None,
                 patient_id: int | None = None, subject: str | None = None) -> AuditEvent:
    event = AuditEvent(at=now, action=action[:64], actor_user_id=actor_user_id,
                       patient_id=patient_id, subject=(subject or None) and subject[:64])
    session.add(event)
    await session.flush()
    return event


async def events_for(session: AsyncSession, patient_id: int) -> list[AuditEvent]:
    rows = await session.scalars(
        select(AuditEvent).where(AuditEvent.patient_id == patient_id).order_by(AuditEvent.id))
    return list(rows)


async def unname_patient(session: AsyncSession, telegram_user_id: int, patient_id: int) -> None:
    """On erasure: no audit row names the patient's Telegram id as the actor of what they did
    as a patient: on their own record (rows written before PATIENT existed) or a staff command
    refused to them. A staff member's reads of OTHER patients keep their name: /forget must not
    launder who looked at whose data. The one change an audit row may take (a Core statement;
    the ORM refuses any)."""
    await session.execute(update(AuditEvent).where(
        AuditEvent.actor_user_id == telegram_user_id,
        or_(AuditEvent.patient_id == patient_id, AuditEvent.action == "staff_denied"),
    ).values(actor_user_id=PATIENT).execution_options(synchronize_session=False))
