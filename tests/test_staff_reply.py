"""Staff replies through the Reply button: in a staff group (Telegram's privacy mode), when the
confirmation to staff fails, with a broadcast draft open, and after the Reply expired."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from bot.db.preference_models import Broadcast
from bot.db.qa_models import Question, StaffReplyTarget
from tests.conftest import make_settings
from tests.harness import BotRunner, TgUser

STAFF_ID = 42
GROUP = -1001234


class GroupMember(TgUser):
    """A staff member in the staff group, the bot in Telegram's default privacy mode: a plain
    message never reaches the bot, a reply to one of its messages does. Like their Telegram
    client, they answer as a reply the bot's latest ForceReply meant for them (selective: one
    that mentions them)."""

    def __init__(self, runner: BotRunner, first_name: str, user_id: int) -> None:
        super().__init__(runner, first_name, user_id=user_id)
        self.chat = {"id": GROUP, "type": "group", "title": "Staff"}
        self.answered: set[int] = set()

    def _forced_reply(self):  # noqa: ANN202 - a StoredMessage or None
        for message_id in sorted(self.fake.messages.get(GROUP) or {}, reverse=True):
            message = self.fake.messages[GROUP][message_id]
            markup = message.reply_markup or {}
            if markup.get("force_reply") and message_id not in self.answered and (
                    not markup.get("selective") or f"tg://user?id={self.id}" in message.text):
                return message
        return None

    async def type(self, text: str) -> bool:
        """Send `text` in the group; whether it reached the bot."""
        prompt = self._forced_reply()
        if prompt is None:
            return False  # privacy mode: the bot never sees it
        self.answered.add(prompt.message_id)
        await self.send_raw(self._message(
            text=text, reply_to_message=prompt.as_api({"parse_mode": "HTML"})))
        return True


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 5, 4, 10, 0, tzinfo=UTC))


@pytest.fixture
async def group_runner(fake, db_url, clock) -> AsyncIterator[BotRunner]:
    """The bot with a staff group (STAFF_CHAT_ID), on the test's clock."""
    runner = BotRunner(fake, make_settings(fake, db_url, staff_chat_id=GROUP), clock=clock,
                       periodic_dispatch=False)
    await runner.start()
    yield runner
    await runner.stop()


def group_texts(fake) -> list[str]:
    return [c.params["text"] for c in fake.calls_to("sendMessage", GROUP)]


def patient_texts(fake, patient: TgUser) -> list[str]:
    return [c.params["text"] for c in fake.calls_to("sendMessage", patient.id)]


async def hand_off(fake, patient: TgUser, chat_id: int):  # noqa: ANN201 - the alert
    await patient.send("How much does it cost?")
    await patient.press("💬 Yes, send it to the clinic")
    return next(m for m in reversed(fake.messages[chat_id].values()) if "Question #" in m.text)


async def rows(runner: BotRunner, model) -> list:  # noqa: ANN001
    async with runner.app.bot_data["services"].db.session() as session:
        return list((await session.scalars(select(model))).all())


async def test_in_a_staff_group_the_reply_to_the_prompt_reaches_the_patient(fake, group_runner):
    patient = TgUser(group_runner, first_name="Anna")
    alert = await hand_off(fake, patient, GROUP)
    nurse = GroupMember(group_runner, "Nurse", STAFF_ID)
    await nurse.press("↩️ Reply", alert)
    prompt = fake.last_message(GROUP)
    assert prompt.reply_markup == {"force_reply": True, "selective": True,
                                   "input_field_placeholder": "Your reply to question #1"}
    assert f'<a href="tg://user?id={STAFF_ID}">Nurse</a>, type your reply' in prompt.text
    cancel = list(fake.messages[GROUP].values())[-2]  # a message has buttons or ForceReply
    assert "Replying to question #1" in cancel.text and nurse.labels(cancel) == ["✖️ Cancel"]
    assert await nurse.type("It is £150 per session.")
    assert "It is £150 per session." in patient_texts(fake, patient)[-1]
    assert "✅ Reply to question #1 sent to Anna." in group_texts(fake)[-1]
    assert {q.status for q in await rows(group_runner, Question)} == {"replied"}


async def test_a_failed_confirmation_to_staff_does_not_keep_the_reply_pending(fake, group_runner):
    patient = TgUser(group_runner, first_name="Anna")
    alert = await hand_off(fake, patient, GROUP)
    nurse = GroupMember(group_runner, "Nurse", STAFF_ID)
    await nurse.press("↩️ Reply", alert)
    before = len(group_texts(fake))
    fake.fail_next("sendMessage", 504, chat_id=GROUP)  # "✅ Reply sent" times out
    await nurse.type("It is £150 per session.")
    assert sum("£150" in t for t in patient_texts(fake, patient)) == 1
    assert group_texts(fake)[before:] == []  # no "something went wrong, try again"
    assert await rows(group_runner, StaffReplyTarget) == []
    # The nurse's next message, even as a reply to the same prompt, is not sent to the patient.
    prompt = next(m for m in reversed(fake.messages[GROUP].values())
                  if (m.reply_markup or {}).get("force_reply"))
    await nurse.send_raw(nurse._message(
        text="Done, thanks", reply_to_message=prompt.as_api({"parse_mode": "HTML"})))
    assert not any("Done, thanks" in t for t in patient_texts(fake, patient))


async def test_reply_pressed_with_a_broadcast_draft_open_goes_to_the_patient(fake, runner):
    patient = TgUser(runner, first_name="Anna")
    staff = TgUser(runner, "Nurse", user_id=STAFF_ID)
    await staff.send("/broadcast")
    await staff.press("Everyone with an upcoming appointment")  # a draft waits for its text
    alert = await hand_off(fake, patient, STAFF_ID)
    shown = await staff.press("↩️ Reply", alert)
    assert "The broadcast was cancelled" in shown[0].text
    await staff.send("It is £150 per session.")
    assert "It is £150 per session." in patient_texts(fake, patient)[-1]
    assert [b.status for b in await rows(runner, Broadcast)] == ["cancelled"]


async def test_broadcast_opened_after_reply_drops_the_pending_reply(fake, runner):
    patient = TgUser(runner, first_name="Anna")
    staff = TgUser(runner, "Nurse", user_id=STAFF_ID)
    alert = await hand_off(fake, patient, STAFF_ID)
    await staff.press("↩️ Reply", alert)
    await staff.send("/broadcast")
    shown = await staff.press("Everyone with an upcoming appointment")
    assert "Reply to question #1 cancelled." in shown[-1].text
    await staff.send("The clinic is closed on Monday.")  # the broadcast's text
    await staff.send("Note to self: order gloves")
    assert not any("gloves" in t for t in patient_texts(fake, patient))
    assert await rows(runner, StaffReplyTarget) == []


async def test_a_late_reply_to_the_prompt_is_told_it_expired(fake, group_runner, clock):
    patient = TgUser(group_runner, first_name="Anna")
    alert = await hand_off(fake, patient, GROUP)
    nurse = GroupMember(group_runner, "Nurse", STAFF_ID)
    await nurse.press("↩️ Reply", alert)
    clock.advance(minutes=31)
    assert await nurse.type("It is £150 per session.")
    assert "Nothing was sent: the Reply to question #1 expired (30 minutes" in group_texts(fake)[-1]
    assert not any("£150" in t for t in patient_texts(fake, patient))
    await nurse.press("↩️ Reply", alert)  # pressed again: the answer goes through
    assert await nurse.type("It is £150 per session.")
    assert "It is £150 per session." in patient_texts(fake, patient)[-1]


async def test_in_a_staff_group_a_broadcast_text_is_asked_for_as_a_reply(fake, group_runner, clock):
    patient = TgUser(group_runner, first_name="Anna")
    await patient.send("/start")
    nurse = GroupMember(group_runner, "Nurse", STAFF_ID)
    await nurse.send(f"/book {patient.id} 2026-05-06 10:00 60 face")
    await nurse.send("/broadcast")
    await nurse.press("Everyone with an upcoming appointment", fake.last_message(GROUP))
    prompt = fake.last_message(GROUP)
    assert prompt.reply_markup == {"force_reply": True, "selective": True}
    assert f'<a href="tg://user?id={STAFF_ID}">Nurse</a>, type the message' in prompt.text
    assert await nurse.type("The clinic is closed on Friday.")
    assert "The clinic is closed on Friday." in group_texts(fake)[-1]
    assert "Send to 1" in " ".join(nurse.labels(fake.last_message(GROUP)))


async def test_in_a_group_only_the_reply_to_the_prompt_answers(fake, group_runner):
    """Reply pressed for Anna's question; the nurse then answers Ben's alert with Telegram's
    own reply: that goes nowhere near Anna. The reply to the prompt does."""
    anna, ben = TgUser(group_runner, first_name="Anna"), TgUser(group_runner, first_name="Ben")
    alert_anna = await hand_off(fake, anna, GROUP)
    alert_ben = await hand_off(fake, ben, GROUP)
    nurse = GroupMember(group_runner, "Nurse", STAFF_ID)
    await nurse.press("↩️ Reply", alert_anna)
    await nurse.send_raw(nurse._message(text="Ben: yes, that is fine.",
                                        reply_to_message=alert_ben.as_api({"parse_mode": "HTML"})))
    assert not any("Ben: yes" in t for t in patient_texts(fake, anna))
    assert await nurse.type("Anna: it is £150 per session.")
    assert "Anna: it is £150 per session." in patient_texts(fake, anna)[-1]
