"""Patient records: created or refreshed whenever a person talks to the bot."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.engine import upsert_insert
from bot.db.models import Patient

# "Last contact" to within a few minutes: writing it on every message would make each
# questionnaire answer a write from the start of its transaction (on SQLite, the write lock
# held for the whole transaction, so concurrent patients queue behind each other).
LAST_SEEN_RESOLUTION = timedelta(minutes=5)


async def upsert_from_telegram(
    session: AsyncSession,
    *,
    user_id: int,
    chat_id: int,
    first_name: str | None,
    language_code: str | None,
    now: datetime,
) -> Patient:
    query = select(Patient).where(Patient.telegram_user_id == user_id)
    patient = await session.scalar(query)
    if patient is None:
        # Two instances may see the same new patient at once (two quick taps reaching different
        # instances): insert-or-ignore, then read the row whichever transaction created it.
        insert = upsert_insert(session.bind.dialect.name)
        await session.execute(
            insert(Patient)
            .values(telegram_user_id=user_id, chat_id=chat_id, created_at=now, last_seen_at=now)
            .on_conflict_do_nothing(index_elements=["telegram_user_id"]))
        patient = await session.scalar(query.execution_options(populate_existing=True))
        assert patient is not None
    refresh(patient, chat_id=chat_id, first_name=first_name, language_code=language_code,
            now=now)
    await session.flush()  # writes only what changed: usually nothing
    return patient


def refresh(patient: Patient, *, chat_id: int, first_name: str | None,
            language_code: str | None, now: datetime) -> None:
    """Bring a loaded patient row up to date with what Telegram says of them.

    Only values that differ are assigned: SQLAlchemy keeps history for every assignment, even of
    an equal value, and each such row costs a unit-of-work pass at the next flush.
    """
    fresh = _told(chat_id, first_name, language_code)
    if patient.last_seen_at is None or now - patient.last_seen_at >= LAST_SEEN_RESOLUTION:
        fresh["last_seen_at"] = now
    for name, value in fresh.items():
        if getattr(patient, name) != value:
            setattr(patient, name, value)


def _told(chat_id: int, first_name: str | None, language_code: str | None) -> dict[str, object]:
    """The patient columns an update tells us, cut to their column sizes."""
    return {"chat_id": chat_id, "first_name": (first_name or "")[:255] or None,
            "language_code": (language_code or "")[:16] or None,
            "unreachable": False}  # a patient who writes to us again has unblocked the bot


async def by_telegram_id(session: AsyncSession, user_id: int, *,
                         lock: bool = False) -> Patient | None:
    """With `lock` (PostgreSQL), FOR NO KEY UPDATE: one such transaction per patient at a time,
    while rows referring to the patient can still be inserted (a stronger lock would deadlock
    with a transaction that holds one of their appointments and then inserts a reminder)."""
    query = select(Patient).where(Patient.telegram_user_id == user_id)
    return await session.scalar(query.with_for_update(key_share=True) if lock else query)


async def touch_from_telegram(
    session: AsyncSession,
    *,
    user_id: int,
    chat_id: int,
    first_name: str | None,
    language_code: str | None,
    now: datetime,
) -> None:
    """What upsert_from_telegram stores, in one INSERT .. ON CONFLICT DO UPDATE round trip,
    for callers that do not need the Patient row (/start on every visit)."""
    insert = upsert_insert(session.bind.dialect.name)
    fresh = {**_told(chat_id, first_name, language_code), "last_seen_at": now}
    stmt = insert(Patient).values(telegram_user_id=user_id, created_at=now, **fresh)
    await session.execute(stmt.on_conflict_do_update(index_elements=["telegram_user_id"],
                                                     set_=fresh))
