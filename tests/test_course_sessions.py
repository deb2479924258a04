"""A course's "book your next session": only a later session of that course makes it moot, a
cancelled or missed later session brings it back, and a booking is never made twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.clock import FixedClock
from tests.reminder_support import (
    book,
    cancel_appt,
    dispatch,
    new_patient,
    noshow,
    reminders,
    sent_texts,
)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 1, 10, 0, tzinfo=UTC))


async def _ask(rr, appt: int):
    [row] = await reminders(rr, appointment_id=appt, kind="next_session")
    return row


async def _send_due(rr, clock, at: datetime) -> None:
    clock.set(at)
    for _ in range(20):  # one message per chat per run
        await dispatch(rr, clock)
        clock.advance(seconds=2)
        if not [r for r in await reminders(rr, status="pending") if r.due_at <= clock.now()]:
            return
    raise AssertionError("due reminders left pending")


async def test_a_one_off_visit_for_something_else_does_not_silence_the_course(
        fake, rr, clock, staff):
    anna = await new_patient(rr)
    first = await book(staff, f"{anna.id} 2026-03-05 12:00 60 face 1/4")
    await book(staff, f"{anna.id} 2026-03-16 12:00 30 scalp consultation")
    ask = await _ask(rr, first)
    assert ask.status == "pending"
    await _send_due(rr, clock, ask.due_at)
    assert (await _ask(rr, first)).status == "sent"
    assert any("session 1 of 4" in t for t in sent_texts(fake, anna.id))


async def test_a_next_session_booked_without_n_of_m_still_counts_by_its_area(fake, rr, clock, staff):
    anna = await new_patient(rr)
    first = await book(staff, f"{anna.id} 2026-03-05 12:00 60 face 1/4")
    await book(staff, f"{anna.id} 2026-03-26 12:00 60 Face")
    assert ((await _ask(rr, first)).status, (await _ask(rr, first)).last_error) == (
        "cancelled", "next session booked")


@pytest.mark.parametrize("how", ["cancel", "noshow"])
async def test_a_cancelled_or_missed_next_session_brings_the_reminder_back(
        fake, rr, clock, staff, how):
    anna = await new_patient(rr)
    first = await book(staff, f"{anna.id} 2026-03-05 12:00 60 face 1/4")
    second = await book(staff, f"{anna.id} 2026-03-26 12:00 60 face 2/4")
    planned = await _ask(rr, first)
    assert planned.status == "cancelled"
    if how == "cancel":
        await cancel_appt(staff, second)
    else:
        clock.set(datetime(2026, 3, 26, 13, 30, tzinfo=UTC))  # the day it was missed
        shown = await noshow(staff, second)
        assert "marked as a no-show" in shown[-1].text
    ask = await _ask(rr, first)
    assert (ask.status, ask.last_error) == ("pending", None)
    assert ask.due_at == max(planned.due_at, clock.now())  # never before it was meant to be
    await _send_due(rr, clock, max(ask.due_at, clock.now()))
    assert any("session 1 of 4" in t for t in sent_texts(fake, anna.id))


async def test_a_later_session_still_booked_keeps_it_moot(fake, rr, clock, staff):
    anna = await new_patient(rr)
    first = await book(staff, f"{anna.id} 2026-03-05 12:00 60 face 1/4")
    second = await book(staff, f"{anna.id} 2026-03-26 12:00 60 face 2/4")
    await book(staff, f"{anna.id} 2026-04-16 12:00 60 face 3/4")
    await cancel_appt(staff, second)
    assert (await _ask(rr, first)).status == "cancelled"


async def test_booking_the_same_patient_at_the_same_time_twice_is_refused(fake, rr, clock, staff):
    anna = await new_patient(rr)
    first = await book(staff, f"{anna.id} 2026-03-05 12:00 60 face 1/4")
    shown = await staff.send(f"/book {anna.id} 2026-03-05 12:00 60 face 1/4")
    assert f"already has appointment #{first} at that time" in shown[-1].text
    assert {r.appointment_id for r in await reminders(rr)} == {first}
    await cancel_appt(staff, first)
    again = await book(staff, f"{anna.id} 2026-03-05 12:00 60 face 1/4")  # free again
    assert again != first
    assert timedelta(0) < (await _ask(rr, again)).due_at - datetime(2026, 3, 5, tzinfo=UTC)


async def test_a_rescheduled_sessions_old_reminder_is_not_brought_back(fake, rr, clock, staff):
    """Session 1 moved: its "book your next session" was planned anew. Cancelling session 2
    brings back the current one only, not the old plan's as well."""
    anna = await new_patient(rr)
    first = await book(staff, f"{anna.id} 2026-03-05 12:00 60 face 1/4")
    second = await book(staff, f"{anna.id} 2026-03-26 12:00 60 face 2/4")
    await staff.send(f"/reschedule {first} 2026-03-07 12:00")
    await cancel_appt(staff, second)
    pending = [r for r in await reminders(rr, appointment_id=first, kind="next_session")
               if r.status == "pending"]
    assert len(pending) == 1 and pending[0].key.endswith(":v2")
    await _send_due(rr, clock, datetime(2026, 3, 28, 13, 1, tzinfo=UTC))
    assert sum("session 1 of 4" in t for t in sent_texts(fake, anna.id)) == 1


@pytest.mark.parametrize(("first", "then"), [("Лицо", "лицо"), ("Décolleté", "DÉCOLLETÉ")])
async def test_the_same_area_in_another_case_is_the_same_course(fake, rr, clock, staff, first, then):
    anna = await new_patient(rr)
    appt = await book(staff, f"{anna.id} 2026-03-05 12:00 60 {first} 1/4")
    await book(staff, f"{anna.id} 2026-03-26 12:00 60 {then}")
    assert (await _ask(rr, appt)).status == "cancelled"


async def test_moving_an_appointment_onto_another_of_the_patients_is_refused(fake, rr, clock, staff):
    anna = await new_patient(rr)
    first = await book(staff, f"{anna.id} 2026-03-05 12:00 60 face 1/4")
    second = await book(staff, f"{anna.id} 2026-03-26 12:00 60 face 2/4")
    shown = await staff.send(f"/reschedule {second} 2026-03-05 12:00")
    assert f"already has appointment #{first} at that time" in shown[-1].text
    assert (await reminders(rr, appointment_id=second, kind="same_day"))[0].due_at.day == 26


@pytest.mark.parametrize("area", ["consultation", "Scalp consultation", "first consult"])
async def test_a_consultation_gets_no_procedure_reminders(fake, rr, clock, staff, area):
    """No procedure: no preparation for one, no aftercare about injection sites, no check-in,
    no "book your next session". The booking and the day's reminders still go."""
    anna = await new_patient(rr)
    appt = await book(staff, f'{anna.id} 2026-03-05 12:00 30 "{area}"')
    assert {r.kind for r in await reminders(rr, appointment_id=appt)} == {"confirmation", "same_day"}
    clock.set(datetime(2026, 3, 5, 12, 10, tzinfo=UTC))  # running late: the reminder
    assert "queued" in (await staff.send(f"/push {appt}"))[-1].text
    clock.set(datetime(2026, 3, 5, 12, 45, tzinfo=UTC))  # over: no aftercare, nothing stale
    assert "consultation #" in (await staff.send(f"/push {appt}"))[-1].text
    assert [r.kind for r in await reminders(rr, appointment_id=appt) if ":push:" in r.key] == [
        "push_before"]


async def test_a_treatment_still_gets_every_reminder(fake, rr, clock, staff):
    anna = await new_patient(rr)
    appt = await book(staff, f"{anna.id} 2026-03-05 12:00 60 face 1/4")
    assert {r.kind for r in await reminders(rr, appointment_id=appt)} == {
        "confirmation", "preparation", "same_day", "aftercare", "checkin", "next_session"}
