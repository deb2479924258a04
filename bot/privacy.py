"""A patient's data, wherever it lives: export (/mydata) and erasure (/forget).

Each feature that stores personal data registers a DataSection, so export and erasure stay
complete as features are added, and a test can prove no table was forgotten.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.db.models import Patient

Exporter = Callable[[AsyncSession, Patient], Awaitable[Any]]
# An eraser may return notes for staff: what the clinic must know goes with the data (e.g. the
# upcoming appointments that leave the diary), without naming the patient.
Eraser = Callable[[AsyncSession, Patient, datetime], Awaitable[list[str] | None]]


@dataclass
class DataSection:
    name: str
    export: Exporter
    erase: Eraser
    tables: tuple[str, ...] = ()  # the tables this section covers, for the completeness test


async def _export_profile(session: AsyncSession, patient: Patient) -> dict[str, Any]:
    return {
        "telegram_user_id": patient.telegram_user_id,
        "first_name": patient.first_name,
        "language_code": patient.language_code,
        "first_contact": patient.created_at.isoformat() if patient.created_at else None,
        "last_contact": patient.last_seen_at.isoformat() if patient.last_seen_at else None,
    }


async def _erase_profile(session: AsyncSession, patient: Patient, now: datetime) -> None:
    patient.telegram_user_id = None
    patient.chat_id = None
    patient.first_name = None
    patient.language_code = None
    patient.erased_at = now


@dataclass
class PrivacyRegistry:
    sections: list[DataSection] = field(default_factory=lambda: [
        DataSection("profile", _export_profile, _erase_profile, ("patients",))])

    def register(self, section: DataSection) -> None:
        if any(s.name == section.name for s in self.sections):
            raise ValueError(f"data section {section.name!r} registered twice")
        # The profile goes last on erasure: other sections may still need the chat id.
        self.sections.insert(len(self.sections) - 1, section)

    def covered_tables(self) -> set[str]:
        return {t for s in self.sections for t in s.tables}

    async def export(self, session: AsyncSession, patient: Patient, *, now: datetime) -> dict[str, Any]:
        data: dict[str, Any] = {"exported_at": now.isoformat()}
        for section in reversed(self.sections):  # profile first in the file
            data[section.name] = await section.export(session, patient)
        await audit.record(session, now=now, action="export", actor_user_id=audit.PATIENT,
                           patient_id=patient.id)
        return data

    async def erase(self, session: AsyncSession, patient: Patient, *, now: datetime,
                    staff_actor: int | None = None) -> list[str]:
        """Erase everything personal; returns the sections' notes for staff. The audit keeps
        that an erasure happened (and which staff member did it, if one did), never who the
        patient was."""
        notes: list[str] = []
        if patient.telegram_user_id is not None:
            await audit.unname_patient(session, patient.telegram_user_id, patient.id)
        for section in self.sections:
            notes += await section.erase(session, patient, now) or []
        # The profile's change of its key column (telegram_user_id) waits, on PostgreSQL, for
        # transactions inserting rows for this patient right now (another instance recording
        # their question holds a key-share lock on the row). Those rows were invisible to the
        # deletes above and stayed behind, attached to the erased record: the sections erase
        # once more (each statement sees what committed meanwhile). Locking the row first
        # instead would deadlock with a request press (see tests/test_postgres.py).
        await session.flush()
        for section in self.sections[:-1]:
            notes += await section.erase(session, patient, now) or []
        await audit.record(session, now=now, action="erasure", actor_user_id=staff_actor,
                           patient_id=patient.id)
        await session.flush()
        return notes
