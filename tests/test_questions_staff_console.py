"""Staff see open questions in the console, reply from there; reads are audited."""

from __future__ import annotations

from sqlalchemy import select

from bot.db.privacy_models import AuditEvent
from tests.harness import TgUser

STAFF_ID = 42


async def test_open_questions_listed_with_reply_buttons_and_audited(fake, runner):
    patient = TgUser(runner, first_name="Bea & Co")
    await patient.send("/start")
    await patient.send("How much does one session cost?")  # not in the document: handoff offered
    await patient.press("💬 Yes, send it to the clinic")
    await patient.send("I have a fever and pus at the injection site")  # red flag
    staff = TgUser(runner, first_name="Nurse", user_id=STAFF_ID)
    await staff.send("/staff")
    shown = await staff.press("❓ Open questions")
    text = shown[0].text
    assert "Open questions" in text and "Bea &amp; Co" in text
    assert text.index("fever and pus") < text.index("How much does one session cost?")  # urgent first
    assert "🚨" in text
    reply_buttons = [label for label in staff.labels(shown[0]) if label.startswith("↩️ Reply to #")]
    assert reply_buttons == ["↩️ Reply to #2", "↩️ Reply to #1"]  # the red flag (#2) first
    await staff.press("↩️ Reply to #1")
    await staff.send("Prices are on our price list; we will call you.")
    assert any("Prices are on our price list" in c.params["text"]
               for c in fake.calls_to("sendMessage", patient.id))
    await staff.send("/staff")
    shown = await staff.press("❓ Open questions")
    assert "How much does one session cost?" not in shown[0].text  # answered: no longer open
    svc = runner.app.bot_data["services"]
    async with svc.db.session() as session:
        reads = (await session.scalars(select(AuditEvent).where(AuditEvent.action == "question_read"))).all()
    assert len(reads) == 3 and all(r.actor_user_id == STAFF_ID for r in reads)
    shown = await staff.send("/stats")
    assert "Questions typed this week: <b>2</b>" in shown[0].text
    assert "urgent (red flags): <b>1</b>" in shown[0].text


async def test_patients_cannot_list_open_questions(fake, runner):
    mallory = TgUser(runner, first_name="Mallory")
    await mallory.send("/start")
    shown = await mallory.press_data("staff:questions")
    assert shown == []
    assert "only for clinic staff" in fake.calls_to("answerCallbackQuery")[-1].params["text"]


async def test_a_reply_telegram_failed_to_deliver_can_simply_be_sent_again(fake, runner):
    patient = TgUser(runner, first_name="Bea")
    await patient.send("/start")
    await patient.send("How much does one session cost?")
    await patient.press("💬 Yes, send it to the clinic")
    staff = TgUser(runner, first_name="Nurse", user_id=STAFF_ID)
    await staff.send("/staff")
    await staff.press("❓ Open questions")
    await staff.press("↩️ Reply to #1")
    fake.fail_next("sendMessage", 502, chat_id=patient.id)  # the relay does not get through
    await staff.send("Prices are on our price list.")
    assert not any("price list" in t.params["text"] for t in fake.calls_to("sendMessage", patient.id))
    await staff.send("Prices are on our price list.")  # again, without pressing Reply again
    assert any("price list" in t.params["text"] for t in fake.calls_to("sendMessage", patient.id))
