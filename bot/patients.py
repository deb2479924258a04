"""Patient records: created or refreshed whenever a person talks to the bot."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Patient


async def upsert_from_telegram(
    session: AsyncSession,
    *,
    user_id: int,
    chat_id: int,
    first_name: str | None,
    language_code: str | None,
    now: datetime,
) -> Patient:
    patient = await session.scalar(select(Patient).where(Patient.telegram_user_id == user_id))
    if patient is None:
        patient = Patient(telegram_user_id=user_id, created_at=now)
        session.add(patient)
    patient.chat_id = chat_id
    patient.first_name = (first_name or "")[:255] or None
    patient.language_code = (language_code or "")[:16] or None
    patient.last_seen_at = now
    # A patient who writes to us again has evidently unblocked the bot.
    patient.unreachable = False
    await session.flush()
    return patient


async def by_telegram_id(session: AsyncSession, user_id: int) -> Patient | None:
    return await session.scalar(select(Patient).where(Patient.telegram_user_id == user_id))
