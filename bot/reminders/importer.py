"""Import appointments from a CSV file (`run_bot.py import-appointments FILE`).

Columns (header row; names are case-insensitive; the first four are required):
  patient   Telegram user id, #patient-id, phone number (+44...), or a name
  date      2026-12-03, 3.12.2026, 3 Dec 2026 ... (clinic time zone)
  time      14:30, 2:30pm
  duration  minutes (default 60)
  area      treatment area (default "treatment")
  session   N/M within a course (default 1/1)

Each row is booked in its own transaction with its reminders; a bad row is reported with its
line number and never stops the good ones. Importing the same file twice books nothing twice.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from bot.config import Settings
from bot.db.appointment_models import ACTIVE_STATUSES, Appointment
from bot.db.engine import Database
from bot.db.models import Patient
from bot.inputs import is_number
from bot.reminders import service
from bot.reminders.parse import InputError, parse_book
from bot.reminders.plans import ReminderContent

REQUIRED = ("patient", "date", "time")


@dataclass
class RowError:
    line: int
    problem: str


@dataclass
class ImportReport:
    booked: int = 0
    skipped: int = 0  # already booked (same patient, same start)
    errors: list[RowError] = field(default_factory=list)
    invites: list[tuple[int, str, str]] = field(default_factory=list)  # line, who, token


def _rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            raise InputError("the file is empty")
        header = [h.strip().lower() for h in reader.fieldnames]
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            raise InputError(f"missing column(s): {', '.join(missing)} (have: {', '.join(header)})")
        rows = []
        for raw in reader:
            row = {(k or "").strip().lower(): (v or "").strip() if isinstance(v, str) else ""
                   for k, v in raw.items()}
            rows.append((reader.line_num, row))
    return header, rows


def _args(row: dict[str, str]) -> list[str]:
    args = [row["patient"]] + row["date"].split() + row["time"].split()
    if row.get("duration"):
        args.append(row["duration"])
    if row.get("area"):
        args.extend(row["area"].split())
    if row.get("session"):
        args.append(row["session"].replace(" ", ""))
    return args


async def import_appointments(path: Path, db: Database, settings: Settings,
                              content: ReminderContent, *, now: datetime,
                              progress: Iterable | None = None) -> ImportReport:
    """Book every good row; `progress` wraps the row iterator (tqdm in the CLI)."""
    _, rows = _rows(path)
    report = ImportReport()
    placeholders: dict[str, int] = {}  # name -> placeholder patient created by this import
    iterator = progress(rows) if callable(progress) else rows
    for line, row in iterator:
        try:
            if not row.get("patient"):
                raise InputError("the patient is empty")
            req = parse_book(_args(row), now, settings.tz)
            if row.get("duration") and not is_number(row["duration"]):
                raise InputError(f"duration {row['duration']!r} is not a number of minutes")
            async with db.session() as session:
                token = None
                if req.who.telegram_id is not None:
                    patient = await session.scalar(select(Patient).where(
                        Patient.telegram_user_id == req.who.telegram_id))
                    if patient is None:
                        raise InputError(f"no patient with Telegram id {req.who.telegram_id}")
                elif req.who.patient_id is not None:
                    patient = await session.get(Patient, req.who.patient_id)
                    if patient is None:
                        raise InputError(f"there is no patient #{req.who.patient_id}")
                else:
                    patient = None
                    if req.who.name and req.who.name in placeholders:
                        # The same name earlier in THIS file: the same person, one link.
                        patient = await session.get(Patient, placeholders[req.who.name])
                    elif req.who.name:
                        # A name from an earlier import is reused only for the very same booking
                        # (re-importing a file books nothing twice); otherwise two people who
                        # share a name must never share a record.
                        again = await session.scalar(
                            select(Patient.id).join(Appointment, Appointment.patient_id == Patient.id)
                            .where(Patient.first_name == req.who.name,
                                   Patient.telegram_user_id.is_(None),
                                   Appointment.starts_at == req.starts_at,
                                   Appointment.status.in_(ACTIVE_STATUSES)).limit(1))
                        if again is not None:
                            report.skipped += 1
                            continue
                    if patient is None:
                        invitation = await service.patient_for_contact(
                            session, name=req.who.name, phone=req.who.phone, now=now,
                            content=content)
                        patient, token = invitation.patient, invitation.token
                        if req.who.name:
                            placeholders[req.who.name] = patient.id
                duplicate = await session.scalar(select(Appointment.id).where(
                    Appointment.patient_id == patient.id, Appointment.starts_at == req.starts_at,
                    Appointment.status.in_(ACTIVE_STATUSES)))
                if duplicate is not None:
                    report.skipped += 1
                    continue
                await service.book(session, patient_id=patient.id, starts_at=req.starts_at,
                                   duration_min=req.duration_min, area=req.area,
                                   session_no=req.session_no, course_size=req.course_size,
                                   now=now, content=content, settings=settings)
            report.booked += 1
            if token:
                report.invites.append((line, req.who.name or req.who.phone or "", token))
        except (InputError, service.BookingError) as exc:
            report.errors.append(RowError(line, str(exc)))
        except Exception as exc:  # noqa: BLE001 - one bad row never aborts the others
            report.errors.append(RowError(line, f"unexpected {type(exc).__name__}"))
    return report
