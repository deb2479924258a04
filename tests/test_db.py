"""UTC timestamps on SQLite, migrations, and the patient record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import StatementError

from bot import patients
from bot.db import Patient
from bot.db.migrate import upgrade


@pytest.fixture
def db(migrated_db):
    return migrated_db


async def test_migrations_create_the_schema_and_are_idempotent(db):
    await upgrade(db)  # a second run is a no-op
    async with db.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        version = (await conn.execute(text("select version_num from alembic_version"))).scalar()
    assert "patients" in tables
    assert version is not None


async def test_timestamps_round_trip_as_aware_utc(db):
    paris = timezone(timedelta(hours=1))
    at = datetime(2026, 3, 29, 2, 30, tzinfo=paris)
    async with db.session() as session:
        patient = await patients.upsert_from_telegram(session, user_id=1, chat_id=1, first_name="A",
                                                      language_code=None, now=at)
        pid = patient.id
    async with db.session() as session:
        loaded = await session.get(Patient, pid)
        assert loaded.created_at == at
        assert loaded.created_at.tzinfo is UTC
        assert loaded.created_at.hour == 1


async def test_naive_datetimes_are_refused(db):
    with pytest.raises(StatementError, match="naive datetime"):
        async with db.session() as session:
            session.add(Patient(telegram_user_id=2, created_at=datetime(2026, 1, 1),  # noqa: DTZ001
                                last_seen_at=datetime(2026, 1, 1)))  # noqa: DTZ001


async def test_upsert_updates_the_same_patient(db):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    async with db.session() as session:
        await patients.upsert_from_telegram(session, user_id=9, chat_id=9, first_name="Old",
                                            language_code="en", now=t0)
    async with db.session() as session:
        p = await patients.upsert_from_telegram(session, user_id=9, chat_id=9, first_name="New",
                                                language_code="fr", now=t0 + timedelta(days=1))
        p.unreachable = True
    async with db.session() as session:
        rows = (await session.scalars(select(Patient))).all()
        assert len(rows) == 1 and rows[0].first_name == "New" and rows[0].created_at == t0
        p = await patients.upsert_from_telegram(session, user_id=9, chat_id=9, first_name="New",
                                                language_code="fr", now=t0)
        assert p.unreachable is False


async def test_sql_errors_do_not_quote_patient_data(db):
    from sqlalchemy.exc import IntegrityError

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    async with db.session() as session:
        session.add(Patient(telegram_user_id=77, first_name="Secretname", created_at=t0, last_seen_at=t0))
    with pytest.raises(IntegrityError) as err:
        async with db.session() as session:
            session.add(Patient(telegram_user_id=77, first_name="Secretname", created_at=t0,
                                last_seen_at=t0))
    assert "Secretname" not in str(err.value)


async def test_touch_stores_what_upsert_stores_in_one_statement(db):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    async with db.session() as session:
        await patients.touch_from_telegram(session, user_id=31, chat_id=31, first_name="Ann",
                                           language_code="en", now=t0)
    async with db.session() as session:
        p = await patients.by_telegram_id(session, 31)
        assert (p.first_name, p.chat_id, p.created_at, p.unreachable) == ("Ann", 31, t0, False)
        p.unreachable = True
    async with db.session() as session:
        await patients.touch_from_telegram(session, user_id=31, chat_id=32, first_name="Anne",
                                           language_code=None, now=t0 + timedelta(days=2))
    async with db.session() as session:
        p = await patients.by_telegram_id(session, 31)
        assert (p.first_name, p.chat_id, p.created_at, p.unreachable) == ("Anne", 32, t0, False)
        assert p.last_seen_at == t0 + timedelta(days=2)
        assert len((await session.scalars(select(Patient))).all()) == 1


async def test_a_message_soon_after_the_last_writes_nothing_to_the_patient(db):
    from sqlalchemy import event

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    async with db.session() as session:
        await patients.upsert_from_telegram(session, user_id=5, chat_id=5, first_name="A",
                                            language_code="en", now=t0)
    writes: list[str] = []

    def spy(conn, cursor, statement, *args):  # noqa: ANN001, ANN002
        if not statement.lstrip().upper().startswith("SELECT"):
            writes.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", spy)
    try:
        for later, expected in ((timedelta(minutes=4), t0),
                                (timedelta(minutes=6), t0 + timedelta(minutes=6))):
            writes.clear()
            async with db.session() as session:
                p = await patients.upsert_from_telegram(session, user_id=5, chat_id=5,
                                                        first_name="A", language_code="en",
                                                        now=t0 + later)
            assert p.last_seen_at == expected
            assert bool(writes) == (expected != t0)  # within 5 minutes: no write at all
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", spy)


async def test_every_sqlite_connection_waits_for_writers_and_enforces_foreign_keys(db):
    """The pragmas each new connection gets: WAL (the dispatcher reads while a handler writes),
    a busy timeout long enough for a queue of writers under load, and foreign keys on."""
    from bot.db.engine import SQLITE_BUSY_TIMEOUT_MS

    async with db.session() as session:
        mode = await session.scalar(text("PRAGMA journal_mode"))
        busy = await session.scalar(text("PRAGMA busy_timeout"))
        keys = await session.scalar(text("PRAGMA foreign_keys"))
    assert (mode, busy, keys) == ("wal", SQLITE_BUSY_TIMEOUT_MS, 1)
    assert SQLITE_BUSY_TIMEOUT_MS >= 20_000
