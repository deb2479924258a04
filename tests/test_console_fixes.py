"""Staff console fixes, end to end: a broadcast preview's Send sends that preview's text, /today
shows every appointment (in several messages when needed) with the reminders' dates, a retry of
a reminder whose appointment is over is refused, /stats counts real patients and the reminders
the attention list shows."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from bot.clock import FixedClock
from tests.conftest import sql
from tests.reminder_support import book, dispatch, new_patient, noshow, reminders, sent_texts


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 2, 7, 0, tzinfo=UTC))  # Monday, 07:00 in London (GMT)



async def test_send_under_an_earlier_preview_sends_that_preview_not_the_last_text(
        fake, rr, clock, staff):
    clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))  # outside quiet hours
    anna = await new_patient(rr, "Anna")
    await book(staff, f"{anna.id} 2026-03-03 12:00 60 face")
    await dispatch(rr, clock)
    await staff.send("/broadcast")
    await staff.press("Everyone with an appointment tomorrow")
    first = (await staff.send("Parking is closed tomorrow, please use the side entrance."))[-1]
    clock.advance(minutes=20)
    second = (await staff.send("test 123 ignore"))[-1]
    assert "test 123 ignore" in second.text  # still taken as the broadcast: its own preview
    shown = await staff.press("📣 Send to 1", first)
    assert "queued for 1 patient(s)" in shown[-1].text
    clock.advance(minutes=1)
    await dispatch(rr, clock)
    got = [t for t in sent_texts(fake, anna.id) if "A message from" in t]
    assert len(got) == 1 and got[0].endswith("Parking is closed tomorrow, please use the side entrance.")
    # Sending one preview closes the others, and the staff member's text is no longer taken.
    shown = await staff.press("📣 Send to 1", second)
    assert "no longer open" in shown[-1].text
    shown = await staff.send("a note to a colleague")
    assert not any("Send this message" in m.text for m in shown)
    clock.advance(minutes=1)
    await dispatch(rr, clock)
    assert len(await reminders(rr, kind="broadcast")) == 1
    assert not any("test 123" in t or "colleague" in t for t in sent_texts(fake, anna.id))


async def test_cancel_under_an_earlier_preview_cancels_the_whole_broadcast(fake, rr, clock, staff):
    anna = await new_patient(rr, "Anna")
    await book(staff, f"{anna.id} 2026-03-03 12:00 60 face")
    await staff.send("/broadcast")
    await staff.press("Everyone with an appointment tomorrow")
    first = (await staff.send("First wording"))[-1]
    second = (await staff.send("Second wording"))[-1]
    shown = await staff.press("✖️ Cancel", first)
    assert "cancelled" in shown[-1].text
    shown = await staff.press("📣 Send to 1", second)
    assert "no longer open" in shown[-1].text
    shown = await staff.send("Third wording")  # the draft no longer takes text
    assert not any("Send this message" in m.text for m in shown)
    assert await reminders(rr, kind="broadcast") == []


async def _busy_days(staff, people, today: int, tomorrow: int) -> tuple[list[int], list[int]]:
    booked: tuple[list[int], list[int]] = ([], [])
    for day, count, ids in (("2026-03-02", today, booked[0]), ("2026-03-03", tomorrow, booked[1])):
        for i in range(count):
            h, m = divmod(8 * 60 + 20 * i, 60)
            ids.append(await book(staff, f"{people[i % len(people)].id} {day} {h:02d}:{m:02d} "
                                         f"20 face and neck area"))
    return booked


def _ids(texts: list[str]) -> list[int]:
    return [int(x) for t in texts for x in re.findall(r"^• #(\d+) ", t, re.M)]


async def test_today_shows_every_appointment_in_several_messages(fake, rr, clock, staff, db_url):
    people = [await new_patient(rr, f"Patient{i}") for i in range(4)]
    today, tomorrow = await _busy_days(staff, people, 16, 30)
    shown = await staff.send("/today")
    texts = [m.text for m in shown]
    assert len(texts) >= 3 and all(len(t) <= 4096 for t in texts)
    assert _ids(texts) == today + tomorrow  # each once, in order: none cut off
    assert texts[0].startswith("<b>Today, Mon 2 Mar")
    # Tomorrow does not fit in one message: its second part says what it continues.
    tomorrow_parts = [t for t in texts if "Tomorrow, Tue 3 Mar" in t]
    assert len(tomorrow_parts) >= 2 and "(continued)" in tomorrow_parts[-1]
    assert staff.labels(shown[-1]) == ["‹ Staff console"]
    assert all(staff.labels(m) == [] for m in shown[:-1])
    rows = sql(db_url, "select subject, count(*) from audit_events "
                        "where action='appointments_read' group by subject order by subject")
    assert rows == [("today", 4), ("tomorrow", 4)]
    # The console button: the pressed message becomes the first part, the rest follow it.
    await staff.send("/staff")
    shown = await staff.press("🗓 Today and tomorrow")
    assert _ids([m.text for m in shown]) == today + tomorrow


async def test_pending_reminders_on_today_show_their_date(fake, rr, clock, staff):
    anna = await new_patient(rr, "Anna")
    appt = await book(staff, f"{anna.id} 2026-03-03 12:00 60 face 1/3")
    text = (await staff.send("/today"))[-1].text
    line = text.split(f"#{appt} ")[1]
    # Three weeks on, a Tuesday like tomorrow: without its date it read as tomorrow.
    assert "⏳ next session Tue 24 Mar 13:00" in line
    assert "⏳ preparation Mon 2 Mar " in line and "⏳ check-in Wed 4 Mar 13:00" in line


async def test_retry_of_a_reminder_whose_appointment_became_a_no_show_is_refused(
        fake, rr, clock, staff):
    clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    anna = await new_patient(rr, "Anna")
    appt = await book(staff, f"{anna.id} 2026-03-02 10:30 30 face")
    await dispatch(rr, clock)
    clock.advance(minutes=61)  # the session ended at 11:00: the aftercare message is due
    fake.fail_next("sendMessage", 400, "Bad Request: can't parse entities", chat_id=anna.id)
    await dispatch(rr, clock)
    [dead] = await reminders(rr, appointment_id=appt, status="dead")
    await staff.send("/staff")
    listing = (await staff.press("❗ Reminders needing attention"))[-1]
    assert f"↻ Retry R{dead.id}" in staff.labels(listing)
    shown = await noshow(staff, appt)
    assert "marked as a no-show" in shown[-1].text
    before = len(sent_texts(fake, anna.id))
    shown = await staff.press(f"↻ Retry R{dead.id}", listing)
    assert "queued again" not in shown[-1].text
    assert f"appointment #{appt} is no longer active (no_show)" in shown[-1].text
    clock.advance(minutes=1)
    await dispatch(rr, clock)
    assert len(sent_texts(fake, anna.id)) == before
    assert (await reminders(rr, id=dead.id))[0].status != "pending"
    # A no-show wants nothing sent: the dead row has left the list, Retry and all.
    await staff.send("/staff")
    listing = (await staff.press("❗ Reminders needing attention"))[-1]
    assert f"↻ Retry R{dead.id}" not in staff.labels(listing)
    assert f"R{dead.id}" not in listing.text


async def test_stats_count_real_patients_and_the_reminders_that_need_attention(
        fake, rr, clock, staff):
    clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    anna, ben = await new_patient(rr, "Anna"), await new_patient(rr, "Ben")
    # Booked before they ever wrote: placeholder patients, not people who wrote to the bot.
    await book(staff, '"Maria Lopez" 2026-03-04 12:00 60 face')
    await book(staff, "+447700900123 2026-03-04 13:00 60 face")
    await book(staff, f"{anna.id} 2026-03-03 09:00 30 face")
    await book(staff, f"{ben.id} 2026-03-20 12:00 60 face")
    for user in (anna, ben):  # both confirmations die
        fake.fail_next("sendMessage", 400, "Bad Request: can't parse entities", chat_id=user.id)
    await dispatch(rr, clock)
    assert len(await reminders(rr, status="dead")) == 2
    text = (await staff.send("/stats"))[-1].text
    assert "Patients who have written to the bot: <b>2</b>" in text
    assert "New patients this week: <b>2</b>" in text
    assert "Reminders needing attention (failed or dead, Retry in the console): <b>2</b>" in text
    # Anna's appointment is over: her confirmation expired, off the list and the count.
    clock.set(datetime(2026, 3, 3, 12, 0, tzinfo=UTC))
    await staff.send("/staff")
    listing = (await staff.press("❗ Reminders needing attention"))[-1].text
    assert len(re.findall(r"^• R\d+ ", listing, re.M)) == 1
    text = (await staff.send("/stats"))[-1].text
    assert "Reminders needing attention (failed or dead, Retry in the console): <b>1</b>" in text
