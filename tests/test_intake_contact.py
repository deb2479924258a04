"""A contact shared at the phone question: national digits read as typed."""

from __future__ import annotations

from tests.harness import TgUser
from tests.intake_support import (
    agree,
    answer_until_phone,
    finish_after_phone,
    intake_runner,  # noqa: F401 - the `runner` fixture: the bot on the intake tests' clock
)


async def test_a_shared_contact_in_national_digits_is_read_as_typed(runner):
    patient = TgUser(runner, "Anna")
    await agree(patient)
    await answer_until_phone(patient)
    # Was: "+" put in front ("+07911123456") and refused with "I couldn't tell the country".
    shown = await patient.send_contact("07911123456")
    assert "your number is saved" in shown[0].text
    assert "When would suit you" in shown[-1].text
    review = await finish_after_phone(patient)
    assert "+44 7911 123456" in review[-1].text


async def test_a_shared_contact_in_international_digits_still_gets_its_plus(runner):
    patient = TgUser(runner, "Anna")
    await agree(patient)
    await answer_until_phone(patient)
    shown = await patient.send_contact("33612345678")  # Telegram sends no "+"
    assert "your number is saved" in shown[0].text
    review = await finish_after_phone(patient)
    assert "+33 6 12 34 56 78" in review[-1].text
