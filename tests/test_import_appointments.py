"""`run_bot.py import-appointments FILE`: good rows booked with their reminders, bad rows
reported with their line, never aborting the others; a second import books nothing twice."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

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
