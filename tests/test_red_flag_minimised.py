"""Data minimisation of red flags: a question's row says only that it raised a red flag
(bot.questions.FLAGGED), never which one ("allergic_reaction" beside the patient id is health
data in clear). Staff still read the category in the alert, the first time and when alerted
again (found again in the decrypted message); /stats still counts red flags; migration 0012
replaces the categories stored before."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.clock import FixedClock
from bot.crypto import CryptoBox
from bot.db.engine import Database
from bot.db.migrate import downgrade, upgrade
from tests.conftest import TEST_ENCRYPTION_KEY
from tests.harness import BotRunner, TgUser

STAFF_ID = 42
URGENT = "My lips are swelling up and my throat feels tight"
CATEGORIES = ("allergic_reaction", "infection", "severe_pain", "circulation", "unwell")
BEFORE = "0011_appointment_import_key"  # the last revision that stored categories
MARKER = "flagged"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 5, 4, 10, 0, tzinfo=UTC))


@pytest.fixture
def runner(rr: BotRunner) -> BotRunner:
    return rr  # conftest's bot on this module's clock, periodic dispatch paused


@pytest.fixture
def db_path(db_url: str) -> Path:
    return Path(db_url.split("///", 1)[1])


def staff_texts(fake) -> list[str]:
    return [c.params["text"] for c in fake.calls_to("sendMessage", STAFF_ID)]


async def run_alert_job(runner: BotRunner) -> None:
    [job] = runner.app.job_queue.get_jobs_by_name("question-alerts")
    await job.run(runner.app)


def stored_bytes(db_path: Path) -> bytes:
    """The database as it lies on disk: the file and its WAL."""
    return b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))


async def red_flag_column(db: Database) -> list[str | None]:
    async with db.session() as session:
        return list((await session.scalars(text(
            "SELECT red_flag FROM questions ORDER BY id"))).all())


async def test_an_urgent_message_stores_no_red_flag_category(fake, runner, db_path):
    patient = TgUser(runner, first_name="Anna")
    shown = await patient.send(URGENT)
    assert "Please get help now" in shown[0].text
    [alert] = staff_texts(fake)
    assert "URGENT" in alert and "allergic reaction" in alert  # computed, shown, not kept
    svc = runner.app.bot_data["services"]
    assert await red_flag_column(svc.db) == [MARKER]
    async with svc.db.session() as session:
        status = await session.scalar(text("SELECT status FROM questions"))
    assert status == "red_flag"
    on_disk = stored_bytes(db_path)
    for category in CATEGORIES:
        assert category.encode() not in on_disk, category
    assert b"allergic" not in on_disk and b"swelling" not in on_disk


async def test_a_red_flag_alerted_again_still_names_its_category(fake, runner, clock):
    patient = TgUser(runner, first_name="Anna")
    fake.block(STAFF_ID)  # the first alert reaches no staff chat
    shown = await patient.send(URGENT)
    assert "Please get help now" in shown[0].text and staff_texts(fake) == []
    svc = runner.app.bot_data["services"]
    assert await red_flag_column(svc.db) == [MARKER]  # nothing to read the category from
    fake.blocked.discard(STAFF_ID)
    clock.advance(minutes=5)
    await run_alert_job(runner)
    [alert] = staff_texts(fake)
    assert "URGENT #1" in alert and "My lips are swelling up" in alert
    assert "(matched: allergic reaction)" in alert


async def test_weekly_stats_count_a_red_flag_also_after_staff_replied(fake, runner):
    patient = TgUser(runner, first_name="Anna")
    staff = TgUser(runner, "Staff", user_id=STAFF_ID)
    await patient.send(URGENT)
    await patient.send("How much does it cost?")
    await staff.send("/reply 1 Please call 999 now; we will call you too.")
    svc = runner.app.bot_data["services"]
    async with svc.db.session() as session:
        statuses = list((await session.scalars(text(
            "SELECT status FROM questions ORDER BY id"))).all())
    assert statuses[0] == "replied"  # the status no longer says it was a red flag
    assert await red_flag_column(svc.db) == [MARKER, None]
    shown = await staff.send("/stats")
    assert "Questions typed this week: <b>2</b>" in shown[0].text
    assert "urgent (red flags): <b>1</b>" in shown[0].text


async def test_mydata_exports_where_a_question_came_from(fake, runner):
    patient = TgUser(runner, first_name="Anna")
    await patient.send("/start")
    await patient.send(URGENT)
    await patient.send("How much does it cost?")
    shown = await patient.send("/mydata")
    data = json.loads(fake.files[shown[0].document["file_id"]])
    exported = data["questions"]
    assert [q["source"] for q in exported] == ["typed", "typed"]
    assert [q["urgent"] for q in exported] == [True, False]
    assert not any(c in json.dumps(data) for c in CATEGORIES)


async def _seed_before_0012(db: Database, now: datetime) -> None:
    """A database from before 0012: a red flag with its category in clear, an ordinary question."""
    box = CryptoBox([TEST_ENCRYPTION_KEY])
    await upgrade(db, BEFORE)
    async with db.session() as session:
        await session.execute(text(
            "INSERT INTO patients (id, telegram_user_id, chat_id, first_name, created_at, "
            "last_seen_at) VALUES (1, 7, 7, 'Anna', :now, :now)"), {"now": now})
        await session.execute(text(
            "INSERT INTO questions (id, patient_id, text, status, red_flag, created_at, "
            "handed_off_at) VALUES (1, 1, :flagged, 'red_flag', 'allergic_reaction', :now, :now), "
            "(2, 1, :plain, 'unanswered', NULL, :now, NULL)"),
            {"now": now, "flagged": box.encrypt_json(URGENT, context="question:1:text"),
             "plain": box.encrypt_json("How much?", context="question:1:text")})


async def _check_migration(url: str) -> None:
    db = Database(url)
    try:
        await _seed_before_0012(db, datetime(2026, 5, 1, 9, tzinfo=UTC))
        assert await red_flag_column(db) == ["allergic_reaction", None]
        await upgrade(db)
        assert await red_flag_column(db) == [MARKER, None]
        await downgrade(db, BEFORE)  # a no-op: the categories are gone for good
        assert await red_flag_column(db) == [MARKER, None]
        await upgrade(db)
        assert await red_flag_column(db) == [MARKER, None]
    finally:
        await db.dispose()


async def test_migration_replaces_stored_categories_with_the_marker(db_url):
    await _check_migration(db_url)


@pytest.mark.postgres
async def test_migration_replaces_stored_categories_with_the_marker_on_postgresql(pg_url):
    await _check_migration(pg_url)


async def test_a_red_flag_stored_before_the_migration_is_alerted_again_by_category(
        fake, settings, clock, db_path):
    """An unalerted red flag from before 0012: after the upgrade (at start) its row holds the
    marker only, and the alert sent again still names the category."""
    db = Database(settings.database_url)
    await _seed_before_0012(db, clock.now() - timedelta(minutes=10))
    await db.dispose()
    bot_runner = BotRunner(fake, settings, clock=clock, periodic_dispatch=False)
    await bot_runner.start()  # migrates to head
    try:
        svc = bot_runner.app.bot_data["services"]
        assert await red_flag_column(svc.db) == [MARKER, None]
        await run_alert_job(bot_runner)
        [alert] = staff_texts(fake)
        assert re.search(r"URGENT #1\b", alert) and "(matched: allergic reaction)" in alert
    finally:
        await bot_runner.stop()
