"""bot/db/exclusive.py: one holder at a time across instances on PostgreSQL, freed with its
connection; on SQLite (one process) the work is always ours."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sqlalchemy import text
from telegram import Bot

from bot.db.engine import Database
from bot.db.exclusive import alone, lock_key
from bot.db.migrate import upgrade
from bot.reminders.dispatcher import RUN_LOCK, Dispatcher
from bot.reminders.plans import load_reminder_content
from tests.conftest import make_settings
from tests.fake_bot_api import TOKEN
from tests.scale_helpers import PG_ADMIN_DSN
from tests.test_reminders_postgres import _seed_due

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


async def _terminate(pid: int) -> None:
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        # With a timeout: wait until the backend is gone, not just signalled.
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
    finally:
        await admin.close()


async def _holder_pids(db: Database, name: str) -> list[int]:
    """Backends of this test's database holding the advisory lock `name` (other tests' databases
    on the same server may hold theirs)."""
    key = lock_key(name)
    async with db.engine.connect() as conn:
        return list((await conn.scalars(text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND objsubid = 1 AND classid::bigint = :high AND objid::bigint = :low"),
            {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF})).all())


async def _lock_holders(db: Database, name: str) -> int:
    return len(await _holder_pids(db, name))


def test_lock_keys_are_stable_and_distinct():
    assert lock_key("reminder-dispatcher") == lock_key("reminder-dispatcher")
    assert lock_key("reminder-dispatcher") != lock_key("retention")
    assert -(2**63) <= lock_key("x") < 2**63


async def test_on_sqlite_the_work_is_always_ours(tmp_path):
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    try:
        async with alone(db, "job") as first, alone(db, "job") as second:
            assert first is not None and second is not None
            assert await first.still_held() and await second.still_held()
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_one_holder_at_a_time_and_freed_on_exit(pg_url):
    a, b = Database(pg_url), Database(pg_url)
    try:
        async with alone(a, "job") as held:
            assert held is not None and await held.still_held()
            async with alone(b, "job") as other:
                assert other is None  # another instance holds it
            async with alone(b, "another job") as unrelated:
                assert unrelated is not None
            assert await _lock_holders(b, "job") == 1
        assert await _lock_holders(b, "job") == 0
        async with alone(a, "job") as later:  # a's connection went back to the pool unlocked
            assert later is not None
            async with alone(b, "job") as other:
                assert other is None
    finally:
        await a.dispose()
        await b.dispose()


@pytest.mark.postgres
async def test_a_holder_whose_connection_dies_loses_the_lock_to_the_next(pg_url, caplog):
    """A killed instance, or the server dropping its connection: the lock goes with it."""
    a, b = Database(pg_url), Database(pg_url)
    try:
        with caplog.at_level(logging.WARNING):
            async with alone(a, "job") as held:
                assert held is not None
                pid = await held._conn.scalar(text("SELECT pg_backend_pid()"))
                await _terminate(pid)
                assert not await held.still_held()
                async with alone(b, "job") as taken:
                    assert taken is not None
        # Leaving with a dead connection is quiet apart from a warning, and the pool keeps
        # no connection that could still hold it (asked of the server, and from the other
        # engine: the lock is re-entrant within one session).
        assert any("connection lost" in r.getMessage() for r in caplog.records)
        assert await _lock_holders(b, "job") == 0
        async with alone(b, "job") as again:
            assert again is not None
    finally:
        await a.dispose()
        await b.dispose()


@pytest.mark.postgres
async def test_a_run_is_skipped_while_another_instance_dispatches(fake, pg_url):
    settings = make_settings(fake, pg_url)
    content = load_reminder_content(settings.content_dir)
    db, other = Database(pg_url), Database(pg_url)
    bot = Bot(TOKEN, base_url=fake.base_url)
    try:
        await upgrade(db)
        await _seed_due(db, 5, NOW)
        await bot.initialize()
        disp = Dispatcher(db, bot, content, settings, rate_limit=False)
        async with alone(other, RUN_LOCK) as held:  # the other instance is mid-run
            assert held is not None
            stats = await disp.run(NOW)
            assert stats.elsewhere == 1 and stats.claimed == 0
            assert fake.calls_to("sendMessage") == []
        stats = await disp.run(NOW + timedelta(seconds=1))
        assert stats.elsewhere == 0 and stats.sent == 5
        assert len(fake.calls_to("sendMessage")) == 5
        assert await _lock_holders(db, RUN_LOCK) == 0  # released after the run
    finally:
        await bot.shutdown()
        await db.dispose()
        await other.dispose()


@pytest.mark.postgres
async def test_a_run_whose_lock_connection_dies_stops_at_the_next_round(fake, pg_url):
    """Another instance may take the lock at once: this run sends no further round."""
    import dataclasses

    settings = make_settings(fake, pg_url)
    content = load_reminder_content(settings.content_dir)
    content = dataclasses.replace(content, engine=dataclasses.replace(content.engine, batch_size=3))
    db = Database(pg_url)
    bot = Bot(TOKEN, base_url=fake.base_url)
    try:
        await upgrade(db)
        await _seed_due(db, 9, NOW)
        await bot.initialize()
        disp = Dispatcher(db, bot, content, settings, rate_limit=False)
        real_claim = disp._claim

        async def claim_then_lose_the_lock(now, stats):
            jobs = await real_claim(now, stats)
            pids = await _holder_pids(db, RUN_LOCK)
            assert len(pids) == 1
            await _terminate(pids[0])
            return jobs

        disp._claim = claim_then_lose_the_lock
        stats = await disp.run(NOW)
        assert stats.sent == 3  # the first round only
        disp._claim = real_claim
        assert (await disp.run(NOW + timedelta(seconds=1))).sent == 6  # the lock is back
    finally:
        await bot.shutdown()
        await db.dispose()

