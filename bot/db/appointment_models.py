"""Appointments, their reminder outbox rows, and invitations for patients not yet on Telegram."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db.models import Base, Patient
from bot.db.types import UTCDateTime

APPOINTMENT_STATUSES = ("booked", "confirmed", "cancelled", "completed", "no_show")
ACTIVE_STATUSES = ("booked", "confirmed")  # still to happen
REMINDER_STATUSES = ("pending", "sending", "sent", "failed", "expired", "cancelled", "dead")


class Appointment(Base):
    __tablename__ = "appointments"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    duration_min: Mapped[int] = mapped_column(Integer)
    area: Mapped[str] = mapped_column(String(64))
    session_no: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    course_size: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    status: Mapped[str] = mapped_column(String(16), default="booked", server_default="booked")
    plan_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The CSV row that booked it (bot/reminders/importer.py), kept through relinking,
    # cancellation and rescheduling so that importing the row again books nothing.
    import_key: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    # The start the patient was told before the last change; equal to starts_at when only the
    # duration changed since. The new confirmation says it moved (or changed), from when.
    previous_starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The plan version that set starts_at (booking, or a reschedule that moved it): messages of
    # it and later versions name this time. None for appointments older than 0016.
    time_version: Mapped[int | None] = mapped_column(Integer)
    # The placeholder record it was booked on, when a link moved it to whoever opened it
    # (someone already on the bot): /unlink moves it back.
    moved_from: Mapped[int | None] = mapped_column(Integer)

    patient: Mapped[Patient] = relationship(lazy="raise")

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.duration_min)


class Reminder(Base):
    """One message in the outbox. The key makes planning idempotent (appt:42:aftercare)."""

    __tablename__ = "reminders"
    __table_args__ = (Index("ix_reminders_status_due_at", "status", "due_at"),
                      Index("ix_reminders_status_expires_at", "status", "expires_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(96), unique=True)
    appointment_id: Mapped[int | None] = mapped_column(
        ForeignKey("appointments.id", ondelete="CASCADE"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    quiet_ok: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(String(200))
    outcome_unknown: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PatientInvite(Base):
    """A deep-link token staff send to a patient booked before they opened the bot.

    Only the token's SHA-256 is stored; opening t.me/<bot>?start=<token> links the chat.
    """

    __tablename__ = "patient_invites"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    contact_name: Mapped[str | None] = mapped_column(String(255))
    contact_phone: Mapped[str | None] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    used_by: Mapped[int | None] = mapped_column(BigInteger)
