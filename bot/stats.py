"""Figures for staff (/stats). Each feature contributes its own lines; no personal data."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import Patient

# (label, value) pairs; the label is a key of content/*.yaml messages, or the label text itself
StatLines = list[tuple[str, str]]
StatProvider = Callable[[AsyncSession, datetime], Awaitable[StatLines]]


async def patient_stats(session: AsyncSession, now: datetime) -> StatLines:
    # Placeholders that /book and imports create have no Telegram account until the patient
    # opens the bot; /forget clears it too (and sets erased_at).
    live = Patient.erased_at.is_(None), Patient.telegram_user_id.is_not(None)
    total = await session.scalar(select(func.count()).select_from(Patient).where(*live))
    week = await session.scalar(select(func.count()).select_from(Patient).where(
        *live, Patient.created_at >= now - timedelta(days=7)))
    return [("stat_patients_total", str(total or 0)), ("stat_patients_week", str(week or 0))]
