"""Staff lists that show a part say how much more there is: the open questions (ten at most)
and the reminders needing attention (fifteen at most) ended as if complete."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from bot.clock import FixedClock
from tests.conftest import sql_write
from tests.harness import TgUser
from tests.reminder_support import book, new_patient


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))


async def test_the_open_questions_list_says_how_many_more_there_are(fake, rr, clock, staff):
    for i in range(12):
        patient = TgUser(rr, first_name=f"P{i}")
        await patient.send(f"How much does session number {i} cost?")
        await patient.press("💬 Yes, send it to the clinic")
    await staff.send("/staff")
    text = (await staff.press("❓ Open questions"))[0].text
    assert text.count("❓ <b>#") == 10
    assert text.endswith("… and 2 more open question(s), not listed here: answer these first, "
                         "then open this list again.")


async def test_the_attention_list_says_how_many_more_there_are(fake, rr, clock, staff, db_url):
    people = [await new_patient(rr, f"P{i}") for i in range(4)]
    for i in range(20):
        await book(staff, f"{people[i % 4].id} 2026-03-{10 + i // 4:02d} {9 + i % 4}:00 30 face")
    await sql_write(db_url, "update reminders set status='dead', last_error='BadRequest: x' "
                            "where kind='confirmation'")
    await staff.send("/staff")
    text = (await staff.press("❗ Reminders needing attention"))[-1].text
    assert len(re.findall(r"^• R\d+", text, re.M)) == 15
    assert text.endswith("… and 5 more, not listed here: retry these first, then open this "
                         "list again.")
