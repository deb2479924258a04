"""Consultation intake rows: consent records and questionnaires (answers encrypted at rest)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base
from bot.db.types import UTCDateTime

ACTIVE = "active"  # being filled in (consent given)
SUBMITTED = "submitted"  # sent to staff; the patient's current answers
SUPERSEDED = "superseded"  # an older submission replaced by an update
CANCELLED = "cancelled"  # abandoned with /cancel (answers wiped)


class IntakeConsent(Base):
    """The patient agreed to a given version of the consent text at a given time."""

    __tablename__ = "intake_consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    version: Mapped[str] = mapped_column(String(32))
    text_sha256: Mapped[str] = mapped_column(String(64))
    agreed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Intake(Base):
    """One questionnaire. Progress is here, so any process (or a restart) can continue it.

    `data` is the encrypted JSON {"answers": {question_id: value}, "draft": {question_id: [...]},
    "current": question_id}; nothing about the patient's health is stored in clear.
    """

    __tablename__ = "intakes"
    __table_args__ = (
        # At most one questionnaire in progress per patient.
        Index("uq_intakes_active_patient", "patient_id", unique=True,
              sqlite_where=text("status = 'active'"), postgresql_where=text("status = 'active'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    consent_id: Mapped[int] = mapped_column(ForeignKey("intake_consents.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(16))  # "question" | "review"
    data: Mapped[bytes] = mapped_column(LargeBinary)
    replaces_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

