"""Staff console logic (no Telegram): today's and tomorrow's appointments with their
confirmation and reminder status, reminders needing attention and their retry, no-shows,
broadcasts through the reminder outbox, and the /stats lines for all of these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.appointment_models import ACTIVE_STATUSES, Appointment, Reminder
from bot.db.models import Patient
from bot.db.preference_models import Broadcast
from bot.reminders.dispatcher import wanted
from bot.reminders.planner import resolve_local
from bot.reminders.service import (
    cancel_open_reminders,
    reminders_of,
    reopen_next_session,
    retire_undelivered,
    superseded,
)

AUDIENCES = ("tomorrow", "upcoming")
BROADCAST_MAX = 3500  # characters of staff text; the header and Telegram's 4096 limit leave room
BROADCAST_VALID_FOR = timedelta(hours=24)
DRAFT_OPEN_FOR = timedelta(hours=1)  # writing a broadcast, and pressing its preview's Send
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


DAY_LIMIT = 100  # appointments listed per day; the rest are counted, not shown


async def day_entries(session: AsyncSession, now: datetime, tz: ZoneInfo,
                      days_ahead: int) -> tuple[list[DayEntry], int]:
    """The day's appointments (at most DAY_LIMIT) and how many more there are."""
    start, end = local_day_bounds(now, tz, days_ahead)
    on_day = (Appointment.starts_at >= start, Appointment.starts_at < end,
              Appointment.status != "cancelled")
    rows = (await session.execute(
        select(Appointment, Patient).join(Patient, Patient.id == Appointment.patient_id)
        .where(*on_day).order_by(Appointment.starts_at, Appointment.id).limit(DAY_LIMIT))).all()
    more = 0
    if len(rows) == DAY_LIMIT:
        total = await session.scalar(select(func.count()).select_from(Appointment).where(*on_day))
        more = max(int(total or 0) - DAY_LIMIT, 0)
    by_appt = await reminders_of(session, [a.id for a, _ in rows])
    return [DayEntry(a, p, by_appt[a.id]) for a, p in rows], more


@dataclass
class Block:
    title: str
    continued: str  # the title of its second and later pieces
    lines: list[str]


def pages(blocks: list[Block], limit: int) -> list[str]:
    """Message texts of at most `limit` characters: whole blocks (a day) joined while they fit,
    a block too long alone cut between lines. Nothing is dropped (a line is far shorter)."""
    pieces: list[list[str]] = []
    for block in blocks:
        piece = [block.title]
        for line in block.lines:
            if len(piece) > 1 and len("\n".join([*piece, line])) > limit:
                pieces.append(piece)
                piece = [block.continued]
            piece.append(line)
        pieces.append(piece)
    texts: list[str] = []
    for piece in pieces:
        text = "\n".join(piece)
        if texts and len(texts[-1]) + 1 + len(text) <= limit:
            texts[-1] += "\n" + text
        else:
            texts.append(text)
    return texts


def _attention(now: datetime) -> tuple:
    """What a reminder needing attention is: failed or dead, not expired, its patient not
    erased. The console's list and the /stats count (bot/reminders/privacy.py) use this one."""
    return (Reminder.status.in_(RETRYABLE), Reminder.expires_at > now, Patient.erased_at.is_(None))


async def needing_attention(session: AsyncSession, now: datetime,
                            limit: int = 15) -> list[tuple[Reminder, Patient]]:
    """Failed or dead-lettered reminders that have not expired, oldest first."""
    rows = await session.execute(
        select(Reminder, Patient).join(Patient, Patient.id == Reminder.patient_id)
        .where(*_attention(now)).order_by(Reminder.due_at, Reminder.id).limit(limit))
    return [(r, p) for r, p in rows.all()]


async def count_needing_attention(session: AsyncSession, now: datetime) -> int:
    return int(await session.scalar(
        select(func.count()).select_from(Reminder).join(Patient, Patient.id == Reminder.patient_id)
        .where(*_attention(now))) or 0)


async def dropped_with(session: AsyncSession, row: Reminder) -> Appointment | None:
    """The appointment whose state makes the dispatcher cancel this reminder unsent."""
    if row.appointment_id is None:
        return None
    appt = await session.get(Appointment, row.appointment_id)
    if appt is None:
        return None  # gone with its reminders: superseded() refuses the retry
    return None if wanted(appt, row.kind) else appt


@dataclass
class Retry:
    row: Reminder | None  # queued again; None: refused
    inactive: Appointment | None = None  # refused because of this appointment's state


async def retry_reminder(session: AsyncSession, reminder_id: int, now: datetime) -> Retry:
    """Put one failed or dead reminder back in the outbox, due now. Refused if it cannot be
    (sent meanwhile, expired, superseded by a newer plan, its patient is unreachable: a blocked
    bot cannot send; or its appointment is no longer active: the dispatcher would drop it)."""
    row = await session.get(Reminder, reminder_id, with_for_update=True)
    if row is None:
        return Retry(None)
    # First, so staff learn why even when the row was also retired (cancelled) meanwhile.
    appt = await dropped_with(session, row)
    if appt is not None:
        return Retry(None, inactive=appt)
    if row.status not in RETRYABLE or row.expires_at <= now or await superseded(session, row):
        return Retry(None)
    patient = await session.get(Patient, row.patient_id)
    if patient is None or patient.unreachable or patient.chat_id is None:
        return Retry(None)
    row.status, row.due_at, row.attempts = "pending", now, 0
    row.last_error = "retried by staff"
    await session.flush()
    return Retry(row)


NO_SHOW_UNKNOWN, NO_SHOW_NOT_STARTED = "unknown", "not_started"


def no_show_refused(appt: Appointment | None, now: datetime) -> str | None:
    """Why an appointment cannot be marked a no-show: NO_SHOW_UNKNOWN, NO_SHOW_NOT_STARTED or
    its status (cancelled, no_show, completed); None when it can."""
    if appt is None:
        return NO_SHOW_UNKNOWN
    if appt.status not in ACTIVE_STATUSES:
        return appt.status
    return NO_SHOW_NOT_STARTED if appt.starts_at > now else None


async def mark_no_show(session: AsyncSession, appointment_id: int, now: datetime) -> bool:
    appt = await session.get(Appointment, appointment_id, with_for_update=True)
    if no_show_refused(appt, now) is not None:
        return False
    appt.status, appt.updated_at = "no_show", now
    await cancel_open_reminders(session, now=now, reason="no-show", appointment_id=appointment_id)
    # Failed and dead ones leave the retry list too: a no-show wants nothing sent.
    await retire_undelivered(session, appointment_id=appointment_id, reason="no-show")
    # A missed later session leaves the course's "book your next session" wanted again.
    await reopen_next_session(session, patient_id=appt.patient_id, now=now)
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
                            tz: ZoneInfo, *, reachable: bool = True,
                            begun_at: datetime | None = None) -> list[int]:
    """Patient ids in the group who can receive a message (linked, reachable, not erased);
    with reachable=False, those of the group who cannot (not on the bot, or blocked it):
    staff phone them. `begun_at`: when staff began the broadcast, whose "tomorrow" it is (the
    day after that, even when its Send is pressed after midnight)."""
    if audience == "tomorrow":
        start, end = local_day_bounds(begun_at or now, tz, 1)
        when = (Appointment.starts_at >= start, Appointment.starts_at < end)
    elif audience == "upcoming":
        when = (Appointment.starts_at > now,)
    else:
        raise ValueError(f"unknown audience {audience!r}")
    can = and_(Patient.chat_id.is_not(None), Patient.unreachable.is_(False))
    rows = await session.scalars(
        select(Patient.id).join(Appointment, Appointment.patient_id == Patient.id)
        .where(*when, Appointment.status.in_(ACTIVE_STATUSES), Patient.erased_at.is_(None),
               can if reachable else ~can)
        .distinct().order_by(Patient.id))
    return list(rows.all())


async def _close_drafts(session: AsyncSession, staff_user_id: int, *,
                       keep: int | None = None) -> None:
    """Cancel every open draft of this staff member (all previews of the broadcast being
    composed: one at a time, as start_draft closes the others), but `keep`."""
    stmt = update(Broadcast).where(Broadcast.created_by == staff_user_id,
                                   Broadcast.status == "draft")
    if keep is not None:
        stmt = stmt.where(Broadcast.id != keep)
    await session.execute(stmt.values(status="cancelled")
                          .execution_options(synchronize_session=False))


async def start_draft(session: AsyncSession, staff_user_id: int, chat_id: int, audience: str,
                      now: datetime) -> Broadcast:
    if audience not in AUDIENCES:
        raise ValueError(f"unknown audience {audience!r}")
    await _close_drafts(session, staff_user_id)
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
        Broadcast.status == "draft", Broadcast.created_at > now - DRAFT_OPEN_FOR)
        .order_by(Broadcast.id.desc()).limit(1))


async def preview(session: AsyncSession, draft: Broadcast, text: str) -> Broadcast:
    """The row a preview of `text` confirms: the draft itself for its first text, a new draft
    row for each later one (which then takes the next text). A preview's Send thus queues the
    text shown above it, never one typed since; sending one preview closes the others."""
    if draft.text is None:
        draft.text = text
        return draft
    row = Broadcast(audience=draft.audience, text=text, status="draft",
                    created_by=draft.created_by, chat_id=draft.chat_id, recipients=0,
                    created_at=draft.created_at)  # open_draft's hour runs from the start
    session.add(row)
    await session.flush()
    return row


async def _open_drafts(session: AsyncSession, staff_user_id: int) -> list[Broadcast]:
    """This staff member's open drafts (the previews of one broadcast), locked in id order:
    two taps on two previews (two instances) then wait for each other instead of each
    locking its own row and deadlocking on the other's."""
    return list(await session.scalars(
        select(Broadcast).where(Broadcast.created_by == staff_user_id, Broadcast.status == "draft")
        .order_by(Broadcast.id).with_for_update().execution_options(populate_existing=True)))


async def queue(session: AsyncSession, broadcast_id: int, staff_user_id: int, now: datetime,
                tz: ZoneInfo) -> int | None:
    """Write one outbox row per recipient (due now, valid for a day). None if not open."""
    draft = next((d for d in await _open_drafts(session, staff_user_id) if d.id == broadcast_id),
                 None)
    # A preview's Send lasts as long as its draft: pressed the next morning, it would reach
    # whoever the group holds by then, not the patients the preview counted.
    if draft is None or draft.text is None or draft.created_at <= now - DRAFT_OPEN_FOR:
        return None
    ids = await audience_patients(session, draft.audience, now, tz, begun_at=draft.created_at)
    session.add_all(Reminder(
        key=f"bc:{draft.id}:{pid}", appointment_id=None, patient_id=pid, kind="broadcast",
        due_at=now, expires_at=now + BROADCAST_VALID_FOR, quiet_ok=False, status="pending",
        attempts=0, outcome_unknown=False, created_at=now) for pid in ids)
    draft.status, draft.recipients, draft.queued_at = "queued", len(ids), now
    await _close_drafts(session, staff_user_id, keep=draft.id)  # the other previews
    await session.flush()
    return len(ids)


async def author_of(session: AsyncSession, broadcast_id: int) -> int | None:
    """Who composes this broadcast while it is a draft (None once sent or cancelled)."""
    return await session.scalar(select(Broadcast.created_by).where(
        Broadcast.id == broadcast_id, Broadcast.status == "draft"))


async def cancel_draft(session: AsyncSession, broadcast_id: int, staff_user_id: int) -> bool:
    """Cancel the broadcast being composed (every preview of it) if this draft is open."""
    if not any(d.id == broadcast_id for d in await _open_drafts(session, staff_user_id)):
        return False
    await _close_drafts(session, staff_user_id)
    return True
