"""Write audit rows. Called in the same transaction as the read, export or erasure it records."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.privacy_models import AuditEvent


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
