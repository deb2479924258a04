"""`run_bot.py import-appointments FILE`: good rows booked with their reminders, bad rows
reported with their line, never aborting the others; a second import books nothing twice."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot import patients
from bot.config import load_settings
from bot.content import load_content
from bot.db.appointment_models import Appointment, PatientInvite
from bot.db.models import Patient
from bot.privacy import PrivacyRegistry
from bot.reminders import service
from bot.reminders.importer import import_appointments
from bot.reminders.plans import content_from_messages

ROOT = Path(__file__).resolve().parent.parent

SOON = date.today() + timedelta(days=30)  # the CLI books against the real clock
LATER = SOON + timedelta(days=21)
CSV = f"""patient,date,time,duration,area,session
"Jane Doe",{SOON:%Y-%m-%d},14:30,60,face,1/4
+44 7700 900123,{SOON.day} {SOON:%b %Y},9am,45,upper arms,
#999,{SOON:%Y-%m-%d},10:00,60,face,
Jane Doe,{LATER:%d.%m.%Y},14:30,60,face,2/4
"Nobody",31.02.{SOON.year},10:00,60,face,
"Late",2001-01-01,10:00,60,face,
"Bad session",{SOON:%Y-%m-%d},10:00,60,face,5/4
"Bad minutes",{SOON:%Y-%m-%d},10:00,sixty,face,
"""


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k.upper() not in {"BOT_TOKEN", "DATABASE_URL"}}
    env.update(PYTHONPATH=str(ROOT), DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}")
    return subprocess.run([sys.executable, str(ROOT / "run_bot.py"), "import-appointments", *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_import_books_good_rows_and_reports_bad_ones(tmp_path):
    path = tmp_path / "appointments.csv"
    path.write_text(CSV, encoding="utf-8")
    result = run(tmp_path, str(path), "--bot-username", "clinic_bot")
    assert result.returncode == 1, result.stderr
    assert "booked 3, already booked 0, failed 5" in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith(str(path))]
    assert [int(e.split(":")[1]) for e in errors] == [4, 6, 7, 8, 9]
    assert "no patient #999" in result.stderr and "not a calendar date" in result.stderr
    assert "in the past" in result.stderr and "sixty" in result.stderr
    assert result.stdout.count("https://t.me/clinic_bot?start=lk_") == 2  # Jane once, the phone once
    assert "appointments:" in result.stderr  # the tqdm progress bar
    with sqlite3.connect(tmp_path / "clinic.db") as conn:
        appts = conn.execute("select patient_id, area, session_no, course_size, duration_min "
                             "from appointments order by starts_at").fetchall()
        assert [a[1:] for a in appts] == [("upper arms", 1, 1, 45), ("face", 1, 4, 60),
                                          ("face", 2, 4, 60)]
        assert appts[1][0] == appts[2][0]  # both of Jane's sessions on one patient
        assert conn.execute("select count(*) from reminders").fetchone()[0] >= 3 * 5
    again = run(tmp_path, str(path), "--quiet")
    assert "booked 0, already booked 3, failed 5" in again.stdout
    assert "appointments:" not in again.stderr


def test_import_refuses_a_file_without_the_required_columns(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("who,when\nx,y\n", encoding="utf-8")
    result = run(tmp_path, str(path))
    assert result.returncode == 2 and "missing column(s): patient, date, time" in result.stderr
    assert run(tmp_path, str(tmp_path / "none.csv")).returncode == 2


def test_an_excel_export_with_seconds_and_its_code_page_is_read_or_explained(tmp_path):
    """Spreadsheets write times as 14:30:00; Excel's plain "CSV" is in the computer's code
    page, not UTF-8: say how to save it (the raw codec error was all staff got)."""
    path = tmp_path / "excel.csv"
    path.write_text(f"patient;date;time;duration;area\n\"Zoe\";{SOON:%d/%m/%Y};14:30:00;60;face\n",
                    encoding="utf-8-sig")
    result = run(tmp_path, str(path), "--quiet")
    assert result.returncode == 0 and "booked 1, already booked 0, failed 0" in result.stdout
    path.write_bytes(f"patient,date,time\n\"Zo\u00eb\",{SOON:%Y-%m-%d},10:00\n".encode("cp1252"))
    result = run(tmp_path, str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert 'line 2 is not UTF-8 text: in Excel, save the file as "CSV UTF-8' in result.stderr


def test_a_later_import_never_attaches_a_namesake_to_an_old_record(tmp_path):
    first = tmp_path / "october.csv"
    first.write_text(f'patient,date,time\n"Maria Lopez",{SOON:%Y-%m-%d},10:00\n', encoding="utf-8")
    assert run(tmp_path, str(first), "--bot-username", "clinic_bot", "--quiet").returncode == 0
    second = tmp_path / "november.csv"
    second.write_text(f'patient,date,time\n"Maria Lopez",{LATER:%Y-%m-%d},10:00\n', encoding="utf-8")
    result = run(tmp_path, str(second), "--bot-username", "clinic_bot", "--quiet")
    assert result.returncode == 0 and "booked 1" in result.stdout
    assert "https://t.me/clinic_bot?start=lk_" in result.stdout  # the new row gets its own link
    with sqlite3.connect(tmp_path / "clinic.db") as conn:
        owners = {r[0] for r in conn.execute("select patient_id from appointments")}
    assert len(owners) == 2  # possibly two different people: never one shared record


# In-process imports on a fixed clock (the CLI tests above book against the real one).
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def clinic(db_url):
    settings = load_settings(database_url=db_url, staff_ids="42", clinic_timezone="Europe/London",
                             _env_file=None)
    content = content_from_messages(settings.content_dir,
                                    load_content(settings.content_dir).messages)
    return settings, content


async def import_text(tmp_path, db, clinic, text, *, now=NOW):
    path = tmp_path / "import.csv"
    path.write_text(text, encoding="utf-8")
    settings, content = clinic
    return await import_appointments(path, db, settings, content, now=now)


async def counts(db):
    async with db.session() as session:
        return tuple([await session.scalar(select(func.count()).select_from(model))
                      for model in (Appointment, Patient, PatientInvite)])


async def test_a_row_imported_before_is_skipped_whatever_became_of_its_appointment(
        tmp_path, migrated_db, clinic):
    settings, content = clinic
    async with migrated_db.session() as session:
        jane = await patients.upsert_from_telegram(session, user_id=777, chat_id=777,
                                                   first_name="Jane", language_code="en", now=NOW)
        bob = await patients.upsert_from_telegram(session, user_id=888, chat_id=888,
                                                  first_name="Bob", language_code="en", now=NOW)
        sam = await patients.upsert_from_telegram(session, user_id=999, chat_id=999,
                                                  first_name="Sam", language_code="en", now=NOW)
        jane_id, bob_id, sam_id = jane.id, bob.id, sam.id
    text = ("patient,date,time,area\n"
            '"Jane Doe",2026-03-10,14:30,face\n'        # opens her link: moves to her record
            "+44 7700 900123,2026-03-11,09:00,face\n"   # the same: Sam already uses the bot
            f"#{bob_id},2026-03-12,10:00,face\n"       # rescheduled
            "888,2026-03-13,10:00,face\n")              # cancelled with the bot's button
    first = await import_text(tmp_path, migrated_db, clinic, text)
    assert (first.booked, first.skipped, first.errors) == (4, 0, [])
    tokens = {who: token for _, who, token in first.invites}
    async with migrated_db.session() as session:
        await service.redeem_invite(session, token=tokens["Jane Doe"], user_id=777, chat_id=777,
                                    first_name="Jane", now=NOW)
        await service.redeem_invite(session, token=tokens["+447700900123"], user_id=999,
                                    chat_id=999, first_name="Sam", now=NOW)
        appts = {a.starts_at.day: a for a in await session.scalars(select(Appointment))}
        assert (appts[10].patient_id, appts[11].patient_id) == (jane_id, sam_id)
        await service.reschedule(session, appts[12], starts_at=appts[12].starts_at
                                 + timedelta(hours=2), now=NOW, content=content,
                                 settings=settings)
        await service.cancel(session, appts[13], now=NOW, content=content, notify_patient=False)
    before = await counts(migrated_db)

    again = await import_text(tmp_path, migrated_db, clinic, text, now=NOW + timedelta(hours=1))
    assert (again.booked, again.skipped, again.errors, again.invites) == (0, 4, [], [])
    assert await counts(migrated_db) == before  # no appointment, placeholder or link more
    async with migrated_db.session() as session:
        statuses = {a.starts_at.day: (a.starts_at.hour, a.status)
                    for a in await session.scalars(select(Appointment))}
    assert statuses[12] == (12, "booked") and statuses[13] == (10, "cancelled")


async def test_each_column_is_read_on_its_own(tmp_path, migrated_db, clinic):
    report = await import_text(tmp_path, migrated_db, clinic, (
        "patient,date,time,duration,area,session\n"
        '"Ann Lee",2026-03-10,14:30,,10 point lift,\n'
        '"Bea Ray",2026-03-10,15:30,,face 1/3,\n'
        '"Cal Fox",2026-03-11,2:30 pm,90 min,upper  arms,2 / 4\n'
        '"Dee Orr",2026-03-12,10:00,1h30,,\n'
        '"Eve Ng",2026-03-12,11:00,10 point,face,\n'
        '"Fay Li",2026-03-12 12:00,12:00,,face,\n'
        '"Gus Po",2026-03-12,12:00 face,,,\n'
        '"Hal Ray",2026-03-12,3:00,,face,\n'))
    assert report.booked == 4
    assert [(e.line, e.problem.split(" (")[0]) for e in report.errors] == [
        (6, "duration '10 point' is not a duration"),
        (7, "cannot read the date '2026-03-12 12:00'"),
        (8, "cannot read the time '12:00 face'"),
        (9, "'3:00' could be morning or afternoon: write 15:00 or 3pm")]
    async with migrated_db.session() as session:
        booked = [(a.starts_at.strftime("%d %H:%M"), a.duration_min, a.area, a.session_no,
                   a.course_size) for a in await session.scalars(
                       select(Appointment).order_by(Appointment.starts_at))]
    assert booked == [("10 14:30", 60, "10 point lift", 1, 1), ("10 15:30", 60, "face 1/3", 1, 1),
                      ("11 14:30", 90, "upper arms", 2, 4), ("12 10:00", 90, "treatment", 1, 1)]


async def test_an_erased_patient_is_no_patient(tmp_path, migrated_db, clinic):
    async with migrated_db.session() as session:
        anna = await patients.upsert_from_telegram(session, user_id=777, chat_id=777,
                                                   first_name="Anna", language_code="en", now=NOW)
        await PrivacyRegistry().erase(session, anna, now=NOW)  # /forget
        anna_id = anna.id
    report = await import_text(tmp_path, migrated_db, clinic,
                               f"patient,date,time\n#{anna_id},2026-03-10,14:30\n")
    assert report.booked == 0
    assert [(e.line, e.problem) for e in report.errors] == [
        (2, f"there is no patient #{anna_id} (their data was erased at their request)")]
    assert (await counts(migrated_db))[0] == 0


@pytest.mark.parametrize("delimiter", [";", "\t"])
async def test_semicolon_and_tab_files_are_read(tmp_path, migrated_db, clinic, delimiter):
    rows = [["patient", "date", "time", "area"], ['"Ann Lee"', "10.03.2026", "14:30", '"face, neck"'],
            ["", "", "", ""]]  # Excel's empty row
    report = await import_text(tmp_path, migrated_db, clinic,
                               "".join(delimiter.join(r) + "\r\n" for r in rows))
    assert (report.booked, report.errors) == (1, [])
    async with migrated_db.session() as session:
        assert await session.scalar(select(Appointment.area)) == "face, neck"


async def test_a_row_error_names_the_line_the_row_starts_on(tmp_path, migrated_db, clinic):
    report = await import_text(tmp_path, migrated_db, clinic, (
        "patient,date,time,area\n"
        '"Ann Lee",2026-03-40,14:30,"face\nand neck"\n'
        "\n"
        '"Bea Ray",2026-03-41,14:30,face\n'))
    assert [e.line for e in report.errors] == [2, 5]


async def test_a_patient_by_number_who_never_opened_the_bot_gets_a_link(tmp_path, migrated_db, clinic):
    """#N of a placeholder (booked before they opened the bot): a link to that record, as /book
    gives, or their reminders could never reach them."""
    first = await import_text(tmp_path, migrated_db, clinic,
                              'patient,date,time\n"Maria Lopez",2026-03-10,14:30\n')
    async with migrated_db.session() as session:
        maria = await session.scalar(select(Patient).where(Patient.first_name == "Maria Lopez"))
    report = await import_text(tmp_path, migrated_db, clinic,
                               f"patient,date,time\n#{maria.id},2026-03-31,14:30\n")
    assert report.booked == 1 and report.errors == []
    assert [(line, who) for line, who, _ in report.invites] == [(2, "Maria Lopez")]
    assert report.invites[0][2] != first.invites[0][2]  # a fresh link: the first may be lost


async def test_a_failed_rows_placeholder_is_never_someone_elses(tmp_path, migrated_db, clinic):
    """A refused row rolls its new patient back; SQLite gives that id to the next new patient.
    The same name later in the file must not be booked onto that other person."""
    report = await import_text(tmp_path, migrated_db, clinic, (
        "patient,date,time\n"
        '"Anna Bell",2026-01-10,14:30\n'  # in the past: refused, her placeholder rolled back
        '"Ben Cole",2026-03-10,14:30\n'
        '"Anna Bell",2026-03-11,14:30\n'))
    assert report.booked == 2 and len(report.errors) == 1
    async with migrated_db.session() as session:
        owners = [(a.starts_at.day, p.first_name) for a, p in await session.execute(
            select(Appointment, Patient).join(Patient, Patient.id == Appointment.patient_id)
            .order_by(Appointment.starts_at))]
    assert owners == [(10, "Ben Cole"), (11, "Anna Bell")]
    assert sorted(who for _, who, _ in report.invites) == ["Anna Bell", "Ben Cole"]



async def _race(tmp_path, db, clinic, monkeypatch, moment: str) -> None:
    """Two staff import the same file at once: the other import commits its booking `moment`
    this one's. Either way this one's report says "imported before", not an error."""
    async with db.session() as session:
        await patients.upsert_from_telegram(session, user_id=777, chat_id=777,
                                            first_name="Jane", language_code="en", now=NOW)
    text = "patient,date,time\n777,2026-03-10,14:30\n"
    real_book, other = service.book, {}

    async def the_other_import_commits_meanwhile(session, **kwargs):
        if moment == "before":
            monkeypatch.setattr(service, "book", real_book)
            other["report"] = await import_text(tmp_path / "other", db, clinic, text)
        appt = await real_book(session, **kwargs)
        if moment == "after":  # this one's booking is written, not committed, its key not set
            monkeypatch.setattr(service, "book", real_book)
            other["report"] = await import_text(tmp_path / "other", db, clinic, text)
        return appt

    (tmp_path / "other").mkdir()
    monkeypatch.setattr(service, "book", the_other_import_commits_meanwhile)
    report = await import_text(tmp_path, db, clinic, text)
    assert (other["report"].booked, other["report"].errors) == (1, [])
    assert (report.booked, report.skipped, report.errors) == (0, 1, [])
    assert (await counts(db))[0] == 1


async def test_a_row_another_import_booked_first_is_skipped_not_an_error(
        tmp_path, migrated_db, clinic, monkeypatch):
    """The duplicate check, when this import books, refuses it."""
    await _race(tmp_path, migrated_db, clinic, monkeypatch, "before")


async def test_a_row_another_import_committed_before_this_one_is_skipped_not_an_error(
        tmp_path, migrated_pg_db, clinic, monkeypatch):
    """The unique import_key, when this import commits, refuses it. PostgreSQL: there both
    imports can write at once (SQLite would make the other wait for this one)."""
    await _race(tmp_path, migrated_pg_db, clinic, monkeypatch, "after")
