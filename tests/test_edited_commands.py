"""An edited command message is not a new command: Telegram sends an `edited_message` update when
someone corrects a message, and PTB's CommandHandler answers those by default."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from telegram import Update
from telegram.ext import CommandHandler

from bot.clock import FixedClock
from bot.db.appointment_models import Appointment
from tests.harness import TgUser
from tests.reminder_support import db, new_patient


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 24, 12, 0, tzinfo=UTC))


async def _appointments(rr) -> int:
    async with db(rr).session() as session:
        return await session.scalar(select(func.count()).select_from(Appointment))


async def test_correcting_a_booking_command_does_not_book_again(fake, rr, staff: TgUser):
    anna = await new_patient(rr)
    command = {"type": "bot_command", "offset": 0, "length": 5}
    sent = staff._message(text=f"/book {anna.id} 2026-12-03 12:00 60 face", entities=[command])
    shown = await staff.send_raw(sent)
    assert "Booked appointment #" in shown[-1].text
    calls = len(fake.calls)

    # Staff correct the time in the message they sent: Telegram sends the same message again.
    corrected = dict(sent, text=f"/book {anna.id} 2026-12-03 13:00 60 face", edit_date=int(time.time()))
    await staff.send_raw(corrected, kind="edited_message")

    assert await _appointments(rr) == 1
    # Nothing sent to anyone: no second patient notice, no staff reply.
    assert [c.method for c in fake.calls[calls:] if c.method != "getUpdates"] == []


async def test_no_command_handler_answers_an_edited_message(rr):
    """Every command the bot registers, patient or staff, in every handler group."""
    app = rr.app
    commands = [h for group in app.handlers.values() for h in group if isinstance(h, CommandHandler)]
    assert len(commands) >= 15  # all of them, not a subset that happens to be registered first
    for handler in commands:
        for name in handler.commands:
            for chat in ({"id": 42, "type": "private", "first_name": "Staff"},
                         {"id": -100123, "type": "supergroup", "title": "Staff"}):
                data = {"update_id": 1, "edited_message": {
                    "message_id": 7, "date": 0, "edit_date": 1, "chat": chat,
                    "from": {"id": 42, "is_bot": False, "first_name": "Staff"},
                    "text": f"/{name} 1", "entities": [
                        {"type": "bot_command", "offset": 0, "length": len(name) + 1}]}}
                edited = Update.de_json(data, app.bot)
                assert not handler.check_update(edited), f"/{name} answers an edited message"
                new = Update.de_json({**data, "message": data["edited_message"]} | {
                    "edited_message": None}, app.bot)
                if chat["type"] == "private" and name not in ("start",):
                    assert handler.check_update(new), f"/{name} no longer answers a new message"
