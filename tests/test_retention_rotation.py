"""Retention (the daily purge of old questionnaires, injected clock) and key rotation of every
encrypted table (questionnaires, questions and staff replies)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.app import build_services
from bot.clock import FixedClock
from bot.crypto import CryptoBox, CryptoError, new_key
from bot.db.qa_models import Question
from bot.questions import question_text, record_reply, reply_text
from bot.retention import months_before
from bot.rotation import rotate_all
from tests.conftest import TEST_ENCRYPTION_KEY, make_settings, sql
from tests.harness import BotRunner, TgUser
from tests.intake_support import NOW, complete
from tests.scale_helpers import until_one_waits_on_a_lock


def test_months_before_clamps_to_the_end_of_the_month():
    assert months_before(datetime(2026, 3, 31, 5, tzinfo=UTC), 1) == datetime(2026, 2, 28, 5, tzinfo=UTC)
    assert months_before(datetime(2026, 1, 15, tzinfo=UTC), 24) == datetime(2024, 1, 15, tzinfo=UTC)
    assert months_before(datetime(2026, 1, 15, tzinfo=UTC), 13) == datetime(2024, 12, 15, tzinfo=UTC)


async def test_daily_job_purges_old_questionnaires_without_recent_appointments(fake, db_url):
    clock = FixedClock(NOW)
    settings = make_settings(fake, db_url, intake_retention_months=24)
    rr = BotRunner(fake, settings, clock=clock)
    await rr.start()
    try:
        anna, ben, carl = (TgUser(rr, first_name=n) for n in ("Anna", "Ben", "Carl"))
        await complete(anna)
        await complete(ben)
        staff = TgUser(rr, "Staff", user_id=42)
        # Ben has an appointment within the retention period: his answers are kept.
        clock.advance(days=400)
        await staff.send(f"/book {ben.id} {(clock.now() + timedelta(days=3)):%Y-%m-%d} 12:00 60 face")
        clock.advance(days=300)
        await complete(carl)  # recent: kept
        jobs = rr.app.job_queue.get_jobs_by_name("intake-retention")
        assert len(jobs) == 1
        clock.set(NOW + timedelta(days=2 * 365 + 5))  # just over 24 months after Anna's
        await jobs[0].run(rr.app)
        left = sql(db_url, "select p.first_name from intakes i join patients p on p.id=i.patient_id")
        assert sorted(n for (n,) in left) == ["Ben", "Carl"]
        consents = sql(db_url, "select p.first_name from intake_consents c "
                                "join patients p on p.id=c.patient_id")
        assert "Anna" not in {n for (n,) in consents}
        audit = sql(db_url, "select action, actor_user_id, patient_id, subject from audit_events "
                             "where action='retention_purge'")
        anna_id = sql(db_url, f"select id from patients where telegram_user_id={anna.id}")[0][0]
        assert audit == [("retention_purge", None, anna_id, "intakes:1")]
        await jobs[0].run(rr.app)  # daily: a second run finds nothing more
        assert len(sql(db_url, "select * from audit_events where action='retention_purge'")) == 1
    finally:
        await rr.stop()


def test_retention_setting_is_validated(fake, db_url):
    from bot.config import ConfigError

    assert make_settings(fake, db_url).intake_retention_months == 24
    with pytest.raises(ConfigError, match="INTAKE_RETENTION_MONTHS"):
        make_settings(fake, db_url, intake_retention_months=0)


async def test_rotate_keys_reencrypts_questionnaires_questions_and_replies(fake, db_url,
                                                                          tmp_path):
    old = TEST_ENCRYPTION_KEY
    rr = BotRunner(fake, make_settings(fake, db_url, encryption_keys=old), clock=FixedClock(NOW))
    await rr.start()
    try:
        anna = TgUser(rr, first_name="Anna")
        await complete(anna)
        await anna.send("Can I go to the sauna? ref-code 5521")
        svc = rr.app.bot_data["services"]
        async with svc.db.session() as session:
            question = await session.scalar(select(Question))
            await record_reply(session, question, 42, "Please wait 48 hours.", NOW, svc.crypto)
    finally:
        await rr.stop()

    new = new_key()
    # Run where the questionnaire is switched off (no intake.yaml): its stored answers rotate
    # all the same, or removing the old key would make them unreadable.
    content = tmp_path / "content"
    shutil.copytree(make_settings(fake, db_url).content_dir, content)
    (content / "intake.yaml").unlink()
    rotating = build_services(make_settings(fake, db_url, encryption_keys=f"{new},{old}",
                                            content_dir=content))
    assert rotating.intake is None
    try:
        counts = await rotate_all(rotating)
        assert counts == {"questionnaires": 1, "question fields": 2}
        assert await rotate_all(rotating) == {"questionnaires": 0, "question fields": 0}
    finally:
        await rotating.db.dispose()

    # The old key is gone: everything still reads, through the bot itself.
    rr = BotRunner(fake, make_settings(fake, db_url, encryption_keys=new), clock=FixedClock(NOW))
    await rr.start()
    try:
        svc = rr.app.bot_data["services"]
        async with svc.db.session() as session:
            question = await session.scalar(select(Question))
            assert question_text(svc.crypto, question) == "Can I go to the sauna? ref-code 5521"
            assert reply_text(svc.crypto, question) == "Please wait 48 hours."
            with pytest.raises(CryptoError):
                question_text(CryptoBox([old]), question)
        anna = TgUser(rr, first_name="Anna", user_id=anna.id)
        shown = await anna.send("/mydata")
        data = json.loads(fake.files[shown[0].document["file_id"]])
        assert data["questions"][0]["clinic_reply"] == "Please wait 48 hours."
        assert data["consultation_intake"]
    finally:
        await rr.stop()


async def test_migrations_at_head_match_the_models(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    import bot.db.appointment_models  # noqa: F401 - every table on Base.metadata
    import bot.db.intake_models  # noqa: F401
    import bot.db.preference_models  # noqa: F401
    import bot.db.privacy_models  # noqa: F401
    import bot.db.processed_updates  # noqa: F401
    import bot.db.qa_models  # noqa: F401
    from bot.db.engine import Database
    from bot.db.migrate import upgrade
    from bot.db.models import Base

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    try:
        await upgrade(db)
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata))
            version = (await conn.exec_driver_sql("select version_num from alembic_version")).scalar()
    finally:
        await db.dispose()
    from alembic.script import ScriptDirectory

    from bot.db.migrate import alembic_config

    assert diff == []
    assert version == ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


@pytest.mark.postgres
async def test_two_instances_purging_at_once_audit_each_questionnaire_once(migrated_pg_db):
    """Both instances' daily jobs fire at 03:30: the second selects the same rows, waits on the
    first's DELETE, then deletes nothing, and must not audit a purge it did not do."""
    import asyncio

    from sqlalchemy import func

    from bot.db.intake_models import Intake, IntakeConsent
    from bot.db.models import Patient
    from bot.db.privacy_models import AuditEvent
    from bot.retention import purge

    db = migrated_pg_db
    old = NOW - timedelta(days=3 * 365)
    async with db.session() as session:
        session.add_all(Patient(id=i, telegram_user_id=50_000 + i, chat_id=50_000 + i,
                                created_at=old, last_seen_at=old) for i in (1, 2, 3))
        await session.flush()
        session.add_all(IntakeConsent(id=i, patient_id=i, version="v1", text_sha256="0" * 64,
                                      agreed_at=old) for i in (1, 2, 3))
        await session.flush()
        session.add_all(Intake(id=i, patient_id=i, consent_id=i, status="submitted",
                               stage="review", data=b"x", created_at=old, updated_at=old)
                        for i in (1, 2, 3))

    async def second_instance() -> dict[int, int]:
        async with db.session() as session:
            return await purge(session, NOW, 24)

    async with db.session() as session:
        first = await purge(session, NOW, 24)
        second = asyncio.create_task(second_instance())
        await until_one_waits_on_a_lock(db, "the second purge")  # on the first's rows
    assert first == {1: 1, 2: 1, 3: 1}
    assert await second == {}
    async with db.session() as session:
        audited = await session.scalar(select(func.count()).select_from(AuditEvent)
                                       .where(AuditEvent.action == "retention_purge"))
        assert audited == 3
