"""Reminders given back to a patient who unblocked the bot: each once, never for an appointment
cancelled meanwhile, and the blocked send's failed row leaves the staff's retry list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from tests.reminder_support import (
    appointment,
    book,
    cancel_appt,
    dispatch,
    new_patient,
    reminders,
    sent_texts,
)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 1, 10, 0, tzinfo=UTC))


async def drain(rr, clock, until: datetime) -> None:
    """Run the dispatcher at each pending row's due time up to `until`."""
    for _ in range(200):
        due = [r.due_at for r in await reminders(rr, status="pending") if r.due_at <= until]
        if not due:
            return
        clock.set(max(clock.now() + timedelta(seconds=1), min(due)))
        await dispatch(rr, clock)
    raise AssertionError("reminders still pending after 200 runs")


async def test_a_reschedule_while_blocked_is_not_planned_again_on_unblocking(fake, rr, clock, staff):
    anna = await new_patient(rr)
    moved = await book(staff, f"{anna.id} 2026-03-20 12:00 60 face")
    dropped = await book(staff, f"{anna.id} 2026-03-10 12:00 60 neck")
    fake.block(anna.id)
    assert (await dispatch(rr, clock)).unreachable == 1  # the rest cancelled as unreachable
    # While blocked, staff move one appointment (a new plan, pending) and cancel the other.
    await staff.send(f"/reschedule {moved} 2026-03-22 11:30")
    await cancel_appt(staff, dropped)
    fake.blocked.discard(anna.id)
    await anna.send("/start")  # writing again means the bot is unblocked
    assert (await dispatch(rr, clock)).replanned == 0  # the new plan is whole already
    assert (await appointment(rr, moved)).plan_version == 2
    await drain(rr, clock, datetime(2026, 3, 26, tzinfo=UTC))
    texts = sent_texts(fake, anna.id)
    for marker in ("Appointment booked", "Appointment cancelled", "topical anesthetic",
                   "See you", "sun exposure", "How do you feel"):
        assert sum(marker in t for t in texts) == 1, (marker, texts)
    sent = {r.kind for r in await reminders(rr, appointment_id=dropped, status="sent")}
    assert sent == {"cancelled"}


async def test_the_blocked_send_leaves_the_retry_list_once_replanned(fake, rr, clock, staff):
    anna = await new_patient(rr)
    appt = await book(staff, f"{anna.id} 2026-03-20 12:00 60 face")
    fake.block(anna.id)
    await dispatch(rr, clock)  # the confirmation: 403, failed
    [failed] = await reminders(rr, appointment_id=appt, status="failed")
    fake.blocked.discard(anna.id)
    await anna.send("/start")
    clock.advance(seconds=2)  # past the per-chat gap of the blocked send
    assert (await dispatch(rr, clock)).replanned >= 1  # the v2 confirmation goes out
    assert sum("Appointment booked" in t for t in sent_texts(fake, anna.id)) == 1
    assert (await reminders(rr, id=failed.id))[0].status == "cancelled"
    await staff.send("/staff")
    shown = await staff.press("❗ Reminders needing attention")
    assert "No failed or dead-lettered reminders" in shown[-1].text
    shown = await staff.press_data(f"rt:{failed.id}")  # a button shown before the replan
    assert "cannot be retried" in shown[-1].text
    await dispatch(rr, clock)
    assert sum("Appointment booked" in t for t in sent_texts(fake, anna.id)) == 1


async def test_a_dead_letter_no_replan_replaced_can_still_be_retried(fake, rr, clock, staff):
    """A replan raises the plan version for all kinds but plans only some again: a dead row of
    a kind it left alone is not superseded, and staff can retry it."""
    from bot.db.appointment_models import Appointment, Reminder
    from tests.reminder_support import db

    anna = await new_patient(rr)
    appt = await book(staff, f"{anna.id} 2026-03-20 12:00 60 face")
    async with db(rr).session() as session:
        row = (await session.scalars(select(Reminder).where(
            Reminder.appointment_id == appt, Reminder.kind == "preparation"))).one()
        row.status, row.last_error = "dead", "BadRequest: test"
        (await session.get(Appointment, appt)).plan_version += 1  # a replan of other kinds
    shown = await staff.send(f"/retry_dead {appt}")
    assert "1 dead-lettered reminder(s)" in shown[-1].text
