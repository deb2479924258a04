"""Staff console logic (no Telegram): today's and tomorrow's appointments with their
confirmation and reminder status, reminders needing attention and their retry, no-shows,
broadcasts through the reminder outbox, and the /stats lines for all of these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.appointment_models import ACTIVE_STATUSES, Appointment, Reminder
from bot.db.models import Patient
from bot.db.preference_models import Broadcast
from bot.reminders.planner import resolve_local
from bot.reminders.service import superseded

AUDIENCES = ("tomorrow", "upcoming")
BROADCAST_MAX = 3500  # characters of staff text; the header and Telegram's 4096 limit leave room
BROADCAST_VALID_FOR = timedelta(hours=24)
RETRYABLE = ("dead", "failed")


def local_day_bounds(now: datetime, tz: ZoneInfo, days_ahead: int) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the local calendar day `days_ahead` after today."""
    day = now.astimezone(tz).date() + timedelta(days=days_ahead)
    start = resolve_local(datetime.combine(day, datetime.min.time()), tz)
    end = resolve_local(datetime.combine(day + timedelta(days=1), datetime.min.time()), tz)
    return start, end


@dataclass
class DayEntry:
    appt: Appointment
    patient: Patient
    reminders: list[Reminder]


async def day_entries(session: AsyncSession, now: datetime, tz: ZoneInfo,
                      days_ahead: int) -> list[DayEntry]:
    start, end = local_day_bounds(now, tz, days_ahead)
    rows = (await session.execute(
        select(Appointment, Patient).join(Patient, Patient.id == Appointment.patient_id)
        .where(Appointment.starts_at >= start, Appointment.starts_at < end,
               Appointment.status != "cancelled")
        .order_by(Appointment.starts_at, Appointment.id).limit(100))).all()
    ids = [a.id for a, _ in rows]
    by_appt: dict[int, list[Reminder]] = {i: [] for i in ids}
    if ids:
        for r in (await session.scalars(select(Reminder).where(Reminder.appointment_id.in_(ids))
                                        .order_by(Reminder.due_at, Reminder.id))).all():
            if r.status == "cancelled" and r.last_error == "rescheduled":
                continue  # the plan of an earlier time
            by_appt[r.appointment_id or 0].append(r)
    return [DayEntry(a, p, by_appt[a.id]) for a, p in rows]


async def needing_attention(session: AsyncSession, now: datetime,
                            limit: int = 15) -> list[tuple[Reminder, Patient]]:
    """Failed or dead-lettered reminders that have not expired, oldest first."""
    rows = await session.execute(
        select(Reminder, Patient).join(Patient, Patient.id == Reminder.patient_id)
        .where(Reminder.status.in_(RETRYABLE), Reminder.expires_at > now,
               Patient.erased_at.is_(None))
        .order_by(Reminder.due_at, Reminder.id).limit(limit))
    return [(r, p) for r, p in rows.all()]


async def retry_reminder(session: AsyncSession, reminder_id: int, now: datetime) -> Reminder | None:
    """Put one failed or dead reminder back in the outbox, due now. None if it cannot be
    (sent meanwhile, expired, superseded by a newer plan, or its patient is unreachable: a
    blocked bot cannot send)."""
    row = await session.get(Reminder, reminder_id, with_for_update=True)
    if row is None or row.status not in RETRYABLE or row.expires_at <= now \
            or await superseded(session, row):
        return None
    patient = await session.get(Patient, row.patient_id)
    if patient is None or patient.unreachable or patient.chat_id is None:
        return None
    row.status, row.due_at, row.attempts = "pending", now, 0
    row.last_error = "retried by staff"
    await session.flush()
    return row


async def mark_no_show(session: AsyncSession, appointment_id: int, now: datetime) -> bool:
    appt = await session.get(Appointment, appointment_id, with_for_update=True)
    if appt is None or appt.status not in ACTIVE_STATUSES or appt.starts_at > now:
        return False
    appt.status, appt.updated_at = "no_show", now
    await session.execute(update(Reminder).where(
        Reminder.appointment_id == appointment_id, Reminder.status == "pending")
        .values(status="cancelled", last_error="no-show").execution_options(synchronize_session=False))
    return True


# ------------------------------------------------------------------ /stats
async def stats(session: AsyncSession, now: datetime) -> list[tuple[str, str]]:
    async def count(model, *where) -> int:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    window = (Appointment.starts_at >= now - timedelta(days=7),
              Appointment.starts_at < now + timedelta(days=7))
    total = await count(Appointment, *window, Appointment.status.in_(
        ("booked", "confirmed", "completed", "no_show")))
    confirmed = await count(Appointment, *window, Appointment.status.in_(("confirmed", "completed")))
    rate = f"{round(100 * confirmed / total)}% ({confirmed} of {total})" if total else "-"
    no_shows = await count(Appointment, Appointment.status == "no_show",
                           Appointment.starts_at >= now - timedelta(days=30),
                           Appointment.starts_at < now)
    due_week = (Reminder.due_at >= now - timedelta(days=7), Reminder.due_at < now)
    sent = await count(Reminder, *due_week, Reminder.status == "sent")
    failed = await count(Reminder, *due_week, Reminder.status.in_(RETRYABLE))
    opted = await count(Reminder, *due_week, Reminder.status == "cancelled",
                        Reminder.last_error == "patient opted out")
    return [("stat_confirmation_rate", rate), ("stat_no_shows", str(no_shows)),
            ("stat_reminders_sent_7d", str(sent)), ("stat_reminders_failed_7d", str(failed)),
            ("stat_reminders_opted_out_7d", str(opted))]


# ------------------------------------------------------------------ broadcast
async def audience_patients(session: AsyncSession, audience: str, now: datetime,
                            tz: ZoneInfo) -> list[int]:
    """Patient ids in the group who can receive a message (linked, reachable, not erased)."""
    if audience == "tomorrow":
        start, end = local_day_bounds(now, tz, 1)
        when = (Appointment.starts_at >= start, Appointment.starts_at < end)
    elif audience == "upcoming":
        when = (Appointment.starts_at > now,)
    else:
        raise ValueError(f"unknown audience {audience!r}")
    rows = await session.scalars(
        select(Patient.id).join(Appointment, Appointment.patient_id == Patient.id)
        .where(*when, Appointment.status.in_(ACTIVE_STATUSES), Patient.chat_id.is_not(None),
               Patient.unreachable.is_(False), Patient.erased_at.is_(None))
        .distinct().order_by(Patient.id))
    return list(rows.all())


async def start_draft(session: AsyncSession, staff_user_id: int, chat_id: int, audience: str,
                      now: datetime) -> Broadcast:
    if audience not in AUDIENCES:
        raise ValueError(f"unknown audience {audience!r}")
    await session.execute(update(Broadcast).where(
        Broadcast.created_by == staff_user_id, Broadcast.status == "draft")
        .values(status="cancelled").execution_options(synchronize_session=False))
    draft = Broadcast(audience=audience, text=None, status="draft", created_by=staff_user_id,
                      chat_id=chat_id, recipients=0, created_at=now)
    session.add(draft)
    await session.flush()
    return draft


async def open_draft(session: AsyncSession, staff_user_id: int, chat_id: int,
                     now: datetime) -> Broadcast | None:
    """The draft this staff member is writing in this chat (an hour at most)."""
    return await session.scalar(select(Broadcast).where(
        Broadcast.created_by == staff_user_id, Broadcast.chat_id == chat_id,
        Broadcast.status == "draft", Broadcast.created_at > now - timedelta(hours=1))
        .order_by(Broadcast.id.desc()).limit(1))


async def queue(session: AsyncSession, broadcast_id: int, staff_user_id: int, now: datetime,
                tz: ZoneInfo) -> int | None:
    """Write one outbox row per recipient (due now, valid for a day). None if not open."""
    draft = await session.get(Broadcast, broadcast_id, with_for_update=True)
    if draft is None or draft.status != "draft" or draft.text is None \
            or draft.created_by != staff_user_id:
        return None
    ids = await audience_patients(session, draft.audience, now, tz)
    session.add_all(Reminder(
        key=f"bc:{draft.id}:{pid}", appointment_id=None, patient_id=pid, kind="broadcast",
        due_at=now, expires_at=now + BROADCAST_VALID_FOR, quiet_ok=False, status="pending",
        attempts=0, outcome_unknown=False, created_at=now) for pid in ids)
    draft.status, draft.recipients, draft.queued_at = "queued", len(ids), now
    await session.flush()
    return len(ids)


async def cancel_draft(session: AsyncSession, broadcast_id: int, staff_user_id: int) -> bool:
    result = await session.execute(update(Broadcast).where(
        Broadcast.id == broadcast_id, Broadcast.created_by == staff_user_id,
        Broadcast.status == "draft").values(status="cancelled")
        .execution_options(synchronize_session=False))
    return bool(result.rowcount)
