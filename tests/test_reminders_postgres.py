"""Two dispatchers (two instances) on one PostgreSQL database: one runs at a time (Telegram's
limits are the bot's), and FOR UPDATE SKIP LOCKED keeps overlapping runs apart, so each
reminder is sent exactly once."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from telegram import Bot

from bot.clock import SystemClock
from bot.db.appointment_models import Appointment, Reminder
from bot.db.engine import Database
from bot.db.migrate import upgrade
from bot.db.models import Patient
from bot.reminders.dispatcher import Dispatcher, DispatchStats
from bot.reminders.plans import load_reminder_content
from tests.conftest import make_settings
from tests.fake_bot_api import TOKEN, FakeBotAPI

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
        async with second.engine.connect() as conn:  # b opens its connection before a is done
            await conn.execute(text("SELECT 1"))
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
    """n reminders due at `now`, `per_chat` of them for each patient, a patient's side by side."""
    async with db.session() as session:
        session.add_all(Patient(id=i + 1, telegram_user_id=70_000 + i, chat_id=70_000 + i,
                                created_at=now, last_seen_at=now) for i in range(n // per_chat))
        await session.flush()
        session.add_all(Appointment(id=i + 1, patient_id=i // per_chat + 1,
                                    starts_at=now + timedelta(hours=3), duration_min=30,
                                    area="face", created_at=now, updated_at=now)
                        for i in range(n))
        await session.flush()
        session.add_all(Reminder(key=f"appt:{i + 1}:same_day", appointment_id=i + 1,
                                 patient_id=i // per_chat + 1, kind="same_day", due_at=now,
                                 expires_at=now + timedelta(hours=3), quiet_ok=True,
                                 created_at=now) for i in range(n))


@asynccontextmanager
async def _two_instances(fake, pg_url: str, n: int, per_chat: int, batch_size: int):
    """Two paced dispatchers (two instances: own engine, own bot) on one database, with `n`
    reminders due now by the wall clock (pacing and per-chat gaps are real time here)."""
    settings = make_settings(fake, pg_url)
    content = load_reminder_content(settings.content_dir)
    content = dataclasses.replace(content, engine=dataclasses.replace(content.engine,
                                                                     batch_size=batch_size))
    first, second = Database(pg_url), Database(pg_url)
    bots = [Bot(TOKEN, base_url=fake.base_url), Bot(TOKEN, base_url=fake.base_url)]
    try:
        await upgrade(first)
        await _seed_due(first, n, SystemClock().now(), per_chat=per_chat)
        for bot in bots:
            await bot.initialize()
        yield (Dispatcher(first, bots[0], content, settings),
               Dispatcher(second, bots[1], content, settings))
    finally:
        for bot in bots:
            await bot.shutdown()
        await first.dispose()
        await second.dispose()


async def _both_until_sent(fake, dispatchers, n: int) -> list[DispatchStats]:
    """Each instance runs the dispatcher again and again (as its job does, ticks here 20 ms
    apart) until `n` messages went out."""
    async def instance(disp: Dispatcher) -> DispatchStats:
        total = DispatchStats()
        while len(fake.calls_to("sendMessage")) < n:
            total.add(await disp.run(SystemClock().now()))
            await asyncio.sleep(0.02)
        return total

    return list(await asyncio.wait_for(asyncio.gather(*map(instance, dispatchers)), 60))


def _sends_per_chat(fake) -> dict[int, list[float]]:
    per_chat: dict[int, list[float]] = {}
    for call in fake.calls_to("sendMessage"):
        per_chat.setdefault(int(call.params["chat_id"]), []).append(call.at)
    return per_chat


async def test_two_paced_instances_together_stay_under_telegrams_limit(pg_url):
    """The limit is the bot's, not the instance's: two instances each pacing at 28/s would send
    56/s. One instance dispatches at a time, so the pair stays under 30/s."""
    fake = FakeBotAPI(rate_limit_per_second=30)
    await fake.start()
    try:
        async with _two_instances(fake, pg_url, 120, 1, batch_size=10) as dispatchers:
            stats = await _both_until_sent(fake, dispatchers, 120)
        assert sum(s.sent for s in stats) == 120
        assert sum(s.elsewhere for s in stats) > 0  # they did contend for the runs
        assert fake.too_many_requests == 0
        sends = sorted(c.at for c in fake.calls_to("sendMessage"))
        assert all(sends[i + 30] - sends[i] >= 1.0 for i in range(len(sends) - 30))
        assert fake.violations == []
    finally:
        await fake.stop()


async def test_a_handover_keeps_a_patients_second_reminder_a_second_later(fake, pg_url):
    """A run ends when only reminders for chats it has just messaged are left; the next holder,
    knowing nothing of those sends, must not send the second one at once."""
    async with _two_instances(fake, pg_url, 20, 2, batch_size=10) as dispatchers:
        await _both_until_sent(fake, dispatchers, 20)
    per_chat = _sends_per_chat(fake)
    assert len(per_chat) == 10 and all(len(at) == 2 for at in per_chat.values())
    gaps = sorted(abs(b - a) for a, b in per_chat.values())
    assert gaps[0] >= 1.0, gaps  # Telegram's ~1 message per second per chat


async def test_a_handover_keeps_telegrams_retry_after(fake, pg_url):
    """Telegram answered 429 retry_after=2 to the last send of a claim: neither instance sends
    before those 2 s are up (the run ends at a 429; the next holder's limiter never saw it)."""
    fake.fail_next("sendMessage", 429, retry_after=2, chat_id=70_004)  # the 5th of 10
    async with _two_instances(fake, pg_url, 10, 1, batch_size=5) as dispatchers:
        await _both_until_sent(fake, dispatchers, 10)
    refused = [c.at for c in fake.calls if c.method == "sendMessage" and c.status == 429]
    assert len(refused) == 1
    sent_after = [c.at for c in fake.calls_to("sendMessage") if c.at > refused[0]]
    assert sent_after and min(sent_after) - refused[0] >= 2.0


async def test_a_stopping_bot_does_not_wait_out_a_long_retry_after(fake, pg_url):
    """Holding the lock through a 429's pause is for the next holder; a bot that is shutting
    down lets it go at once (the next instance then meets Telegram's 429 itself). The sends
    of the batch waiting out the pause in the pacer go back to pending, unsent."""
    import time

    settings = make_settings(fake, pg_url)
    content = load_reminder_content(settings.content_dir)
    db = Database(pg_url)
    bot = Bot(TOKEN, base_url=fake.base_url)
    running, task = [True], None
    try:
        await upgrade(db)
        await _seed_due(db, 3, SystemClock().now())
        await bot.initialize()
        fake.fail_next("sendMessage", 429, retry_after=30)
        disp = Dispatcher(db, bot, content, settings, running=lambda: running[0])
        task = asyncio.create_task(disp.run(SystemClock().now()))
        await fake.wait_for(lambda c: c.method == "sendMessage" and c.status == 429)
        await asyncio.sleep(0.3)
        assert not task.done()  # settling: the pause holds the lock
        started = time.monotonic()
        running[0] = False
        stats = await asyncio.wait_for(task, 5)
        assert stats.rate_limited == 1 and time.monotonic() - started < 2
        assert stats.sent == 0 and len([c for c in fake.calls if c.method == "sendMessage"]) == 1
        async with db.session() as session:
            rows = (await session.scalars(select(Reminder).order_by(Reminder.id))).all()
        assert [(r.status, r.attempts) for r in rows] == [("pending", 0)] * 3
    finally:
        if task is not None and not task.done():
            task.cancel()
        await bot.shutdown()
        await db.dispose()
