"""The database unreachable: patients are told to try again shortly, nothing crashes, and the bot
carries on by itself once the database is back."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from telegram import Update
from telegram.ext import ApplicationHandlerStop, CallbackQueryHandler, ContextTypes

from bot.db.errors import is_db_unavailable
from bot.db.models import Patient
from tests.harness import BotRunner, TgUser
from tests.scale_helpers import Sabotage

TRY_AGAIN = "briefly unavailable"


def test_outages_are_told_apart_from_bugs():
    refused = ConnectionRefusedError(111, "Connect call failed")
    assert is_db_unavailable(refused)
    assert is_db_unavailable(TimeoutError())
    assert is_db_unavailable(OperationalError("SELECT 1", {}, Exception("database is locked")))
    try:
        try:
            raise refused
        except OSError as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as wrapped:
        assert is_db_unavailable(wrapped)
    assert not is_db_unavailable(ValueError("a bug"))
    assert not is_db_unavailable(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not is_db_unavailable(None)


async def test_start_while_the_database_is_down(runner: BotRunner, patient: TgUser,
                                                caplog: pytest.LogCaptureFixture):
    db = runner.app.bot_data["services"].db
    async with Sabotage(db) as outage:
        with caplog.at_level(logging.WARNING):
            shown = await patient.send("/start")
        assert len(shown) == 1
        assert TRY_AGAIN in shown[0].text and "went wrong" not in shown[0].text
        # The menus need no database, so the patient can still read while waiting.
        assert "Uses of Mesotherapy" in patient.labels(shown[0])
        shown = await patient.press("Uses of Mesotherapy")
        assert shown and TRY_AGAIN not in shown[0].text
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert any("database unavailable" in r.getMessage() for r in caplog.records)
        await outage.restore()
        shown = await patient.send("/start")
        assert "Hello, Anna!" in shown[0].text
    async with db.session() as session:
        assert await session.scalar(select(Patient.chat_id).where(Patient.telegram_user_id == patient.id)) \
            == patient.id


async def test_a_button_that_needs_the_database_while_it_is_down(runner: BotRunner, patient: TgUser):
    """A feature button (as intake's are) reading the DB: the press is answered, nothing hangs."""
    seen: list[int] = []

    async def probe(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        async with context.application.bot_data["services"].db.session() as session:
            seen.append(await session.scalar(text("SELECT 1")))
        await update.callback_query.answer("ok")
        raise ApplicationHandlerStop

    runner.app.add_handler(CallbackQueryHandler(probe, pattern=r"^probe$"), group=-1)
    await patient.send("/start")
    menu_message = patient.last_keyboard_message()
    db = runner.app.bot_data["services"].db
    async with Sabotage(db) as outage:
        for _ in range(3):  # pressing again and again during the outage
            answered_before = len(runner.fake.calls_to("answerCallbackQuery"))
            shown = await patient.press_data("probe", menu_message)
            assert len(runner.fake.calls_to("answerCallbackQuery")) == answered_before + 1
            assert len(shown) == 1 and TRY_AGAIN in shown[0].text
        assert seen == []
        await outage.restore()
        shown = await patient.press_data("probe", menu_message)
        assert seen == [1] and shown == []
    assert runner.app.running


async def test_an_outage_under_traffic_leaves_the_bot_running(runner: BotRunner,
                                                              caplog: pytest.LogCaptureFixture):
    patients = [TgUser(runner, first_name=f"P{n}") for n in range(10)]
    db = runner.app.bot_data["services"].db
    with caplog.at_level(logging.WARNING):
        async with Sabotage(db):
            for person in patients:
                shown = await person.send("/start")
                assert len(shown) == 1 and TRY_AGAIN in shown[0].text
                shown = await person.send("hello?")
                assert len(shown) == 1  # free text needs no database: answered normally
        for person in patients:
            shown = await person.send("/start")
            assert f"Hello, {person.user['first_name']}!" in shown[0].text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert runner.app.running and runner.app.updater.running


async def test_a_failing_feature_handler_is_answered_once(runner: BotRunner, patient: TgUser,
                                                         caplog: pytest.LogCaptureFixture):
    """A bug in a group -1 handler: one apology, and the fallback does not answer as well."""

    async def broken(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        raise KeyError("bug")

    from telegram.ext import MessageHandler, filters

    runner.app.add_handler(MessageHandler(filters.Regex("^boom$"), broken), group=-1)
    with caplog.at_level(logging.ERROR):
        shown = await patient.send("boom")
    assert [m.text for m in shown] == [runner.app.bot_data["services"].messages.get("error")]
    assert any("handler failed" in r.getMessage() for r in caplog.records)
