"""A quick double tap on "✅ I agree" shows question 1 once."""

from __future__ import annotations

from tests.harness import TgUser
from tests.intake_support import (
    MENU_BUTTON,
    intake_runner,  # noqa: F401 - the `runner` fixture: the bot on the intake tests' clock
)


async def test_a_double_tap_on_agree_shows_question_one_once(fake, runner):
    patient = TgUser(runner, "Anna")
    await patient.send("/start")
    shown = await patient.press(MENU_BUTTON)
    consent = shown[-1]
    first = await patient.press("✅ I agree", consent)
    assert sum("Question 1 of" in m.text for m in first) == 1
    before = len(fake.calls)
    # The second tap arrives with the same (not yet edited) message, as Telegram sends it.
    second = await patient.press_data("ik:cy:2026-11-25", consent)
    # Was: question 1 sent a second time.
    assert not any("Question 1 of" in m.text for m in second)
    toasts = [c.params.get("text") for c in fake.calls[before:] if c.method == "answerCallbackQuery"]
    assert toasts == ["You have already agreed: your questionnaire is open, go on where you stopped."]
    # The questionnaire goes on from the one question 1 shown.
    shown = await patient.press("▫️ Cellulite")
    assert "✅ Cellulite" in patient.labels(shown[-1])
