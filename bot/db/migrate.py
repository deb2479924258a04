"""Apply Alembic migrations programmatically (at start, or `run_bot.py migrate`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection

from bot.db.engine import Database

ROOT = Path(__file__).resolve().parents[2]
# Several instances may start at once against one PostgreSQL database: the first to take this
# transaction-scoped advisory lock migrates, the others wait and then find nothing to do.
MIGRATION_LOCK_ID = 7_201_106_001


def alembic_config(url: str) -> Config:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "alembic"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def upgrade(db: Database, revision: str = "head") -> None:
    await _migrate(db, command.upgrade, revision)


async def downgrade(db: Database, revision: str) -> None:
    """Back to `revision` ("base": no tables): a rollback, and how the tests check that every
    migration can be undone."""
    await _migrate(db, command.downgrade, revision)


async def _migrate(db: Database, step: Callable[[Config, str], None], revision: str) -> None:
    cfg = alembic_config(db.url)

    def _run(conn: Connection) -> None:
        cfg.attributes["connection"] = conn
        step(cfg, revision)

    async with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        await conn.run_sync(_run)
