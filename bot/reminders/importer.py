"""Import appointments from a CSV file (`run_bot.py import-appointments FILE`).

Columns (header row; names are case-insensitive; the first three are required; the delimiter
may be a comma, a semicolon or a tab):
  patient   Telegram user id, #patient-id, phone number (+44...), or a name
  date      2026-12-03, 3.12.2026, 3 Dec 2026 ... (clinic time zone)
  time      14:30, 2:30pm
  duration  60, 90 min, 1h30 (default 60 minutes)
  area      treatment area (default "treatment")
  session   N/M within a course (default 1/1)

Each column is read on its own, with the parsers /book uses. Each row is booked in its own
transaction with its reminders; a bad row is reported with its line number and never stops the
good ones. Importing the same file twice books nothing twice: a row already imported is skipped
whatever became of its appointment (the patient opened their link, it was cancelled or moved).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.db.appointment_models import ACTIVE_STATUSES, Appointment
from bot.db.engine import Database
from bot.db.models import Patient
from bot.reminders import service
from bot.reminders.parse import (
    BookRequest,
    InputError,
    Who,
    local_start,
    parse_area,
    parse_date,
    parse_duration_tokens,
    parse_session,
    parse_time,
    parse_who,
)
from bot.reminders.planner import resolve_local
from bot.reminders.plans import ReminderContent

REQUIRED = ("patient", "date", "time")
COLUMNS = (*REQUIRED, "duration", "area", "session")
DELIMITERS = (",", ";", "\t")


@dataclass
class RowError:
    line: int
    problem: str


@dataclass
class ImportReport:
    booked: int = 0
    skipped: int = 0  # already imported, or already booked for that patient at that time
    errors: list[RowError] = field(default_factory=list)
    invites: list[tuple[int, str, str]] = field(default_factory=list)  # line, who, token


class _Lines:
    """The file's lines, noting the line each CSV record starts on: a quoted cell may hold line
    breaks, and the reader's own line_num is a record's last line."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self.count = 0
        self.start = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._lines)
        self.count += 1
        if not self.start and line.strip("\r\n"):  # the reader skips blank lines
            self.start = self.count
        return line


def _delimiter(header_line: str) -> str:
    """Excel writes ';' where the decimal separator is a comma (much of Europe), other exports
    use tabs: the delimiter is the one that splits the header into the most known columns."""
    def known(delimiter: str) -> int:
        names = next(csv.reader([header_line], delimiter=delimiter), [])
        return sum(name.strip().lower() in COLUMNS for name in names)
    return max(DELIMITERS, key=known)  # a tie (no known column at all) keeps the comma


def _rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    try:
        return _read_rows(path)
    except UnicodeDecodeError:
        # Excel's plain "CSV" is in the computer's code page ("Zoë" as one byte): say what to do.
        data = path.read_bytes()
        try:
            data.decode("utf-8")
            line = 1
        except UnicodeDecodeError as exc:  # where, in the whole file (the reader reads chunks)
            line = data[:exc.start].count(b"\n") + 1
        raise InputError(f"line {line} is not UTF-8 text: in Excel, save the file as "
                         "\"CSV UTF-8 (Comma delimited)\" and import it again") from None


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        first = handle.readline()
        if not first:
            raise InputError("the file is empty")
        lines = _Lines(itertools.chain([first], handle))
        reader = csv.DictReader(lines, delimiter=_delimiter(first))
        try:
            fieldnames = reader.fieldnames or []
            header = [h.strip().lower() for h in fieldnames]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise InputError(
                    f"missing column(s): {', '.join(missing)} (have: {', '.join(header)})")
            rows = []
            while True:
                lines.start = 0
                raw = next(reader, None)
                if raw is None:
                    break
                row = {(k or "").strip().lower(): (v or "").strip() if isinstance(v, str) else ""
                       for k, v in raw.items()}
                if any(row.values()):  # spreadsheets export empty rows as ",,,"
                    rows.append((lines.start, row))
        except csv.Error as exc:
            raise InputError(f"line {lines.count}: {exc}") from None
    return header, rows


def _whole(column: str, text: str, used: int, example: str) -> None:
    """A column holds one value: "10 point lift" in the area never lends 10 to the duration."""
    if used != len(text.split()):
        raise InputError(f"cannot read the {column} {text!r} (try {example})")


def _booking(row: dict[str, str], now: datetime, tz: ZoneInfo) -> tuple[BookRequest, datetime]:
    """The row's booking, each column parsed on its own; and its local start (for the key)."""
    who = parse_who(row["patient"])
    day, used = parse_date(row["date"].split(), now.astimezone(tz).date())
    _whole("date", row["date"], used, "2026-12-03, 3.12.2026, 3 Dec 2026")
    at, used = parse_time(row["time"].split())
    _whole("time", row["time"], used, "14:30 or 2:30pm")
    local = local_start(day, at, tz)
    minutes = 60
    if text := row.get("duration", ""):
        parsed, used = parse_duration_tokens(text.split())
        if parsed is None or used != len(text.split()):
            raise InputError(f"duration {text!r} is not a duration (try 60, 90 min or 1h30)")
        minutes = parsed
    session_no = course_size = 1
    if text := row.get("session", ""):
        session = parse_session(text)
        if session is None:
            raise InputError(f"session {text!r} is not N/M (e.g. 2/4)")
        session_no, course_size = session
    return BookRequest(who, resolve_local(local, tz), minutes, parse_area(row.get("area", "")),
                       session_no, course_size), local


def _import_key(who: Who, local: datetime) -> str:
    """The row's identity: the patient as the row names it and the start it gives. Not the
    patient record or the appointment's start: opening the link may move the appointment to
    another record, and a reschedule moves its start. A digest: no name or phone is copied."""
    if who.telegram_id is not None:
        ref = f"tg:{who.telegram_id}"
    elif who.patient_id is not None:
        ref = f"#{who.patient_id}"
    elif who.phone:
        ref = f"tel:{who.phone}"
    else:
        ref = f"name:{(who.name or '').casefold()}"
    return hashlib.sha256(f"{ref}|{local:%Y-%m-%dT%H:%M}".encode()).hexdigest()


async def _imported(session: AsyncSession, key: str) -> bool:
    return await session.scalar(select(Appointment.id).where(
        Appointment.import_key == key)) is not None


async def import_appointments(path: Path, db: Database, settings: Settings,
                              content: ReminderContent, *, now: datetime,
                              progress: Iterable | None = None) -> ImportReport:
    """Book every good row; `progress` wraps the row iterator (tqdm in the CLI)."""
    _, rows = _rows(path)
    report = ImportReport()
    placeholders: dict[str, int] = {}  # name -> placeholder patient created by this import
    iterator = progress(rows) if callable(progress) else rows
    for line, row in iterator:
        key: str | None = None
        try:
            if not row.get("patient"):
                raise InputError("the patient is empty")
            req, local = _booking(row, now, settings.tz)
            key = _import_key(req.who, local)
            new_placeholder: tuple[str, int] | None = None
            async with db.session() as session:
                if await _imported(session, key):
                    report.skipped += 1
                    continue
                token = None
                if req.who.telegram_id is not None:
                    patient = await session.scalar(select(Patient).where(
                        Patient.telegram_user_id == req.who.telegram_id))
                    if patient is None:
                        raise InputError(f"no patient with Telegram id {req.who.telegram_id}")
                elif req.who.patient_id is not None:
                    patient = await service.patient_by_number(session, req.who.patient_id)
                else:
                    patient = None
                    if req.who.name and req.who.name in placeholders:
                        # The same name earlier in THIS file: the same person, one link.
                        patient = await session.get(Patient, placeholders[req.who.name])
                    elif req.who.name:
                        # A booking made otherwise (/book) for this name at this time is this
                        # row's; beyond that, two people who share a name must never share a
                        # record.
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
                            new_placeholder = (req.who.name, patient.id)
                if await service.booked_at(session, patient.id, req.starts_at) is not None:
                    report.skipped += 1
                    continue
                appt = await service.book(
                    session, patient_id=patient.id, starts_at=req.starts_at,
                    duration_min=req.duration_min, area=req.area, session_no=req.session_no,
                    course_size=req.course_size, now=now, content=content, settings=settings,
                    named=await service.named_record(session, patient_id=req.who.patient_id,
                                                     phone=req.who.phone))
                appt.import_key = key
                if req.who.patient_id is not None and patient.chat_id is None:
                    # #N of someone who has not opened the bot: a link to THIS record, as /book
                    # gives, or their reminders could never reach them.
                    invitation = await service.invite_existing(
                        session, patient, name=patient.first_name, phone=None, now=now,
                        content=content)
                    token = invitation.token
            # Remembered once committed: a row that fails rolls its placeholder back, and
            # SQLite hands the same id to the next new patient (someone else).
            if new_placeholder is not None:
                placeholders[new_placeholder[0]] = new_placeholder[1]
            report.booked += 1
            if token:
                report.invites.append((line, req.who.name or req.who.phone or patient.first_name
                                       or f"#{patient.id}", token))
        except service.AlreadyBooked:
            report.skipped += 1  # booked meanwhile (/book, or another import of this row)
        except (InputError, service.BookingError) as exc:
            report.errors.append(RowError(line, str(exc)))
        except IntegrityError as exc:
            # Another import booked the same row between our check and our commit: the unique
            # import_key refused the second. That is "imported before", not a failure.
            async with db.session() as session:
                again = key is not None and await _imported(session, key)
            if again:
                report.skipped += 1
            else:
                report.errors.append(RowError(line, f"unexpected {type(exc).__name__}"))
        except Exception as exc:  # noqa: BLE001 - one bad row never aborts the others
            report.errors.append(RowError(line, f"unexpected {type(exc).__name__}"))
    return report
