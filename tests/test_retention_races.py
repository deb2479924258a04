"""Retention removes what is old and only that: a questionnaire the patient answers between
the job's SELECT and its DELETE stays (SQLite and PostgreSQL), and the consent of a cancelled
questionnaire goes once it is old."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Delete

from bot.clock import FixedClock
from bot.crypto import CryptoBox
from bot.db.intake_models import Intake, IntakeConsent
from bot.retention import purge
from tests.conftest import TEST_ENCRYPTION_KEY, make_settings, sql
from tests.harness import BotRunner, TgUser
from tests.intake_support import agree, seed_questionnaire

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


async def _purge_while_the_patient_answers(db, monkeypatch) -> None:
    box = CryptoBox([TEST_ENCRYPTION_KEY])
    await seed_questionnaire(db, box, NOW - timedelta(days=3 * 365), "old")
    real_execute = AsyncSession.execute
    answered = False

    async def execute(self, statement, *args, **kwargs):  # noqa: ANN001, ANN202
        nonlocal answered
        if not answered and isinstance(statement, Delete) and statement.table.name == "intakes":
            answered = True  # the patient comes back and answers between SELECT and DELETE
            async with db.session() as other:
                await other.execute(update(Intake).where(Intake.id == 1).values(
                    data=box.encrypt_json({"answers": {"allergies": "today"}, "draft": {}},
                                          context="intake:1"), updated_at=NOW))
        return await real_execute(self, statement, *args, **kwargs)

    monkeypatch.setattr(AsyncSession, "execute", execute)
    async with db.session() as session:
        purged = await purge(session, NOW, 24)
    monkeypatch.setattr(AsyncSession, "execute", real_execute)
    assert answered and dict(purged) == {}
    async with db.session() as session:
        row = await session.get(Intake, 1)
        assert row is not None and box.decrypt_json(row.data, context="intake:1")["answers"] == {
            "allergies": "today"}
        assert await session.get(IntakeConsent, 1) is not None


async def test_a_questionnaire_answered_during_the_purge_stays_on_sqlite(migrated_db, monkeypatch):
    await _purge_while_the_patient_answers(migrated_db, monkeypatch)


@pytest.mark.postgres
async def test_a_questionnaire_answered_during_the_purge_stays_on_postgresql(migrated_pg_db,
                                                                              monkeypatch):
    await _purge_while_the_patient_answers(migrated_pg_db, monkeypatch)


async def test_the_consent_of_a_cancelled_questionnaire_goes_once_it_is_old(fake, db_url):
    clock = FixedClock(NOW)
    runner = BotRunner(fake, make_settings(fake, db_url, intake_retention_months=24), clock=clock)
    await runner.start()
    try:
        anna = TgUser(runner, first_name="Anna")
        await agree(anna)
        await anna.send("/cancel")  # nothing answered yet: gone at once, its consent stays
        assert sql(db_url, "select count(*) from intakes") == [(0,)]
        job = runner.app.job_queue.get_jobs_by_name("intake-retention")[0]
        await job.run(runner.app)
        assert sql(db_url, "select count(*) from intake_consents") == [(1,)]  # not old yet
        clock.set(NOW + timedelta(days=3 * 365))
        await job.run(runner.app)
        assert sql(db_url, "select count(*) from intake_consents") == [(0,)]
        assert sql(db_url, "select subject from audit_events where action='retention_purge'") \
            == [("consents:1",)]
    finally:
        await runner.stop()
