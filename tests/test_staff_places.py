"""Staff commands show patients' data only in a private chat with the bot or in the staff group
(STAFF_CHAT_ID): in any other group, everyone there would read it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bot.clock import FixedClock
from tests.conftest import make_settings
from tests.harness import BotRunner, TgUser
from tests.reminder_support import book, new_patient, sent_texts

OTHER_GROUP, STAFF_GROUP = -100555, -1001234


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))


def in_group(runner: BotRunner, chat_id: int) -> TgUser:
    staff = TgUser(runner, "Staff", user_id=42)
    staff.chat = {"id": chat_id, "type": "supergroup", "title": "A group"}
    return staff


@pytest.mark.parametrize("command", ["/today", "/upcoming", "/staff", "/stats"])
async def test_staff_commands_in_another_group_show_no_patient(fake, rr, clock, staff, command):
    anna = await new_patient(rr, "Anna")
    await book(staff, f"{anna.id} 2026-03-02 15:00 60 face")
    await in_group(rr, OTHER_GROUP).send(command)
    said = sent_texts(fake, OTHER_GROUP)
    assert said and all("Anna" not in t for t in said)
    assert "only in a private chat with the bot or in the staff group" in said[-1]


async def test_a_console_button_pressed_in_another_group_shows_nothing(fake, rr, clock, staff):
    anna = await new_patient(rr, "Anna")
    await book(staff, f"{anna.id} 2026-03-02 15:00 60 face")
    console = (await staff.send("/staff"))[-1]  # as if its keyboard were in the other group
    await in_group(rr, OTHER_GROUP).press_data("staff:today", replace(console, chat_id=OTHER_GROUP))
    assert sent_texts(fake, OTHER_GROUP) == []
    alerts = [c.params for c in fake.calls_to("answerCallbackQuery") if c.params.get("show_alert")]
    assert "staff group" in alerts[-1]["text"]


async def test_the_staff_group_still_works(fake, db_url, clock):
    runner = BotRunner(fake, make_settings(fake, db_url, staff_chat_id=STAFF_GROUP), clock=clock,
                       periodic_dispatch=False)
    await runner.start()
    try:
        anna = await new_patient(runner, "Anna")
        await book(TgUser(runner, "Staff", user_id=42), f"{anna.id} 2026-03-02 15:00 60 face")
        await in_group(runner, STAFF_GROUP).send("/today")
        assert "Anna" in sent_texts(fake, STAFF_GROUP)[-1]
    finally:
        await runner.stop()


async def test_reply_in_another_group_names_no_patient_and_sends_nothing(fake, rr, clock, staff):
    anna = await new_patient(rr, "Anna")
    await anna.send("How much does it cost?")
    await anna.press("💬 Yes, send it to the clinic")
    before = len(sent_texts(fake, anna.id))
    await in_group(rr, OTHER_GROUP).send("/reply 1 It is 150 per session.")
    said = sent_texts(fake, OTHER_GROUP)
    assert said and all("Anna" not in t for t in said) and "staff group" in said[-1]
    assert len(sent_texts(fake, anna.id)) == before
