"""PostgreSQL: the same migrations, the foundation end to end, and two instances on one database.

Needs the server at 127.0.0.1:5432 (trust auth, database `test`, user postgres); each test works
in its own freshly created database, dropped afterwards. Skipped with the reason where no server
answers.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, text

from bot.db import processed_updates
from bot.db.engine import Database
from bot.db.migrate import alembic_config, downgrade, upgrade
from bot.db.models import Patient
from bot.db.processed_updates import ProcessedUpdate
from tests.conftest import make_settings
from tests.fake_bot_api import FakeBotAPI
from tests.harness import BotRunner, TgUser
from tests.scale_helpers import until_one_waits_on_a_lock, webhook_instance
from tests.test_dedupe import T0
from tests.test_webhook import press_update, text_update, webhook_settings

pytestmark = pytest.mark.postgres


async def test_migrations_up_down_up_on_postgresql(pg_url: str):
    db = Database(pg_url)
    try:
        await upgrade(db)
        async with db.engine.connect() as conn:
            columns = {row.column_name: row for row in await conn.execute(text(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name IN ('patients', 'processed_updates')"))}
            version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        assert columns["processed_at"].data_type == "timestamp with time zone"
        assert columns["update_id"].data_type == "bigint"
        assert columns["telegram_user_id"].data_type == "bigint"
        from alembic.script import ScriptDirectory

        assert version == ScriptDirectory.from_config(alembic_config(pg_url)).get_current_head()

        await downgrade(db, "base")
        async with db.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: c.dialect.get_table_names(c))
        assert set(tables) <= {"alembic_version"}
        await upgrade(db)
        assert await processed_updates.claim(db, 1, T0) is True
        assert await processed_updates.claim(db, 1, T0) is False
        async with db.session() as session:
            stored = await session.scalar(select(ProcessedUpdate.processed_at))
        assert stored == T0 and stored.utcoffset() is not None
    finally:
        await db.dispose()


async def test_concurrent_start_up_migrates_once(pg_url: str):
    """Several instances starting together on an empty database: one migrates, none fails."""
    dbs = [Database(pg_url) for _ in range(4)]
    try:
        await asyncio.gather(*(upgrade(db) for db in dbs))
        async with dbs[0].engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    finally:
        for db in dbs:
            await db.dispose()


async def test_foundation_end_to_end_on_postgresql(fake: FakeBotAPI, pg_url: str):
    runner = BotRunner(fake, make_settings(fake, pg_url))
    await runner.start()
    try:
        patient = TgUser(runner, first_name="Zoë <b>")
        shown = await patient.send("/start")
        assert len(shown) == 1 and "Hello, Zoë &lt;b&gt;!" in shown[0].text
        labels = patient.labels(shown[0])
        assert "Uses of Mesotherapy" in labels
        shown = await patient.press("Uses of Mesotherapy")
        assert shown and shown[0].message_id == patient.fake.last_message(patient.id).message_id
        shown = await patient.press("‹ Back")
        assert patient.labels(shown[0]) == labels
        await runner.restart()
        shown = await patient.send("/menu")
        assert "Uses of Mesotherapy" in patient.labels(shown[0])
        db = runner.app.bot_data["services"].db
        assert db.dialect == "postgresql"
        async with db.session() as session:
            stored = await session.scalar(select(Patient).where(Patient.telegram_user_id == patient.id))
        assert stored is not None and stored.first_name == "Zoë <b>"
        assert stored.created_at.utcoffset() is not None
    finally:
        await runner.stop()


async def test_two_instances_on_one_database_share_the_work(fake: FakeBotAPI, pg_url: str):
    settings = webhook_settings(fake, pg_url)
    async with webhook_instance(settings) as a, webhook_instance(settings) as b:
        # Any instance answers any update: a patient's updates alternate between them and the
        # conversation carries on (no state in memory).
        assert await a.post(text_update(fake, 7201, "/start")) == 200
        assert await b.post(press_update(fake, 7201, "Uses of Mesotherapy")) == 200
        assert await a.post(press_update(fake, 7201, "‹ Back")) == 200
        assert await b.post(text_update(fake, 7201, "/help")) == 200
        assert len(fake.calls_to("sendMessage", chat_id=7201)) == 2
        assert len(fake.calls_to("editMessageText", chat_id=7201)) == 2
        assert len(fake.calls_to("answerCallbackQuery")) == 2

        # Telegram delivers one update to both instances at once: it is processed once.
        for n in range(5):
            update = text_update(fake, 7300 + n, "/start")
            await asyncio.gather(a.post(update), b.post(update))
            assert len(fake.calls_to("sendMessage", chat_id=7300 + n)) == 1

        # Many patients spread over both instances at once: everyone answered exactly once.
        updates = [text_update(fake, 7400 + n, "/start") for n in range(20)]
        await asyncio.gather(*((a if n % 2 else b).post(u) for n, u in enumerate(updates)))
        for n in range(20):
            assert len(fake.calls_to("sendMessage", chat_id=7400 + n)) == 1
        async with a.db.session() as session:
            patients = await session.scalar(select(func.count()).select_from(Patient))
        assert patients == 1 + 5 + 20


async def test_a_new_patient_hitting_two_instances_at_once_is_answered_twice(fake: FakeBotAPI,
                                                                            pg_url: str):
    """Two different updates from one brand-new patient race to create the patient row."""
    settings = webhook_settings(fake, pg_url)
    async with webhook_instance(settings) as a, webhook_instance(settings) as b:
        for n in range(10):
            chat = 7500 + n
            await asyncio.gather(a.post(text_update(fake, chat, "/start")),
                                 b.post(text_update(fake, chat, "/start")))
            sent = fake.calls_to("sendMessage", chat_id=chat)
            assert len(sent) == 2 and all("Hello, Anna!" in c.params["text"] for c in sent)
        async with a.db.session() as session:
            assert await session.scalar(select(func.count()).select_from(Patient)) == 10


async def test_connections_killed_by_the_server_are_replaced(fake: FakeBotAPI, pg_url: str,
                                                            caplog):
    """PostgreSQL restarts or a failover drop every pooled connection: the next update works."""
    import logging

    import asyncpg

    from tests.scale_helpers import PG_ADMIN_DSN

    # No periodic dispatch: its tick meeting the killed connections would log a warning too.
    runner = BotRunner(fake, make_settings(fake, pg_url), periodic_dispatch=False)
    await runner.start()
    try:
        patient = TgUser(runner)
        assert "Hello, Anna!" in (await patient.send("/start"))[0].text
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()", pg_url.rsplit("/", 1)[1])
        finally:
            await admin.close()
        assert killed >= 1
        caplog.clear()  # only what this update logs: not the start's warnings (clinic_contact)
        with caplog.at_level(logging.WARNING):
            shown = await patient.send("/start")
        assert "Hello, Anna!" in shown[0].text
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    finally:
        await runner.stop()


async def test_one_patients_quick_taps_on_two_instances_both_count(fake: FakeBotAPI, pg_url: str):
    """After a backlog Telegram delivers a patient's taps back to back, and the balancer may
    give them to two instances at once. Each step reads and rewrites the encrypted answers:
    without a lock on the patient the second would overwrite the first's tick."""
    from bot.db.intake_models import Intake

    settings = webhook_settings(fake, pg_url)
    async with webhook_instance(settings) as a, webhook_instance(settings) as b:
        flow = a.app.bot_data["services"].intake
        for n in range(5):
            chat = 7600 + n
            assert await a.post(text_update(fake, chat, "/start")) == 200
            assert await a.post(press_update(fake, chat, "📝 Book a consultation")) == 200
            assert await a.post(press_update(fake, chat, "✅ I agree")) == 200
            taps = [press_update(fake, chat, "▫️ Facial rejuvenation"),
                    press_update(fake, chat, "▫️ Hair restoration")]
            # Both taps arrive while the patient is busy (a third transaction holds their row):
            # they must queue behind it, then each other, not race.
            async with a.db.session() as busy:
                await busy.execute(select(Patient.id).where(Patient.telegram_user_id == chat)
                                   .with_for_update(key_share=True))
                both = asyncio.gather(a.post(taps[0]), b.post(taps[1]))
                await until_one_waits_on_a_lock(a.db, "a tap")
            await both
            async with a.db.session() as session:
                patient = await session.scalar(select(Patient).where(
                    Patient.telegram_user_id == chat))
                row = await session.scalar(select(Intake).where(Intake.patient_id == patient.id))
                state = flow._load(row)
            assert sorted(state.draft.get("goal", [])) == ["face", "hair"], (n, state.draft)


async def test_a_double_tap_on_cancel_handled_by_two_instances_tells_staff_once(fake: FakeBotAPI,
                                                                              pg_url: str):
    import re
    from datetime import date, timedelta

    from bot.db.appointment_models import Appointment

    settings = webhook_settings(fake, pg_url)
    async with webhook_instance(settings) as a, webhook_instance(settings) as b:
        for n in range(3):
            chat = 7700 + n
            assert await a.post(text_update(fake, chat, "/start")) == 200
            day = date.today() + timedelta(days=30 + n)  # these instances run on the wall clock
            assert await a.post(text_update(fake, 42, f"/book {chat} {day:%Y-%m-%d} 10:00 60 face")) == 200
            booked = fake.calls_to("sendMessage", chat_id=42)[-1].params["text"]
            appt = int(re.search(r"Booked appointment #(\d+)", booked).group(1))
            assert await a.post(text_update(fake, chat, "/menu")) == 200
            assert await a.post(press_update(fake, chat, "📅 My appointments")) == 200
            assert await a.post(press_update(fake, chat, "❌ Cancel")) == 200
            yes = press_update(fake, chat, "Yes, cancel it")
            twice = dict(yes, update_id=fake.next_update_id())  # two taps: two updates
            async with a.db.session() as busy:  # both arrive while the appointment is busy
                await busy.execute(select(Appointment.id).where(Appointment.id == appt)
                                   .with_for_update())
                both = asyncio.gather(a.post(yes), b.post(twice))
                await until_one_waits_on_a_lock(a.db, "a tap")
            await both
            told = [c for c in fake.calls_to("sendMessage", chat_id=42)
                    if f"cancelled appointment #{appt}" in c.params["text"]]
            assert len(told) == 1, n


async def test_double_taps_on_two_instances_erase_once_and_save_both_settings(fake: FakeBotAPI,
                                                                              pg_url: str):
    from datetime import date, timedelta

    from bot.db.privacy_models import AuditEvent
    from bot.preferences import load

    settings = webhook_settings(fake, pg_url)
    async with webhook_instance(settings) as a, webhook_instance(settings) as b:
        # A patient's first two settings taps (no settings row yet), one on each instance.
        chat = 7800
        assert await a.post(text_update(fake, chat, "/settings")) == 200
        await asyncio.gather(a.post(press_update(fake, chat, "✅ Aftercare message")),
                             b.post(press_update(fake, chat, "✅ How-do-you-feel check-in")))
        async with a.db.session() as session:
            patient = await session.scalar(select(Patient).where(Patient.telegram_user_id == chat))
            assert (await load(session, patient.id)).disabled == {"aftercare", "checkin"}
        assert not any("went wrong" in c.params["text"] for c in fake.calls_to("sendMessage", chat))

        # /forget, then "Yes" twice: erased once, staff told once that the slot is free.
        day = date.today() + timedelta(days=30)  # these instances run on the wall clock
        assert await a.post(text_update(fake, 42, f"/book {chat} {day:%Y-%m-%d} 10:00 60 face")) == 200
        assert await a.post(text_update(fake, chat, "/forget")) == 200
        yes = press_update(fake, chat, "🗑 Yes")
        async with a.db.session() as busy:  # both taps arrive while the patient row is busy
            await busy.execute(select(Patient.id).where(Patient.telegram_user_id == chat)
                               .with_for_update())
            both = asyncio.gather(a.post(yes), b.post(dict(yes, update_id=fake.next_update_id())))
            await until_one_waits_on_a_lock(a.db, "a Yes")
        await both
        freed = [c for c in fake.calls_to("sendMessage", chat_id=42) if "/forget" in c.params["text"]]
        assert len(freed) == 1
        async with a.db.session() as session:
            erasures = await session.scalar(select(func.count()).select_from(AuditEvent)
                                            .where(AuditEvent.action == "erasure"))
        assert erasures == 1


async def test_a_patients_first_two_settings_changes_at_once_both_count(migrated_pg_db):
    """No settings row yet, two toggles in two transactions (two instances): the second waits
    for the first's row instead of failing on its primary key."""
    from datetime import UTC, datetime

    from bot import patients
    from bot.preferences import load, toggle_kind

    db, now = migrated_pg_db, datetime(2026, 5, 1, 9, tzinfo=UTC)
    async with db.session() as session:
        patient = await patients.upsert_from_telegram(
            session, user_id=7, chat_id=7, first_name="P", language_code=None, now=now)

    async def second_instance() -> None:
        async with db.session() as session:
            await toggle_kind(session, patient.id, "checkin", now)

    async with db.session() as session:
        await toggle_kind(session, patient.id, "aftercare", now)  # inserts the row, not committed
        second = asyncio.create_task(second_instance())
        await until_one_waits_on_a_lock(db, "the second change")
    await second
    async with db.session() as session:
        assert (await load(session, patient.id)).disabled == {"aftercare", "checkin"}


async def test_an_erasure_and_a_request_on_the_same_patient_do_not_deadlock(migrated_pg_db):
    """A request press holds the appointment, then inserts a question (which checks the patient
    key); /forget holds the patient, then deletes the appointments. With FOR UPDATE on the
    patient the two deadlock; FOR NO KEY UPDATE lets the insert through, then the erasure."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import delete

    from bot import patients, questions
    from bot.crypto import CryptoBox
    from bot.db.appointment_models import Appointment
    from bot.db.qa_models import RESCHEDULE
    from tests.conftest import TEST_ENCRYPTION_KEY

    db, now = migrated_pg_db, datetime(2026, 5, 1, 9, tzinfo=UTC)
    async with db.session() as session:
        patient = await patients.upsert_from_telegram(
            session, user_id=7, chat_id=7, first_name="P", language_code=None, now=now)
        session.add(Appointment(id=1, patient_id=patient.id, starts_at=now + timedelta(days=3),
                                duration_min=30, area="face", created_at=now, updated_at=now))

    async def forget() -> None:
        async with db.session() as session:
            assert await patients.by_telegram_id(session, 7, lock=True) is not None
            await session.execute(delete(Appointment).where(Appointment.patient_id == patient.id))

    async with db.session() as session:  # the request press
        appt = await session.scalar(select(Appointment).where(Appointment.id == 1)
                                    .with_for_update(of=Appointment))
        erasure = asyncio.create_task(forget())
        await until_one_waits_on_a_lock(db, "the erasure")  # on the appointment
        await questions.record_request(session, patient.id, appt.id, RESCHEDULE, "move it", now,
                                       CryptoBox([TEST_ENCRYPTION_KEY]))
    await erasure  # no DeadlockDetectedError on either side


async def test_two_previews_sent_at_once_queue_one_broadcast_without_a_deadlock(migrated_pg_db):
    """Send under two previews of one broadcast, tapped at once (two instances): one is queued,
    the other told it is no longer open; neither fails with a database error."""
    from zoneinfo import ZoneInfo

    from bot import console
    from bot.db.preference_models import Broadcast

    now, tz = datetime(2026, 3, 2, 10, 0, tzinfo=UTC), ZoneInfo("Europe/London")
    for _ in range(3):
        async with migrated_pg_db.session() as session:
            draft = await console.start_draft(session, 42, 42, "tomorrow", now)
            first = await console.preview(session, draft, "first")
            second = await console.preview(session, first, "second")
            ids = first.id, second.id

        async def send(broadcast_id: int) -> int | None:
            async with migrated_pg_db.session() as session:
                return await console.queue(session, broadcast_id, 42, now, tz)

        results = await asyncio.gather(*(send(i) for i in ids))
        assert sorted(results, key=lambda r: r is None) == [0, None]
        async with migrated_pg_db.session() as session:
            statuses = sorted((await session.scalars(select(Broadcast.status).where(
                Broadcast.id.in_(ids)))).all())
        assert statuses == ["cancelled", "queued"]


async def test_lock_wait_helper_sees_a_wait_that_begins_after_its_first_poll(migrated_pg_db):
    """The helper the two-instance tests rely on: its first poll comes before the wait begins
    (as in a busy CI run), and it must still see the wait when it comes."""
    db = migrated_pg_db
    async with db.session() as session:
        session.add(Patient(telegram_user_id=1, chat_id=1, first_name="P",
                            created_at=T0, last_seen_at=T0))

    async def late_writer() -> None:
        await asyncio.sleep(0.3)  # the helper has polled a few times by now
        async with db.session() as session:
            await session.execute(text("UPDATE patients SET first_name = 'Q'"))

    waiter = None
    try:
        async with db.session() as session:
            await session.execute(text("UPDATE patients SET first_name = 'R'"))  # holds the row
            waiter = asyncio.create_task(late_writer())
            await until_one_waits_on_a_lock(db, "the late writer")
    finally:
        if waiter is not None:
            await waiter


async def test_an_erasure_takes_a_question_recorded_at_that_moment_too(migrated_pg_db):
    """Two instances: the patient's "I have a concern" press is being recorded (instance 1)
    while "Yes, delete my data" runs (instance 2). The question, invisible to the erasure's
    first deletes, must not stay behind on the erased record, out of /mydata's reach."""
    from bot import patients, questions
    from bot.crypto import CryptoBox
    from bot.db.qa_models import Question
    from bot.privacy import DataSection, PrivacyRegistry
    from tests.conftest import TEST_ENCRYPTION_KEY

    db, now = migrated_pg_db, datetime(2026, 5, 1, 9, tzinfo=UTC)
    registry = PrivacyRegistry()
    registry.register(DataSection("questions", lambda session, patient: None, questions.erase_for,
                                  ("questions", "staff_reply_targets")))
    async with db.session() as session:
        await patients.upsert_from_telegram(session, user_id=7, chat_id=7, first_name="P",
                                            language_code=None, now=now)

    async def forget() -> None:
        async with db.session() as session:
            patient = await patients.by_telegram_id(session, 7, lock=True)
            await registry.erase(session, patient, now=now)

    async with db.session() as session:  # the concern press, on the other instance
        patient = await patients.upsert_from_telegram(session, user_id=7, chat_id=7,
                                                      first_name="P", language_code=None, now=now)
        await questions.record_request(session, patient.id, 7, "concern", "my lips are swollen",
                                       now, CryptoBox([TEST_ENCRYPTION_KEY]))
        erasure = asyncio.create_task(forget())
        await until_one_waits_on_a_lock(db, "the erasure")  # on the patient's key
    await asyncio.wait_for(erasure, 10)
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Question)) == 0
        assert await session.scalar(select(Patient.erased_at)) is not None
