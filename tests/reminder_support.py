"""Helpers for the reminder tests: a bot runner on an injected clock, outbox queries."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from bot.clock import FixedClock
from bot.db.appointment_models import Appointment, Reminder
from bot.db.models import Patient
from bot.reminders.dispatcher import Dispatcher, DispatchStats
from tests.harness import BotRunner, TgUser

LONDON = ZoneInfo("Europe/London")


def at_local(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    from bot.reminders.planner import resolve_local

    return resolve_local(datetime(y, mo, d, h, mi), LONDON)


def wall(at: datetime) -> str:
    return at.astimezone(LONDON).strftime("%Y-%m-%d %H:%M %Z")


def dispatcher(runner: BotRunner) -> Dispatcher:
    assert runner.app is not None
    return runner.app.bot_data["reminder_dispatcher"]


async def dispatch(runner: BotRunner, clock: FixedClock) -> DispatchStats:
    return await dispatcher(runner).run(clock.now())


def db(runner: BotRunner):
    assert runner.app is not None
    return runner.app.bot_data["services"].db


async def reminders(runner: BotRunner, **where) -> list[Reminder]:
    async with db(runner).session() as session:
        query = select(Reminder).order_by(Reminder.due_at, Reminder.id)
        for name, value in where.items():
            query = query.where(getattr(Reminder, name) == value)
        return list((await session.execute(query)).scalars().all())


async def appointment(runner: BotRunner, appt_id: int) -> Appointment:
    async with db(runner).session() as session:
        appt = await session.get(Appointment, appt_id)
        assert appt is not None
        return appt


async def patient_row(runner: BotRunner, telegram_id: int) -> Patient:
    async with db(runner).session() as session:
        row = await session.scalar(select(Patient).where(Patient.telegram_user_id == telegram_id))
        assert row is not None
        return row


def sent_texts(fake, chat_id: int) -> list[str]:
    return [c.params["text"] for c in fake.calls_to("sendMessage", chat_id=chat_id)]


async def new_patient(rr: BotRunner, name: str = "Anna") -> TgUser:
    user = TgUser(rr, first_name=name)
    await user.send("/start")
    return user


async def cancel_appt(staff: TgUser, appt: int) -> list:
    """/cancel_appt, confirmed with its button; what the press showed."""
    shown = await staff.send(f"/cancel_appt {appt}")
    assert f"Cancel appointment #{appt}:" in shown[-1].text, shown[-1].text
    return await staff.press(f"🗑 Yes, cancel #{appt}", shown[-1])


async def noshow(staff: TgUser, appt: int) -> list:
    """/noshow, confirmed with its button; what the press showed."""
    shown = await staff.send(f"/noshow {appt}")
    assert f"Mark appointment #{appt} as a no-show:" in shown[-1].text, shown[-1].text
    return await staff.press(f"Yes, #{appt} was a no-show", shown[-1])


async def book(staff: TgUser, args: str) -> int:
    shown = await staff.send(f"/book {args}")
    match = re.search(r"Booked appointment #(\d+)", shown[-1].text)
    assert match, shown[-1].text
    return int(match.group(1))
