"""Typing the start of an option's label at a choice question, and the hint that lists them."""

from __future__ import annotations

from bot import telegram_html
from tests.harness import TgUser
from tests.intake_support import (
    agree,
    current_question,
    intake_runner,  # noqa: F401 - the `runner` fixture: the bot on the intake tests' clock
    toggle_done,
)


async def _at_previous_treatments(runner) -> TgUser:  # noqa: ANN001
    patient = TgUser(runner, "Anna")
    await agree(patient)
    await toggle_done(patient, "Cellulite")
    await toggle_done(patient, "Thighs")
    assert "aesthetic treatments before" in current_question(patient)
    return patient


async def test_typed_no_picks_the_one_option_starting_with_it(runner):
    patient = await _at_previous_treatments(runner)
    # Was refused: the options are "No, never", "Yes, mesotherapy", "Yes, other treatments".
    shown = await patient.send("No")
    assert "allergies" in shown[-1].text
    shown = await patient.press("‹ Back")
    assert "Your answer so far: No, never" in shown[-1].text


async def test_typed_yes_fitting_two_options_lists_just_those_one_per_line(runner):
    patient = await _at_previous_treatments(runner)
    shown = await patient.send("yes")
    text = telegram_html.plain(shown[-1].text)
    assert "“yes” fits more than one answer" in text
    assert "• “Yes, mesotherapy”\n• “Yes, other treatments”" in text
    assert "No, never" not in text.split("fits more than one answer", 1)[1].split("Question")[0]
    assert "aesthetic treatments before" in current_question(patient)


async def test_the_hint_lists_each_option_quoted_on_its_own_line(runner):
    patient = await _at_previous_treatments(runner)
    shown = await patient.send("maybe")
    text = telegram_html.plain(shown[-1].text)
    # Was: "type one of: No, never, Yes, mesotherapy, Yes, other treatments" ("No" looked valid).
    assert "• “No, never”\n• “Yes, mesotherapy”\n• “Yes, other treatments”" in text
    shown = await patient.send("yes, other")
    assert "allergies" in shown[-1].text
    shown = await patient.press("‹ Back")
    assert "Your answer so far: Yes, other treatments" in shown[-1].text
