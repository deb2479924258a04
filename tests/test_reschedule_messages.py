"""What a patient is told and can press when staff change an appointment: a Confirm under a
message about the earlier time does not confirm the new one; a change of the duration alone is
"changed", not a second "booked"; a move after a replan (the patient unblocked the bot) is
"moved", since they were told the time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from bot.clock import FixedClock
from bot.db.appointment_models import Reminder
from tests.reminder_support import (
    appointment,
    at_local,
    book,
    db,
    dispatch,
    new_patient,
    sent_texts,
)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 1, 10, 0, tzinfo=UTC))


async def booked_and_told(rr, staff, clock):
    """Anna, booked for Fri 20 Mar 15:00 (45 min), her confirmation sent; the clock moved on."""
    anna = await new_patient(rr)
    appt = await book(staff, f"{anna.id} 2026-03-20 15:00 45 face")
    await dispatch(rr, clock)
    clock.advance(seconds=5)
    return anna, appt


def staff_texts(fake) -> list[str]:
    return sent_texts(fake, 42)


async def test_confirm_under_the_earlier_times_message_asks_about_the_new_time(
        fake, rr, clock, staff):
    anna = await new_patient(rr)
    appt = await book(staff, f"{anna.id} 2026-03-20 15:00 45 face")
    await dispatch(rr, clock)
    old = anna.last_keyboard_message()
    assert "Fri 20 Mar at 15:00" in old.text
    clock.advance(seconds=5)
    await staff.send(f"/reschedule {appt} 2026-03-27 09:00")  # the patient is not told yet
    told_staff = len(staff_texts(fake))
    shown = await anna.press("✅ Confirm", old)
    assert shown[-1].text == ("That message was about an earlier time: your appointment is now "
                              "on Fri 27 Mar at 09:00. If this time suits you, please confirm "
                              "it below.")
    assert (await appointment(rr, appt)).status == "booked"
    assert len(staff_texts(fake)) == told_staff  # nothing confirmed: nothing to tell staff
    shown = await anna.press("✅ Confirm", shown[-1])  # this time, the new one
    assert "on Fri 27 Mar at 09:00 is confirmed" in shown[-1].text
    assert (await appointment(rr, appt)).status == "confirmed"
    assert f"confirmed appointment #{appt}" in staff_texts(fake)[-1]


async def test_confirm_under_a_message_about_the_same_time_confirms(fake, rr, clock, staff):
    """A button sent before Confirm carried the time (no stamp) still confirms."""
    anna = await new_patient(rr)
    appt = await book(staff, f"{anna.id} 2026-03-20 15:00 45 face")
    await dispatch(rr, clock)
    message = anna.last_keyboard_message()
    await anna.press_data(f"ap:c:{appt}", message)
    assert (await appointment(rr, appt)).status == "confirmed"


async def test_a_change_of_duration_alone_is_changed_not_booked_again(fake, rr, clock, staff):
    anna, appt = await booked_and_told(rr, staff, clock)
    await staff.send(f"/reschedule {appt} 2026-03-20 15:00 90")
    clock.advance(seconds=5)
    await dispatch(rr, clock)
    texts = sent_texts(fake, anna.id)
    assert sum("Appointment booked" in t for t in texts) == 1
    assert texts[-1].startswith("<b>Appointment changed</b>\nYour appointment is still on Fri 20 "
                                "Mar at 15:00, and now takes 90 minutes.")


async def test_a_change_of_duration_after_a_move_does_not_repeat_the_move(fake, rr, clock, staff):
    anna, appt = await booked_and_told(rr, staff, clock)
    await staff.send(f"/reschedule {appt} 2026-03-22 11:30")
    clock.advance(seconds=5)
    await dispatch(rr, clock)
    assert "has moved. It is now on Sun 22 Mar at 11:30" in sent_texts(fake, anna.id)[-1]
    clock.advance(seconds=5)
    await staff.send(f"/reschedule {appt} 2026-03-22 11:30 90")
    clock.advance(seconds=5)
    await dispatch(rr, clock)
    last = sent_texts(fake, anna.id)[-1]
    assert "20 Mar" not in last and "Appointment changed" in last


async def test_a_duration_change_before_the_patient_heard_of_the_move_still_says_moved(
        fake, rr, clock, staff):
    anna, appt = await booked_and_told(rr, staff, clock)
    await staff.send(f"/reschedule {appt} 2026-03-22 11:30")
    await staff.send(f"/reschedule {appt} 2026-03-22 11:30 90")  # before anything was sent
    clock.advance(seconds=5)
    await dispatch(rr, clock)
    last = sent_texts(fake, anna.id)[-1]
    assert "on Fri 20 Mar at 15:00 has moved. It is now on Sun 22 Mar at 11:30 (90 minutes)" \
        in last


async def test_a_move_after_a_replan_for_an_unblocked_patient_says_moved(fake, rr, clock, staff):
    anna = await new_patient(rr)
    appt = await book(staff, f"{anna.id} 2026-03-20 12:00 60 face")
    await dispatch(rr, clock)  # "Appointment booked": the patient knows 20 Mar
    fake.block(anna.id)
    clock.set(at_local(2026, 3, 19, 12, 0))
    assert (await dispatch(rr, clock)).unreachable == 1  # the preparation, refused
    fake.blocked.discard(anna.id)
    clock.advance(minutes=10)
    await anna.send("/start")
    await dispatch(rr, clock)
    assert (await appointment(rr, appt)).plan_version == 2  # replanned, the same time
    clock.advance(minutes=10)
    await staff.send(f"/reschedule {appt} 2026-03-21 12:00")
    clock.advance(seconds=5)
    await dispatch(rr, clock)
    assert "<b>Appointment moved</b>\nYour appointment tomorrow, Fri 20 Mar, at 12:00 has moved" \
        in sent_texts(fake, anna.id)[-1]


async def test_a_time_the_patient_heard_only_from_a_push_counts_as_told(fake, rr, clock, staff):
    anna = await new_patient(rr)
    appt = await book(staff, f"{anna.id} 2026-03-20 15:00 45 face")
    async with db(rr).session() as session:  # its confirmation never went (expired at night)
        await session.execute(update(Reminder).where(Reminder.kind == "confirmation")
                              .values(status="expired"))
    await staff.send(f"/push {appt}")  # staff remind her now: the push names the time
    await fake.wait_for(lambda c: c.method == "sendMessage" and c.status == 200
                        and str(c.params["chat_id"]) == str(anna.id))
    await dispatch(rr, clock)  # waits for the push's run to finish recording
    clock.advance(minutes=5)
    await staff.send(f"/reschedule {appt} 2026-03-21 15:00")
    clock.advance(seconds=5)
    await dispatch(rr, clock)
    assert "<b>Appointment moved</b>\nYour appointment on Fri 20 Mar at 15:00 has moved" \
        in sent_texts(fake, anna.id)[-1]
