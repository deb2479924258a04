"""1,000 reminders due at once, against a fake that enforces Telegram's 30 messages/s: no 429."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from bot.clock import FixedClock
from bot.db.appointment_models import Appointment, Reminder
from bot.db.models import Patient
from tests.conftest import make_settings
from tests.fake_bot_api import FakeBotAPI
from tests.harness import BotRunner
from tests.reminder_support import db, dispatch, reminders

N = 1000


async def sent_count(runner) -> int:
    async with db(runner).session() as session:
        return await session.scalar(select(func.count()).select_from(Reminder)
                                    .where(Reminder.status == "sent"))


async def test_thousand_due_at_once_without_a_single_429(db_url):
    fake = FakeBotAPI(rate_limit_per_second=30)
    await fake.start()
    now = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    clock = FixedClock(now)
    runner = BotRunner(fake, make_settings(fake, db_url, rate_limiter=True), clock=clock)
    try:
        await runner.start()
        async with db(runner).session() as session:
            session.add_all(Patient(id=10_000 + i, telegram_user_id=900_000 + i, chat_id=900_000 + i,
                                    first_name=f"P{i}", created_at=now, last_seen_at=now)
                            for i in range(N))
            await session.flush()
            session.add_all(Appointment(id=i + 1, patient_id=10_000 + i,
                                        starts_at=now + timedelta(hours=5), duration_min=60,
                                        area="face", session_no=1, course_size=1, status="booked",
                                        plan_version=1, created_at=now, updated_at=now)
                            for i in range(N))
            await session.flush()
            session.add_all(Reminder(key=f"appt:{i + 1}:same_day", appointment_id=i + 1,
                                     patient_id=10_000 + i, kind="same_day", due_at=now,
                                     expires_at=now + timedelta(hours=5), quiet_ok=True,
                                     status="pending", attempts=0, outcome_unknown=False,
                                     created_at=now)
                            for i in range(N))
        # The app's periodic dispatcher job may hold the run lock and send some (or all) of
        # them: count what the outbox says was sent, not what this call's stats say.
        deadline = time.monotonic() + 120
        await dispatch(runner, clock)
        while await sent_count(runner) < N and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            await dispatch(runner, clock)
        rows = await reminders(runner, kind="same_day")
        assert [r.status for r in rows].count("sent") == N
        assert fake.too_many_requests == 0
        sends = sorted(c.at for c in fake.calls if c.method == "sendMessage" and c.status == 200)
        assert len(sends) == N
        # The fake's own window check, recomputed: never 30 sends within one second.
        assert all(sends[i + 30] - sends[i] >= 1.0 for i in range(len(sends) - 30))
        # Paced near the limit, not throttled far below it: about N / 28 per second (35.7 s),
        # with room for a busy machine's pauses (at least 20 per second).
        span = sends[-1] - sends[0]
        assert span < N / 20, f"{N} sends took {span:.1f}s"
    finally:
        await runner.stop()
        await fake.stop()
    assert fake.violations == []
