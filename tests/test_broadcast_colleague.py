"""In the staff group, a colleague pressing Send or Cancel under someone's broadcast preview is
told it is the author's: the preview and its buttons stay (they were edited into "This
broadcast is no longer open" while the draft was still open)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bot.clock import FixedClock
from tests.conftest import make_settings
from tests.harness import BotRunner, TgUser
from tests.test_staff_reply import GROUP, GroupMember


@pytest.fixture
async def group_of_two(fake, db_url) -> AsyncIterator[BotRunner]:
    runner = BotRunner(fake, make_settings(fake, db_url, staff_chat_id=GROUP, staff_ids="42,43"),
                       clock=FixedClock(datetime(2026, 5, 4, 10, 0, tzinfo=UTC)),
                       periodic_dispatch=False)
    await runner.start()
    yield runner
    await runner.stop()


async def test_a_colleague_cannot_send_or_cancel_a_broadcast_preview(fake, group_of_two):
    patient = TgUser(group_of_two, first_name="Anna")
    await patient.send("/start")
    nurse, doctor = GroupMember(group_of_two, "Nurse", 42), GroupMember(group_of_two, "Doc", 43)
    await nurse.send(f"/book {patient.id} 2026-05-06 10:00 60 face")
    await nurse.send("/broadcast")
    await nurse.press("Everyone with an upcoming appointment", fake.last_message(GROUP))
    assert await nurse.type("The clinic is closed on Friday.")
    preview = fake.last_message(GROUP)
    for label in ("📣 Send to 1", "✖️ Cancel"):
        await doctor.press(label, preview)
        answer = fake.calls_to("answerCallbackQuery")[-1].params
        assert answer["text"] == "This broadcast is a colleague's: only they can send or cancel it."
        after = fake.messages[GROUP][preview.message_id]
        assert "closed on Friday" in after.text and "📣 Send to 1" in nurse.labels(after)
    await nurse.press("📣 Send to 1", preview)  # the author still can
    assert "queued for 1 patient" in fake.messages[GROUP][preview.message_id].text
