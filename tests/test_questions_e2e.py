"""Questions through the real bot and the fake Bot API: answer, handoff and reply, red flags."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select, text

from bot import patients, telegram_html
from bot import questions as repo
from bot.crypto import CryptoBox, new_key
from bot.db import Database
from bot.db.qa_models import Question, StaffReplyTarget
from bot.qa import Result
from tests.harness import BotRunner, TgUser
from tests.textcheck import SEED, norm

STAFF_ID = 42
DOCUMENT = norm(SEED.read_text(encoding="utf-8"))

BOX = CryptoBox([new_key()])


def staff_messages(fake, since: int = 0):
    return [c for c in fake.calls_to("sendMessage", STAFF_ID)[since:]]


def reply_button(call) -> str:
    rows = call.params["reply_markup"]["inline_keyboard"]
    return next(b["callback_data"] for row in rows for b in row if b["text"].startswith("↩️"))


async def rows(runner: BotRunner, model):
    db = Database(runner.settings.database_url)
    try:
        async with db.session() as session:
            return list((await session.scalars(select(model).order_by(text("1")))).all())
    finally:
        await db.dispose()


async def test_question_is_answered_by_quoting_the_document(fake, patient: TgUser):
    shown = await patient.send("Can I go to the gym?")  # "...after?": the aftercare, test_qa_safety
    assert len(shown) == 1
    message = shown[0]
    assert "Recovery After Mesotherapy › Downtime" in message.text
    quote = re.search(r"<blockquote>(.*?)</blockquote>", message.text, re.S).group(1)
    assert "avoid intense exercise" in quote
    assert norm(telegram_html.plain(quote)) in DOCUMENT  # quoted, never generated
    labels = patient.labels(message)
    assert labels[:2] == ["Downtime", "Recovery After Mesotherapy"]
    assert "💬 Ask the clinic" in labels and "🏠 Main menu" in labels
    # The related menu entry opens the same section in the menu.
    shown = await patient.press("Downtime")
    assert shown[0].text.startswith("<b>Downtime</b>")
    assert staff_messages(fake) == []  # an answered question bothers nobody


async def test_question_handoff_and_staff_reply_relayed_to_the_patient(fake, runner, patient):
    staff = TgUser(runner, "Staff", user_id=STAFF_ID)
    shown = await patient.send("How much does it cost?")
    assert "does not cover that" in shown[0].text and "prices" in shown[0].text
    assert staff_messages(fake) == []  # nothing goes to staff without the patient's say-so
    shown = await patient.press("💬 Yes, send it to the clinic")
    assert "passed to the clinic's staff" in shown[-1].text
    [alert] = staff_messages(fake)
    assert "Anna" in alert.params["text"] and "How much does it cost?" in alert.params["text"]
    data = reply_button(alert)

    # A second press does not alert staff twice.
    await patient.press("💬 Yes, send it to the clinic")
    assert len(staff_messages(fake)) == 1
    assert "already with the clinic" in patient.last_text()

    await staff.press_data(data, fake.messages[STAFF_ID][alert.result["message_id"]])
    assert "type your reply to question" in staff.last_text()
    await runner.restart()  # who is replying to what is a row, not memory
    await staff.send("It is £150 per session. <Call us> to book & pay.")
    relayed = fake.last_message(patient.id)
    assert "Reply from the clinic" in relayed.text
    assert "How much does it cost?" in relayed.text
    assert "It is £150 per session. &lt;Call us&gt; to book &amp; pay." in relayed.text
    assert "sent to Anna" in staff.last_text()
    [question] = await rows(runner, Question)
    assert question.status == "replied" and question.replied_by == STAFF_ID
    assert await rows(runner, StaffReplyTarget) == []
    # The staff member's next message is not sent to the patient again.
    before = len(fake.calls_to("sendMessage", patient.id))
    await staff.send("what is mesotherapy")
    assert len(fake.calls_to("sendMessage", patient.id)) == before


async def test_ask_the_clinic_after_an_answer_and_reply_command(fake, runner, patient):
    staff = TgUser(runner, "Staff", user_id=STAFF_ID)
    await patient.send("how many sessions will I need?")
    await patient.press("💬 Ask the clinic")
    [alert] = staff_messages(fake)
    question_id = int(re.search(r"#(\d+)", alert.params["text"]).group(1))
    await staff.send(f"/reply {question_id} Usually four,\nthree weeks apart.")
    assert "Usually four,\nthree weeks apart." in fake.last_message(patient.id).text
    await staff.send(f"/reply #{question_id} And the first one is a consultation.")  # as alerted
    assert "And the first one is a consultation." in fake.last_message(patient.id).text
    shown = await staff.send("/reply 999 hello")
    assert "no question #999" in shown[0].text
    shown = await staff.send("/reply nonsense")
    assert "Usage: /reply" in shown[0].text


async def test_red_flag_tells_the_patient_to_get_help_and_alerts_staff(fake, patient):
    shown = await patient.send("My lips are swelling up and my throat feels tight")
    assert len(shown) == 2 and "sent your message to the clinic's staff" in shown[1].text
    assert "Please get help now" in shown[0].text and "emergency" in shown[0].text
    assert "<blockquote>" not in shown[0].text  # the brochure is not quoted
    assert "Ask the clinic" not in " ".join(patient.labels(shown[0]))
    [alert] = staff_messages(fake)
    assert "URGENT" in alert.params["text"] and "allergic reaction" in alert.params["text"]
    assert "My lips are swelling up" in alert.params["text"]
    assert reply_button(alert).startswith("qa:reply:")
    # Main menu under the advice sends the menu below it: the advice stays in the chat (it was
    # edited into the menu, the contact line with it).
    advice = shown[0]
    menu = await patient.press("🏠 Main menu", advice)
    assert len(menu) == 1 and menu[0].message_id != advice.message_id
    assert "Please get help now" in fake.messages[patient.id][advice.message_id].text


async def test_an_edit_that_makes_a_message_urgent_is_handled_like_one_sent(fake, patient):
    """An edit was ignored: "my lips are swelling and my throat is tight" added by editing
    reached nobody. Other edits are not answered again."""
    import time

    message = patient._message(text="Is it painful?")
    await patient.send_raw(message)
    shown = await patient.send_raw(dict(message, text="Is it painful? Also, is there a risk?",
                                        edit_date=int(time.time())), kind="edited_message")
    assert shown == [] and staff_messages(fake) == []
    shown = await patient.send_raw(
        dict(message, text="my lips are swelling and my throat is tight",
             edit_date=int(time.time())), kind="edited_message")
    assert "Please get help now" in shown[0].text
    [alert] = staff_messages(fake)
    assert "URGENT" in alert.params["text"] and "my throat is tight" in alert.params["text"]


async def test_a_typo_fixed_in_an_urgent_message_alerts_staff_once(fake, runner, patient):
    import time

    message = patient._message(text="My lips are sweling up and my throat is tight")
    await patient.send_raw(message)
    shown = await patient.send_raw(dict(message, text="My lips are swelling up and my throat is "
                                        "tight", edit_date=int(time.time())), kind="edited_message")
    assert shown == []
    assert len([m for m in staff_messages(fake) if "URGENT" in m.params["text"]]) == 1
    assert len(await rows(runner, Question)) == 1


async def test_staff_editing_a_reply_they_sent_raise_no_alert(fake, runner, patient):
    """A staff member's edit was read as a patient's: "Please get help now" to them, a patient
    record and an URGENT alert about them."""
    import time

    await patient.send("How much does one session cost?")
    await patient.press("💬 Yes, send it to the clinic")
    staff = TgUser(runner, "Nurse", user_id=STAFF_ID)
    await staff.press_data(reply_button(staff_messages(fake)[-1]), fake.last_message(STAFF_ID))
    reply = staff._message(text="If the swelling gets worse or your throat feels tight, call 999.")
    await staff.send_raw(reply)
    before = len(staff_messages(fake))
    shown = await staff.send_raw(dict(reply, text=reply["text"] + " Now.",
                                      edit_date=int(time.time())), kind="edited_message")
    assert shown == [] and len(staff_messages(fake)) == before
    assert {q.patient_id for q in await rows(runner, Question)} == {1}


def _photo(patient: TgUser, caption: str) -> dict:
    return patient._message(caption=caption, photo=[
        {"file_id": "p1", "file_unique_id": "u1", "width": 90, "height": 90}])


async def test_a_red_flag_under_a_photo_is_escalated_like_a_typed_one(fake, patient):
    shown = await patient.send_raw(_photo(patient, "my lips are swelling, is this normal?"))
    assert "Please get help now" in shown[0].text
    assert "sent your message to the clinic's staff" in shown[-1].text
    [alert] = staff_messages(fake)
    assert "URGENT" in alert.params["text"] and "📎 my lips are swelling" in alert.params["text"]
    # Words that are not urgent: the usual answer that the bot reads text only.
    shown = await patient.send_raw(_photo(patient, "look at my new haircut"))
    assert "Please get help now" not in shown[0].text and len(staff_messages(fake)) == 1


async def test_non_staff_cannot_reply_or_touch_other_patients_questions(fake, runner, patient):
    mallory = TgUser(runner, "Mallory")
    await patient.send("what are your opening hours")
    [question] = await rows(runner, Question)
    # Another patient forges the handoff button of Anna's question: refused, staff not told.
    await mallory.send("hi")
    await mallory.press_data(f"qa:ask:{question.id}")
    assert "no longer available" in mallory.last_text()
    assert staff_messages(fake) == []
    # A patient forges the staff Reply button: refused, no reply target stored.
    before = len(fake.calls_to("sendMessage"))
    await mallory.press_data(f"qa:reply:{question.id}")
    answers = fake.calls_to("answerCallbackQuery")
    assert answers[-1].params.get("text") == "Sorry, this is only for clinic staff."
    assert await rows(runner, StaffReplyTarget) == []
    await mallory.press_data("qa:cancel")
    assert len(fake.calls_to("sendMessage")) == before
    # /reply from a patient is an unknown command, and nothing reaches Anna.
    shown = await mallory.send(f"/reply {question.id} gotcha")
    assert "don't know the command /reply" in shown[0].text
    assert all("gotcha" not in m.text for m in fake.messages[patient.id].values())
    # Staff rights are checked on every press: a former staff member is refused.
    await patient.press("💬 Yes, send it to the clinic")
    [alert] = staff_messages(fake)
    runner.settings.staff_ids = frozenset()
    staff = TgUser(runner, "Staff", user_id=STAFF_ID)
    await staff.press_data(reply_button(alert), fake.messages[STAFF_ID][alert.result["message_id"]])
    assert await rows(runner, StaffReplyTarget) == []


async def test_patient_names_with_html_are_escaped_for_staff(fake, runner):
    eve = TgUser(runner, first_name="<b>Eve</b> & Co")
    await eve.send("I have a fever and there is pus")
    [alert] = staff_messages(fake)
    assert "&lt;b&gt;Eve&lt;/b&gt; &amp; Co" in alert.params["text"]
    await eve.send("<i>botox price</i> & is it > 100?")
    await eve.press("💬 Yes, send it to the clinic")
    alert = staff_messages(fake)[-1]
    assert "&lt;i&gt;botox price&lt;/i&gt; &amp; is it &gt; 100?" in alert.params["text"]
    telegram_html.check(alert.params["text"])


async def test_a_reply_to_a_patient_who_blocked_the_bot_is_reported(fake, runner, patient):
    staff = TgUser(runner, "Staff", user_id=STAFF_ID)
    await patient.send("do you do botox")
    await patient.press("💬 Yes, send it to the clinic")
    [question] = await rows(runner, Question)
    fake.block(patient.id)
    shown = await staff.send(f"/reply {question.id} No, sorry.")
    assert "Could not deliver" in shown[0].text
    [question] = await rows(runner, Question)
    assert question.status == "handed_off"


async def test_greetings_and_empty_text_show_the_menu(fake, patient):
    shown = await patient.send("hello")
    assert "Ask me a question" in shown[0].text and "Uses of Mesotherapy" in patient.labels(shown[0])
    shown = await patient.send("?!")
    assert "Type your question" in shown[0].text
    shown = await patient.send("how much is it?")  # only small words, but a real question
    assert "does not cover that" in shown[0].text


async def test_red_flag_without_reachable_staff_does_not_claim_they_were_told(fake, runner, patient):
    fake.block(STAFF_ID)
    shown = await patient.send("I have a high temperature")
    assert len(shown) == 1 and "Please get help now" in shown[0].text
    assert "staff" not in shown[0].text


async def test_migration_creates_and_drops_the_question_tables(migrated_db):
    from bot.db.migrate import downgrade

    async with migrated_db.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
    assert {"questions", "staff_reply_targets"} <= set(tables)
    await downgrade(migrated_db, "0001")
    async with migrated_db.engine.connect() as conn:
        tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
    assert "questions" not in tables and "patients" in tables


@pytest.mark.postgres
async def test_migration_and_handoff_repository_on_postgresql(migrated_pg_db):
    """The same migration and the guarded handoff UPDATE on PostgreSQL (skipped without a server)."""
    db = migrated_pg_db
    now = datetime(2026, 5, 1, 9, tzinfo=UTC)
    async with db.session() as session:
        patient = await patients.upsert_from_telegram(
            session, user_id=7, chat_id=7, first_name="P", language_code=None, now=now)
        question = await repo.record(session, patient, "prices?", Result("unknown"), now, BOX)
    async with db.session() as session:
        assert await repo.of_patient(session, question.id, 8) is None
        assert await repo.hand_off(session, question.id, now) is True
        assert await repo.hand_off(session, question.id, now) is False
        await repo.start_reply(session, 42, question.id, 42, now)
    async with db.session() as session:
        assert await repo.take_reply_target(session, 42, 42, now, timedelta(minutes=5)) \
            == (question.id, False, None)
        assert await repo.take_reply_target(session, 42, 42, now, timedelta(minutes=5)) is None


async def test_reply_target_expires_belongs_to_one_chat_and_is_taken_once(migrated_db):
    db = migrated_db
    now = datetime(2026, 5, 1, 9, tzinfo=UTC)
    window = timedelta(minutes=30)
    async with db.session() as session:
        patient = await patients.upsert_from_telegram(
            session, user_id=7, chat_id=7, first_name="P", language_code=None, now=now)
        question = await repo.record(session, patient, "prices?", Result("unknown"), now, BOX)
        await repo.start_reply(session, 42, question.id, 42, now)
    async with db.session() as session:
        assert await repo.take_reply_target(session, 42, -100, now, window) is None  # other chat
        assert await repo.take_reply_target(session, 42, 42, now + window, window) \
            == (question.id, False, None)
        assert await repo.take_reply_target(session, 42, 42, now, window) is None  # taken: once
        await repo.start_reply(session, 42, question.id, 42, now)
        assert await repo.take_reply_target(session, 42, 42, now + window + timedelta(seconds=1),
                                            window) == (question.id, True, None)  # said expired
        # With a prompt (a staff group), only a reply to that prompt takes it.
        await repo.start_reply(session, 42, question.id, -100, now, prompt_message_id=555)
        assert await repo.take_reply_target(session, 42, -100, now, window) is None
        assert await repo.take_reply_target(session, 42, -100, now, window, 554) is None
        assert await repo.take_reply_target(session, 42, -100, now, window, 555) \
            == (question.id, False, 555)
    async with db.session() as session:  # the expired target was removed
        assert await session.get(StaffReplyTarget, 42) is None


async def test_migration_0009_keeps_questions_and_pending_replies_both_ways(db_url):
    """On SQLite a table rebuild (batch mode) drops `questions`, and with foreign keys on that
    deletes every pending staff Reply; 0009 only adds columns."""
    from sqlalchemy import text

    from bot.db.engine import Database
    from bot.db.migrate import downgrade, upgrade

    db = Database(db_url)
    await upgrade(db, "0008_reminder_indexes")
    now = datetime(2026, 5, 1, 9, tzinfo=UTC)
    async with db.session() as session:
        await session.execute(text(
            "INSERT INTO patients (id, telegram_user_id, chat_id, created_at, last_seen_at) "
            "VALUES (1, 7, 7, :now, :now)"), {"now": now})
        await session.execute(text(
            "INSERT INTO questions (id, patient_id, text, status, created_at) "
            "VALUES (1, 1, x'00', 'handed_off', :now)"), {"now": now})
        await session.execute(text(
            "INSERT INTO staff_reply_targets (staff_user_id, question_id, chat_id, started_at) "
            "VALUES (42, 1, 42, :now)"), {"now": now})

    async def counts() -> tuple[int, int]:
        async with db.session() as session:
            return (await session.scalar(text("SELECT count(*) FROM questions")),
                    await session.scalar(text("SELECT count(*) FROM staff_reply_targets")))

    await upgrade(db)
    assert await counts() == (1, 1)
    async with db.session() as session:
        assert await session.scalar(text("SELECT source FROM questions")) == "typed"
    await downgrade(db, "0008_reminder_indexes")
    assert await counts() == (1, 1)
    await db.dispose()
