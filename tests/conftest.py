"""Fixtures: a fake Bot API on loopback, real SQLite files, the real Application."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from bot.config import Settings, load_settings
from bot.db.engine import Database
from tests.fake_bot_api import FakeBotAPI
from tests.harness import BotRunner, TgUser

# A fixed Fernet key for tests only (never used outside the test suite).
TEST_ENCRYPTION_KEY = "QWnQV48kbI2quCoFXnBDe7JgQOtYATKY37HpQZ2ij8c="

# No per-example deadline: on a busy machine (CI has 2 cores) a pause of a few hundred ms is
# normal, and hypothesis would report it as a failure. Tests set their own max_examples.
hypothesis_settings.register_profile("clinic", deadline=None)
hypothesis_settings.load_profile("clinic")

# Tests must never read a developer's .env or environment by accident.
for _name in list(os.environ):
    if _name.upper() in {"BOT_TOKEN", "DATABASE_URL", "STAFF_IDS", "STAFF_CHAT_ID",
                         "CLINIC_TIMEZONE", "TELEGRAM_API_BASE_URL",
                         "ENCRYPTION_KEYS"}:
        del os.environ[_name]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotAPI]:
    api = FakeBotAPI()
    await api.start()
    yield api
    await api.stop()
    assert api.violations == [], "Bot API spec violations:\n" + "\n".join(api.violations)


def make_settings(fake: FakeBotAPI, db_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "telegram_api_base_url": fake.base_url,
        "database_url": db_url,
        "rate_limiter": False,
        "staff_ids": "42",
        "clinic_timezone": "Europe/London",
        "encryption_keys": TEST_ENCRYPTION_KEY,
        "_env_file": None,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def settings(fake: FakeBotAPI, db_url: str) -> Settings:
    return make_settings(fake, db_url)


@pytest.fixture
async def runner(fake: FakeBotAPI, settings: Settings) -> AsyncIterator[BotRunner]:
    bot_runner = BotRunner(fake, settings)
    await bot_runner.start()
    yield bot_runner
    await bot_runner.stop()


@pytest.fixture
def patient(runner: BotRunner) -> TgUser:
    return TgUser(runner, first_name="Anna")


@pytest.fixture
async def rr(fake: FakeBotAPI, settings: Settings, clock) -> AsyncIterator[BotRunner]:
    """The bot on the test module's own `clock` fixture (a FixedClock the test moves).

    These tests drive the dispatcher themselves: its periodic job (every few real seconds) is
    paused, so on a slow machine it cannot take a run, and the run's figures, from a test."""
    bot_runner = BotRunner(fake, settings, clock=clock, periodic_dispatch=False)
    await bot_runner.start()
    yield bot_runner
    await bot_runner.stop()


@pytest.fixture
def staff(rr: BotRunner) -> TgUser:
    return TgUser(rr, "Staff", user_id=42)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards; skipped with the reason
    when no server answers on 127.0.0.1:5432."""
    from tests.scale_helpers import pg_database, pg_reachable

    reason = await pg_reachable()
    if reason:
        pytest.skip(reason)
    async with pg_database() as url:
        yield url


@pytest.fixture
async def migrated_db(db_url: str) -> AsyncIterator[Database]:
    """A Database on a fresh SQLite file, migrated to head; disposed afterwards."""
    async with _migrated(db_url) as db:
        yield db


@pytest.fixture
async def migrated_pg_db(pg_url: str) -> AsyncIterator[Database]:
    """The same on a fresh PostgreSQL database (skipped with the reason without a server)."""
    async with _migrated(pg_url) as db:
        yield db


@asynccontextmanager
async def _migrated(url: str) -> AsyncIterator[Database]:
    from bot.db.migrate import upgrade

    db = Database(url)
    try:
        await upgrade(db)
        yield db
    finally:
        await db.dispose()


def sql(db_url: str, query: str, *params: object) -> list[tuple]:
    """Rows straight from a test's SQLite file: what is stored, not what the ORM says."""
    with sqlite3.connect(Path(db_url.split("///", 1)[1])) as conn:
        return conn.execute(query, params).fetchall()


async def sql_write(db_url: str, query: str, *params: object) -> None:
    """A write straight into a running bot's SQLite file, from a thread: done on the event loop,
    it would wait for a write lock that the bot, stuck behind it on that loop, never releases."""
    await asyncio.to_thread(sql, db_url, query, *params)
