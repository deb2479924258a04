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
    live = Patient.erased_at.is_(None)
    total = await session.scalar(select(func.count()).select_from(Patient).where(live))
    week = await session.scalar(select(func.count()).select_from(Patient).where(
        live, Patient.created_at >= now - timedelta(days=7)))
    return [("stat_patients_total", str(total or 0)), ("stat_patients_week", str(week or 0))]
