"""Two dispatchers (two instances) on one PostgreSQL database: FOR UPDATE SKIP LOCKED shares the
due reminders between them, and each reminder is sent exactly once."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from telegram import Bot

from bot.db.appointment_models import Appointment, Reminder
from bot.db.engine import Database
from bot.db.migrate import upgrade
from bot.db.models import Patient
from bot.reminders.dispatcher import Dispatcher
from bot.reminders.plans import load_reminder_content
from tests.conftest import make_settings
from tests.fake_bot_api import TOKEN

pytestmark = pytest.mark.postgres
N = 120


async def test_two_dispatchers_send_each_reminder_once(fake, pg_url):
    settings = make_settings(fake, pg_url)
    content = load_reminder_content(settings.content_dir)
    # Small claims, so the two dispatchers interleave and both do part of the work (with one
    # claim of 100 the first could take every row; that is correct, but proves less).
    content = dataclasses.replace(content, engine=dataclasses.replace(content.engine, batch_size=10))
    now = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    first, second = Database(pg_url), Database(pg_url)
    bots = [Bot(TOKEN, base_url=fake.base_url), Bot(TOKEN, base_url=fake.base_url)]
    try:
        await upgrade(first)
        async with first.session() as session:
            session.add_all(Patient(id=i + 1, telegram_user_id=70_000 + i, chat_id=70_000 + i,
                                    created_at=now, last_seen_at=now) for i in range(N))
            await session.flush()
            session.add_all(Appointment(id=i + 1, patient_id=i + 1, starts_at=now + timedelta(hours=3),
                                        duration_min=30, area="face", created_at=now, updated_at=now)
                            for i in range(N))
            await session.flush()
            session.add_all(Reminder(key=f"appt:{i + 1}:same_day", appointment_id=i + 1,
                                     patient_id=i + 1, kind="same_day", due_at=now,
                                     expires_at=now + timedelta(hours=3), quiet_ok=True,
                                     created_at=now) for i in range(N))
        for bot in bots:
            await bot.initialize()
        a = Dispatcher(first, bots[0], content, settings, rate_limit=False)
        b = Dispatcher(second, bots[1], content, settings, rate_limit=False)
        stats = await asyncio.gather(a.run(now), b.run(now), a.run(now), b.run(now))
        per_chat = Counter(int(c.params["chat_id"]) for c in fake.calls_to("sendMessage"))
        assert len(per_chat) == N and set(per_chat.values()) == {1}
        assert sum(s.sent for s in stats) == N
        assert stats[0].sent and stats[1].sent  # both instances did part of the work
    finally:
        for bot in bots:
            await bot.shutdown()
        await first.dispose()
        await second.dispose()
