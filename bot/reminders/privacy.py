"""The appointments' part of /mydata and /forget, and their /stats lines."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import console
from bot.db.appointment_models import ACTIVE_STATUSES, Appointment, PatientInvite, Reminder
from bot.db.models import Patient
from bot.privacy import DataSection
from bot.reminders import service
from bot.reminders.plans import Texts
from bot.reminders.render import when_plain


async def export(session: AsyncSession, patient: Patient) -> dict[str, Any]:
    appts = (await session.execute(select(Appointment).where(
        Appointment.patient_id == patient.id).order_by(Appointment.starts_at))).scalars().all()
    rems = (await session.execute(select(Reminder).where(
        Reminder.patient_id == patient.id).order_by(Reminder.due_at))).scalars().all()
    # Not the links they opened that merged into this row (erase() takes those): a forwarded
    # link carries the name and phone staff typed for someone else.
    invites = (await session.execute(select(PatientInvite).where(
        PatientInvite.patient_id == patient.id))).scalars().all()
    return {
        "appointments": [{
            "id": a.id, "starts_at": a.starts_at.isoformat(), "duration_minutes": a.duration_min,
            "treatment_area": a.area, "session": a.session_no, "course_size": a.course_size,
            "status": a.status} for a in appts],
        "reminders": [{
            "appointment_id": r.appointment_id, "kind": r.kind, "due_at": r.due_at.isoformat(),
            "status": r.status, "sent_at": r.sent_at.isoformat() if r.sent_at else None}
            for r in rems],
        "invitations": [{"name": i.contact_name, "phone": i.contact_phone,
                         "created_at": i.created_at.isoformat(),
                         "used_at": i.used_at.isoformat() if i.used_at else None} for i in invites],
    }


async def erase(session: AsyncSession, patient: Patient, now: datetime) -> list[Appointment]:
    """Delete the patient's appointments, reminders and invitations; returns the upcoming
    appointments that went (staff must know their slots are free)."""
    upcoming = list((await session.scalars(select(Appointment).where(
        Appointment.patient_id == patient.id, Appointment.starts_at >= now,
        Appointment.status.in_(ACTIVE_STATUSES)).order_by(Appointment.starts_at))).all())
    await session.execute(delete(Reminder).where(Reminder.patient_id == patient.id))
    await session.execute(delete(Appointment).where(Appointment.patient_id == patient.id))
    await session.execute(delete(PatientInvite).where(PatientInvite.patient_id == patient.id))
    await _erase_merged_placeholders(session, patient)
    return upcoming


async def _erase_merged_placeholders(session: AsyncSession, patient: Patient) -> None:
    """A link opened by someone already on the bot moved the bookings to their own row
    (service.redeem_invite) and left the placeholder behind, with the name and phone staff
    typed on its invites. Their own invite goes; while the placeholder is an empty shell that
    nobody else opened, its unused links (which hold their phone) and the name go too. A
    placeholder with appointments keeps them, its links and name: they were booked onto it
    after the merge (before bookings followed merges) and may be someone else's."""
    if patient.telegram_user_id is None:
        return
    merged = set(await session.scalars(select(PatientInvite.patient_id).where(
        PatientInvite.used_by == patient.telegram_user_id, PatientInvite.patient_id != patient.id)))
    await session.execute(delete(PatientInvite).where(
        PatientInvite.used_by == patient.telegram_user_id))
    for placeholder_id in sorted(merged):
        placeholder = await session.get(Patient, placeholder_id)
        others = await service.opened_by(session, placeholder_id)
        booked = await session.scalar(select(Appointment.id).where(
            Appointment.patient_id == placeholder_id).limit(1))
        if placeholder is None or placeholder.telegram_user_id is not None or others is not None \
                or booked is not None:
            continue
        await session.execute(delete(PatientInvite).where(PatientInvite.patient_id == placeholder_id))
        placeholder.first_name = None


def section(texts: Texts, tz: ZoneInfo) -> DataSection:
    async def erase_and_tell(session: AsyncSession, patient: Patient,
                             now: datetime) -> list[str]:
        gone = await erase(session, patient, now)
        if not gone:
            return []
        listed = "; ".join(f"#{a.id} {when_plain(a.starts_at, tz)}" for a in gone)
        return [texts.get("staff_forget_appointments", count=len(gone), appointments=listed)]

    return DataSection("appointments", export, erase_and_tell,
                       ("appointments", "reminders", "patient_invites"))


async def stats(session: AsyncSession, now: datetime) -> list[tuple[str, str]]:
    async def count(model, *where) -> str:
        return str(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    return [
        ("stat_appointments_upcoming", await count(
            Appointment, Appointment.starts_at >= now,
            Appointment.starts_at < now + timedelta(days=7),
            Appointment.status.in_(ACTIVE_STATUSES))),
        ("stat_reminders_pending", await count(Reminder, Reminder.status == "pending")),
        ("stat_reminders_sent_week", await count(
            Reminder, Reminder.status == "sent", Reminder.sent_at >= now - timedelta(days=7))),
        # The rows the console's "needing attention" list shows, not every dead row ever.
        ("stat_reminders_dead", str(await console.count_needing_attention(session, now))),
    ]
