"""What a patient is told and can press when staff change an appointment: a Confirm under a
message about the earlier time does not confirm the new one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.clock import FixedClock
from tests.reminder_support import appointment, book, dispatch, new_patient, sent_texts


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 1, 10, 0, tzinfo=UTC))


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
