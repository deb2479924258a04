"""The patient's /settings: reminder kinds turned off and personal quiet hours, honoured by the
dispatcher; blocking the bot counts as opting out; preferences in /mydata and /forget."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime, time
from pathlib import Path

import pytest

from bot.clock import FixedClock
from tests.harness import TgUser
from tests.reminder_support import dispatch, patient_row, reminders, sent_texts


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))


async def _book(rr, user: TgUser, when: str) -> int:
    staff = TgUser(rr, "Staff", user_id=42)
    shown = await staff.send(f"/book {user.id} {when} 60 face")
    return int(re.search(r"#(\d+)", shown[-1].text).group(1))


async def test_turned_off_kinds_are_cancelled_and_the_rest_still_go(fake, rr, clock):
    anna = TgUser(rr, first_name="Anna")
    shown = await anna.send("/settings")
    assert "Your reminder settings" in shown[0].text
    assert "✅ Aftercare message" in anna.labels(shown[0])
    await anna.press("✅ Aftercare message")
    shown = await anna.press("✅ How-do-you-feel check-in")
    assert "🔕 Aftercare message" in anna.labels(shown[-1])
    assert "🔕 How-do-you-feel check-in" in anna.labels(shown[-1])
    appt = await _book(rr, anna, "2026-03-04 12:00")
    for at in (datetime(2026, 3, 2, 10, 1), datetime(2026, 3, 3, 12, 0), datetime(2026, 3, 4, 10, 0),
               datetime(2026, 3, 4, 13, 0), datetime(2026, 3, 5, 13, 0)):
        clock.set(at.replace(tzinfo=UTC))
        await dispatch(rr, clock)
    status = {r.kind: (r.status, r.last_error) for r in await reminders(rr, appointment_id=appt)}
    assert status["aftercare"] == ("cancelled", "patient opted out")
    assert status["checkin"] == ("cancelled", "patient opted out")
    assert status["confirmation"][0] == status["preparation"][0] == status["same_day"][0] == "sent"
    # Turned back on: later reminders of that kind go again (the choice is read at send time).
    await anna.send("/settings")
    shown = await anna.press("🔕 Aftercare message")
    assert "✅ Aftercare message" in anna.labels(shown[-1])
    later = await _book(rr, anna, "2026-03-09 12:00")
    clock.set(datetime(2026, 3, 9, 13, 30, tzinfo=UTC))  # after the session ends
    await dispatch(rr, clock)
    status = {r.kind: r.status for r in await reminders(rr, appointment_id=later)}
    assert status["aftercare"] == "sent"
    clock.set(datetime(2026, 3, 10, 13, 0, tzinfo=UTC))
    await dispatch(rr, clock)
    checkin = [r for r in await reminders(rr, appointment_id=later) if r.kind == "checkin"]
    assert [(r.status, r.last_error) for r in checkin] == [("cancelled", "patient opted out")]


async def test_personal_quiet_hours_defer_like_the_clinics(fake, rr, clock):
    anna = TgUser(rr, first_name="Anna")
    await anna.send("/settings")
    shown = await anna.press("20-09")
    # Both apply: the screen says so.
    assert "the clinic's (21:00-08:00) and your own (20:00-09:00)" in shown[-1].text
    assert "• 20-09 •" in anna.labels(shown[-1])
    # The appointment ends at 20:00 London time: aftercare is due inside Anna's quiet hours
    # (the clinic's start at 21:00) and waits for 09:00, the end of hers.
    appt = await _book(rr, anna, "2026-03-04 19:00")
    clock.set(datetime(2026, 3, 4, 20, 0, tzinfo=UTC))
    await dispatch(rr, clock)
    aftercare = [r for r in await reminders(rr, appointment_id=appt) if r.kind == "aftercare"][0]
    assert aftercare.status == "pending"
    assert aftercare.due_at == datetime(2026, 3, 5, 9, 0, tzinfo=UTC)
    clock.set(datetime(2026, 3, 5, 9, 0, tzinfo=UTC))
    await dispatch(rr, clock)
    assert any("Thank you for your visit" in t for t in sent_texts(fake, anna.id))
    await anna.send("/settings")
    shown = await anna.press("Only the clinic's (21-08)")
    assert "the clinic's (21:00-08:00)</b>" in shown[-1].text and "your own (" not in shown[-1].text


async def test_blocking_the_bot_is_opting_out(fake, rr, clock):
    anna = TgUser(rr, first_name="Anna")
    await anna.send("/start")
    appt = await _book(rr, anna, "2026-03-09 12:00")
    fake.block(anna.id)
    stats = await dispatch(rr, clock)
    assert stats.unreachable == 1
    assert (await patient_row(rr, anna.id)).unreachable
    assert {r.status for r in await reminders(rr, appointment_id=appt)} == {"failed", "cancelled"}
    # Nothing more is attempted, broadcasts included: the patient is left out of every group.
    staff = TgUser(rr, "Staff", user_id=42)
    await staff.send("/broadcast")
    shown = await staff.press("Everyone with an upcoming appointment")
    assert "(0 patient(s) now)" in shown[-1].text


async def test_preferences_are_exported_and_erased(fake, rr, clock, db_url):
    anna = TgUser(rr, first_name="Anna")
    await anna.send("/settings")
    await anna.press("✅ Next-session reminder")
    await anna.press("23-10")
    shown = await anna.send("/mydata")
    data = json.loads(fake.files[shown[0].document["file_id"]])
    assert data["preferences"]["reminders_turned_off"] == ["next_session"]
    assert data["preferences"]["personal_quiet_hours"] == "23:00-10:00"
    await anna.send("/forget")
    await anna.press("🗑 Yes")
    with sqlite3.connect(Path(db_url.split("///", 1)[1])) as conn:
        assert conn.execute("select count(*) from patient_preferences").fetchone() == (0,)


async def test_only_quiet_hours_that_add_to_the_clinics_are_offered(fake, rr, clock, db_url):
    """The clinic's quiet hours (21-08) always apply: 22-07 and 21-08 would change nothing, so
    they are not offered; a span chosen before (or under other clinic hours) is still shown."""
    from bot.preferences import adds_to_clinic

    anna = TgUser(rr, first_name="Anna")
    shown = await anna.send("/settings")
    hours = [label for label in anna.labels(shown[-1]) if label[-2:].isdigit() or "clinic" in label]
    assert hours == ["• Only the clinic's (21-08) •", "20-09", "23-10"]
    assert "on top of the clinic's" in shown[-1].text
    shown = await anna.press_data("pf:q:2207")  # chosen earlier (an old screen): shown as chosen
    assert "• 22-07 •" in anna.labels(shown[-1])
    t = time
    assert not adds_to_clinic((t(22), t(7)), t(21), t(8))
    assert not adds_to_clinic((t(21), t(8)), t(21), t(8))
    assert adds_to_clinic((t(23), t(10)), t(21), t(8)) and adds_to_clinic((t(20), t(9)), t(21), t(8))
    assert adds_to_clinic((t(22), t(7)), t(23), t(6))  # another clinic's shorter night
    assert adds_to_clinic((t(22), t(7)), t(0), t(0))  # a clinic with no quiet hours


async def test_forged_settings_buttons_change_nothing(fake, rr, clock, db_url):
    anna = TgUser(rr, first_name="Anna")
    await anna.send("/settings")
    for data in ("pf:k:confirmation", "pf:k:push_before", "pf:q:0000", "pf:x:1", "pf:k:" + "a" * 40):
        await anna.press_data(data)
    with sqlite3.connect(Path(db_url.split("///", 1)[1])) as conn:
        assert conn.execute("select count(*) from patient_preferences").fetchone() == (0,)


async def test_settings_are_reachable_from_the_main_menu(fake, runner):
    from tests.harness import TgUser

    pat = TgUser(runner, first_name="Lea")
    await pat.send("/start")
    shown = await pat.press("⚙️ Reminder settings")
    assert "Your reminder settings" in shown[0].text
    commands = {c["command"] for c in fake.calls_to("setMyCommands")[0].params["commands"]}
    assert "settings" in commands
