"""Which later session continues a course: "book your next session" is silenced by the same
course's next session, not by another course's, and pressing it after the next session was
booked says so instead of asking staff to call."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.clock import FixedClock
from tests.reminder_support import book, dispatch, new_patient, reminders


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 1, 10, 0, tzinfo=UTC))


async def _next_session_row(rr, appt: int):
    [row] = await reminders(rr, appointment_id=appt, kind="next_session")
    return row


async def test_another_courses_second_session_does_not_silence_this_course(fake, rr, clock, staff):
    anna = await new_patient(rr)
    face = await book(staff, f"{anna.id} 2026-03-05 12:00 60 face 1/4")
    scalp = await book(staff, f"{anna.id} 2026-03-06 12:00 60 scalp 1/4")
    await book(staff, f"{anna.id} 2026-03-27 12:00 60 scalp 2/4")  # the scalp course goes on
    assert (await _next_session_row(rr, face)).status == "pending"  # nothing continues the face
    assert (await _next_session_row(rr, scalp)).status == "cancelled"
    await book(staff, f"{anna.id} 2026-03-26 12:00 60 Full face 2/4")  # spelt another way
    assert (await _next_session_row(rr, face)).status == "cancelled"


async def test_book_next_pressed_after_the_next_session_was_booked(fake, rr, clock, staff):
    anna = await new_patient(rr)
    first = await book(staff, f"{anna.id} 2026-03-05 12:00 60 face 1/4")
    clock.set((await _next_session_row(rr, first)).due_at)
    await dispatch(rr, clock)
    ask = anna.last_keyboard_message()
    assert "Time for your next session" in ask.text
    await book(staff, f"{anna.id} 2026-04-02 12:00 60 face 2/4")  # staff booked it meanwhile
    staff_before = len(fake.calls_to("sendMessage", chat_id=42))
    shown = await anna.press("📆 Book my next session", ask)
    assert shown[-1].text == ("Your next session is booked already: on Thu 2 Apr at 12:00. "
                              "You can see it under 📅 My appointments.")
    assert len(fake.calls_to("sendMessage", chat_id=42)) == staff_before  # nobody to call
