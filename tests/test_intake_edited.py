"""A patient edits a message that answered a question: told the edit is not read, and how to
change the answer (it used to be ignored silently, and staff got the first text)."""

from __future__ import annotations

import time

from tests.harness import TgUser
from tests.intake_support import (
    MENU_BUTTON,
    agree,
    current_question,
    intake_runner,  # noqa: F401 - the `runner` fixture: the bot on the intake tests' clock
    toggle_done,
)

STAFF_ID = 42


async def _edit(patient: TgUser, message: dict, text: str) -> list:
    edited = dict(message, text=text, edit_date=int(time.time()))
    return await patient.send_raw(edited, kind="edited_message")


async def _to_allergy_details(runner) -> TgUser:  # noqa: ANN001
    patient = TgUser(runner, "Anna")
    await agree(patient)
    await toggle_done(patient, "Cellulite")
    await toggle_done(patient, "Thighs")
    await patient.press("No, never")
    await patient.press("Yes")  # allergies
    return patient


async def _after_allergy_details_to_the_last_question(patient: TgUser) -> None:
    await patient.press("No")  # medicines
    for _ in range(3):
        await patient.press("No")
    await patient.send("+447911123456")
    await toggle_done(patient, "Weekday mornings")
    await patient.press("Skip ›")


async def test_editing_a_typed_answer_is_answered_with_how_to_change_it(fake, runner):
    patient = await _to_allergy_details(runner)
    typo = patient._message(text="Penicilin")
    await patient.send_raw(typo)
    assert "medicines" in current_question(patient)
    shown = await _edit(patient, typo, "Penicillin and latex")
    assert "Changes to a message already sent don't reach the questionnaire" in shown[-1].text
    assert "✏️ button on the review screen" in shown[-1].text
    assert "medicines" in shown[-1].text  # the open question, shown again below the note
    # The way it names works: at the review, Edit the allergy details.
    await _after_allergy_details_to_the_last_question(patient)
    review = await patient.press("Skip ›")
    assert "Penicilin" in review[-1].text and "latex" not in review[-1].text
    await patient.press("✏️ Allergy details")
    shown = await patient.send("Penicillin and latex")
    assert "Penicillin and latex" in shown[-1].text and "Please check your answers" in shown[-1].text


async def test_editing_an_answer_after_submitting_points_to_update(fake, runner):
    patient = await _to_allergy_details(runner)
    typo = patient._message(text="Penicilin")
    await patient.send_raw(typo)
    await _after_allergy_details_to_the_last_question(patient)
    await patient.press("Skip ›")
    await patient.press("📨 Submit")
    shown = await _edit(patient, typo, "Penicillin and latex")
    assert "Changes to a message already sent don't reach the clinic" in shown[-1].text
    assert "✏️ Update my answers" in patient.labels(shown[-1])


async def test_an_edit_of_a_message_that_answered_nothing_gets_no_intake_reply(fake, runner):
    patient = TgUser(runner, "Anna")
    hello = patient._message(text="hello")
    await patient.send_raw(hello)
    await patient.press(MENU_BUTTON)
    shown = await _edit(patient, hello, "hello there")
    assert not any("Changes to a message" in m.text for m in shown)


def _urgent_alerts(fake) -> int:  # noqa: ANN001
    return sum("URGENT" in c.params["text"] for c in fake.calls_to("sendMessage", STAFF_ID))


async def test_an_edit_is_still_read_for_urgency_and_history_is_not_an_alarm(fake, runner):
    patient = await _to_allergy_details(runner)
    first = patient._message(text="Penicillin")
    await patient.send_raw(first)
    await _edit(patient, first, "Penicillin gave me anaphylaxis in 2019, years ago I got hives")
    assert _urgent_alerts(fake) == 0  # the allergy history question: the past, no alarm
    shown = await _edit(patient, first, "Latex. I touched a glove and my lips are swelling")
    assert _urgent_alerts(fake) == 1
    assert "Changes to a message already sent" in shown[-1].text


async def test_editing_a_refused_try_says_nothing_about_an_answer_kept(fake, runner):
    """Only an answer the questionnaire took is "kept as first sent": an edit of a refused try
    (a date that does not exist) was told so, though nothing was kept."""
    patient = await _to_allergy_details(runner)
    await patient.send("Penicillin")
    await _after_allergy_details_to_the_last_question(patient)
    await patient.press("‹ Back")  # the earliest date again
    wrong = patient._message(text="31/02/2027")
    shown = await patient.send_raw(wrong)
    assert "⚠️" in shown[-1].text
    shown = await _edit(patient, wrong, "15/01/2027")
    assert not any("Changes to a message already sent" in m.text for m in shown)
