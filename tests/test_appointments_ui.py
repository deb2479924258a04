"""Staff commands and the patient's appointment screens, through the real Application."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from icalendar import Calendar

from bot.clock import FixedClock
from bot.db.appointment_models import Appointment
from tests.conftest import make_settings
from tests.harness import BotRunner, TgUser
from tests.reminder_support import (
    appointment,
    cancel_appt,
    db,
    dispatch,
    patient_row,
    reminders,
    sent_texts,
)

CONTENT_DIR = Path(__file__).resolve().parent.parent / "content"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 24, 12, 0, tzinfo=UTC))  # Tuesday, GMT


async def booked(rr, staff, args="2026-12-03 14:30 60 face 1/4", name="Anna"):
    user = TgUser(rr, first_name=name)
    await user.send("/start")
    shown = await staff.send(f"/book {user.id} {args}")
    appt_id = int(re.search(r"#(\d+)", shown[-1].text).group(1))
    return user, appt_id


async def test_staff_commands_check_staff_every_time(fake, rr, staff):
    eve = TgUser(rr, "Eve")
    await eve.send("/start")
    for command in ("/book 1 tomorrow 10:00", "/reschedule 1 tomorrow 10:00", "/cancel_appt 1",
                    "/push 1", "/upcoming"):
        shown = await eve.send(command)
        assert shown[-1].text == "Sorry, this is only for clinic staff.", command
        assert eve.labels(shown[-1]) == ["🏠 Main menu"]  # the patient's way back
    assert not await reminders(rr)
    for forged in ("sc:y:1:1", "sc:n:1:1", "ns:y:1:1", "pn:1"):  # confirmation buttons: staff only
        await eve.press_data(forged, fake.last_message(eve.id))
        assert fake.calls_to("answerCallbackQuery")[-1].params.get("show_alert")
    shown = await eve.press_data("ps:1", fake.last_message(eve.id))
    assert any(c.params.get("show_alert") for c in fake.calls_to("answerCallbackQuery"))
    assert not await reminders(rr)
    shown = await staff.send("/book")
    assert "Usage: /book" in shown[-1].text
    shown = await staff.send("/book 424242 31.02.2027 10:00")
    assert "not a calendar date" in shown[-1].text
    shown = await staff.send("/book 424242 tomorrow 10:00")
    assert "has opened the bot" in shown[-1].text  # unknown Telegram id: explained, not booked


async def test_book_shows_a_summary_and_upcoming_lists_reminder_status(fake, rr, clock, staff):
    anna, appt = await booked(rr, staff)
    assert "Thu 3 Dec 2026 14:30" in staff.last_text() and "session 1 of 4" in staff.last_text()
    await dispatch(rr, clock)
    shown = await staff.send("/upcoming 14")
    text = shown[-1].text
    assert f"#{appt}" in text and "Anna" in text and "face" in text
    assert "✅ confirmation" in text and "⏳ preparation Wed 2 Dec 14:30" in text


async def test_patient_confirms_reschedule_request_and_cancel(fake, rr, clock, staff):
    anna, appt = await booked(rr, staff)
    shown = await anna.send("/menu")
    shown = await anna.press("📅 My appointments")
    assert "on Thu 3 Dec at 14:30: face, 60 minutes, session 1 of 4" in shown[-1].text
    shown = await anna.press("✅ Confirm")
    assert "is confirmed" in shown[-1].text
    assert (await appointment(rr, appt)).status == "confirmed"
    assert any(f"confirmed appointment #{appt}" in t for t in sent_texts(fake, 42))
    await anna.press_data("ap:list")
    shown = await anna.press("🔁 Ask to reschedule")
    assert "will contact you" in shown[-1].text
    assert any(f"asks to reschedule appointment #{appt}" in t for t in sent_texts(fake, 42))
    await anna.press_data("ap:list")
    shown = await anna.press("❌ Cancel")
    assert "Cancel your appointment" in shown[-1].text
    shown = await anna.press("No, keep it")
    assert (await appointment(rr, appt)).status == "confirmed"
    await anna.press_data(f"ap:x:{appt}")
    shown = await anna.press("Yes, cancel it")
    assert "is cancelled" in shown[-1].text
    assert (await appointment(rr, appt)).status == "cancelled"
    assert any(f"cancelled appointment #{appt}" in t for t in sent_texts(fake, 42))
    assert {r.status for r in await reminders(rr, appointment_id=appt)} <= {"cancelled", "sent"}
    shown = await anna.press_data("ap:list")
    assert "no upcoming appointments" in shown[-1].text


async def test_a_patient_cannot_touch_someone_elses_appointment(fake, rr, staff):
    anna, appt = await booked(rr, staff)
    eve = TgUser(rr, "Eve")
    await eve.send("/start")
    for data in (f"ap:c:{appt}", f"ap:xx:{appt}", f"ap:i:{appt}", f"ck:cn:{appt}", f"nx:{appt}"):
        menu = (await eve.send("/menu"))[-1]
        shown = await eve.press_data(data, menu)
        assert "can no longer be changed" in shown[-1].text, data
    assert (await appointment(rr, appt)).status == "booked"
    assert not fake.calls_to("sendDocument")
    assert not any("concern" in t or "cancelled" in t for t in sent_texts(fake, 42))


async def test_calendar_file(fake, rr, staff):
    anna, appt = await booked(rr, staff)
    await anna.press_data("ap:list", fake.last_message(anna.id))
    await anna.press("🗓 Add to calendar")
    doc = fake.calls_to("sendDocument", chat_id=anna.id)[-1]
    assert doc.params["document"].filename == f"appointment-{appt}.ics"
    cal = Calendar.from_ical(doc.params["document"].data)
    event = next(iter(cal.walk("VEVENT")))
    assert event.decoded("dtstart") == datetime(2026, 12, 3, 14, 30, tzinfo=UTC)
    assert event.decoded("dtend") - event.decoded("dtstart") == timedelta(minutes=60)
    assert "face" not in str(event.get("summary"))  # no treatment in a shared calendar
    assert (str(event.get("uid")), event.decoded("sequence")) == (f"appointment-{appt}@clinic-bot", 0)
    await staff.send(f"/reschedule {appt} 2026-12-04 16:00")
    await anna.press_data("ap:list", fake.last_message(anna.id))
    await anna.press("🗓 Add to calendar")
    moved = next(iter(Calendar.from_ical(
        fake.calls_to("sendDocument", chat_id=anna.id)[-1].params["document"].data).walk("VEVENT")))
    # The same entry, updated: not a second one beside the old time.
    assert (str(moved.get("uid")), moved.decoded("sequence")) == (f"appointment-{appt}@clinic-bot", 1)
    assert moved.decoded("dtstart") == datetime(2026, 12, 4, 16, 0, tzinfo=UTC)


async def test_checkin_concern_and_next_session_reach_staff(fake, rr, clock, staff):
    anna, appt = await booked(rr, staff, "2026-11-26 10:00 30 neck 2/3")
    rows = {r.kind: r for r in await reminders(rr, appointment_id=appt)}
    clock.set(rows["checkin"].due_at)
    await dispatch(rr, clock)
    message = fake.last_message(anna.id)
    assert "How do you feel" in message.text
    shown = await anna.press("😟 I have a concern", message)
    assert "We have passed it on" in shown[-1].text
    assert any(f"concern after appointment #{appt}" in t for t in sent_texts(fake, 42))
    # Staff answer it from the alert, like a question handed off: the patient gets the reply.
    await staff.press("↩️ Reply", fake.last_message(42))
    await staff.send("We will call you this afternoon.")
    assert "We will call you this afternoon." in sent_texts(fake, anna.id)[-1]
    clock.set(rows["next_session"].due_at)
    await dispatch(rr, clock)
    message = fake.last_message(anna.id)
    assert "session 2 of 3" in message.text
    shown = await anna.press("📆 Book my next session", message)
    assert "next session" in shown[-1].text
    assert any("wants to book session 3 of 3" in t for t in sent_texts(fake, 42))


async def test_push_sends_now_through_the_outbox_and_asks_at_night(fake, rr, clock, staff):
    anna, appt = await booked(rr, staff)
    await dispatch(rr, clock)  # confirmation
    clock.advance(minutes=5)
    shown = await staff.send(f"/push {appt}")
    assert "queued" in shown[-1].text
    # Sent right away by a dispatcher run the command starts, not at the next tick.
    await fake.wait_for(lambda c: c.method == "sendMessage" and c.status == 200
                        and "Your appointment is on Thu 3 Dec at 14:30" in c.params["text"])
    await dispatch(rr, clock)  # waits for that run to finish recording (runs are serialised)
    assert [r.status for r in await reminders(rr) if ":push:" in r.key] == ["sent"]
    clock.set(datetime(2026, 11, 25, 22, 30, tzinfo=UTC))  # quiet hours
    shown = await staff.send(f"/push {appt}")
    assert "quiet hours" in shown[-1].text
    assert f"appointment #{appt} (Anna (#" in shown[-1].text and "Thu 3 Dec 2026 14:30" in shown[-1].text
    shown = await staff.press("No, not now", shown[-1])
    assert f"Nothing was sent for appointment #{appt}" in shown[-1].text
    shown = await staff.send(f"/push {appt}")
    assert len([r for r in await reminders(rr) if ":push:" in r.key]) == 1
    prompt = fake.last_message(42)
    await staff.press("Send now anyway")
    shown = await staff.press_data(f"ps:{appt}", prompt)  # a double tap: that button again
    await dispatch(rr, clock)
    assert len([r for r in await reminders(rr, status="sent") if ":push:" in r.key]) == 2
    assert len([t for t in sent_texts(fake, anna.id) if "A reminder from the clinic" in t]) == 2
    assert not any("went wrong" in m.text for m in fake.messages[42].values())
    shown = await staff.send("/push 999")
    assert "no active appointment #999" in shown[-1].text


async def test_deep_link_links_a_patient_booked_before_they_opened_the_bot(fake, rr, clock, staff):
    shown = await staff.send('/book "Jane Doe" 2026-12-03 14:30 45 "upper arms" 1/2')
    text = shown[-1].text
    link = re.search(r"https://t\.me/clinic_test_bot\?start=(lk_[\w-]+)", text)
    assert link and "Jane Doe" in text
    assert all(len(x) <= 64 for x in [link.group(1)])
    stats = await dispatch(rr, clock)
    assert stats.sent == 0  # nobody to send to yet: the rows wait
    jane = TgUser(rr, "Jane")
    shown = await jane.send(f"/start {link.group(1)}")
    assert "now linked" in shown[0].text
    assert "📅 My appointments" in jane.labels(shown[0])
    assert any("opened their link" in t for t in sent_texts(fake, 42))
    shown = await jane.send(f"/start {link.group(1)}")  # opened again: still hers
    assert "now linked" in shown[0].text
    assert len([t for t in sent_texts(fake, 42) if "opened their link" in t]) == 1
    await dispatch(rr, clock)
    assert "Your appointment is on Thu 3 Dec at 14:30" in sent_texts(fake, jane.id)[-1]
    assert (await patient_row(rr, jane.id)).first_name == "Jane Doe"
    # The link is single-use: another person gets a polite refusal and the normal menu.
    mallory = TgUser(rr, "Mallory")
    shown = await mallory.send(f"/start {link.group(1)}")
    assert "not valid any more" in shown[0].text
    shown = await mallory.press_data("ap:list", shown[0])
    assert "no upcoming appointments" in shown[-1].text
    # A plain /start still shows the usual greeting.
    shown = await jane.send("/start")
    assert "Hello, Jane!" in shown[0].text


async def test_mydata_includes_appointments_and_forget_erases_them(fake, rr, clock, staff):
    import json

    anna, appt = await booked(rr, staff)
    await dispatch(rr, clock)
    shown = await anna.send("/mydata")
    data = json.loads(fake.files[TgUser.document_in(shown).document["file_id"]])
    assert data["appointments"]["appointments"][0]["treatment_area"] == "face"
    assert {r["kind"] for r in data["appointments"]["reminders"]} >= {"confirmation", "preparation"}
    await anna.send("/forget")
    await anna.press("🗑 Yes")
    assert await reminders(rr) == []
    before = len(sent_texts(fake, anna.id))
    clock.advance(days=20)
    await dispatch(rr, clock)
    assert len(sent_texts(fake, anna.id)) == before  # nothing more went to her


async def test_staff_console_lists_upcoming_and_stats_count_reminders(fake, rr, clock, staff):
    anna, appt = await booked(rr, staff, "2026-11-27 14:30 60 face 1/4")
    await staff.send("/staff")
    shown = await staff.press("📅 Upcoming appointments")
    assert f"#{appt}" in shown[-1].text
    shown = await staff.send("/stats")
    assert "Reminders waiting: 6" in shown[-1].text.replace("</b>", "").replace("<b>", "")


async def test_booking_by_patient_number_before_linking_gives_a_link_to_that_patient(fake, rr, clock, staff):
    shown = await staff.send('/book "Jane Doe" 2026-12-03 14:30 45 face 1/2')
    patient_no = re.search(r"\(#(\d+)\)", shown[-1].text).group(1)
    shown = await staff.send(f"/book #{patient_no} 2026-12-24 14:30 45 face 2/2")
    link = re.search(r"start=(lk_[\w-]+)", shown[-1].text)
    assert link, "a patient not yet on Telegram needs a link"
    jane = TgUser(rr, "Jane")
    await jane.send(f"/start {link.group(1)}")
    shown = await jane.press("📅 My appointments")
    text = " ".join(m.text for m in shown)
    assert "3 Dec" in text and "24 Dec" in text  # both appointments are hers


async def test_unicode_digits_get_the_usage_hint_not_an_error(fake, rr, staff):
    for command in ("/upcoming ²", "/reply ² hello", "/noshow ²"):
        shown = await staff.send(command)
        assert not any("something went wrong" in m.text for m in shown), command
        assert shown, command


async def test_forget_tells_staff_which_upcoming_slots_are_free(fake, rr, clock, staff):
    anna, kept = await booked(rr, staff, name="Anna Forgetful")
    shown = await staff.send(f"/book {anna.id} 2026-12-10 09:00 60 scalp 2/4")
    cancelled = int(re.search(r"#(\d+)", shown[-1].text).group(1))
    await cancel_appt(staff, cancelled)
    before = len(fake.calls_to("sendMessage", staff.id))
    await anna.send("/forget")
    await anna.press("🗑 Yes")
    notes = [c.params["text"] for c in fake.calls_to("sendMessage", staff.id)[before:]]
    assert len(notes) == 1, notes
    assert f"#{kept} Thu 3 Dec 2026 14:30" in notes[0] and "/forget" in notes[0]
    assert f"#{cancelled}" not in notes[0]  # already off the diary
    assert "Forgetful" not in notes[0] and str(anna.id) not in notes[0]


async def test_forget_without_appointments_tells_staff_nothing(fake, rr, staff):
    bo = TgUser(rr, first_name="Bo")
    await bo.send("/start")
    before = len(fake.calls_to("sendMessage", staff.id))
    await bo.send("/forget")
    await bo.press("🗑 Yes")
    assert len(fake.calls_to("sendMessage", staff.id)) == before


async def test_forget_tells_staff_even_if_the_patients_screen_fails(fake, rr, clock, staff):
    anna, kept = await booked(rr, staff)
    before = len(fake.calls_to("sendMessage", staff.id))
    await anna.send("/forget")
    fake.fail_next("editMessageText", 502, chat_id=anna.id)  # the "erased" screen is lost
    await anna.press("🗑 Yes")
    notes = [c.params["text"] for c in fake.calls_to("sendMessage", staff.id)[before:]]
    assert any(f"#{kept} " in n for n in notes), notes


TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"


async def test_presses_too_old_to_answer_still_act(fake, rr, clock, staff):
    """After a backlog (a restart, an outage) Telegram refuses to answer old button presses; what
    was pressed for must still happen, with its screen and no error message."""
    anna, appt = await booked(rr, staff)
    await anna.send("/menu")
    await anna.press_data("ap:list")

    def stale() -> None:
        fake.fail_next("answerCallbackQuery", 400, TOO_OLD)

    stale()
    shown = await anna.press_data(f"ap:c:{appt}")
    assert "is confirmed" in shown[-1].text
    assert (await appointment(rr, appt)).status == "confirmed"
    stale()
    await anna.press_data(f"ck:cn:{appt}")
    assert any("concern" in t for t in sent_texts(fake, 42))
    stale()
    shown = await anna.press_data("pf:k:aftercare")
    assert "🔕 Aftercare message" in anna.labels(shown[-1])
    assert "push_before" not in {r.kind for r in await reminders(rr, appointment_id=appt)}
    stale()
    shown = await staff.press_data(f"ps:{appt}", (await staff.send("/menu"))[-1])
    assert "push_before" in {r.kind for r in await reminders(rr, appointment_id=appt)}
    stale()
    shown = await staff.press_data("staff:today", (await staff.send("/staff"))[-1])
    assert "Today, Tue 24 Nov 2026" in shown[-1].text
    # The press on /forget's own screen: the push's background run may send Anna a reminder
    # with buttons after it.
    forget = await anna.send("/forget")
    stale()
    shown = await anna.press("🗑 Yes", forget[-1])
    assert "has been erased" in shown[-1].text
    everyone = [m.text.lower() for chat in (anna.id, 42) for m in fake.messages.get(chat, {}).values()]
    assert not any("went wrong" in text for text in everyone)
    assert len([c for c in fake.calls if c.method == "answerCallbackQuery" and c.status == 400]) == 6


async def test_a_second_confirm_tells_staff_nothing_new(fake, rr, staff):
    anna, appt = await booked(rr, staff)
    await anna.send("/menu")
    shown = await anna.press_data(f"ap:c:{appt}")
    assert "is confirmed" in shown[-1].text
    await anna.press_data(f"ap:c:{appt}", shown[-1])  # the same screen again: nothing to edit
    assert "is confirmed" in anna.last_text()
    assert not any("went wrong" in m.text for m in fake.messages[anna.id].values())
    assert len([t for t in sent_texts(fake, 42) if f"confirmed appointment #{appt}" in t]) == 1


async def test_a_confirm_read_before_a_staff_change_does_not_undo_it(fake, rr, clock, staff):
    """The patient's press read the appointment; staff cancelled (or moved) it before the
    press wrote: the confirmation must not bring it back, nor confirm the new time unseen."""
    from bot.reminders import service

    for change in ("/cancel_appt {a}", "/reschedule {a} 2026-12-04 10:00"):
        anna, appt = await booked(rr, staff)
        async with db(rr).session() as session:
            seen = await session.get(Appointment, appt)  # the patient's press, before its write
            # Another transaction, committed.
            shown = await (cancel_appt(staff, appt) if change.startswith("/cancel_appt")
                           else staff.send(change.format(a=appt)))
            assert f"#{appt}" in shown[-1].text
            assert await service.confirm(session, seen, now=clock.now()) is False
            assert seen.status != "confirmed"
        assert (await appointment(rr, appt)).status != "confirmed"


async def test_a_concern_stays_open_for_staff_when_no_staff_chat_was_told(fake, rr, clock, staff):
    anna, appt = await booked(rr, staff, "2026-11-26 10:00 30 neck 2/3")
    rows = {r.kind: r for r in await reminders(rr, appointment_id=appt)}
    clock.set(rows["checkin"].due_at)
    await dispatch(rr, clock)
    fake.fail_next("sendMessage", 500, chat_id=42)  # the staff alert does not get through
    shown = await anna.press("😟 I have a concern", fake.last_message(anna.id))
    assert "We have passed it on" in shown[-1].text
    assert not any("concern after" in t for t in sent_texts(fake, 42))
    await staff.send("/staff")
    shown = await staff.press("❓ Open questions")
    assert "I have a concern after my session Thu 26 Nov 2026 10:00." in shown[0].text
    shown = await staff.send("/stats")
    assert "Questions typed this week: <b>0</b>" in shown[0].text  # pressed, not typed


async def test_a_request_pressed_twice_alerts_staff_once_until_they_reply(fake, rr, clock, staff):
    anna, appt = await booked(rr, staff)
    await anna.send("/menu")
    for _ in range(2):
        shown = await anna.press_data(f"ap:r:{appt}")
        assert "will contact you" in anna.last_text()
    asks = [t for t in sent_texts(fake, 42) if f"asks to reschedule appointment #{appt}" in t]
    assert len(asks) == 1
    await staff.send("/staff")
    shown = await staff.press("❓ Open questions")
    assert shown[0].text.count("I would like to move my appointment Thu 3 Dec 2026 14:30.") == 1
    # Staff reply from the alert; the patient gets it, and a new request alerts again.
    alert = next(m for m in fake.messages[42].values() if "asks to reschedule" in m.text)
    await staff.press("↩️ Reply", alert)
    await staff.send("Would Friday at 10:00 suit you?")
    assert "Would Friday at 10:00 suit you?" in sent_texts(fake, anna.id)[-1]
    await anna.press_data(f"ap:r:{appt}")
    asks = [t for t in sent_texts(fake, 42) if f"asks to reschedule appointment #{appt}" in t]
    assert len(asks) == 2


async def test_staff_acting_on_a_request_closes_it(fake, rr, clock, staff):
    """Moved (or cancelled) by staff, booked the next session: the request leaves the open
    questions, and asking again later alerts staff again."""
    anna, appt = await booked(rr, staff, "2026-11-26 10:00 30 neck 2/3")
    await anna.send("/menu")
    await anna.press_data(f"ap:r:{appt}")
    await staff.send(f"/reschedule {appt} 2026-11-27 11:00")
    await anna.press_data(f"nx:{appt}")  # "Book my next session"
    await staff.send("/staff")
    shown = await staff.press("❓ Open questions")
    assert "move my appointment" not in shown[0].text
    assert "book session 3 of 3" in shown[0].text
    await staff.send(f"/book {anna.id} 2026-12-18 10:00 30 neck 3/3")
    await staff.send("/staff")
    shown = await staff.press("❓ Open questions")
    assert "book session 3 of 3" not in shown[0].text
    await anna.press_data(f"ap:r:{appt}")
    asks = [t for t in sent_texts(fake, 42) if f"asks to reschedule appointment #{appt}" in t]
    assert len(asks) == 2


async def test_a_request_is_kept_as_the_words_the_patient_saw(fake, settings, clock, tmp_path):
    """The request texts are HTML templates the clinic edits: the open question keeps their
    visible words, so the console (which escapes stored text) shows "&" and no tags."""
    content = tmp_path / "content"
    shutil.copytree(settings.content_dir, content)
    yaml_file = content / "reminders.yaml"
    old = 'reschedule_question: "I would like to move my appointment {when}."'
    assert old in yaml_file.read_text()
    yaml_file.write_text(yaml_file.read_text().replace(
        old, 'reschedule_question: "Move <b>my appointment</b> {when} &amp; call me."'))
    runner = BotRunner(fake, settings.model_copy(update={"content_dir": content}), clock=clock,
                       periodic_dispatch=False)
    await runner.start()
    try:
        staff = TgUser(runner, "Staff", user_id=42)
        anna, appt = await booked(runner, staff)
        await anna.send("/menu")
        await anna.press_data(f"ap:r:{appt}")
        await staff.send("/staff")
        shown = await staff.press("❓ Open questions")
        assert "Move my appointment Thu 3 Dec 2026 14:30 &amp; call me." in shown[0].text
        assert "&amp;amp;" not in shown[0].text and "&lt;b&gt;" not in shown[0].text
    finally:
        await runner.stop()


async def test_reschedule_reads_the_duration_and_refuses_what_it_cannot_read(fake, rr, staff):
    anna, appt = await booked(rr, staff)
    shown = await staff.send(f"/reschedule {appt} 2026-12-04 10:00 90min")
    assert "Could not read" not in shown[-1].text
    shown = await staff.send(f"/reschedule {appt} 2026-12-04 11:00 1h30 please")
    assert "Could not read that: unexpected 'please' after the time" in shown[-1].text
    shown = await staff.send(f"/reschedule {appt} 2026-12-04 11:00 0")
    assert "duration must be 5-600 minutes" in shown[-1].text
    async with db(rr).session() as session:
        row = await session.get(Appointment, appt)
    assert row.duration_min == 90 and row.starts_at == datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


@pytest.mark.postgres
async def test_an_appointment_number_too_big_for_the_database_is_a_usage_answer(fake, pg_url,
                                                                               clock):
    """PostgreSQL's ids are 32-bit: a longer number (typed or forged in a button) must not
    reach a query, where it failed with a DataError ("something went wrong")."""
    runner = BotRunner(fake, make_settings(fake, pg_url), clock=clock, periodic_dispatch=False)
    await runner.start()
    try:
        staff = TgUser(runner, "Staff", user_id=42)
        anna, appt = await booked(runner, staff)
        shown = await staff.send("/cancel_appt 99999999999")
        assert "Usage: /cancel_appt" in shown[-1].text
        for data in ("ap:c:99999999999", "ck:cn:99999999999", "qa:reply:99999999999"):
            shown = await anna.press_data(data)
            assert "something went wrong" not in " ".join(m.text for m in shown).lower(), data
        console = (await staff.send("/staff"))[-1]  # a message with buttons to press on
        for data in ("iks:99999999999", "ps:99999999999", "staff:intake:99999999999"):
            shown = await staff.press_data(data, console)  # reaching the staff handlers
            assert "something went wrong" not in " ".join(m.text for m in shown).lower(), data
    finally:
        await runner.stop()


async def test_the_calendar_entry_names_the_clinic_as_written_not_as_html(
        fake, db_url, tmp_path, clock):
    content = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, content)
    messages = content / "messages.yaml"
    messages.write_text(messages.read_text(encoding="utf-8").replace(
        'clinic_name: "the clinic"', "clinic_name: \"Smith & Jones O'Brien\""), encoding="utf-8")
    runner = BotRunner(fake, make_settings(fake, db_url, content_dir=content), clock=clock)
    await runner.start()
    try:
        anna, _ = await booked(runner, TgUser(runner, "Staff", user_id=42))
        await anna.press_data("ap:list", fake.last_message(anna.id))
        await anna.press("🗓 Add to calendar")
        cal = Calendar.from_ical(fake.calls_to("sendDocument", chat_id=anna.id)[-1]
                                 .params["document"].data)
        assert str(next(iter(cal.walk("VEVENT"))).get("summary")) == \
            "Appointment at Smith & Jones O'Brien"
    finally:
        await runner.stop()
