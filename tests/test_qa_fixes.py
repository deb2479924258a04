"""Fixes from a product walkthrough of typed questions: text the bot cannot read, a patient's own
symptom, off-topic questions answered with a quote, answerable ones handed off, smalltalk,
booking requests. Engine first, then through the real bot and the fake Bot API."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from bot import telegram_html
from bot.content import Block, ContentError, Node, load_content
from bot.db import Database
from bot.db.qa_models import HANDED_OFF, Question
from bot.qa import REQUIRED_TEXTS, build_qa, load_qa_config
from tests.conftest import make_settings
from tests.harness import BotRunner, TgUser
from tests.qa_eval import resolve
from tests.textcheck import norm

CONTENT_DIR = Path(__file__).resolve().parent.parent / "content"
CONTENT = load_content(CONTENT_DIR)
ENGINE = build_qa(CONTENT, CONTENT_DIR)
STAFF_ID = 42
DOCUMENT = norm((CONTENT_DIR / "mesotherapy.md").read_text(encoding="utf-8"))

RUSSIAN_EMERGENCY = "у меня опухли губы и трудно дышать"  # my lips are swollen, hard to breathe


# ------------------------------------------------------------------ 1. scripts it cannot read

@pytest.mark.parametrize("text", [
    RUSSIAN_EMERGENCY, "Что такое мезотерапия?", "美塑疗法是什么",
    "Hello, " + RUSSIAN_EMERGENCY,  # a stray English word does not make it readable
])
def test_text_in_a_script_the_bot_cannot_read_is_not_empty(text):
    assert ENGINE.ask(text).kind == "unreadable"


def test_accented_latin_and_red_flags_are_read_as_before():
    assert ENGINE.ask("café?").kind != "unreadable"  # é is a Latin letter
    # An English red flag in a mostly Cyrillic message is still escalated as one.
    assert ENGINE.ask("my lips are swelling у меня опухли губы").kind == "red_flag"


@pytest.mark.parametrize(("text", "kind"), [
    # A thumbs-up thanks for nothing: the menu, not "You're welcome" (test_qa_safety.py).
    ("👍", "empty"), ("👍🏽👍", "empty"), ("🙏", "thanks"), ("🙏🏻", "thanks"), ("❤️", "empty"),
    ("🤔", "empty"), ("?!", "empty"),
])
def test_folded_hands_are_thanks_other_symbols_show_the_menu(text, kind):
    assert ENGINE.ask(text).kind == kind


# ------------------------------------------------------------------ 2. the patient's own symptom

@pytest.mark.parametrize("text", [
    "still swollen after 2 weeks", "it is very itchy after the session",
    "i have a headache after the treatment", "I have a rash after the injection",
    "my face is still swollen, will it go down?", "I've got lumps where I was injected",
    "I have small bruises where the needle went in, when will they go",
    "my skin is a bit itchy after the injections, is that normal",
    "can I go to the gym? my legs are really sore since the session",  # the second clause
])
def test_a_patient_reporting_their_own_symptom_is_not_quoted(text):
    result = ENGINE.ask(text)
    assert result.kind == "symptom" and result.matches == []


@pytest.mark.parametrize("text", [
    # A goal or a condition before any treatment: a question, not a report.
    "I have lumpy cellulite on my thighs, does mesotherapy work for it?",
    "I have puffy eyes, can mesotherapy help?", "My skin feels tight and dry, would mesotherapy help?",
    "I have red cheeks, can this treatment help?", "I am very sensitive to pain, what can I do?",
    "I'm on a tight schedule, how long does a session take?",
    "How long does my face stay swollen after mesotherapy?",
    "My friend had bruising after her treatment, is that normal?",
])
def test_goals_and_general_questions_are_not_symptom_reports(text):
    assert ENGINE.ask(text).kind != "symptom"


@pytest.mark.parametrize(("text", "expected"), [
    ("how long does swelling last after treatment?", "Recovery After Mesotherapy/Initial Recovery"),
    ("will I have bruising?", "Recovery After Mesotherapy/Initial Recovery"),
    ("is it normal to be red and bruised afterwards", "Recovery After Mesotherapy/Initial Recovery"),
    ("I'm scared of pain, is there an anaesthtic", "The Mesotherapy Procedure/2. Preparation"),
    ("does it hurt?", "The Mesotherapy Procedure/2. Preparation"),
    ("is it painful", "The Mesotherapy Procedure/2. Preparation"),
])
def test_general_questions_about_symptoms_are_still_answered(text, expected):
    result = ENGINE.ask(text)
    assert result.kind == "answer", result
    assert result.best.node is resolve(CONTENT, expected)


@pytest.mark.parametrize("text", [
    "will my face be swollen", "what if I have a rash afterwards", "I bruise easily",
    "can it cause bruising?",
])
def test_questions_about_a_possible_symptom_are_not_reports(text):
    assert ENGINE.ask(text).kind not in ("symptom", "red_flag")


def test_an_urgent_symptom_stays_a_red_flag():
    assert ENGINE.ask("I have a rash all over and my lips are swollen").kind == "red_flag"


# ------------------------------------------------------------------ 3, 4. what the document says

@pytest.mark.parametrize("text", [
    "Can it help with acne scars?", "does it help with scars", "does it work on acne",
])
def test_conditions_the_document_never_mentions_are_handed_off(text):
    assert ENGINE.ask(text).kind == "unknown"


@pytest.mark.parametrize(("text", "expected"), [
    ("will there be any cuts or scars", "Benefits of Mesotherapy/Non-Surgical"),  # still
    ("does it leave scars", "Benefits of Mesotherapy/Non-Surgical"),
    ("what is the recovery time", "Recovery After Mesotherapy/Initial Recovery"),
    ("how long does the swelling last", "Recovery After Mesotherapy/Initial Recovery"),
    ("when will the swelling go down", "Recovery After Mesotherapy/Initial Recovery"),
    ("can it cause bruising?", "Recovery After Mesotherapy/Initial Recovery"),
])
def test_questions_the_document_answers_are_answered(text, expected):
    result = ENGINE.ask(text)
    assert result.kind == "answer", result
    assert result.best.node is resolve(CONTENT, expected)


@pytest.mark.parametrize("text", ["how long does a session take", "how long do the results last"])
def test_durations_the_document_does_not_give_are_handed_off(text):
    assert ENGINE.ask(text).kind == "unknown"


@pytest.mark.parametrize(("text", "kind"), [
    ("what can you do", "help"), ("help", "help"), ("thank you so much!", "thanks"),
    ("thank you", "thanks"), ("ok thanks bye", "thanks"), ("Thank you very much", "thanks"),
    ("thnaks", "thanks"),  # a typo in a one-word thanks is still corrected
])
def test_smalltalk(text, kind):
    assert ENGINE.ask(text).kind == kind


# ------------------------------------------------------------------ 5. booking

@pytest.mark.parametrize("text", [
    "I want to book a consultation", "how do I make an appointment?", "can I book for next tuesday",
])
def test_booking_requests_are_recognised(text):
    assert ENGINE.ask(text).kind == "booking"


@pytest.mark.parametrize(("text", "kind"), [
    ("can I cancel my booking", "unknown"),  # staff, through the usual handoff
    ("what happens at the first appointment", "answer"),
    ("do I need a consultation first?", "answer"),
])
def test_not_every_mention_of_an_appointment_is_a_booking(text, kind):
    assert ENGINE.ask(text).kind == kind


@pytest.mark.parametrize("text", [
    "How do I get ready for my appointment?", "Do I need to get anything before my appointment?",
    "Can I get my appointment reminders by email?", "My booking confirmation didn't arrive",
    "Do I need to book a follow-up session?", "Can I sign up for the newsletter?",
])
def test_questions_about_an_appointment_are_not_requests_to_book(text):
    assert ENGINE.ask(text).kind != "booking"


def test_the_no_answer_text_no_longer_claims_bookings_are_not_covered():
    assert "booking" not in ENGINE.config.texts["no_answer"].lower()


# ------------------------------------------------------------------ configuration

def test_the_new_texts_are_required(tmp_path: Path):
    assert {"unreadable", "staff_unreadable", "symptom_report", "booking", "booking_handoff",
            "help"} <= set(REQUIRED_TEXTS)
    qa_file = tmp_path / "qa.yaml"
    text = (CONTENT_DIR / "qa.yaml").read_text(encoding="utf-8")
    qa_file.write_text(text.replace("  symptom_report: |-", "  symptom_reportx: |-", 1),
                       encoding="utf-8")
    with pytest.raises(ContentError, match="missing text 'symptom_report'"):
        load_qa_config(qa_file)


@pytest.mark.parametrize(("section", "key"), [
    ("symptom_reports", "personal"), ("symptom_reports", "unless"), ("booking_requests", "unless"),
    ("symptom_reports", "acute"),
])
def test_an_empty_rule_list_fails_at_start_with_its_line(tmp_path: Path, section, key):
    qa_file = tmp_path / "qa.yaml"
    text = (CONTENT_DIR / "qa.yaml").read_text(encoding="utf-8")
    start = text.index(f"  {key}: [", text.index(f"\n{section}:"))
    end = text.index("]", start) + 1
    text = text[:start] + f"  {key}: []" + text[end:]
    qa_file.write_text(text, encoding="utf-8")
    line = text[:start].count("\n") + 1
    with pytest.raises(ContentError, match=f"qa.yaml:{line}: {section}.{key}: expected a list"):
        load_qa_config(qa_file)


# ------------------------------------------------------------------ through the bot

def staff_messages(fake):
    return fake.calls_to("sendMessage", STAFF_ID)


async def questions(runner: BotRunner) -> list[Question]:
    db = Database(runner.settings.database_url)
    try:
        async with db.session() as session:
            return list((await session.scalars(select(Question).order_by(Question.id))).all())
    finally:
        await db.dispose()


async def test_an_unreadable_message_goes_to_staff_at_once(fake, runner, patient):
    shown = await patient.send(RUSSIAN_EMERGENCY)
    assert "only read messages in English" in shown[0].text
    assert "emergency number" in shown[0].text  # it may be urgent: the patient hears what to do
    assert "passed to the clinic's staff" in shown[-1].text
    [alert] = staff_messages(fake)
    assert "not in English" in alert.params["text"] and RUSSIAN_EMERGENCY in alert.params["text"]
    [question] = await questions(runner)
    assert question.status == HANDED_OFF and question.alerted_at is not None
    # Staff reply as to any question.
    staff = TgUser(runner, "Staff", user_id=STAFF_ID)
    await staff.send(f"/reply {question.id} Пожалуйста, позвоните нам.")
    assert "Пожалуйста, позвоните нам." in fake.last_message(patient.id).text


async def test_an_unreadable_message_without_reachable_staff_says_so(fake, runner, patient):
    fake.block(STAFF_ID)
    shown = await patient.send("美塑疗法是什么")
    assert "could not reach the clinic's staff" in shown[-1].text
    [question] = await questions(runner)
    assert question.status == HANDED_OFF and question.alerted_at is None  # alerted again later


async def test_a_symptom_report_is_offered_to_staff_not_quoted(fake, patient):
    shown = await patient.send("I have a rash after the injection")
    [message] = shown
    assert "<blockquote>" not in message.text and "prices" not in message.text
    assert "cannot advise on your own symptoms" in message.text
    assert staff_messages(fake) == []  # nothing goes without the patient's say-so
    await patient.press("💬 Yes, send it to the clinic")
    [alert] = staff_messages(fake)
    assert "I have a rash after the injection" in alert.params["text"]
    assert "URGENT" not in alert.params["text"]


async def test_help_and_thanks_show_the_menu(fake, patient):
    shown = await patient.send("what can you do")
    assert "Type a question in your own words" in shown[0].text
    assert "Uses of Mesotherapy" in patient.labels(shown[0])
    shown = await patient.send("thank you so much!")
    assert "You're welcome" in shown[0].text
    assert staff_messages(fake) == []


async def test_a_booking_request_gets_the_questionnaire_button(fake, runner, patient):
    shown = await patient.send("I want to book a consultation")
    [message] = shown
    assert "ask for a consultation here" in message.text and "bookings" not in message.text
    rows = message.reply_markup["inline_keyboard"]
    assert rows[0][0] == {"text": "📝 Book a consultation", "callback_data": "ik:go"}
    # Kept, so that what the patient wrote can still go to staff if it was not a booking.
    assert rows[1][0]["callback_data"].startswith("qa:ask:")
    assert len(await questions(runner)) == 1
    shown = await patient.press("📝 Book a consultation")
    assert "Before we start: your consent" in shown[-1].text  # the questionnaire's entry


async def test_without_the_questionnaire_a_booking_request_is_offered_to_staff(
        fake, db_url, tmp_path):
    content = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, content)
    (content / "intake.yaml").unlink()
    bot = BotRunner(fake, make_settings(fake, db_url, content_dir=content))
    await bot.start()
    try:
        patient = TgUser(bot, "Anna")
        [message] = await patient.send("how do I make an appointment?")
        assert "cannot book appointments myself" in message.text
        assert "📝 Book a consultation" not in patient.labels(message)
        await patient.press("💬 Yes, send it to the clinic")
        [alert] = staff_messages(fake)
        assert "how do I make an appointment?" in alert.params["text"]
    finally:
        await bot.stop()


# ------------------------------------------------------------------ weight loss, whole sections

@pytest.mark.parametrize("text", [
    "will I lose weight?", "can it make me slim?", "can mesotherapy help with weight loss",
    "how much weight will I lose", "will it make me slimmer", "Can you slim down my thighs?",
])
def test_weight_loss_is_handed_to_staff(text):
    # The document speaks only of localized fat deposits: quoting it would read as a yes.
    assert ENGINE.ask(text).kind == "unknown"


@pytest.mark.parametrize("text", [
    "can it reduce a double chin?", "does it work on belly fat?",
    "I want to lose the fat on my belly",
])
def test_questions_about_localized_fat_are_still_answered(text):
    result = ENGINE.ask(text)
    assert result.kind == "answer", result
    assert result.best.node is resolve(CONTENT, "Uses of Mesotherapy/2. Fat Reduction")


@pytest.mark.parametrize(("text", "section"), [
    ("what are the risks?", "Risks and Considerations"),
    ("are there any risks?", "Risks and Considerations"),
    ("is it safe?", "Risks and Considerations"),
    ("is it dangerous", "Risks and Considerations"),
    ("what are the benefits?", "Benefits of Mesotherapy"),  # any section of short items
])
def test_a_question_about_a_whole_section_gets_all_its_items(text, section):
    result = ENGINE.ask(text)
    assert result.kind == "answer", result
    node, menu_node = result.best.node, resolve(CONTENT, section)
    assert node == menu_node and node.id == menu_node.id  # its buttons and records: the section
    # Every item, in the document's order: its heading, then its own text as written.
    assert [b.plain() for b in node.blocks] == [
        text for item in menu_node.children for text in [item.title, *map(Block.plain, item.blocks)]]


@pytest.mark.parametrize(("text", "expected"), [
    ("can I be allergic to it?", "Risks and Considerations/Allergic Reactions"),
    ("risk of infection?", "Risks and Considerations/Infection"),
    ("what are the side effects", "Risks and Considerations/Side Effects"),
    ("what are the risks and side effects", "Risks and Considerations/Side Effects"),
    ("what is the recovery time", "Recovery After Mesotherapy/Initial Recovery"),  # item's name
    ("what is mesotherapy", "about"),  # the document's name, in most headings, picks no section
])
def test_a_question_naming_one_item_still_gets_that_item(text, expected):
    result = ENGINE.ask(text)
    assert result.kind == "answer", result
    assert result.best.node is resolve(CONTENT, expected)


def test_only_a_section_of_short_items_is_answered_whole():
    from bot.qa import SECTION_QUOTE_LIMIT, SectionAnswer
    from handlers.questions import QUOTE_BUDGET

    assert SECTION_QUOTE_LIMIT <= QUOTE_BUDGET  # answered whole, never cut
    assert SectionAnswer.of(resolve(CONTENT, "Risks and Considerations")) is not None
    assert SectionAnswer.of(resolve(CONTENT, "Risks and Considerations/Infection")) is None
    short = Node(key="s/a", title="A", label="A", blocks=[Block("para", ["Short."])])
    long = Node(key="s/b", title="B", label="B", blocks=[Block("para", ["word " * 400])])
    assert SectionAnswer.of(Node(key="s", title="S", label="S", children=[short, long])) is None


async def test_the_risks_are_quoted_whole_through_the_bot(fake, runner, patient):
    [message] = await patient.send("what are the risks?")
    assert "from <b>Risks and Considerations</b>" in message.text
    assert len(message.text) <= 4096 and "(more in the full section)" not in message.text
    quote = re.search(r"<blockquote>(.*?)</blockquote>", message.text, re.S).group(1)
    for item in resolve(CONTENT, "Risks and Considerations").children:
        assert f"<b>{item.title}</b>" in quote and item.blocks[0].html() in quote
    assert norm(telegram_html.plain(quote)) in DOCUMENT  # quoted word for word, in order
    assert patient.labels(message)[0] == "Risks and Considerations"
    shown = await patient.press("Risks and Considerations")  # the section's menu, as before
    assert "Infection" in patient.labels(shown[0])
    [question] = await questions(runner)
    assert question.node_id == resolve(CONTENT, "Risks and Considerations").id


@pytest.mark.parametrize("text", ["bruising risks and safety", "what are the benefits for recovery?",
                                  "risk safe bruising", "benefits recovery"])
def test_an_answer_never_offers_the_same_section_twice(text):
    """A whole section is the same menu entry as its node: the answer's buttons (the section,
    its parent, a related entry) name each entry once."""
    from types import SimpleNamespace

    from handlers.questions import answer_screen

    result = ENGINE.ask(text)
    assert result.kind == "answer", result
    targets = [data for row in answer_screen(SimpleNamespace(qa=ENGINE), result, 1).rows
               for _, data in row if data.startswith("n:")]
    assert len(targets) == len(set(targets)), targets


@pytest.mark.parametrize("text", ["how effective is it", "is it effective", "effectiveness?"])
def test_effective_is_not_answered_with_side_effects(text):
    """The stemmer made "effective" "effect": Side Effects was quoted at full confidence."""
    result = ENGINE.ask(text)
    assert result.kind == "answer" and result.matches[0].node.title == "Expectation Management"
    assert ENGINE.ask("any side effects?").matches[0].node.title == "Side Effects"
