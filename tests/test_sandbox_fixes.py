"""The terminal sandbox (bot/sandbox.py), driven in-process as a person at the keyboard would."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from bot.app import build_application
from bot.config import load_settings
from bot.sandbox import SANDBOX_TOKEN, Sandbox, SandboxRequest, run_sandbox
from tests.conftest import TEST_ENCRYPTION_KEY

Line = str | Callable[[SandboxRequest], str]


def press(label: str) -> Callable[[SandboxRequest], str]:
    """The number of the inline button shown as `label` (emoji and ✓ around it ignored)."""
    def pick(request: SandboxRequest) -> str:
        for i, (text, _) in enumerate(request.last_keyboard, 1):
            if text == label or text.endswith(" " + label) or text.startswith(label + " "):
                return str(i)
        raise AssertionError(f"no button {label!r} among {request.last_keyboard}")
    return pick


def key(label: str) -> Callable[[SandboxRequest], str]:
    """k<n> for the reply-keyboard button shown as `label`."""
    def pick(request: SandboxRequest) -> str:
        for i, button in enumerate(request.reply_keyboard, 1):
            if label in button["text"]:
                return f"k{i}"
        raise AssertionError(f"no keyboard button {label!r} among {request.reply_keyboard}")
    return pick


# From the main menu to the questionnaire's phone step (question 9), every answer "no".
TO_PHONE_STEP: list[Line] = [
    press("Book a consultation"), press("I agree"), press("Facial rejuvenation"), press("Done"),
    press("Face"), press("Done"), press("No, never"), press("No"), press("No"), press("No"),
    press("No"), press("No"),
]


async def chat(tmp_path: Path, lines: list[Line]) -> list[str]:
    """Run the sandbox on tmp_path/sandbox.db, typing `lines` then "quit": what was printed
    at the start (the automatic /start), then after each of `lines`."""
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'sandbox.db'}", rate_limiter=False,
        encryption_keys=TEST_ENCRYPTION_KEY, staff_ids="", _env_file=None)
    out = io.StringIO()
    request = SandboxRequest(out=out)
    application = build_application(settings, request=request, token=SANDBOX_TOKEN)
    pending = list(lines)

    def read_line() -> str | None:
        # Called between updates (the sandbox awaits each one), so the request's state is
        # settled when a press(...) or key(...) looks up its number.
        item = pending.pop(0) if pending else "quit"
        line = item(request) if callable(item) else item
        out.write(f"\n<<<{line}>>>\n")
        return line

    await run_sandbox(application, request, read_line)
    transcript = out.getvalue()
    assert "Traceback" not in transcript
    first, *rest = transcript.split("\n<<<")
    screens = [first] + [part.split(">>>\n", 1)[1] for part in rest]
    return screens[:len(lines) + 1]  # not the closing "quit"


async def test_a_second_run_on_the_same_database_answers_from_the_first_line(tmp_path):
    await chat(tmp_path, ["1"])
    # Update ids restarted at 1 and the dedupe dropped them as redeliveries: /start and the
    # first press printed nothing, then "(there is no button 1)".
    start, first_press, *_ = await chat(tmp_path, ["1", "2"])
    assert "Hello, Sandbox!" in start and "[1] What is mesotherapy?" in start
    assert "Mesotherapy Treatment" in first_press


async def test_update_ids_continue_after_the_highest_claimed(tmp_path):
    await chat(tmp_path, ["hello"])
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'sandbox.db'}", rate_limiter=False,
        encryption_keys=TEST_ENCRYPTION_KEY, _env_file=None)
    request = SandboxRequest(out=io.StringIO())
    application = build_application(settings, request=request, token=SANDBOX_TOKEN)
    sandbox = Sandbox(application, request)
    async with application:
        try:
            await sandbox.continue_update_ids()
        finally:
            await application.post_shutdown(application)
    assert sandbox.update_id == 2  # /start and "hello" of the first run
    assert sandbox.text_update("again").update_id == 3


async def test_the_phone_step_shows_its_reply_keyboard_and_each_key_works(tmp_path):
    screens = await chat(tmp_path, [
        *TO_PHONE_STEP, key("Back"), press("No"), key("Cancel"), press("Yes, stop"),
    ])
    phone_step, back, phone_again, asked, cancelled = screens[-5:]
    assert "Question 9 of 12" in phone_step
    assert "[k1] 📱 Share my phone number" in phone_step
    assert "[k2] ‹ Back" in phone_step and "[k3] ✖️ Cancel" in phone_step
    # Back sends the label as text, as Telegram does; the bot closes the keyboard.
    assert "[keyboard closed]" in back and "Question 8 of 12" in back
    assert "[k1] 📱 Share my phone number" in phone_again
    # Cancel with answers given asks first; yes, and the questionnaire is gone.
    assert "[keyboard closed]" in asked and "Yes, stop" in asked
    assert "Cancelled" in cancelled and "Question" not in cancelled


async def test_sharing_the_contact_answers_the_phone_step(tmp_path):
    *_, phone_step, shared = await chat(tmp_path, [*TO_PHONE_STEP, key("Share my phone number")])
    assert "Question 9 of 12" in phone_step
    assert "your number is saved" in shared and "[keyboard closed]" in shared
    assert "Question 10 of 12" in shared


async def test_a_keyboard_key_that_is_not_shown_is_refused(tmp_path):
    start, missing = await chat(tmp_path, ["k1"])
    assert "there is no keyboard button k1" in missing


async def test_a_phone_number_typed_without_spaces_is_text_not_a_button(tmp_path):
    *_, typed, twelve = await chat(tmp_path, [*TO_PHONE_STEP, "07911123456", "12"])
    assert "there is no button" not in typed
    assert "your number is saved" in typed and "Question 10 of 12" in typed
    assert "there is no button 12" in twelve  # two digits are still a (mistyped) press


async def test_buttons_an_edit_removed_cannot_be_pressed(tmp_path):
    # The answered question is edited to "✓ No" without buttons, and the phone step has only
    # a reply keyboard: "2" pressed the removed "No" of the previous question.
    *_, phone_step, stale = await chat(tmp_path, [*TO_PHONE_STEP, "2"])
    assert "Question 9 of 12" in phone_step
    assert "there is no button 2" in stale


async def test_the_database_is_closed_when_the_sandbox_ends(tmp_path):
    # run_polling calls post_shutdown (which disposes the engine); the sandbox drives the
    # Application itself and left pooled aiosqlite connections to be collected after the loop
    # closed ("RuntimeError: Event loop is closed" from their threads).
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'sandbox.db'}", rate_limiter=False,
        encryption_keys=TEST_ENCRYPTION_KEY, _env_file=None)
    request = SandboxRequest(out=io.StringIO())
    application = build_application(settings, request=request, token=SANDBOX_TOKEN)
    await run_sandbox(application, request, lambda: None)
    assert application.bot_data["services"].db.engine.pool.checkedin() == 0
