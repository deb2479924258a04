"""A broadcast reaches the patients its preview counted: "tomorrow" is the day after staff
began it (also when Send is pressed after midnight), and a preview's Send lasts as long as its
draft (an hour), not until someone presses it the next morning."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from bot.db.appointment_models import Reminder
from bot.db.models import Patient
from tests.reminder_support import book, db, new_patient


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 5, 4, 10, 0, tzinfo=UTC))  # Monday, BST


async def _broadcast_to(rr) -> list[str]:
    async with db(rr).session() as session:
        return list((await session.scalars(select(Patient.first_name).join(
            Reminder, Reminder.patient_id == Patient.id).where(Reminder.kind == "broadcast")
            .order_by(Patient.first_name))).all())


async def _tuesday_and_wednesday(rr, staff):
    anna, ben = await new_patient(rr, "Anna"), await new_patient(rr, "Ben")
    await book(staff, f"{anna.id} 2026-05-05 10:00 60 face")  # Tuesday
    await book(staff, f"{ben.id} 2026-05-06 10:00 60 face")  # Wednesday


async def _preview(staff, audience: str, text: str):
    await staff.send("/broadcast")
    await staff.press(audience)
    return (await staff.send(text))[-1]


async def test_tomorrow_is_the_day_after_the_broadcast_was_begun(fake, rr, clock, staff):
    await _tuesday_and_wednesday(rr, staff)
    clock.set(datetime(2026, 5, 4, 22, 40, tzinfo=UTC))  # Monday 23:40 in London
    preview = await _preview(staff, "Everyone with an appointment tomorrow",
                             "Tomorrow the car park is closed, please use the side gate.")
    assert "📣 Send to 1" in staff.labels(preview)
    clock.advance(minutes=30)  # Tuesday 00:10: Send pressed after midnight
    await staff.press("📣 Send to 1", preview)
    assert await _broadcast_to(rr) == ["Anna"]  # Tuesday's patient, as the preview counted


async def test_a_preview_send_pressed_the_next_morning_sends_nothing(fake, rr, clock, staff):
    await _tuesday_and_wednesday(rr, staff)
    clock.set(datetime(2026, 5, 4, 17, 0, tzinfo=UTC))  # Monday 18:00
    preview = await _preview(staff, "Everyone with an appointment tomorrow",
                             "Tomorrow the car park is closed, please use the side gate.")
    clock.advance(hours=15)  # Tuesday 09:00: the button still on screen
    shown = await staff.press("📣 Send to 1", preview)
    assert shown[-1].text == "This broadcast is no longer open."
    assert await _broadcast_to(rr) == []
