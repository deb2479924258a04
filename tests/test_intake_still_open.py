"""A questionnaire left open: /start and /menu say so (the next message would answer it), and
an urgent message at a question that does not ask about the past is advice, never an answer."""

from __future__ import annotations

from tests.intake_support import (
    agree,
    current_question,
    intake_runner,  # noqa: F401 - the `runner` fixture: the bot on the intake tests' clock
    toggle_done,
)

STAFF_ID = 42
STILL_OPEN = "questionnaire is still open"


async def test_start_and_menu_say_a_questionnaire_is_still_open(runner, patient):
    shown = await patient.send("/start")
    assert STILL_OPEN not in shown[-1].text
    await agree(patient)
    await toggle_done(patient, "Facial rejuvenation")
    shown = await patient.send("/start")
    assert "Hello, Anna!" in shown[-1].text and STILL_OPEN in shown[-1].text
    assert "/cancel" in shown[-1].text
    shown = await patient.send("/menu")
    assert STILL_OPEN in shown[-1].text
    await patient.send("/cancel")
    await patient.press("✖️ Yes, stop")
    shown = await patient.send("/start")
    assert STILL_OPEN not in shown[-1].text


async def test_an_urgent_message_at_which_other_areas_is_advice_not_the_answer(fake, runner, patient):
    await agree(patient)
    await toggle_done(patient, "Facial rejuvenation")
    await toggle_done(patient, "Face", "Other")
    question = current_question(patient)
    assert "Which other areas" in question
    shown = await patient.send("my lips are swelling and I can't breathe")
    assert any("emergency" in m.text.lower() for m in shown)
    assert sum("URGENT" in c.params["text"] for c in fake.calls_to("sendMessage", STAFF_ID)) == 1
    assert shown[-1].text == question  # asked again, nothing recorded
    shown = await patient.send("Knees")
    assert "aesthetic treatments before" in shown[-1].text


async def test_help_and_an_empty_my_appointments_say_how_to_book(runner, patient):
    shown = await patient.send("/help")
    assert "<i>Book a consultation</i>" in shown[0].text and "/cancel stops it" in shown[0].text
    await patient.send("/start")
    shown = await patient.press("📅 My appointments")
    assert "no upcoming appointments" in shown[-1].text
    assert "tap <i>Book a consultation</i> in the main menu" in shown[-1].text
