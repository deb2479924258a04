"""Appointment service: book, reschedule, cancel, push. Reminder rows are written, replanned or
cancelled in the SAME transaction as the appointment change (the outbox rule)."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from bot import questions
from bot.config import Settings
from bot.db.appointment_models import ACTIVE_STATUSES, Appointment, PatientInvite, Reminder
from bot.db.engine import case_blind_equal
from bot.db.models import Patient
from bot.db.qa_models import NEXT_SESSION, RESCHEDULE
from bot.reminders.planner import AppointmentFacts, QuietHours, plan_appointment, reminder_key
from bot.reminders.plans import ReminderContent

log = logging.getLogger(__name__)

# "sending" too: a reminder claimed by the dispatcher but not yet sent must not go out after a
# cancellation or reschedule (the dispatcher re-reads the row right before each send).
OPEN = ("pending", "sending")
UNDELIVERED = ("dead", "failed")  # what staff may retry (bot/console.py)
NEXT_BOOKED = "next session booked"
FORBIDDEN = "Forbidden: patient unreachable"  # a send the patient's block refused


class BookingError(ValueError):
    """A booking request that cannot be carried out; str() is shown to staff."""


class AlreadyBooked(BookingError):
    """The patient has an active appointment at exactly that start."""


def quiet_hours(settings: Settings) -> QuietHours:
    return QuietHours(settings.quiet_hours_start, settings.quiet_hours_end, settings.tz)


def facts(appt: Appointment) -> AppointmentFacts:
    return AppointmentFacts(appt.id, appt.starts_at, appt.duration_min, appt.session_no,
                            appt.course_size, appt.plan_version)


def _rows(appt: Appointment, content: ReminderContent, settings: Settings,
          now: datetime, version: int | None = None) -> list[Reminder]:
    plan = facts(appt) if version is None else replace(facts(appt), plan_version=version)
    plans = content.plans
    if content.is_consultation(appt.area):  # no procedure: nothing to prepare or recover from
        plans = {kind: p for kind, p in plans.items() if not p.treatment_only}
    planned = plan_appointment(plan, plans, now, quiet_hours(settings))
    return [Reminder(key=p.key, appointment_id=appt.id, patient_id=appt.patient_id, kind=p.kind,
                     due_at=p.due_at, expires_at=p.expires_at, quiet_ok=p.quiet_ok,
                     status="pending", attempts=0, outcome_unknown=False, created_at=now)
            for p in planned]


MAX_MINUTES = 600


def validate_booking(starts_at: datetime, duration_min: int, area: str, session_no: int,
                     course_size: int, now: datetime) -> None:
    if starts_at.tzinfo is None:
        raise BookingError("the start time has no time zone")
    if starts_at <= now:
        raise BookingError("that time is in the past")
    if starts_at > now + timedelta(days=730):
        raise BookingError("that is more than two years ahead")
    if not 5 <= duration_min <= MAX_MINUTES:
        raise BookingError(f"duration must be 5-{MAX_MINUTES} minutes")
    if not area.strip() or len(area) > 64:
        raise BookingError("the treatment area must be 1-64 characters")
    if not (1 <= session_no <= course_size <= 50):
        raise BookingError("session must be N/M with 1 <= N <= M <= 50")


# A later session that makes "book your next session" moot (completed counts: it happened).
LATER_BOOKED = (*ACTIVE_STATUSES, "completed")


def _same_area(a: str, b: str) -> bool:
    # In Python: SQLite's lower() folds ASCII only ("Лицо" and "лицо" would differ there).
    return " ".join(a.casefold().split()) == " ".join(b.casefold().split())


async def continuations(session: AsyncSession, ids: Iterable[int]) -> dict[int, Appointment]:
    """For those of these appointments that a later session of their course continues, the
    first such session: one of the same area (a next session booked without N/M), or one with a
    higher session number that is not another course's. A one-off visit for something else is
    not: it must not silence the course's "book your next session"."""
    ids = set(ids)
    if not ids:
        return {}
    mine = (await session.scalars(select(Appointment).where(Appointment.id.in_(ids)))).all()
    theirs: dict[int, list[Appointment]] = {}
    for other in (await session.scalars(select(Appointment).where(
            Appointment.patient_id.in_({a.patient_id for a in mine}),
            Appointment.status != "cancelled")
            .order_by(Appointment.starts_at, Appointment.id))).all():
        theirs.setdefault(other.patient_id, []).append(other)
    found: dict[int, Appointment] = {}
    for appt in mine:
        course = theirs.get(appt.patient_id, [])
        later = next((other for other in course if other.starts_at > appt.starts_at
                      and other.status in LATER_BOOKED and _continues(appt, other, course)), None)
        if later is not None:
            found[appt.id] = later
    return found


def _continues(appt: Appointment, later: Appointment, course: list[Appointment]) -> bool:
    if _same_area(later.area, appt.area):
        return True
    if later.session_no <= appt.session_no:
        return False
    # Another course's session, when an earlier session of its own area comes before it (face
    # 1/4, scalp 1/4, scalp 2/4: scalp 2/4 continues scalp, not face). Otherwise the area was
    # spelt another way ("face", then "full face 2/4"): it continues this course.
    return not any(other.id not in (appt.id, later.id) and other.starts_at < later.starts_at
                   and other.session_no < later.session_no and _same_area(other.area, later.area)
                   for other in course)


async def next_booked(session: AsyncSession, ids: Iterable[int]) -> set[int]:
    """Those of these appointments whose course a later session continues (`continuations`)."""
    return set(await continuations(session, ids))


async def booked_at(session: AsyncSession, patient_id: int, starts_at: datetime) -> int | None:
    """The patient's active appointment at exactly this start, if any: booking it again (a
    retyped /book, a re-imported row) would send every reminder twice."""
    return await session.scalar(select(Appointment.id).where(
        Appointment.patient_id == patient_id, Appointment.starts_at == starts_at,
        Appointment.status.in_(ACTIVE_STATUSES)).limit(1))


async def _refuse_twin(session: AsyncSession, patient_id: int, starts_at: datetime,
                       duration_min: int, moving: int | None = None) -> None:
    """AlreadyBooked if another active appointment of the patient starts then; BookingError if
    one overlaps (a typo in the time, or the same visit booked twice a little apart). `moving`:
    the appointment being rescheduled, which may keep or overlap its own time."""
    twin = await booked_at(session, patient_id, starts_at)
    if twin is not None and twin != moving:
        raise AlreadyBooked(f"this patient already has appointment #{twin} at that time")
    ends_at = starts_at + timedelta(minutes=duration_min)
    # The longest booking is MAX_MINUTES: one starting earlier than that cannot reach this one.
    near = (await session.scalars(select(Appointment).where(
        Appointment.patient_id == patient_id, Appointment.status.in_(ACTIVE_STATUSES),
        Appointment.starts_at < ends_at,
        Appointment.starts_at > starts_at - timedelta(minutes=MAX_MINUTES)))).all()
    for other in near:
        if other.id != moving and other.starts_at < ends_at and starts_at < other.ends_at:
            raise BookingError(f"this patient's appointment #{other.id} "
                               f"({other.duration_min} min) overlaps that time")


async def book(session: AsyncSession, *, patient_id: int, starts_at: datetime, duration_min: int,
               area: str, session_no: int = 1, course_size: int = 1, now: datetime,
               content: ReminderContent, settings: Settings,
               named: int | None = None) -> Appointment:
    """`named`: the record staff named (named_record); when a link merged it into this
    patient's, the appointment is marked as moved from it (/unlink moves it back)."""
    validate_booking(starts_at, duration_min, area, session_no, course_size, now)
    if (typo := content.near_consultation(area)) is not None:
        raise BookingError(
            f"{typo!r} looks like a misspelt {'/'.join(sorted(content.consultation_words))}: "
            "spell it so for a consultation (no procedure's preparation or aftercare), or "
            "use another word for a treatment")
    await _refuse_twin(session, patient_id, starts_at, duration_min)
    appt = Appointment(patient_id=patient_id, starts_at=starts_at, duration_min=duration_min,
                       area=area.strip(), session_no=session_no, course_size=course_size,
                       status="booked", plan_version=1, time_version=1, created_at=now,
                       updated_at=now,
                       moved_from=named if named is not None and named != patient_id else None)
    session.add(appt)
    await session.flush()  # the id goes into the reminder keys
    session.add_all(_rows(appt, content, settings, now))
    # What the earlier sessions' "book your next session" reminders ask for is done.
    earlier = select(Appointment.id).where(Appointment.patient_id == patient_id,
                                           Appointment.starts_at < starts_at)
    continued = await next_booked(session, (await session.scalars(earlier)).all())
    if continued:
        await session.execute(update(Reminder).where(
            Reminder.kind == "next_session", Reminder.appointment_id.in_(continued),
            Reminder.status.in_(OPEN + UNDELIVERED))  # failed or dead: off the retry list too
            .values(status="cancelled", last_error=NEXT_BOOKED)
            .execution_options(synchronize_session=False))
        for appointment_id in continued:
            await questions.close_requests(session, source=NEXT_SESSION,
                                           appointment_id=appointment_id)
    await session.flush()
    return appt


async def reopen_next_session(session: AsyncSession, *, patient_id: int, now: datetime) -> int:
    """A later session was cancelled or missed: the "book your next session" reminders it had
    made moot are due again (now, if their moment passed, while still valid), unless another
    later session still continues their course. Returns how many."""
    rows = (await session.scalars(select(Reminder).where(
        Reminder.patient_id == patient_id, Reminder.kind == "next_session",
        Reminder.status == "cancelled", Reminder.last_error == NEXT_BOOKED,
        Reminder.expires_at > now))).all()
    if not rows:
        return 0
    still = await next_booked(session, {r.appointment_id for r in rows})
    reopened = 0
    for row in rows:
        appt = await session.get(Appointment, row.appointment_id)
        if row.appointment_id in still or appt is None or appt.status in ("cancelled", "no_show") \
                or await superseded(session, row):  # a reschedule planned it anew since
            continue
        row.status, row.last_error, row.attempts = "pending", None, 0
        row.due_at = max(row.due_at, now)
        reopened += 1
    await session.flush()
    return reopened


async def cancel_open_reminders(session: AsyncSession, *, now: datetime, reason: str,
                                appointment_id: int | None = None,
                                patient_id: int | None = None) -> int:
    stmt = update(Reminder).where(Reminder.status.in_(OPEN))
    if appointment_id is not None:
        stmt = stmt.where(Reminder.appointment_id == appointment_id)
    if patient_id is not None:
        stmt = stmt.where(Reminder.patient_id == patient_id)
    result = await session.execute(stmt.values(status="cancelled", last_error=reason[:200])
                                   .execution_options(synchronize_session=False))
    return result.rowcount or 0


async def retire_undelivered(session: AsyncSession, *, appointment_id: int, reason: str,
                             kinds: set[str] | None = None) -> None:
    """Dead or failed rows of a plan that was replaced leave the staff's retry list: a retry
    would send the old plan's message, or one the new plan sends as well."""
    stmt = update(Reminder).where(Reminder.appointment_id == appointment_id,
                                  Reminder.status.in_(UNDELIVERED))
    if kinds is not None:
        stmt = stmt.where(Reminder.kind.in_(kinds))
    await session.execute(stmt.values(status="cancelled", last_error=reason[:200])
                          .execution_options(synchronize_session=False))


async def superseded(session: AsyncSession, row: Reminder) -> bool:
    """A dead or failed row that a retry must not send: its kind was planned again since (a
    reschedule, a replan after unblocking). Not the plan version alone: a replan raises it
    for every kind, also for kinds it left as they were (their moment had passed)."""
    if row.appointment_id is None:
        return False
    if await session.get(Appointment, row.appointment_id) is None:
        return True
    newer = await session.scalar(select(Reminder.id).where(
        Reminder.appointment_id == row.appointment_id, Reminder.kind == row.kind,
        Reminder.id > row.id).limit(1))
    return newer is not None


UNREACHABLE = "patient unreachable"  # why the dispatcher cancelled a blocked patient's reminders
REPLANNED = "patient unreachable (replanned after unblocking)"
REPLACED = "replanned after unblocking"  # a dead or failed row whose kind a replan planned anew


async def replan_unblocked(session: AsyncSession, *, now: datetime, content: ReminderContent,
                           settings: Settings) -> int:
    """Patients who blocked the bot and have since written to it again get their reminders back.

    The cancelled rows are marked so this happens once. A kind's latest row is its current plan
    (a reschedule plans every kind anew, a replan only the kinds it gives back): kinds whose
    latest row is queued or sent are not planned again (a reschedule while blocked, or delivered
    already), and moments that have passed are skipped by the planner.
    A cancellation notice the block refused is sent then too, if the appointment is still ahead.
    """
    rows = (await session.execute(
        select(Reminder.appointment_id).join(Patient, Patient.id == Reminder.patient_id)
        .where(Reminder.status == "cancelled", Reminder.last_error == UNREACHABLE,
               Patient.unreachable.is_(False), Patient.chat_id.is_not(None),
               Reminder.appointment_id.is_not(None)).distinct())).scalars().all()
    replanned = 0
    for appointment_id in rows:
        await session.execute(update(Reminder).where(
            Reminder.appointment_id == appointment_id, Reminder.status == "cancelled",
            Reminder.last_error == UNREACHABLE).values(last_error=REPLANNED)
            .execution_options(synchronize_session=False))
        appt = await session.get(Appointment, appointment_id)
        if appt is None or not appt.active:
            continue
        latest = dict((await session.execute(select(Reminder.kind, Reminder.status).where(
            Reminder.appointment_id == appointment_id).order_by(Reminder.id))).all())
        covered = {kind for kind, status in latest.items() if status in (*OPEN, "sent")}
        fresh = [r for r in _rows(appt, content, settings, now, appt.plan_version + 1)
                 if r.kind not in covered]
        if not fresh:
            continue  # the current plan is whole: no new version (retries judge by it)
        appt.plan_version += 1
        appt.updated_at = now
        await retire_undelivered(session, appointment_id=appointment_id, reason=REPLACED,
                                 kinds={r.kind for r in fresh})
        session.add_all(fresh)
        replanned += len(fresh)
    # A cancellation the blocked bot could not tell them: told now, while it is still ahead.
    # Once: the row leaves "failed".
    notices = await session.execute(
        update(Reminder).where(
            Reminder.kind == "cancelled", Reminder.status == "failed",
            Reminder.last_error == FORBIDDEN, Reminder.expires_at > now,
            Reminder.patient_id.in_(select(Patient.id).where(
                Patient.unreachable.is_(False), Patient.chat_id.is_not(None))))
        .values(status="pending", due_at=now, attempts=0, last_error=None)
        .execution_options(synchronize_session=False))
    replanned += notices.rowcount or 0
    await session.flush()
    return replanned


async def confirm(session: AsyncSession, appt: Appointment, *, now: datetime) -> bool:
    """The patient confirms the appointment as this press read it (status and plan version).
    True when this confirmed it; False when it was confirmed already or staff changed it
    meanwhile (`appt` then reread). A guarded UPDATE, not a write of what was read: SQLite
    reads without a lock."""
    result = await session.execute(
        update(Appointment).where(Appointment.id == appt.id, Appointment.status == "booked",
                                  Appointment.plan_version == appt.plan_version)
        .values(status="confirmed", updated_at=now).execution_options(synchronize_session=False))
    if result.rowcount:
        set_committed_value(appt, "status", "confirmed")
        set_committed_value(appt, "updated_at", now)
        return True
    await session.refresh(appt)
    return False


async def active_appointment(session: AsyncSession, appointment_id: int) -> Appointment | None:
    appt = await session.get(Appointment, appointment_id, with_for_update=True)
    return appt if appt is not None and appt.active else None


# The reminders that name the appointment's time.
TELLS_THE_TIME = ("confirmation", "preparation", "same_day", "push_before")


async def told_the_time(session: AsyncSession, appt: Appointment) -> bool:
    """Whether a message naming the appointment's current start has reached the patient: one
    of the plan version that set it or a later one (a replan keeps the time), /push's too."""
    versions = range(appt.time_version or appt.plan_version, appt.plan_version + 1)
    told = [Reminder.key.in_([reminder_key(appt.id, k, v) for k in TELLS_THE_TIME
                              for v in versions])]
    if appt.time_version is not None:  # 0016 on: /push keys carry the version
        told += [Reminder.key.like(f"appt:{appt.id}:push:v{v}:%") for v in versions]
    return await session.scalar(select(Reminder.id).where(
        or_(*told), Reminder.appointment_id == appt.id, Reminder.kind.in_(TELLS_THE_TIME),
        Reminder.status == "sent").limit(1)) is not None


async def reschedule(session: AsyncSession, appt: Appointment, *, starts_at: datetime,
                     now: datetime, content: ReminderContent, settings: Settings,
                     duration_min: int | None = None) -> Appointment:
    if not appt.active:
        raise BookingError("the appointment is not active")
    duration = appt.duration_min if duration_min is None else duration_min
    if starts_at == appt.starts_at and duration == appt.duration_min:
        # Nothing would change, but the patient would get a new confirmation to give.
        raise BookingError(f"appointment #{appt.id} is at that time already")
    validate_booking(starts_at, duration, appt.area, appt.session_no, appt.course_size, now)
    await _refuse_twin(session, appt.patient_id, starts_at, duration, moving=appt.id)
    await cancel_open_reminders(session, now=now, reason="rescheduled", appointment_id=appt.id)
    await retire_undelivered(session, appointment_id=appt.id, reason="rescheduled")
    # "Moved from ..." names the time the patient was last told: the current one, if a message
    # naming it went out; else the one before stays (moved twice before the patient heard of
    # the middle time), or none (never told: "booked"). Told, and only the duration changes:
    # the same start, and the confirmation says "changed".
    if await told_the_time(session, appt):
        appt.previous_starts_at = appt.starts_at
    moved = starts_at != appt.starts_at
    appt.starts_at, appt.duration_min = starts_at, duration
    appt.plan_version += 1
    if moved:
        appt.time_version = appt.plan_version
    appt.status = "booked"  # the new time needs a new confirmation
    appt.updated_at = now
    session.add_all(_rows(appt, content, settings, now))
    await questions.close_requests(session, source=RESCHEDULE, appointment_id=appt.id)
    await session.flush()
    return appt


async def cancel(session: AsyncSession, appt: Appointment, *, now: datetime,
                 content: ReminderContent, notify_patient: bool) -> Appointment:
    if not appt.active:
        raise BookingError("the appointment is not active")
    appt.status = "cancelled"
    appt.updated_at = now
    await cancel_open_reminders(session, now=now, reason="appointment cancelled",
                                appointment_id=appt.id)
    await retire_undelivered(session, appointment_id=appt.id, reason="appointment cancelled")
    await questions.close_requests(session, source=RESCHEDULE, appointment_id=appt.id)
    if notify_patient and appt.starts_at > now:
        session.add(Reminder(
            key=f"appt:{appt.id}:cancelled", appointment_id=appt.id, patient_id=appt.patient_id,
            kind="cancelled", due_at=now, expires_at=appt.starts_at, quiet_ok=True,
            status="pending", attempts=0, outcome_unknown=False, created_at=now))
    await session.flush()
    await reopen_next_session(session, patient_id=appt.patient_id, now=now)
    return appt


async def push(session: AsyncSession, appt: Appointment, *, now: datetime,
               content: ReminderContent, once: str | None = None) -> Reminder:
    """Staff /push: the relevant reminder, now, through the outbox. With `once` (the pressed
    button's message), a second press of that button queues nothing more: the row it queued.
    The caller holds the appointment's lock (`active_appointment`)."""
    # The plan version in the key: whether the patient was told the time (`told_the_time`).
    key = f"appt:{appt.id}:push:v{appt.plan_version}:{once or int(now.timestamp() * 1000)}"
    if once:
        queued = await session.scalar(select(Reminder).where(Reminder.key == key))
        if queued is not None:
            return queued
    # Before its end, not its start: a patient running late, or in the chair, is not sent
    # aftercare advice; nor is anyone after a consultation (no procedure).
    kind = "push_after" if now >= appt.ends_at else "push_before"  # never after a consultation
    row = Reminder(key=key,
                   appointment_id=appt.id, patient_id=appt.patient_id, kind=kind, due_at=now,
                   expires_at=now + content.push_valid_for, quiet_ok=True, status="pending",
                   attempts=0, outcome_unknown=False, created_at=now)
    session.add(row)
    await session.flush()
    return row


UPCOMING_MAX_DAYS = 60  # /upcoming N: a longer window is cut to this, and the reply says so
UPCOMING_LIMIT = 60  # appointments listed; /upcoming says when there are more


@dataclass
class UpcomingEntry:
    appt: Appointment
    patient: Patient
    reminders: list[Reminder]


async def upcoming(session: AsyncSession, *, now: datetime, days: int,
                   start: datetime | None = None) -> tuple[list[UpcomingEntry], bool]:
    """Staff /upcoming: appointments from 12 hours ago (or from `start`) to `days` after that
    which were not cancelled (at most UPCOMING_LIMIT), each with its reminders, and whether
    there are more."""
    since, until = (now - timedelta(hours=12), now + timedelta(days=days)) if start is None \
        else (start, start + timedelta(days=days))
    rows = (await session.execute(
        select(Appointment, Patient).join(Patient, Patient.id == Appointment.patient_id)
        .where(Appointment.starts_at >= since, Appointment.starts_at < until,
               Appointment.status != "cancelled")
        .order_by(Appointment.starts_at, Appointment.id).limit(UPCOMING_LIMIT + 1))).all()
    more = len(rows) > UPCOMING_LIMIT
    rows = rows[:UPCOMING_LIMIT]
    by_appt = await reminders_of(session, [a.id for a, _ in rows])
    return [UpcomingEntry(a, p, by_appt[a.id]) for a, p in rows], more


async def reminders_of(session: AsyncSession, appointment_ids: list[int]) -> dict[int, list[Reminder]]:
    """Each appointment's reminders for staff screens, in due order, without those of an
    earlier time (cancelled by a reschedule)."""
    by_appt: dict[int, list[Reminder]] = {i: [] for i in appointment_ids}
    if appointment_ids:
        for r in await session.scalars(select(Reminder).where(
                Reminder.appointment_id.in_(appointment_ids)).order_by(Reminder.due_at, Reminder.id)):
            if r.status == "cancelled" and r.last_error == "rescheduled":
                continue
            by_appt[r.appointment_id or 0].append(r)
    return by_appt


# ------------------------------------------------------------------------------ patients
def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Invitation:
    patient: Patient
    token: str | None  # None: the patient is already on Telegram


async def _placeholder_of_phone(session: AsyncSession, phone: str) -> Patient | None:
    """The record the newest link staff made for this phone points to, if any."""
    invite = await session.scalar(select(PatientInvite).where(
        PatientInvite.contact_phone == phone).order_by(PatientInvite.id.desc()).limit(1))
    return await session.get(Patient, invite.patient_id) if invite is not None else None


async def opened_by(session: AsyncSession, placeholder_id: int) -> int | None:
    """The Telegram user who opened one of this placeholder's links, if anyone did."""
    return await session.scalar(select(PatientInvite.used_by).where(
        PatientInvite.patient_id == placeholder_id, PatientInvite.used_by.is_not(None))
        .order_by(PatientInvite.id.desc()).limit(1))


async def _merged_into(session: AsyncSession, patient: Patient) -> Patient:
    """A placeholder whose link was opened by someone already on the bot: their bookings moved
    to that person's record (redeem_invite), which is where this patient now is."""
    if patient.chat_id is not None:
        return patient
    used_by = await opened_by(session, patient.id)
    linked = await session.scalar(select(Patient).where(
        Patient.telegram_user_id == used_by, Patient.erased_at.is_(None))) \
        if used_by is not None else None
    return linked if linked is not None and linked.chat_id is not None else patient


async def patient_by_number(session: AsyncSession, patient_id: int) -> Patient:
    """The patient staff name as #N (followed to the record a link merged it into). An erased
    one is no patient: their row is an empty shell kept for the audit, and a link to it would
    attach whoever opens it to that record."""
    patient = await session.get(Patient, patient_id)
    if patient is None:
        raise BookingError(f"there is no patient #{patient_id}")
    if patient.erased_at is not None:
        raise BookingError(f"there is no patient #{patient_id} "
                           "(their data was erased at their request)")
    return await _merged_into(session, patient)


async def named_record(session: AsyncSession, *, patient_id: int | None,
                       phone: str | None) -> int | None:
    """The record staff named (#N, or the phone's placeholder), before following a link that
    merged it into someone's record: a booking made so is marked as moved from it, for
    /unlink to move back."""
    if patient_id is not None:
        return patient_id
    if phone is not None:
        placeholder = await _placeholder_of_phone(session, phone)
        return placeholder.id if placeholder is not None else None
    return None


async def patient_with_phone(session: AsyncSession, phone: str) -> Patient | None:
    """The patient staff booked with this phone: the record of its newest link, or whoever
    opened that record's link while already on the bot (the bookings moved to them). None if
    the phone was never booked, or its patient erased their data."""
    patient = await _placeholder_of_phone(session, phone)
    if patient is None or patient.erased_at is not None:
        return None  # erased: never their empty shell
    return await _merged_into(session, patient)


async def unlink(session: AsyncSession, *, patient_id: int | None = None,
                 phone: str | None = None) -> tuple[Patient, Patient | None, list[int]]:
    """Staff /unlink: a placeholder's link was opened by the wrong person, who was on the bot
    already (their record took its bookings). The links they opened stay used but stop naming
    them, so the placeholder is nobody's again and `/link` can give the right person a new one.
    Returns (the placeholder, who had opened it, the appointments moved back to the placeholder):
    the active ones the link moved to them go back, and their reminders wait for the right
    person's link. (What they were sent already, they were sent.)"""
    if phone is not None:
        placeholder = await _placeholder_of_phone(session, phone)
        if placeholder is None:
            raise BookingError("nobody was booked with that phone number")
    else:
        placeholder = await session.get(Patient, patient_id)
        if placeholder is None or placeholder.erased_at is not None:
            raise BookingError(f"there is no patient #{patient_id}")
    if placeholder.telegram_user_id is not None:
        raise BookingError(f"#{placeholder.id} is the record of whoever opened its link (they were "
                           "new to the bot), so it cannot be unlinked: book the right person by "
                           "a quoted name or their phone")
    opener_id = await opened_by(session, placeholder.id)
    if opener_id is None:
        raise BookingError(f"nobody has opened a link to #{placeholder.id}: /link gives a new one")
    # Still used (they cannot open them again), no longer theirs.
    await session.execute(update(PatientInvite).where(
        PatientInvite.patient_id == placeholder.id, PatientInvite.used_by.is_not(None))
        .values(used_by=None).execution_options(synchronize_session=False))
    opener = await session.scalar(select(Patient).where(Patient.telegram_user_id == opener_id))
    back: list[int] = []
    if opener is not None:
        back = list((await session.scalars(select(Appointment.id).where(
            Appointment.moved_from == placeholder.id, Appointment.patient_id == opener.id,
            Appointment.status.in_(ACTIVE_STATUSES)).order_by(Appointment.starts_at))).all())
    if back:
        await session.execute(update(Appointment).where(Appointment.id.in_(back))
                              .values(patient_id=placeholder.id, moved_from=None)
                              .execution_options(synchronize_session=False))
        await session.execute(update(Reminder).where(Reminder.appointment_id.in_(back))
                              .values(patient_id=placeholder.id)
                              .execution_options(synchronize_session=False))
    return placeholder, opener, back


async def same_name(session: AsyncSession, name: str, *, besides: int,
                    limit: int = 5) -> list[int]:
    """Other patients (not erased) with this name, case aside: a booking by name makes a new
    record each time, so staff are shown the ones they may have meant."""
    folded = name.casefold()
    rows = (await session.execute(select(Patient.id, Patient.first_name).where(
        Patient.id != besides, Patient.erased_at.is_(None),
        or_(Patient.first_name == name,
            case_blind_equal(session.bind.dialect.name, Patient.first_name, name)))
        .order_by(Patient.id))).all()
    # The comparison that decides is Python's casefold().
    return [pid for pid, first in rows if (first or "").casefold() == folded][:limit]


async def patient_for_contact(session: AsyncSession, *, name: str | None, phone: str | None,
                              now: datetime, content: ReminderContent) -> Invitation:
    """A placeholder patient for someone not yet on Telegram, with a fresh invite token."""
    patient = await patient_with_phone(session, phone) if phone else None
    if patient is not None and patient.chat_id is not None:
        return Invitation(patient, None)
    if patient is None:
        patient = Patient(telegram_user_id=None, chat_id=None, first_name=(name or None),
                          created_at=now, last_seen_at=now)
        session.add(patient)
        await session.flush()
    return await invite_existing(session, patient, name=name, phone=phone, now=now, content=content)


async def invite_existing(session: AsyncSession, patient: Patient, *, name: str | None,
                          phone: str | None, now: datetime, content: ReminderContent) -> Invitation:
    """A fresh invite token for THIS patient (opening it links their chat to this record)."""
    token = "lk_" + secrets.token_urlsafe(18)
    session.add(PatientInvite(patient_id=patient.id, token_hash=token_hash(token),
                              contact_name=name, contact_phone=phone, created_at=now,
                              expires_at=now + content.engine.invite_valid_for))
    await session.flush()
    return Invitation(patient, token)


@dataclass
class Redeemed:
    patient: Patient
    first_time: bool  # False: this user opened their own link again (staff were told already)
    # The opener was on the bot already: the record whose link it was, and the appointments
    # that moved from it to theirs (staff check it was the right person: /unlink if not).
    merged_from: int | None = None
    moved: tuple[int, ...] = ()


async def redeem_invite(session: AsyncSession, *, token: str, user_id: int, chat_id: int,
                        first_name: str | None, now: datetime) -> Redeemed | None:
    """Link the chat that opened a deep link; None if the token is unknown, used or expired.

    If this Telegram user already has a patient row, the booked appointments and reminders
    move to it (one person, one row)."""
    invite = await session.scalar(select(PatientInvite).where(
        PatientInvite.token_hash == token_hash(token)).with_for_update())
    if invite is None or invite.expires_at <= now:
        return None
    if invite.used_at is not None:
        if invite.used_by == user_id:
            again = await session.scalar(select(Patient).where(Patient.telegram_user_id == user_id))
            return Redeemed(again, first_time=False) if again is not None else None
        return None
    placeholder = await session.get(Patient, invite.patient_id)
    owner: int | None = None
    if placeholder is not None:
        # A record has several links (one per booking before its first is opened). Once one
        # made it someone's (it became their record, or its bookings moved to theirs), another
        # link is never a way in: a forwarded or misdirected one would hand over their
        # appointments and health data, and staff's next booking by phone with them.
        owner = placeholder.telegram_user_id or await opened_by(session, placeholder.id)
        if owner is not None and owner != user_id:
            log.warning("invite to patient %s opened by another Telegram user: refused",
                        placeholder.id)
            return None
        if placeholder.telegram_user_id == user_id:
            invite.used_at, invite.used_by = now, user_id  # their own record's other link
            return Redeemed(placeholder, first_time=False)
    existing = await session.scalar(select(Patient).where(Patient.telegram_user_id == user_id))
    merged_from, moved = None, ()
    if existing is not None and placeholder is not None and existing.id != placeholder.id:
        merged_from = placeholder.id
        moved = tuple((await session.scalars(select(Appointment.id).where(
            Appointment.patient_id == placeholder.id, Appointment.status.in_(ACTIVE_STATUSES))
            .order_by(Appointment.starts_at))).all())
        await session.execute(update(Appointment).where(Appointment.patient_id == placeholder.id)
                              .values(patient_id=existing.id, moved_from=placeholder.id))
        await session.execute(update(Reminder).where(Reminder.patient_id == placeholder.id)
                              .values(patient_id=existing.id))
        target = existing
    else:
        target = placeholder
        assert target is not None
        target.telegram_user_id = user_id
    target.chat_id = chat_id
    target.unreachable = False
    if first_name and not target.first_name:
        target.first_name = first_name[:255]
    target.last_seen_at = now
    invite.used_at, invite.used_by = now, user_id
    await session.flush()
    # Staff were told of its first link.
    return Redeemed(target, first_time=owner is None, merged_from=merged_from, moved=moved)


@dataclass
class DeadRetry:
    count: int = 0  # dead letters queued again
    refused: str | None = None  # NO_APPOINTMENT, UNREACHABLE_PATIENT, NOT_LINKED: none retried


NO_APPOINTMENT = "no appointment"
UNREACHABLE_PATIENT = "unreachable"  # blocked the bot
NOT_LINKED = "not linked"  # has not opened the bot yet
CONSULTATION_OVER = "consultation over"  # /push: nothing left to remind of


def unreachable(patient: Patient | None) -> str | None:
    """Why nothing sent now could reach this patient (UNREACHABLE_PATIENT, NOT_LINKED), or
    None. The dispatcher passes such patients by, so a reminder queued for them would expire
    unsent while staff were told it was on its way."""
    if patient is not None and patient.unreachable:
        return UNREACHABLE_PATIENT
    if patient is not None and patient.chat_id is None:
        return NOT_LINKED
    return None


async def push_refused(session: AsyncSession, appt: Appointment | None, *, now: datetime,
                       content: ReminderContent) -> str | None:
    """Why a /push of this (locked, active) appointment would reach nobody, or send nothing
    that fits (after a consultation: nothing to prepare for, no aftercare), or None."""
    if appt is None:
        return NO_APPOINTMENT
    if content.is_consultation(appt.area) and now >= appt.ends_at:
        return CONSULTATION_OVER
    return unreachable(await session.get(Patient, appt.patient_id))


async def retry_dead(session: AsyncSession, appointment_id: int, *, now: datetime) -> DeadRetry:
    """Staff retry of dead letters: back to pending, due now, while still valid, wanted by the
    appointment's state (the dispatcher drops the others unsent) and not `superseded` (a retry
    of an older plan's reminder would repeat or contradict the new one). Refused when there is
    no such appointment, or it was cancelled or missed and has nothing left to send, or the
    patient cannot be reached (blocked the bot, or no chat yet)."""
    from bot.reminders.dispatcher import wanted  # the dispatcher imports this module

    appt = await session.get(Appointment, appointment_id)
    if appt is None:
        return DeadRetry(refused=NO_APPOINTMENT)
    dead = (await session.scalars(select(Reminder).where(
        Reminder.appointment_id == appointment_id, Reminder.status == "dead",
        Reminder.expires_at > now))).all()
    ids = [row.id for row in dead
           if wanted(appt, row.kind) and not await superseded(session, row)]
    # A cancelled appointment may still owe its cancellation notice: refused only without one.
    if not ids and appt.status in ("cancelled", "no_show"):
        return DeadRetry(refused=NO_APPOINTMENT)
    if refused := unreachable(await session.get(Patient, appt.patient_id)):
        return DeadRetry(refused=refused)
    if not ids:
        return DeadRetry()
    result = await session.execute(
        update(Reminder).where(Reminder.id.in_(ids), Reminder.status == "dead")
        .values(status="pending", due_at=now, attempts=0, last_error="retried by staff")
        .execution_options(synchronize_session=False))
    return DeadRetry(result.rowcount or 0)
