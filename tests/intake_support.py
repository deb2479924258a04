"""Helpers for intake tests: a fixed clock, scripted answers, and reading what the bot showed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bot.clock import FixedClock
from tests.fake_bot_api import StoredMessage
from tests.harness import BotRunner, TgUser

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
MENU_BUTTON = "📝 Book a consultation"


def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture(name="runner")
async def intake_runner(fake, settings) -> AsyncIterator[BotRunner]:
    """`runner`, the bot on the intake tests' clock, in a test module that imports it."""
    bot_runner = BotRunner(fake, settings, clock=clock())
    await bot_runner.start()
    yield bot_runner
    await bot_runner.stop()


def reply_keyboard(message: StoredMessage | None) -> dict | None:
    markup = (message.reply_markup or {}) if message else {}
    return markup if "keyboard" in markup else None


def current_question(user: TgUser) -> str:
    """The text of the latest message with inline buttons or a reply keyboard."""
    chat = user.fake.messages.get(user.id) or {}
    for message_id in sorted(chat, reverse=True):
        markup = chat[message_id].reply_markup or {}
        if markup.get("inline_keyboard") or markup.get("keyboard"):
            return chat[message_id].text
    return ""


async def open_intake(user: TgUser) -> list[StoredMessage]:
    await user.send("/start")
    return await user.press(MENU_BUTTON)


async def agree(user: TgUser) -> list[StoredMessage]:
    shown = await open_intake(user)
    assert "your consent" in shown[-1].text
    return await user.press("✅ I agree")


async def toggle_done(user: TgUser, *labels: str) -> list[StoredMessage]:
    for label in labels:
        await user.press("▫️ " + label)
    return await user.press("Done ✓")


async def answer_until_phone(user: TgUser, allergy: str = "Penicillin: I had a rash",
                             medicine: str = "Warfarin 5 mg daily", goal: bool = True) -> None:
    if goal:
        await toggle_done(user, "Facial rejuvenation", "Hair restoration")
    await toggle_done(user, "Face", "Scalp")
    await user.press("No, never")
    await user.press("Yes")  # allergies
    await user.send(allergy)
    await user.press("Yes, blood thinners")
    await user.send(medicine)
    await user.press("No")  # pregnancy
    await user.press("No")  # skin
    await user.press("No")  # chronic
    assert "phone number" in current_question(user)


async def finish_after_phone(user: TgUser) -> list[StoredMessage]:
    await toggle_done(user, "Weekday mornings")
    await user.send("15/01/2027")
    return await user.press("Skip ›")  # notes -> review


async def complete(user: TgUser, phone: str = "+447911123456", **kwargs: str) -> list[StoredMessage]:
    """From a fresh chat to the review screen."""
    await agree(user)
    await answer_until_phone(user, **kwargs)
    await user.send_contact(phone)
    return await finish_after_phone(user)


async def seed_questionnaire(db, box, at: datetime, allergies: str) -> None:  # noqa: ANN001
    """Patient 1 (Telegram 111), their consent and an open questionnaire (intake 1) whose one
    answer is `allergies`, all written at `at`, straight into the database."""
    from bot.db.intake_models import Intake, IntakeConsent
    from bot.db.models import Patient

    async with db.session() as session:
        session.add(Patient(id=1, telegram_user_id=111, chat_id=111, created_at=at,
                            last_seen_at=at))
        await session.flush()
        session.add(IntakeConsent(id=1, patient_id=1, version="v1", text_sha256="0" * 64,
                                  agreed_at=at))
        await session.flush()
        session.add(Intake(id=1, patient_id=1, consent_id=1, status="active", stage="question",
                           data=box.encrypt_json({"answers": {"allergies": allergies},
                                                  "draft": {}}, context="intake:1"),
                           created_at=at, updated_at=at))
