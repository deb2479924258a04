"""Patients' reminder preferences (/settings) and staff broadcasts (sent through the outbox)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base
from bot.db.types import UTCDateTime


class PatientPreference(Base):
    """One row per patient who changed a setting; no row means every default applies."""

    __tablename__ = "patient_preferences"

    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True, autoincrement=False)
    # Reminder kinds the patient turned off, comma-separated (e.g. "checkin,next_session").
    disabled_kinds: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # Personal quiet hours as "HH:MM" (local clinic time); both None = only the clinic's apply.
    quiet_start: Mapped[str | None] = mapped_column(String(5))
    quiet_end: Mapped[str | None] = mapped_column(String(5))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Broadcast(Base):
    """A staff message to a group of patients. Staff-written, not health data; escaped on send.

    status: draft (waiting for the text or the confirmation) -> queued | cancelled. The
    messages themselves are reminder rows (kind 'broadcast', key bc:<id>:<patient id>).
    """

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    audience: Mapped[str] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="draft", server_default="draft")
    created_by: Mapped[int] = mapped_column(BigInteger, index=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)  # where the staff member composes it
    recipients: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
