"""A date answer that has passed by the time the answers go to staff is asked again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.clock import FixedClock
from tests.harness import BotRunner, TgUser
from tests.intake_support import (
    MENU_BUTTON,
    NOW,
    agree,
    answer_until_phone,
    complete,
    current_question,
    toggle_done,
)

STAFF_ID = 42


@pytest.fixture
def clk() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
async def runner(fake, settings, clk) -> AsyncIterator[BotRunner]:
    bot_runner = BotRunner(fake, settings, clock=clk)
    await bot_runner.start()
    yield bot_runner
    await bot_runner.stop()


def staff_texts(fake) -> list[str]:
    return [m.text for _, m in sorted((fake.messages.get(STAFF_ID) or {}).items())]


async def test_an_earliest_date_passed_before_submit_is_asked_again(fake, runner, clk):
    patient = TgUser(runner, "Anna")
    await agree(patient)
    await answer_until_phone(patient)
    await patient.send_contact("+447911123456")
    await toggle_done(patient, "Weekday mornings")
    await patient.send("26/11/2026")  # two days from now: valid
    await patient.press("Skip ›")  # notes -> review
    clk.advance(days=30)  # back a month later
    await patient.send("/start")
    shown = await patient.press(MENU_BUTTON)
    assert "Please check your answers" in shown[-1].text
    shown = await patient.press("📨 Submit")
    # Was: sent to staff as the earliest date, a month in the past.
    assert staff_texts(fake) == []
    assert "The date you gave, 26 Nov 2026, has passed" in shown[-1].text
    assert "From which date" in shown[-1].text and "From which date" in current_question(patient)
    shown = await patient.send("02/01/2027")
    assert "Please check your answers" in shown[-1].text and "02 Jan 2027" in shown[-1].text
    await patient.press("📨 Submit")
    (summary,) = staff_texts(fake)
    assert "02 Jan 2027" in summary and "26 Nov 2026" not in summary


async def test_an_update_opened_months_later_asks_the_passed_date_again(fake, runner, clk):
    patient = TgUser(runner, "Anna")
    await complete(patient)  # earliest 15/01/2027
    await patient.press("📨 Submit")
    clk.advance(days=120)  # March 2027
    await patient.press(MENU_BUTTON)
    shown = await patient.press("✏️ Update my answers")
    # Was: the review, the passed date in it, and Submit sent it to staff as current.
    assert "The date you gave, 15 Jan 2027, has passed" in shown[-1].text
    assert "From which date" in shown[-1].text
    shown = await patient.press("Skip ›")
    assert "Please check your answers" in shown[-1].text
    await patient.press("📨 Submit")
    summary = staff_texts(fake)[-1]
    assert "Updated" in summary and "15 Jan 2027" not in summary


async def test_a_date_still_ahead_is_kept(fake, runner, clk):
    patient = TgUser(runner, "Anna")
    await complete(patient)  # earliest 15/01/2027
    clk.advance(days=30)  # 24 Dec 2026: still ahead
    shown = await patient.press("📨 Submit")
    assert "Thank you" in shown[0].text
    assert "15 Jan 2027" in staff_texts(fake)[-1]
