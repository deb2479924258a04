"""Button labels are written like every other text in content/ (HTML: "&amp;" for "&"), but
Telegram shows a label as plain text: the bot turns it into the visible text, so a clinic's
"Home &amp; menu" reads "Home & menu" on the button, not "Home &amp; menu"."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.clock import FixedClock
from tests.harness import TgUser
from tests.intake_support import (
    agree,
    answer_until_phone,
    current_question,
    reply_keyboard,
    toggle_done,
)
from tests.reminder_support import book, dispatch

EDITS = {
    "messages.yaml": ('button_main_menu: "🏠 Main menu"', 'button_main_menu: "🏠 Home &amp; menu"'),
    "reminders.yaml": ('button_confirm: "✅ Confirm"', 'button_confirm: "✅ Confirm &amp; see you"'),
    "qa.yaml": ('button_reply: "↩️ Reply"', 'button_reply: "↩️ Reply &amp; close"'),
    "intake.yaml": ('button_back: "‹ Back"', 'button_back: "‹ Back &amp; fix"'),
    "console.yaml": ('kind_aftercare: "Aftercare message"', 'kind_aftercare: "Aftercare &amp; advice"'),
    "console.yaml ": ("settings_quiet_clinic: \"the clinic's ({start}-{end})\"",
                      "settings_quiet_clinic: \"the clinic's ({start} &amp; {end})\""),
}


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 11, 24, 12, 0, tzinfo=UTC))


@pytest.fixture
def settings(settings, tmp_path: Path):
    """The shipped content with an "&" in one button label of each content file."""
    content = tmp_path / "content"
    shutil.copytree(settings.content_dir, content)
    for name, (old, new) in EDITS.items():
        path = content / name.strip()  # "console.yaml ": a second edit of one file
        text = path.read_text(encoding="utf-8")
        assert old in text, name
        path.write_text(text.replace(old, new), encoding="utf-8")
    return settings.model_copy(update={"content_dir": content})


async def test_a_label_with_an_ampersand_shows_the_ampersand(fake, rr, clock, staff):
    anna = TgUser(rr, "Anna")
    shown = await anna.send("/start")
    shown = await anna.press(anna.labels(shown[-1])[0])  # a section of the treatment
    assert "🏠 Home & menu" in anna.labels(shown[-1])

    await book(staff, f"{anna.id} 2026-12-03 14:30 60 face")
    await dispatch(rr, clock)  # the booking's confirmation, with its buttons
    confirmation = fake.last_message(anna.id)
    assert "✅ Confirm & see you" in anna.labels(confirmation)

    await anna.send("How much does it cost?")  # not in the document: to staff, if she wants
    await anna.press("💬 Yes, send it to the clinic")
    alert = fake.last_message(42)
    assert "↩️ Reply & close" in anna.labels(alert), alert.text

    shown = await anna.send("/menu")
    await anna.press("📝 Book a consultation")
    await anna.press("✅ I agree")
    await toggle_done(anna, "Facial rejuvenation")  # the second question has a Back button
    assert "‹ Back & fix" in anna.labels(anna.last_keyboard_message())
    assert not [label for m in fake.messages[anna.id].values() for label in anna.labels(m)
                if "&amp;" in label]


async def test_a_reply_keyboard_label_with_an_ampersand_works_when_sent(fake, rr, clock):
    """The phone question's keyboard sends its label as text: the visible label is recognised."""
    anna = TgUser(rr, "Anna")
    await agree(anna)
    await answer_until_phone(anna)
    keyboard = reply_keyboard(fake.last_message(anna.id))
    labels = [button["text"] for row in keyboard["keyboard"] for button in row]
    assert "‹ Back & fix" in labels
    await anna.send("‹ Back & fix")
    assert "long-term" in current_question(anna).lower()


async def test_a_text_inside_another_is_escaped_once(fake, rr, clock):
    """/settings puts a reminder kind's name inside its button, and the clinic's quiet hours
    inside a sentence: an "&" there shows as "&", not "&amp;"."""
    anna = TgUser(rr, "Anna")
    shown = await anna.send("/settings")
    assert "✅ Aftercare & advice" in anna.labels(shown[0])
    await anna.press("✅ Aftercare & advice")
    assert "🔕 Aftercare & advice" in anna.labels(anna.last_keyboard_message())
    assert "Quiet hours (no non-urgent messages at night): <b>the clinic's (21:00 &amp; 08:00)" \
        in shown[0].text
