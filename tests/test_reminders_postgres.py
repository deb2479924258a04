"""Two dispatchers (two instances) on one PostgreSQL database: one runs at a time (Telegram's
limits are the bot's), and FOR UPDATE SKIP LOCKED keeps overlapping runs apart, so each
reminder is sent exactly once."""

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
        # Without the run lock, so two runs overlap and the claim alone keeps them apart (as
        # when an instance lost the lock's connection mid-run).
        a = Dispatcher(first, bots[0], content, settings, rate_limit=False, exclusive=False)
        b = Dispatcher(second, bots[1], content, settings, rate_limit=False, exclusive=False)
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


async def _seed_due(db: Database, n: int, now: datetime, *, per_chat: int = 1) -> None:
    """n reminders due at `now`, `per_chat` of them for each patient."""
    patients = n // per_chat
    async with db.session() as session:
        session.add_all(Patient(id=i + 1, telegram_user_id=70_000 + i, chat_id=70_000 + i,
                                created_at=now, last_seen_at=now) for i in range(patients))
        await session.flush()
        session.add_all(Appointment(id=i + 1, patient_id=i % patients + 1,
                                    starts_at=now + timedelta(hours=3), duration_min=30,
                                    area="face", created_at=now, updated_at=now)
                        for i in range(n))
        await session.flush()
        session.add_all(Reminder(key=f"appt:{i + 1}:same_day", appointment_id=i + 1,
                                 patient_id=i % patients + 1, kind="same_day", due_at=now,
                                 expires_at=now + timedelta(hours=3), quiet_ok=True,
                                 created_at=now) for i in range(n))


async def test_two_paced_dispatchers_together_stay_under_telegrams_limit(pg_url):
    """The limit is the bot's, not the instance's: two instances each pacing at 28/s would send
    56/s. Only one instance dispatches at a time, so the pair stays under 30/s, and a patient
    with two reminders due at once still gets them a second apart."""
    from tests.fake_bot_api import FakeBotAPI

    fake = FakeBotAPI(rate_limit_per_second=30)
    await fake.start()
    settings = make_settings(fake, pg_url)
    content = load_reminder_content(settings.content_dir)
    content = dataclasses.replace(content, engine=dataclasses.replace(content.engine, batch_size=10))
    now = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    first, second = Database(pg_url), Database(pg_url)
    bots = [Bot(TOKEN, base_url=fake.base_url), Bot(TOKEN, base_url=fake.base_url)]
    n = 120
    try:
        await upgrade(first)
        await _seed_due(first, n, now, per_chat=2)
        for bot in bots:
            await bot.initialize()
        a = Dispatcher(first, bots[0], content, settings)
        b = Dispatcher(second, bots[1], content, settings)
        clock = [now]

        async def keep_running(disp: Dispatcher) -> int:
            sent = 0
            while len(fake.calls_to("sendMessage")) < n:
                sent += (await disp.run(clock[0])).sent
                clock[0] += timedelta(seconds=1)  # per-chat pacing is in the injected time
                await asyncio.sleep(0.05)
            return sent

        done = await asyncio.wait_for(asyncio.gather(keep_running(a), keep_running(b)), 60)
        assert sum(done) == n
        assert fake.too_many_requests == 0
        sends = sorted(c.at for c in fake.calls_to("sendMessage"))
        assert all(sends[i + 30] - sends[i] >= 1.0 for i in range(len(sends) - 30))
        per_chat: dict[int, list[float]] = {}
        for call in fake.calls_to("sendMessage"):
            per_chat.setdefault(int(call.params["chat_id"]), []).append(call.at)
        assert len(per_chat) == n // 2 and all(len(at) == 2 for at in per_chat.values())
        assert min(abs(x - y) for x, y in per_chat.values()) >= 1.0  # Telegram's ~1/s per chat
        assert fake.violations == []
    finally:
        for bot in bots:
            await bot.shutdown()
        await first.dispose()
        await second.dispose()
        await fake.stop()
