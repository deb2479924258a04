"""A Telegram update delivered twice is processed once (same instance, after a restart)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from bot.db import processed_updates
from bot.db.engine import Database
from bot.db.migrate import downgrade, upgrade
from bot.db.processed_updates import ProcessedUpdate
from tests.fake_bot_api import FakeBotAPI
from tests.harness import BotRunner, TgUser
from tests.scale_helpers import webhook_instance
from tests.test_webhook import text_update, webhook_settings

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def test_claim_is_insert_or_ignore_and_prune_keeps_recent_rows(migrated_db: Database):
    db = migrated_db
    assert await processed_updates.claim(db, 1, T0) is True
    assert await processed_updates.claim(db, 1, T0) is False
    assert await processed_updates.claim(db, 2, T0 + timedelta(hours=47)) is True
    assert await processed_updates.claim(db, 2**40, T0) is True  # ids are 64-bit
    removed = await processed_updates.prune(db, T0 + timedelta(hours=48, seconds=1))
    assert removed == 2  # ids 1 and 2**40; id 2 is younger than 48 h
    async with db.session() as session:
        left = (await session.scalars(select(ProcessedUpdate.update_id))).all()
    assert left == [2]
    # A pruned id may come back (Telegram restarts ids after a week of silence): processed.
    assert await processed_updates.claim(db, 1, T0 + timedelta(days=8)) is True


async def test_migration_downgrades_and_upgrades_cleanly(migrated_db: Database):
    db = migrated_db
    await downgrade(db, "0001")
    async with db.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: c.dialect.get_table_names(c))
    assert "processed_updates" not in tables and "patients" in tables
    await upgrade(db)
    assert await processed_updates.claim(db, 5, T0) is True


async def test_duplicate_webhook_delivery_is_answered_once(fake: FakeBotAPI, db_url: str):
    async with webhook_instance(webhook_settings(fake, db_url)) as bot:
        update = text_update(fake, 7101, "/start")
        assert await bot.post(update) == 200
        assert await bot.post(update) == 200  # Telegram retried: same update_id
        assert len(fake.calls_to("sendMessage", chat_id=7101)) == 1
        # Ten concurrent redeliveries of a new update: still one answer.
        update = text_update(fake, 7101, "/help")
        statuses = await asyncio.gather(*(bot.post(dict(update), wait=False) for _ in range(10)))
        assert statuses == [200] * 10
        await fake.wait_for(lambda c: c.method == "sendMessage" and "How to use" in c.params["text"])
        await asyncio.sleep(0.2)  # let any (wrong) second answer arrive
        assert len(fake.calls_to("sendMessage", chat_id=7101)) == 2
        # A different update from the same chat is of course answered.
        assert await bot.post(text_update(fake, 7101, "/menu")) == 200
        assert len(fake.calls_to("sendMessage", chat_id=7101)) == 3


async def test_duplicate_after_a_restart_is_not_processed_again(fake: FakeBotAPI, db_url: str):
    settings = webhook_settings(fake, db_url)
    update = text_update(fake, 7102, "/start")
    async with webhook_instance(settings) as first:
        assert await first.post(update) == 200
    async with webhook_instance(settings) as second:  # a new process, same database
        assert await second.post(update) == 200
    assert len(fake.calls_to("sendMessage", chat_id=7102)) == 1


async def test_every_polled_update_is_claimed_and_pruning_is_scheduled(runner: BotRunner,
                                                                       patient: TgUser):
    await patient.send("/start")
    await patient.press("Uses of Mesotherapy")
    svc = runner.app.bot_data["services"]
    async with svc.db.session() as session:
        count = await session.scalar(select(func.count()).select_from(ProcessedUpdate))
    assert count == 2
    jobs = runner.app.job_queue.get_jobs_by_name("prune-processed-updates")
    assert len(jobs) == 1
    assert jobs[0].job.trigger.interval == timedelta(hours=1)
