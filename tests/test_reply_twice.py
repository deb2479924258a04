"""Two staff members answer one question (or one answers twice): the patient has both
replies, the record keeps both (the first was overwritten, gone from /mydata too), and the
second staff member learns theirs was not the first."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from bot.db.qa_models import Question
from bot.questions import reply_text
from tests.conftest import make_settings
from tests.harness import BotRunner, TgUser
from tests.reminder_support import db, sent_texts


@pytest.fixture
async def two_staff(fake, db_url) -> AsyncIterator[BotRunner]:
    runner = BotRunner(fake, make_settings(fake, db_url, staff_ids="42,43"),
                       clock=FixedClock(datetime(2026, 5, 4, 10, 0, tzinfo=UTC)))
    await runner.start()
    yield runner
    await runner.stop()


async def test_a_second_reply_is_kept_with_the_first_and_its_sender_told(fake, two_staff):
    anna = TgUser(two_staff, first_name="Anna")
    await anna.send("How much does one session cost?")
    await anna.press("💬 Yes, send it to the clinic")
    nurse, doctor = TgUser(two_staff, "Nurse", user_id=42), TgUser(two_staff, "Doc", user_id=43)
    first = await nurse.send("/reply 1 It is 150 pounds.")
    assert "⚠️" not in first[-1].text
    second = await doctor.send("/reply 1 It is 200 pounds with the consultation.")
    replies = [t.rsplit("\n", 1)[-1] for t in sent_texts(fake, anna.id) if "pounds" in t]
    assert replies == ["It is 150 pounds.", "It is 200 pounds with the consultation."]
    assert "⚠️ It had been answered already (staff 42, 04 May 11:00)" in second[-1].text
    svc = two_staff.app.bot_data["services"]
    async with db(two_staff).session() as session:
        question = (await session.scalars(select(Question))).one()
        assert reply_text(svc.crypto, question) == (
            "It is 150 pounds.\n\nIt is 200 pounds with the consultation.")
        assert question.replied_by == 43


async def test_two_replies_recorded_at_once_keep_both(fake, two_staff):
    """Each read the question before the other wrote (32 updates at once, or two instances):
    the second write won, and the first reply was gone from the record."""
    from bot import questions as repo

    anna = TgUser(two_staff, first_name="Anna")
    await anna.send("How much does one session cost?")
    await anna.press("💬 Yes, send it to the clinic")
    svc, database = two_staff.app.bot_data["services"], db(two_staff)
    now = svc.clock.now()
    async with database.sessionmaker() as first, database.sessionmaker() as second:
        (one, _), (two, _) = await repo.with_patient(first, 1), await repo.with_patient(second, 1)
        assert await repo.record_reply(first, one, 42, "It is 150 pounds.", now, svc.crypto) is None
        await first.commit()
        earlier = await repo.record_reply(second, two, 43, "It is 200 pounds.", now, svc.crypto)
        await second.commit()
    assert earlier is not None and earlier.staff_user_id == 42
    async with database.session() as session:
        question = (await session.scalars(select(Question))).one()
        assert reply_text(svc.crypto, question) == "It is 150 pounds.\n\nIt is 200 pounds."
