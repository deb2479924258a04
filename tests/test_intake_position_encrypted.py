"""The question a questionnaire waits for is kept encrypted with the answers: a follow-up's id
("allergies_detail") beside the patient id would say in clear that they answered Yes to
allergies. Migration 0013 drops the column that held it; a questionnaire open at the upgrade
goes on at its first unanswered question."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from bot.crypto import CryptoBox
from bot.db.engine import Database
from bot.db.migrate import downgrade, upgrade
from tests.conftest import TEST_ENCRYPTION_KEY, sql
from tests.fake_bot_api import StoredMessage
from tests.harness import BotRunner, TgUser
from tests.intake_support import (
    NOW,
    agree,
    clock,
    current_question,
    intake_runner,  # noqa: F401 - the `runner` fixture
    toggle_done,
)

BEFORE = "0012_red_flag_marker"  # the last revision with intakes.current
FOLLOW_UPS = (b"allergies_detail", b"medications_detail", b"chronic_detail")


def on_disk(db_url: str) -> bytes:
    """The database as it lies on disk: the file and its WAL."""
    path = Path(db_url.split("///", 1)[1])
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


async def test_an_open_follow_up_question_is_not_stored_in_clear_and_resumes(
        runner, patient, db_url):
    await agree(patient)
    await toggle_done(patient, "Facial rejuvenation")
    await toggle_done(patient, "Face")
    await patient.press("No, never")
    await patient.press("Yes")  # allergies: the follow-up is now open
    assert "allergic to" in current_question(patient)
    await runner.stop()  # checkpoint and close: everything is on disk
    raw = on_disk(db_url)
    assert b"intakes" in raw  # the table is there ...
    for follow_up in FOLLOW_UPS:  # ... and no follow-up's id in it, nor anywhere else
        assert follow_up not in raw, follow_up
    assert "current" not in [row[1] for row in sql(db_url, "PRAGMA table_info(intakes)")]

    await runner.start()  # the position is read back from the encrypted data
    shown = await patient.send("Latex")
    assert "medicines" in shown[-1].text.lower()
    await patient.press("No")
    await patient.press("No")  # pregnancy
    await patient.press("No")  # skin
    await patient.press("Yes")  # chronic: another follow-up
    await runner.stop()
    for follow_up in FOLLOW_UPS:
        assert follow_up not in on_disk(db_url), follow_up
    await runner.start()
    shown = await patient.send("Asthma")
    assert "phone number" in shown[-1].text


async def _seed_before_0013(db: Database, answers: dict | None = None,
                            current: str = "allergies_detail") -> None:
    """A questionnaire open at `current`, as the code before 0013 stored it."""
    box = CryptoBox([TEST_ENCRYPTION_KEY])
    if answers is None:
        answers = {"goal": ["face"], "areas": ["face"], "previous": "none", "allergies": "yes"}
    await upgrade(db, BEFORE)
    async with db.session() as session:
        await session.execute(text(
            "INSERT INTO patients (id, telegram_user_id, chat_id, first_name, created_at, "
            "last_seen_at) VALUES (1, 1001, 1001, 'Anna', :now, :now)"), {"now": NOW})
        await session.execute(text(
            "INSERT INTO intake_consents (id, patient_id, version, text_sha256, agreed_at) "
            "VALUES (1, 1, :version, :sha, :now)"),
            {"now": NOW, "version": "2026-11-24", "sha": "0" * 64})
        await session.execute(text(
            "INSERT INTO intakes (id, patient_id, consent_id, status, stage, current, data, "
            "created_at, updated_at) VALUES (1, 1, 1, 'active', 'question', "
            ":current, :data, :now, :now)"),
            {"now": NOW, "current": current,
             "data": box.encrypt_json({"answers": answers, "draft": {}}, context="intake:1")})


async def _columns(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return {c["name"] for c in await conn.run_sync(
            lambda sync: inspect(sync).get_columns("intakes"))}


async def _check_migration(url: str) -> None:
    db = Database(url)
    try:
        await _seed_before_0013(db)
        assert "current" in await _columns(db)
        await upgrade(db)
        assert "current" not in await _columns(db)
        await downgrade(db, BEFORE)
        assert "current" in await _columns(db)
        async with db.session() as session:  # the old code then starts at the first unanswered
            assert await session.scalar(text("SELECT current FROM intakes")) is None
        await upgrade(db)
        assert "current" not in await _columns(db)
    finally:
        await db.dispose()


async def test_migration_drops_the_column_up_down_up(db_url):
    await _check_migration(db_url)


@pytest.mark.postgres
async def test_migration_drops_the_column_up_down_up_on_postgresql(pg_url):
    await _check_migration(pg_url)


async def _started(fake, settings, **seed) -> BotRunner:
    db = Database(settings.database_url)
    await _seed_before_0013(db, **seed)
    await db.dispose()
    bot_runner = BotRunner(fake, settings, clock=clock())
    await bot_runner.start()  # migrates to head
    return bot_runner


# Open at the medicines' details before 0013, with "Other" among the areas: a question that did
# not exist then ("Which other areas?") is now the first unanswered one.
BEFORE_OTHER_AREAS = {"goal": ["face"], "areas": ["face", "other"], "previous": "none",
                      "allergies": "no", "medications": "blood_thinners"}


async def test_a_reply_typed_to_a_questionnaire_open_at_the_upgrade_is_never_misfiled(
        fake, settings):
    bot_runner = await _started(fake, settings, answers=BEFORE_OTHER_AREAS,
                                current="medications_detail")
    try:
        anna = TgUser(bot_runner, first_name="Anna", user_id=1001)
        shown = await anna.send("Warfarin 5 mg daily")  # to "Which medicines?" on their screen
        assert "Which other areas" in shown[-1].text  # shown, not answered with the medicine
        shown = await anna.send("Knees")
        assert "Which medicines" in shown[-1].text
        await anna.send("Warfarin 5 mg daily")
        for _ in range(3):
            await anna.press("No")  # pregnancy, skin, chronic
        await anna.send("07911 123456")
        await toggle_done(anna, "Weekday mornings")
        await anna.send("15/01/2027")
        review = (await anna.press("Skip ›"))[-1].text
        assert "Please check your answers" in review
        assert re.search(r"Other areas.*Knees", review) and "Warfarin 5 mg daily" in review
        assert not re.search(r"Other areas[^\n]*Warfarin", review)
    finally:
        await bot_runner.stop()


async def test_a_button_pressed_on_a_question_shown_before_the_upgrade_answers_it(fake, settings):
    answers = {"goal": ["face"], "areas": ["face"], "previous": "none", "allergies": "no"}
    bot_runner = await _started(fake, settings, answers=answers, current="medications")
    try:
        anna = TgUser(bot_runner, first_name="Anna", user_id=1001)
        # The medicines question as the bot sent it before the upgrade.
        shown_before = StoredMessage(
            message_id=7, chat_id=anna.id, date=0,
            text="<b>Are you taking any medicines at the moment?</b>",
            reply_markup={"inline_keyboard": [[{"text": "No",
                                                "callback_data": "ik:1:a:medications:none"}]]})
        fake.messages.setdefault(anna.id, {})[7] = shown_before
        shown = await anna.press("No", shown_before)
        assert "pregnant" in shown[-1].text  # answered, on to the next question
    finally:
        await bot_runner.stop()


@pytest.mark.postgres
async def test_on_postgresql_the_dropped_values_leave_the_disk_with_the_next_vacuum(pg_url):
    """PostgreSQL's DROP COLUMN only hides a column: the values are cleared first, so once
    VACUUM removed the old row versions no follow-up's id is left in the table's file."""
    db = Database(pg_url)
    try:
        await _seed_before_0013(db)
        await upgrade(db)
        async with db.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM intakes"))
            await conn.execute(text("CHECKPOINT"))  # the pages on disk, as a backup copies them
            raw = await conn.scalar(text(
                "SELECT pg_read_binary_file(pg_relation_filepath('intakes'))"))
        assert len(raw) >= 8192  # one page at least: the row is there
        for follow_up in FOLLOW_UPS:
            assert follow_up not in raw, follow_up
    finally:
        await db.dispose()
