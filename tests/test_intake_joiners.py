"""Zero-width joiners are part of a text answer: kept, while other format characters go."""

from __future__ import annotations

from bot import telegram_html
from bot.intake import answers
from tests.harness import TgUser
from tests.intake_support import (
    agree,
    answer_until_phone,
    intake_runner,  # noqa: F401 - the `runner` fixture: the bot on the intake tests' clock
    toggle_done,
)

STAFF_ID = 42
NURSE = "\U0001f469\u200d\u2695\ufe0f"  # 👩‍⚕️: woman + ZWJ + staff of Aesculapius
PERSIAN = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # می‌خواهم, with a ZWNJ


def test_clean_text_keeps_joiners_and_drops_other_format_characters():
    assert answers.clean_text(f"{NURSE} {PERSIAN}") == f"{NURSE} {PERSIAN}"
    assert answers.clean_text("a\u200bb\u202ec\u2066d") == "abcd"  # ZWSP, bidi override/isolate


async def test_an_answer_with_joiners_reaches_the_review_and_staff_unchanged(fake, runner):
    patient = TgUser(runner, "Anna")
    await agree(patient)
    await answer_until_phone(patient)
    await patient.send("+447911123456")
    await toggle_done(patient, "Weekday mornings")
    await patient.press("Skip ›")  # earliest date
    note = f"{NURSE} {PERSIAN} a nurse friend"
    shown = await patient.send(note)
    # Was: "👩⚕️ میخواهم": the joiners stripped, the emoji split and the word changed.
    assert note in telegram_html.plain(shown[-1].text)
    await patient.press("📨 Submit")
    summary = "\n".join(m.text for _, m in sorted(fake.messages[STAFF_ID].items()))
    assert note in telegram_html.plain(summary)
