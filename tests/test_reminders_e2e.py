"""The reminder engine end to end: the real Application, the fake Bot API, time moved by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from bot.clock import FixedClock
from bot.db.appointment_models import Reminder
from tests.harness import TgUser
from tests.reminder_support import (
    at_local,
    book,
    cancel_appt,
    db,
    dispatch,
    dispatcher,
    new_patient,
    patient_row,
    reminders,
    sent_texts,
    wall,
)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 1, 10, 0, tzinfo=UTC))


async def step_to(rr, clock, at: datetime):
    clock.set(at)
    return await dispatch(rr, clock)


async def test_every_default_reminder_fires_at_its_local_time_across_spring_dst(fake, rr, clock, staff):
    anna = await new_patient(rr)
    # Sunday 29 March 2026 is the spring change (01:00 GMT -> 02:00 BST); session 1 of 4.
    appt = await book(staff, f"{anna.id} 2026-03-29 10:00 60 face 1/4")
    expected = {
        "confirmation": "2026-03-01 10:00 GMT", "preparation": "2026-03-28 10:00 GMT",
        "same_day": "2026-03-29 08:00 BST", "aftercare": "2026-03-29 11:00 BST",
        "checkin": "2026-03-30 11:00 BST", "next_session": "2026-04-19 11:00 BST",
    }
    await _fire_in_order(fake, rr, clock, anna, appt, expected)
    texts = sent_texts(fake, anna.id)
    assert "on Sun 29 Mar at 10:00" in texts[1]  # texts[0] is the /start menu
    assert "tomorrow, Sun 29 Mar, at 10:00" in texts[2] and "topical anesthetic" in texts[2]
    assert "today, Sun 29 Mar, at 10:00" in texts[3]
    assert "sun exposure" in texts[4]
    assert "How do you feel" in texts[5]
    assert "session 1 of 4" in texts[6]


async def test_every_default_reminder_fires_at_its_local_time_across_autumn_dst(fake, rr, clock, staff):
    clock.set(datetime(2026, 10, 1, 9, 0, tzinfo=UTC))
    anna = await new_patient(rr)
    # Saturday 24 October 2026 14:00 BST; the check-in falls on Sunday 25th, after the change.
    appt = await book(staff, f"{anna.id} 24.10.2026 14:00 60 neck 2/3")
    expected = {
        "confirmation": "2026-10-01 10:00 BST", "preparation": "2026-10-23 14:00 BST",
        "same_day": "2026-10-24 12:00 BST", "aftercare": "2026-10-24 15:00 BST",
        "checkin": "2026-10-25 15:00 GMT", "next_session": "2026-11-14 15:00 GMT",
    }
    await _fire_in_order(fake, rr, clock, anna, appt, expected)


async def _fire_in_order(fake, rr, clock, patient, appt, expected):
    rows = await reminders(rr, appointment_id=appt)
    assert {r.kind: wall(r.due_at) for r in rows} == expected
    for row in rows:
        before = len(sent_texts(fake, patient.id))
        if row.due_at > clock.now():
            await step_to(rr, clock, row.due_at - timedelta(seconds=1))
            assert len(sent_texts(fake, patient.id)) == before, f"{row.kind} sent early"
        await step_to(rr, clock, row.due_at)
        assert len(sent_texts(fake, patient.id)) == before + 1, f"{row.kind} not sent on time"
    assert {r.status for r in await reminders(rr, appointment_id=appt)} == {"sent"}
    # Nothing is sent twice, however often the dispatcher runs.
    clock.advance(days=30)
    await dispatch(rr, clock)
    assert len(sent_texts(fake, patient.id)) == len(expected) + 1  # + the /start menu


async def test_quiet_hours(fake, rr, clock, staff):
    anna = await new_patient(rr)
    # 22:00 appointment: preparation (22:00 the day before) waits for 08:00; the 2-hour
    # reminder is time-critical and goes at 20:00; aftercare after 23:00 waits for the morning.
    late = await book(staff, f"{anna.id} 2026-03-10 22:00 60 face")
    rows = {r.kind: r for r in await reminders(rr, appointment_id=late)}
    assert wall(rows["preparation"].due_at) == "2026-03-10 08:00 GMT"
    assert wall(rows["aftercare"].due_at) == "2026-03-11 08:00 GMT"
    await step_to(rr, clock, at_local(2026, 3, 9, 22, 30))
    await step_to(rr, clock, at_local(2026, 3, 10, 7, 59))
    assert [r.status for r in await reminders(rr, kind="preparation")] == ["pending"]
    await step_to(rr, clock, at_local(2026, 3, 10, 8, 0))
    assert [r.status for r in await reminders(rr, kind="preparation")] == ["sent"]

    # An early appointment: the same-day reminder may be sent at 07:00, in quiet hours.
    bob = await new_patient(rr, "Bob")
    early = await book(staff, f"{bob.id} 2026-03-12 09:00 30 face")
    await dispatch(rr, clock)  # Bob's confirmation (one message per chat per run)
    same_day = [r for r in await reminders(rr, appointment_id=early) if r.kind == "same_day"][0]
    assert wall(same_day.due_at) == "2026-03-12 07:00 GMT"
    await step_to(rr, clock, same_day.due_at)
    assert (await reminders(rr, id=same_day.id))[0].status == "sent"

    # The dispatcher was down from 20:55 to 21:30: a deferrable reminder due at 21:00 is not
    # sent at night; it waits for the morning.
    aftercare = [r for r in await reminders(rr, appointment_id=early) if r.kind == "aftercare"][0]
    async with db(rr).session() as session:
        await session.execute(update(Reminder).where(Reminder.id == aftercare.id)
                              .values(due_at=at_local(2026, 3, 12, 20, 55)))
    before = len(sent_texts(fake, bob.id))
    stats = await step_to(rr, clock, at_local(2026, 3, 12, 21, 30))
    assert stats.deferred >= 1 and stats.sent == 0 and len(sent_texts(fake, bob.id)) == before
    row = (await reminders(rr, id=aftercare.id))[0]
    assert wall(row.due_at) == "2026-03-13 08:00 GMT"
    await step_to(rr, clock, row.due_at)
    assert len(sent_texts(fake, bob.id)) == before + 1


async def test_late_booking_and_stale_reminders_expire(fake, rr, clock, staff):
    anna = await new_patient(rr)
    clock.set(at_local(2026, 3, 2, 11, 0))
    appt = await book(staff, f"{anna.id} 2026-03-02 14:00 60 face")  # 3 hours ahead
    kinds = [r.kind for r in await reminders(rr, appointment_id=appt)]
    assert "preparation" not in kinds and "same_day" in kinds
    # The bot was down all afternoon and night: only what is still valid goes out.
    await step_to(rr, clock, at_local(2026, 3, 3, 9, 0))
    by_kind = {r.kind: r.status for r in await reminders(rr, appointment_id=appt)}
    assert by_kind["confirmation"] == "expired" and by_kind["same_day"] == "expired"
    assert by_kind["aftercare"] == "sent"
    texts = sent_texts(fake, anna.id)
    assert not any("See you" in t for t in texts)


async def test_reschedule_and_cancel_with_staff_commands(fake, rr, clock, staff):
    anna = await new_patient(rr)
    appt = await book(staff, f"{anna.id} 2026-03-20 15:00 45 face 1/2")
    await dispatch(rr, clock)  # the confirmation goes out
    number = (await patient_row(rr, anna.id)).id
    shown = await staff.send(f"/reschedule {appt} 2026-03-22 11:30")
    assert (f"Appointment #{appt} for Anna (#{number}) moved from Fri 20 Mar 2026 15:00 to "
            "Sun 22 Mar 2026 11:30, 45 min.") in shown[-1].text
    shown = await staff.send(f"/reschedule {appt} 2026-03-22 11:30")  # no change: refused
    assert shown[-1].text.startswith("Not done: ") and "at that time already" in shown[-1].text
    rows = await reminders(rr, appointment_id=appt)
    old = [r for r in rows if ":v2" not in r.key]
    assert all(r.status in ("sent", "cancelled") for r in old)
    assert {r.kind for r in rows if ":v2" in r.key} >= {"confirmation", "preparation", "same_day"}
    # At the old preparation time nothing is sent; at the new one it is.
    clock.advance(seconds=2)
    await dispatch(rr, clock)  # the new confirmation: "moved", not a second "booked"
    moved = sent_texts(fake, anna.id)[-1]
    assert moved.startswith("<b>Appointment moved</b>") and "Appointment booked" not in moved
    assert "on Fri 20 Mar at 15:00 has moved. It is now on Sun 22 Mar at 11:30" in moved
    count = len(sent_texts(fake, anna.id))
    await step_to(rr, clock, at_local(2026, 3, 19, 15, 0))
    assert len(sent_texts(fake, anna.id)) == count
    await step_to(rr, clock, at_local(2026, 3, 21, 11, 30))
    assert len(sent_texts(fake, anna.id)) == count + 1
    assert "tomorrow, Sun 22 Mar, at 11:30" in sent_texts(fake, anna.id)[-1]

    shown = await cancel_appt(staff, appt)
    assert f"#{appt}" in shown[-1].text and "cancelled" in shown[-1].text
    clock.advance(seconds=2)
    await dispatch(rr, clock)
    assert "Appointment cancelled" in sent_texts(fake, anna.id)[-1]
    count = len(sent_texts(fake, anna.id))
    for day in range(22, 40):  # nothing after a cancellation, ever
        clock.set(at_local(2026, 3, 1, 12) + timedelta(days=day))
        await dispatch(rr, clock)
    assert len(sent_texts(fake, anna.id)) == count
    shown = await staff.send(f"/cancel_appt {appt}")
    assert "no active appointment" in shown[-1].text


async def test_restart_between_planning_and_sending_loses_and_doubles_nothing(fake, rr, clock, staff):
    anna = await new_patient(rr)
    appt = await book(staff, f"{anna.id} 2026-03-05 12:00 60 face")
    await rr.restart()
    await dispatch(rr, clock)
    await rr.restart()
    await dispatch(rr, clock)
    confirmations = [t for t in sent_texts(fake, anna.id) if "Appointment booked" in t]
    assert len(confirmations) == 1
    # A crash after a row was claimed (left in 'sending'): retried after restart, marked.
    prep = [r for r in await reminders(rr, appointment_id=appt) if r.kind == "preparation"][0]
    await rr.stop()
    from bot.db.engine import Database

    database = Database(rr.settings.database_url)
    async with database.session() as session:
        await session.execute(update(Reminder).where(Reminder.id == prep.id).values(
            status="sending", claimed_at=prep.due_at, attempts=1))
    await database.dispose()
    await rr.start()
    await step_to(rr, clock, prep.due_at + timedelta(minutes=1))
    row = (await reminders(rr, id=prep.id))[0]
    assert row.status == "sent" and row.outcome_unknown and row.attempts == 2
    assert len([t for t in sent_texts(fake, anna.id) if "topical anesthetic" in t]) == 1


async def test_two_runs_at_once_send_each_reminder_once(fake, rr, clock, staff):
    import asyncio

    users = [await new_patient(rr, f"P{i}") for i in range(5)]
    for user in users:
        await book(staff, f"{user.id} 2026-03-05 12:00 60 face")
    await asyncio.gather(dispatch(rr, clock), dispatch(rr, clock), dispatch(rr, clock))
    for user in users:
        assert len([t for t in sent_texts(fake, user.id) if "Appointment booked" in t]) == 1


# ------------------------------------------------------------------------------ errors
async def _booked(rr, staff, name="Anna"):
    user = await new_patient(rr, name)
    appt = await book(staff, f"{user.id} 2026-03-20 12:00 60 face 1/3")
    return user, appt


async def test_forbidden_marks_unreachable_cancels_future_and_tells_staff(fake, rr, clock, staff):
    anna, appt = await _booked(rr, staff)
    fake.block(anna.id)
    stats = await dispatch(rr, clock)
    assert stats.unreachable == 1
    rows = await reminders(rr, appointment_id=appt)
    assert [r.status for r in rows if r.kind == "confirmation"] == ["failed"]
    assert {r.status for r in rows if r.kind != "confirmation"} == {"cancelled"}
    assert (await patient_row(rr, anna.id)).unreachable
    assert any("blocked the bot" in t for t in sent_texts(fake, 42))
    clock.advance(days=30)
    await dispatch(rr, clock)
    assert not fake.calls_to("sendMessage", chat_id=anna.id)[1:]  # only the /start menu


async def test_retry_after_waits_as_told_and_is_not_an_attempt(fake, rr, clock, staff):
    anna, appt = await _booked(rr, staff)
    fake.fail_next("sendMessage", 429, retry_after=1, chat_id=anna.id)
    stats = await dispatch(rr, clock)
    assert stats.rate_limited == 1
    row = [r for r in await reminders(rr, appointment_id=appt) if r.kind == "confirmation"][0]
    assert row.status == "pending" and row.attempts == 0
    assert row.due_at == clock.now() + timedelta(seconds=1)
    await dispatch(rr, clock)  # not yet: due in a second
    assert (await reminders(rr, id=row.id))[0].status == "pending"
    clock.advance(seconds=1)
    await dispatch(rr, clock)
    row = (await reminders(rr, id=row.id))[0]
    assert row.status == "sent" and row.attempts == 1


async def test_bad_request_is_a_dead_letter_and_staff_are_alerted(fake, rr, clock, staff):
    anna, appt = await _booked(rr, staff)
    fake.fail_next("sendMessage", 400, "Bad Request: can't parse entities", chat_id=anna.id)
    stats = await dispatch(rr, clock)
    assert stats.dead == 1
    row = [r for r in await reminders(rr, appointment_id=appt) if r.kind == "confirmation"][0]
    assert row.status == "dead" and row.last_error.startswith("BadRequest")
    assert any(f"appt:{appt}:confirmation" in t and "BadRequest" in t for t in sent_texts(fake, 42))
    clock.advance(minutes=5)
    await dispatch(rr, clock)
    assert (await reminders(rr, id=row.id))[0].status == "dead"  # never retried by itself
    eve = TgUser(rr, "Eve")
    await eve.send(f"/retry_dead {appt}")
    assert (await reminders(rr, id=row.id))[0].status == "dead"  # staff only
    shown = await staff.send(f"/retry_dead {appt}")
    assert "1 dead-lettered reminder(s)" in shown[-1].text
    await dispatch(rr, clock)
    assert (await reminders(rr, id=row.id))[0].status == "sent"


async def test_retry_dead_says_so_when_the_patient_has_blocked_the_bot(fake, rr, clock, staff):
    """A retry to a blocked patient would only fail again with 403: staff are told why instead."""
    anna, appt = await _booked(rr, staff)
    fake.fail_next("sendMessage", 400, "Bad Request: can't parse entities", chat_id=anna.id)
    await dispatch(rr, clock)  # the confirmation: dead
    fake.block(anna.id)
    await staff.send(f"/push {appt}")
    clock.advance(seconds=2)
    await dispatch(rr, clock)  # the push meets the block: the patient is unreachable
    assert (await patient_row(rr, anna.id)).unreachable
    shown = await staff.send(f"/retry_dead {appt}")
    assert "has blocked the bot" in shown[-1].text
    assert [r.status for r in await reminders(rr, appointment_id=appt)
            if r.kind == "confirmation"] == ["dead"]


async def test_timeout_is_outcome_unknown_with_backoff(fake, rr, clock, staff):
    from dataclasses import replace

    anna, appt = await _booked(rr, staff)
    disp = dispatcher(rr)
    engine = disp.engine
    disp.engine = replace(engine, send_timeout=0.2)
    fake.fail_next("sendMessage", 500, chat_id=anna.id, delay=0.6)
    stats = await dispatch(rr, clock)
    disp.engine = engine  # the retry below gets a normal answer in the normal time
    assert stats.retried == 1
    row = [r for r in await reminders(rr, appointment_id=appt) if r.kind == "confirmation"][0]
    assert row.status == "pending" and row.outcome_unknown and row.attempts == 1
    assert row.last_error == "TimedOut"
    wait = row.due_at - clock.now()
    assert timedelta(seconds=24) <= wait <= timedelta(seconds=36)  # 30 s, jittered
    clock.advance(seconds=40)
    await dispatch(rr, clock)
    row = (await reminders(rr, id=row.id))[0]
    assert row.status == "sent" and row.outcome_unknown  # the record says it may be a duplicate


async def test_server_errors_back_off_then_dead_letter_and_tell_staff(fake, rr, clock, staff):
    anna, appt = await _booked(rr, staff)
    fake.fail_next("sendMessage", 502, chat_id=anna.id, count=5)
    waits = []
    for attempt in range(1, 6):
        await dispatch(rr, clock)
        row = [r for r in await reminders(rr, appointment_id=appt) if r.kind == "confirmation"][0]
        assert row.attempts == attempt and not row.outcome_unknown
        if attempt < 5:
            assert row.status == "pending"
            waits.append(row.due_at - clock.now())
            clock.set(row.due_at)
    assert row.status == "dead" and "NetworkError" in row.last_error
    assert waits[0] < waits[1] < waits[2] <= timedelta(minutes=30)
    assert any(f"appt:{appt}:confirmation" in t for t in sent_texts(fake, 42))


async def test_one_repeating_job_dispatches_with_no_misfire_grace_and_coalescing(fake, rr, clock, staff):
    jobs = rr.app.job_queue.get_jobs_by_name("reminder-dispatcher")
    assert len(jobs) == 1
    job = jobs[0].job
    assert job.misfire_grace_time is None and job.coalesce is True and job.max_instances == 1
    anna = await new_patient(rr)
    await book(staff, f"{anna.id} 2026-03-05 12:00 60 face")
    await jobs[0].run(rr.app)  # what the scheduler does at each tick
    assert len([t for t in sent_texts(fake, anna.id) if "Appointment booked" in t]) == 1


async def test_a_reminder_claimed_but_not_yet_sent_is_dropped_when_its_appointment_is_cancelled(
        fake, rr, clock, staff):
    """The claim can be seconds old (pacing, a 429 pause): a cancellation in between wins."""
    anna = await new_patient(rr)
    appt = await book(staff, f"{anna.id} 2026-03-20 15:00 45 face 1/2")
    before = len(sent_texts(fake, anna.id))
    disp = dispatcher(rr)

    seconds = [0.0]

    class CancelWhileQueued:  # stands in for the pacer: the staff cancel happens during the wait
        async def acquire(self):
            seconds[0] += 2.0  # the pacer (or a 429 pause) held this send for two seconds
            if seconds[0] == 2.0:  # the first send waits; later ones (the notice) do not cancel
                await cancel_appt(staff, appt)

    saved = disp.limiter, disp._monotonic
    disp.limiter, disp._monotonic = CancelWhileQueued(), lambda: seconds[0]
    try:
        await disp.run(clock.now())  # claims the booking confirmation, then the cancel lands
    finally:
        disp.limiter, disp._monotonic = saved
    texts = sent_texts(fake, anna.id)[before:]
    assert not any("Appointment booked" in t for t in texts), texts
    rows = await reminders(rr, appointment_id=appt, kind="confirmation")
    assert rows[0].status == "cancelled"


async def test_a_run_reads_the_clock_again_instead_of_trusting_a_stale_now(fake, rr, clock, staff):
    anna = await new_patient(rr)
    appt = await book(staff, f"{anna.id} 2026-03-20 15:00 45 face 1/2")
    before = len(sent_texts(fake, anna.id))
    stale = clock.now()
    clock.set(at_local(2026, 3, 20, 15, 30))  # the run waited: the appointment has started
    stats = await dispatcher(rr).run(stale, clock=clock)
    texts = sent_texts(fake, anna.id)[before:]
    assert not any("Appointment booked" in t or "tomorrow" in t for t in texts), texts
    rows = await reminders(rr, appointment_id=appt, kind="confirmation")
    assert rows[0].status == "expired" and stats.sent == len(texts)


async def test_a_patient_who_unblocks_the_bot_gets_their_reminders_back(fake, rr, clock, staff):
    anna, appt = await _booked(rr, staff)
    fake.block(anna.id)
    await dispatch(rr, clock)  # 403: unreachable, the rest cancelled
    assert (await patient_row(rr, anna.id)).unreachable
    fake.blocked.discard(anna.id)
    await anna.send("/start")  # writing again means the bot is unblocked
    stats = await dispatch(rr, clock)
    assert stats.replanned >= 1
    rows = await reminders(rr, appointment_id=appt, status="pending")
    assert rows and all(r.key.endswith(":v2") for r in rows)
    sent_before = len(sent_texts(fake, anna.id))
    for _ in range(2 * 24 * 60):  # half-hour steps until the appointment's reminders are done
        if not await reminders(rr, appointment_id=appt, status="pending"):
            break
        clock.advance(minutes=30)
        await dispatch(rr, clock)
    assert len(sent_texts(fake, anna.id)) > sent_before
    assert (await dispatch(rr, clock)).replanned == 0  # once only


async def test_a_stopping_bot_starts_no_new_round(fake, rr, clock, staff):
    """Application.stop waits for a running dispatcher job: it ends after the round in hand
    instead of sending everything still due; the rest waits for the next start."""
    anna, appt = await _booked(rr, staff)
    disp = dispatcher(rr)
    saved = disp._running
    disp._running = lambda: False  # the application has begun to stop
    try:
        stats = await disp.run(clock.now())
    finally:
        disp._running = saved
    assert stats.claimed == 0
    confirmation = [r for r in await reminders(rr, appointment_id=appt) if r.kind == "confirmation"]
    assert confirmation[0].status == "pending"
    assert (await disp.run(clock.now())).sent == 1  # running again: sent


# ------------------------------------------------------------------------------ next session
async def _send_all_due(rr, clock, at: datetime) -> None:
    """From `at`, run until nothing due is pending (one message per chat per run)."""
    await step_to(rr, clock, at)
    for _ in range(20):
        if not [r for r in await reminders(rr, status="pending") if r.due_at <= clock.now()]:
            return
        await step_to(rr, clock, clock.now() + timedelta(seconds=2))
    raise AssertionError("due reminders left pending")


async def test_booking_the_next_session_cancels_the_earlier_sessions_next_session_reminder(
        fake, rr, clock, staff):
    anna = await new_patient(rr)
    first = await book(staff, f"{anna.id} 2026-03-05 12:00 60 face 1/4")
    second = await book(staff, f"{anna.id} 2026-03-30 12:00 60 face 2/4")
    [ask] = await reminders(rr, appointment_id=first, kind="next_session")
    assert (ask.status, ask.last_error) == ("cancelled", "next session booked")
    assert [r.status for r in await reminders(rr, appointment_id=second, kind="next_session")] \
        == ["pending"]
    await _send_all_due(rr, clock, ask.due_at)
    assert not any("session 1 of 4" in t for t in sent_texts(fake, anna.id))


async def test_a_next_session_reminder_is_not_sent_once_a_later_session_is_booked(
        fake, rr, clock, staff):
    anna = await new_patient(rr)
    first = await book(staff, f"{anna.id} 2026-03-05 12:00 60 face 1/4")
    await book(staff, f"{anna.id} 2026-03-30 12:00 60 face 2/4")
    # Moving session 1 plans its reminders anew, "book your next session" too.
    await staff.send(f"/reschedule {first} 2026-03-06 12:00")
    [ask] = await reminders(rr, appointment_id=first, kind="next_session", status="pending")
    await _send_all_due(rr, clock, ask.due_at)
    assert not any("session 1 of 4" in t for t in sent_texts(fake, anna.id))
    row = (await reminders(rr, id=ask.id))[0]
    assert (row.status, row.last_error) == ("cancelled", "next session booked")
