"""The real bot process (`run_bot.py run`) SIGKILLed again and again while it dispatches 1,000
due reminders, then restarted until done: none lost, and at most the send in flight repeated
per kill, each repeat being a row recorded as outcome_unknown. SQLite and PostgreSQL.

The engine tunables come from a content copy (as a clinic would set them): no pacing limit,
a dispatcher run every 0.2 s, one send in flight (so "the one in flight" is one reminder), and
a 1 s sending lease so PostgreSQL (where a 'sending' row may belong to another live instance,
so only the lease frees it) recovers fast."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.db.engine import Database
from bot.db.migrate import upgrade
from tests.fake_bot_api import FakeBotAPI
from tests.fault_helpers import (
    CHAT_BASE,
    BotProcess,
    bot_env,
    fast_content,
    reminder_rows,
    seed_due_reminders,
    sends_per_chat,
    wait_until,
)

N = 1000
KILLS = 4
CONCURRENCY = 1


async def _kill_repeatedly(fake: FakeBotAPI, url: str, tmp_path: Path, seed: int) -> None:
    content = fast_content(tmp_path, interval_seconds=0.2, max_per_second=100000,
                           concurrency=CONCURRENCY, sending_lease='"1s"', batch_size=100)
    db = Database(url)
    await upgrade(db)
    await seed_due_reminders(db, N, datetime.now(UTC))
    bot = BotProcess(bot_env(fake, url, content), tmp_path, tmp_path / "bot.log")
    rng = random.Random(seed)
    # Kill points: numbers of messages sent, spread over the run at random.
    points = sorted(rng.sample(range(60, N - 60), KILLS))
    kills_mid_dispatch = 0
    try:
        for point in points:
            bot.start()

            async def reached(point: int = point) -> bool:
                assert bot.alive(), (tmp_path / "bot.log").read_text()[-3000:]
                return len(fake.calls_to("sendMessage")) >= point

            await wait_until(reached, timeout=30, step=0.002)
            await asyncio.sleep(rng.random() * 0.01)  # somewhere inside a send or a record
            bot.kill()
            kills_mid_dispatch += len(sends_per_chat(fake)) < N
        bot.start()

        async def done() -> bool:
            rows = await reminder_rows(db)
            return all(r.status not in ("pending", "sending") for r in rows)

        await wait_until(done, timeout=40, step=0.2)
        log = (tmp_path / "bot.log").read_text()  # before the stop below (its own shutdown noise)
    finally:
        bot.stop()
    try:
        assert kills_mid_dispatch == KILLS
        rows = await reminder_rows(db)
        per_chat = sends_per_chat(fake)
        # None lost: every reminder was sent (all were valid for hours) and reached its patient.
        assert [r.status for r in rows] == ["sent"] * N
        assert set(per_chat) == {CHAT_BASE + i for i in range(N)}
        # Repeats: at most the sends in flight at each kill, and each is flagged outcome_unknown.
        repeated = {chat for chat, count in per_chat.items() if count > 1}
        assert sum(per_chat.values()) - N <= KILLS * CONCURRENCY
        assert all(per_chat[c] == 2 for c in repeated)
        unknown = {CHAT_BASE + r.patient_id - 1 for r in rows if r.outcome_unknown}
        assert repeated <= unknown
        assert "Traceback" not in log, log[-3000:]
    finally:
        await db.dispose()


async def test_sigkill_during_dispatch_sqlite(fake: FakeBotAPI, tmp_path: Path):
    await _kill_repeatedly(fake, f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}", tmp_path, seed=7)


@pytest.mark.postgres
async def test_sigkill_during_dispatch_postgres(fake: FakeBotAPI, pg_url: str, tmp_path: Path):
    await _kill_repeatedly(fake, pg_url, tmp_path, seed=11)
