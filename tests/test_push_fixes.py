"""Patients the bot cannot reach: /push says so, and a cancellation a blocked bot could not tell
is told once they unblock it. /push sends aftercare only once the appointment is over."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.clock import FixedClock
from tests.reminder_support import (
    book,
    cancel_appt,
    dispatch,
    new_patient,
    patient_row,
    reminders,
    sent_texts,
)

PHONE = "+447700900123"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))  # a Monday, GMT


async def _pushes(rr) -> list[str]:
    return [r.kind for r in await reminders(rr) if ":push:" in r.key]


async def test_push_to_a_patient_who_never_opened_the_bot_is_refused(fake, rr, clock, staff):
    appt = await book(staff, f"{PHONE} 2026-03-05 10:00 30 face")
    shown = await staff.send(f"/push {appt}")
    assert "has not opened the bot yet" in shown[-1].text and "queued" not in shown[-1].text
    assert await _pushes(rr) == []
    clock.set(datetime(2026, 3, 2, 22, 30, tzinfo=UTC))  # quiet hours: no "send anyway" either
    shown = await staff.send(f"/push {appt}")
    assert "has not opened the bot yet" in shown[-1].text and staff.labels(shown[-1]) == []
    assert await _pushes(rr) == []


async def test_push_to_a_patient_who_blocked_the_bot_is_refused(fake, rr, clock, staff):
    anna = await new_patient(rr, "Anna")
    appt = await book(staff, f"{anna.id} 2026-03-05 10:00 30 face")
    fake.block(anna.id)
    await dispatch(rr, clock)  # the confirmation meets the block
    assert (await patient_row(rr, anna.id)).unreachable
    shown = await staff.send(f"/push {appt}")
    assert "has blocked the bot" in shown[-1].text and "queued" not in shown[-1].text
    assert await _pushes(rr) == []


async def test_push_during_the_appointment_is_not_aftercare(fake, rr, clock, staff):
    anna = await new_patient(rr, "Anna")
    appt = await book(staff, f"{anna.id} 2026-03-02 15:00 60 face")
    clock.set(datetime(2026, 3, 2, 15, 10, tzinfo=UTC))  # late, or in the chair
    assert "queued" in (await staff.send(f"/push {appt}"))[-1].text
    clock.set(datetime(2026, 3, 2, 16, 5, tzinfo=UTC))  # over
    assert "queued" in (await staff.send(f"/push {appt}"))[-1].text
    assert await _pushes(rr) == ["push_before", "push_after"]


async def test_a_cancellation_the_block_refused_is_told_once_the_patient_is_back(
        fake, rr, clock, staff):
    anna = await new_patient(rr, "Anna")
    appt = await book(staff, f"{anna.id} 2026-03-12 10:00 30 face")
    await dispatch(rr, clock)  # the confirmation
    fake.block(anna.id)
    await cancel_appt(staff, appt)
    clock.advance(seconds=5)
    await dispatch(rr, clock)  # the notice meets the block
    [notice] = await reminders(rr, appointment_id=appt, kind="cancelled")
    assert notice.status == "failed"
    fake.blocked.discard(anna.id)
    clock.set(datetime(2026, 3, 5, 9, 0, tzinfo=UTC))
    await anna.send("/start")  # she writes again: reachable
    await dispatch(rr, clock)  # replanned
    clock.advance(seconds=2)
    await dispatch(rr, clock)
    assert [n.status for n in await reminders(rr, appointment_id=appt, kind="cancelled")] == ["sent"]
    assert sum("has been cancelled" in t for t in sent_texts(fake, anna.id)) == 1
    for _ in range(2):  # told once
        clock.advance(minutes=1)
        await dispatch(rr, clock)
    assert sum("has been cancelled" in t for t in sent_texts(fake, anna.id)) == 1
