"""A contact shared at the phone question: national digits read as typed."""

from __future__ import annotations

from tests.harness import TgUser
from tests.intake_support import (
    agree,
    answer_until_phone,
    finish_after_phone,
    intake_runner,  # noqa: F401 - the `runner` fixture: the bot on the intake tests' clock
)


async def _at_the_phone_question(runner) -> TgUser:
    patient = TgUser(runner, "Anna")
    await agree(patient)
    await answer_until_phone(patient)
    return patient


async def test_a_shared_contact_in_national_digits_is_read_as_typed(runner):
    patient = await _at_the_phone_question(runner)
    # Was: "+" put in front ("+07911123456") and refused with "I couldn't tell the country".
    shown = await patient.send_contact("07911123456")
    assert "your number is saved" in shown[0].text
    assert "When would suit you" in shown[-1].text
    review = await finish_after_phone(patient)
    assert "+44 7911 123456" in review[-1].text


async def test_a_shared_contact_in_international_digits_still_gets_its_plus(runner):
    patient = await _at_the_phone_question(runner)
    shown = await patient.send_contact("33612345678")  # Telegram sends no "+"
    assert "your number is saved" in shown[0].text
    review = await finish_after_phone(patient)
    assert "+33 6 12 34 56 78" in review[-1].text


async def test_someone_elses_contact_is_not_saved_as_your_number(runner):
    patient = await _at_the_phone_question(runner)
    bob = {"phone_number": "+447911123457", "first_name": "Bob", "user_id": 999999}
    shown = await patient.send_raw(patient._message(contact=bob))
    # Was: "✓ Thanks, your number is saved." with Bob's number.
    assert all("your number is saved" not in m.text for m in shown)
    assert "isn't your own Telegram number" in shown[-1].text
    assert "phone number" in shown[-1].text  # the phone question again
    no_user = {"phone_number": "+447911123457", "first_name": "Bob"}  # address-book card
    shown = await patient.send_raw(patient._message(contact=no_user))
    assert "isn't your own Telegram number" in shown[-1].text
    shown = await patient.send("07911 123456")  # typing a number still works
    assert "your number is saved" in shown[0].text
    review = await finish_after_phone(patient)
    assert "+44 7911 123456" in review[-1].text and "123457" not in review[-1].text
