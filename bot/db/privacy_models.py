"""The audit trail: who read, exported or erased what, and when. Never any health content."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, event
from sqlalchemy.orm import Mapped, Session, mapped_column

from bot.db.models import Base
from bot.db.types import UTCDateTime


class AuditEvent(Base):
    """Append-only: the ORM refuses to update or delete a row once written."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor_user_id: Mapped[int | None] = mapped_column(BigInteger)  # Telegram id; None = the system
    action: Mapped[str] = mapped_column(String(64))  # e.g. intake_read, export, erasure, staff_denied
    patient_id: Mapped[int | None] = mapped_column(Integer, index=True)
    subject: Mapped[str | None] = mapped_column(String(64))  # what kind of record, never its content


class AuditIsAppendOnly(Exception):
    pass


@event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session: Session, _ctx: object, _instances: object) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEvent):
            raise AuditIsAppendOnly("audit rows cannot be changed or deleted")
