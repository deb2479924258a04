"""Patients' reminder preferences: kinds turned off, personal quiet hours (/settings).

Confirmations, cancellations and staff pushes always go: they are about a booking the patient
must know of. The dispatcher reads these preferences at send time, so a change applies to
reminders already planned: an opted-out kind is cancelled ("patient opted out"), a message due
inside the patient's own quiet hours waits for the end of them, as with the clinic's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.engine import upsert_insert
from bot.db.models import Patient
from bot.db.preference_models import PatientPreference
from bot.privacy import DataSection
from bot.reminders.planner import QuietHours

# The kinds a patient may turn off, in the order /settings shows them.
OPTIONAL_KINDS = ("preparation", "same_day", "aftercare", "checkin", "next_session", "broadcast")
# Personal quiet hours offered as buttons: preset id -> (start, end); "off" = the clinic's only.
QUIET_PRESETS: dict[str, tuple[time, time] | None] = {
    "off": None,
    "2207": (time(22, 0), time(7, 0)),
    "2108": (time(21, 0), time(8, 0)),
    "2009": (time(20, 0), time(9, 0)),
    "2310": (time(23, 0), time(10, 0)),
}


def _minutes(start: time, end: time) -> set[int]:
    """The minutes of the day from start to end (over midnight when end <= start)."""
    first, last = start.hour * 60 + start.minute, end.hour * 60 + end.minute
    length = (last - first) % 1440 or 1440
    return {(first + m) % 1440 for m in range(length)}


def adds_to_clinic(span: tuple[time, time], clinic_start: time, clinic_end: time) -> bool:
    """Whether personal quiet hours hold any time the clinic's do not: both apply, so a span
    inside the clinic's changes nothing (offering it would mislead). A clinic with no quiet
    hours (start == end) leaves every span something to add."""
    if clinic_start == clinic_end:
        return True
    return not _minutes(*span) <= _minutes(clinic_start, clinic_end)


@dataclass(frozen=True)
class Prefs:
    disabled: frozenset[str] = frozenset()
    quiet_start: time | None = None
    quiet_end: time | None = None

    @property
    def preset(self) -> str:
        for key, span in QUIET_PRESETS.items():
            if span == ((self.quiet_start, self.quiet_end) if self.quiet_start else None):
                return key
        return "custom"

    def quiet(self, tz: ZoneInfo) -> QuietHours | None:
        if self.quiet_start is None or self.quiet_end is None:
            return None
        return QuietHours(self.quiet_start, self.quiet_end, tz)

    def allows(self, kind: str) -> bool:
        return kind not in self.disabled


def _hm(value: str | None) -> time | None:
    if not value:
        return None
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def from_row(row: PatientPreference | None) -> Prefs:
    if row is None:
        return Prefs()
    kinds = frozenset(k for k in (row.disabled_kinds or "").split(",") if k in OPTIONAL_KINDS)
    return Prefs(kinds, _hm(row.quiet_start), _hm(row.quiet_end))


def from_columns(disabled: str | None, start: str | None, end: str | None) -> Prefs:
    """From the columns of an outer join (all None when the patient has no row)."""
    kinds = frozenset(k for k in (disabled or "").split(",") if k in OPTIONAL_KINDS)
    return Prefs(kinds, _hm(start), _hm(end))


async def load(session: AsyncSession, patient_id: int) -> Prefs:
    return from_row(await session.get(PatientPreference, patient_id))


async def _row(session: AsyncSession, patient_id: int, now: datetime) -> PatientPreference:
    """The patient's row, locked. Created if missing with ON CONFLICT DO NOTHING: a patient's
    first two taps handled at once (two instances) must not both insert it."""
    row = await session.get(PatientPreference, patient_id, with_for_update=True)
    if row is None:
        insert = upsert_insert(session.bind.dialect.name)
        await session.execute(insert(PatientPreference).values(
            patient_id=patient_id, disabled_kinds="", updated_at=now)
            .on_conflict_do_nothing(index_elements=["patient_id"]))
        row = await session.get(PatientPreference, patient_id, with_for_update=True,
                                populate_existing=True)
        assert row is not None
    return row


async def toggle_kind(session: AsyncSession, patient_id: int, kind: str, now: datetime) -> Prefs:
    if kind not in OPTIONAL_KINDS:
        raise ValueError(f"reminder kind {kind!r} cannot be turned off")
    row = await _row(session, patient_id, now)
    kinds = set(from_row(row).disabled)
    kinds.symmetric_difference_update({kind})
    row.disabled_kinds = ",".join(k for k in OPTIONAL_KINDS if k in kinds)
    row.updated_at = now
    await session.flush()
    return from_row(row)


async def set_quiet(session: AsyncSession, patient_id: int, preset: str, now: datetime) -> Prefs:
    if preset not in QUIET_PRESETS:
        raise ValueError(f"unknown quiet-hours preset {preset!r}")
    row = await _row(session, patient_id, now)
    span = QUIET_PRESETS[preset]
    row.quiet_start = f"{span[0]:%H:%M}" if span else None
    row.quiet_end = f"{span[1]:%H:%M}" if span else None
    row.updated_at = now
    await session.flush()
    return from_row(row)


# ------------------------------------------------------------------ /mydata and /forget
async def export(session: AsyncSession, patient: Patient) -> dict[str, Any]:
    row = await session.get(PatientPreference, patient.id)
    prefs = from_row(row)
    return {
        "reminders_turned_off": sorted(prefs.disabled),
        "personal_quiet_hours": (f"{prefs.quiet_start:%H:%M}-{prefs.quiet_end:%H:%M}"
                                 if prefs.quiet_start and prefs.quiet_end else None),
        "unreachable": bool(patient.unreachable),
        "updated_at": row.updated_at.isoformat() if row else None,
    }


async def erase(session: AsyncSession, patient: Patient, now: datetime) -> None:
    await session.execute(delete(PatientPreference).where(PatientPreference.patient_id == patient.id))


SECTION = DataSection("preferences", export, erase, ("patient_preferences",))


async def all_rows(session: AsyncSession) -> list[PatientPreference]:
    return list((await session.scalars(select(PatientPreference))).all())
