"""A question opened from the review with Edit goes back to the review unchanged, and Cancel
of a questionnaire with answers asks first (one tap used to delete every answer)."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.db.intake_models import Intake
from tests.harness import BotRunner, TgUser
from tests.intake_support import (
    complete,
    intake_runner,  # noqa: F401 - the `runner` fixture: the bot on the intake tests' clock
    reply_keyboard,
)


async def _count(runner: BotRunner) -> int:
    svc = runner.app.bot_data["services"]
    async with svc.db.session() as session:
        return await session.scalar(select(func.count()).select_from(Intake))


async def test_edit_goal_from_the_review_offers_back_to_review_and_keeps_the_answer(runner):
    patient = TgUser(runner, "Anna")
    await complete(patient)
    shown = await patient.press("✏️ Goal")
    labels = patient.labels(shown[-1])
    # Question 1 used to show only "✖️ Cancel": one tap deleted all 14 answers.
    assert "‹ Back to review" in labels
    assert "✖️ Cancel" not in labels and "‹ Back" not in labels
    await patient.press("▫️ Cellulite")  # ticked, then thought better of it
    shown = await patient.press("‹ Back to review")
    review = shown[-1].text
    assert "Please check your answers" in review
    assert "Facial rejuvenation, Hair restoration" in review and "Cellulite" not in review
    assert await _count(runner) == 1
    # Submit still sends the unchanged answers.
    shown = await patient.press("📨 Submit")
    assert "Thank you" in shown[0].text


async def test_edit_phone_from_the_review_has_a_back_to_review_key(fake, runner):
    patient = TgUser(runner, "Anna")
    await complete(patient, phone="+447911123456")
    await patient.press("✏️ Phone")
    keyboard = reply_keyboard(fake.last_message(patient.id))
    keys = [button["text"] for row in keyboard["keyboard"] for button in row]
    assert keys == ["📱 Share my phone number", "‹ Back to review"]
    shown = await patient.send("‹ Back to review")  # the key sends its label as text
    assert shown[0].reply_markup == {"remove_keyboard": True}
    assert "Please check your answers" in shown[-1].text and "+44 7911 123456" in shown[-1].text
    assert await _count(runner) == 1


async def test_cancel_with_answers_asks_first_and_no_goes_on(runner):
    patient = TgUser(runner, "Anna")
    await complete(patient)
    shown = await patient.press("✖️ Cancel")  # on the review
    assert "will be deleted" in shown[-1].text
    assert patient.labels(shown[-1]) == ["✖️ Yes, stop", "‹ No, go on"]
    assert await _count(runner) == 1
    shown = await patient.press("‹ No, go on")
    assert "Please check your answers" in shown[-1].text
    assert await _count(runner) == 1
    await patient.send("/cancel")  # the command asks too
    assert await _count(runner) == 1
    shown = await patient.press("✖️ Yes, stop")
    assert "Cancelled" in shown[0].text
    assert await _count(runner) == 0
