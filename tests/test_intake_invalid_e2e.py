"""Every kind of invalid answer gets a clear, specific reply and the question again (e2e).

Hypothesis drives the real Application through the fake Bot API: one patient sits on the review
screen; each example opens a question with its Edit button and types the generated text. The
fake Bot API records any request Telegram would reject (bad HTML, empty or over-long text) and
fails the test at teardown.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import BotRunner, TgUser
from tests.intake_support import (
    agree,
    answer_until_phone,
    complete,
    intake_runner,  # noqa: F401 - the `runner` fixture
    reply_keyboard,
)

REVIEW = "Please check your answers"
OOPS = "Sorry, something went wrong"
TYPED_KINDS = {  # question id -> kind, one of each kind a patient can type an answer to
    "notes": "text", "phone": "phone", "earliest": "date", "allergies": "yes_no",
    "previous": "choice", "areas": "multi_choice",
}
EMOJI = st.sampled_from(["😀", "🎉🎉", "👍🏽", "❤️", "🤷‍♀️", "🇬🇧", "💉💊", "🙂 🙃"])
typed_text = st.one_of(
    st.text(min_size=1, max_size=300),
    EMOJI,
    st.builds(lambda e, n: e * n, EMOJI, st.integers(1, 400)),
    st.sampled_from(["a" * 5000, "é" * 5000, "<b>bold</b> & <script>", "&amp;", "   ", "\u200b"]),
).filter(lambda t: t.strip() and not t.startswith("/"))


async def intake_id(runner: BotRunner) -> int:
    from sqlalchemy import select

    from bot.db.intake_models import Intake

    svc = runner.app.bot_data["services"]
    async with svc.db.session() as session:
        return await session.scalar(select(Intake.id).where(Intake.status == "active"))


def assert_clear_reply(shown, text: str) -> None:
    assert shown, f"no reply to {text!r}"
    last = shown[-1].text
    assert OOPS not in last
    if REVIEW in last:
        return  # a valid answer: back to the review
    assert last.startswith("⚠️ "), f"no error message for {text!r}: {last[:200]!r}"
    assert "<i>Question" in last, "the question is asked again"
    assert len(last) < 4096


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(qid=st.sampled_from(sorted(TYPED_KINDS)), text=typed_text)
async def test_hypothesis_typed_answers_get_a_clear_reply(fake, runner, qid, text):
    patient = getattr(runner, "_hyp_patient", None)
    if patient is None:  # built once: hypothesis reuses the function's fixtures
        patient = runner._hyp_patient = TgUser(runner, "Hypo")
        await complete(patient)
        runner._hyp_iid = await intake_id(runner)
    await patient.press_data(f"ik:{runner._hyp_iid}:e:{qid}")
    shown = await patient.send(text)
    assert_clear_reply(shown, text)
    assert fake.violations == []
    if REVIEW not in shown[-1].text:
        # Still on the question: a valid answer returns to the review for the next example.
        valid = {"notes": "fine", "phone": "07911 123456", "earliest": "20/01/2027",
                 "allergies": "no", "previous": "No, never", "areas": "Face"}[qid]
        shown = await patient.send(valid)
        assert REVIEW in shown[-1].text


@pytest.mark.parametrize(("qid", "text", "expected"), [
    ("notes", "😀🎉", "couldn't find any letters or numbers"),
    ("notes", "a" * 5000, "That is 5000 characters; please keep it under 1000"),
    ("allergies_detail", "x", "at least 2 characters"),
    ("allergies", "maybe", "Please tap <b>Yes</b> or <b>No</b>"),
    ("allergies", "🤷", "Please tap <b>Yes</b> or <b>No</b>"),
    ("previous", "sometimes", "Please tap one of the buttons above"),
    ("areas", "face, knees", "type them separated by commas"),
    ("areas", "face, other, 99", "type them separated by commas"),
    ("days", "any time, saturdays", "can't be combined"),
    ("earliest", "next week-ish", "Please type a date as day/month/year"),
    ("earliest", "31/02/2027", "That date doesn't exist"),
    ("earliest", "01/01/2020", "That date has passed"),
    ("earliest", "01/01/2030", "Please choose a date before"),
    ("earliest", "😀", "Please type a date"),
    ("phone", "😀", "can contain only digits"),
    ("phone", "b" * 5000, "can contain only digits"),
])
async def test_specific_messages(fake, runner, qid, text, expected):
    patient = TgUser(runner, "Val")
    await complete(patient)
    iid = await intake_id(runner)
    await patient.press_data(f"ik:{iid}:e:{qid}")
    shown = await patient.send(text)
    assert len(shown) == 1
    assert shown[0].text.startswith("⚠️ ") and expected in shown[0].text
    assert "<i>Question" in shown[0].text  # asked again, with its buttons or keyboard
    assert shown[0].reply_markup


MALFORMED_PHONES = [
    ("abc", "can contain only digits"),
    ("12345", "too short"),
    ("+44 20 7946 095812345", "too long"),
    ("+999 1234 5678", "couldn't tell the country"),
    ("020 7946 095", "doesn't look like a valid phone number"),
    ("++44 7911 123456", "can contain only digits"),
    ("07911 12345a", "can contain only digits"),
    ("+44", "too short"),
    ("7911-123-456-789-0123", "too long"),
    ("+44 7911 123456 ext 12", "can contain only digits"),
]


async def test_ten_malformed_phones_then_a_good_one(fake, runner):
    patient = TgUser(runner, "Phone")
    await agree(patient)
    await answer_until_phone(patient)
    for text, expected in MALFORMED_PHONES:
        shown = await patient.send(text)
        assert len(shown) == 1, text
        assert shown[0].text.startswith("⚠️ ") and expected in shown[0].text, (text, shown[0].text)
        keyboard = reply_keyboard(shown[0])
        assert keyboard and keyboard["keyboard"][0][0]["request_contact"], "share button offered again"
    shown = await patient.send("+44 (0) 7911 123456")
    assert shown[0].reply_markup == {"remove_keyboard": True}
    assert "When would suit you" in shown[-1].text


async def test_non_text_messages_and_stray_contacts(fake, runner):
    patient = TgUser(runner, "Sticker")
    await agree(patient)
    photo = {"photo": [{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}]}
    shown = await patient.send_raw(patient._message(**photo))
    assert shown[-1].text.startswith("⚠️ Please answer with a text message")
    shown = await patient.send_contact("+447911123456")  # a contact where a choice is asked
    assert shown[-1].text.startswith("⚠️ ")
    await answer_until_phone(patient)
    shown = await patient.send_contact("+1 23")
    assert shown[-1].text.startswith("⚠️ ") and reply_keyboard(shown[-1])
    shown = await patient.send_contact("447911123456")  # Telegram often omits the +
    assert "your number is saved" in shown[0].text


forged_data = st.one_of(
    st.from_regex(r"ik:[0-9]{0,13}:(a|t|d|s|b|e|sub|x|zz)(:[a-z0-9_]{0,22}){0,3}", fullmatch=True),
    st.from_regex(r"ik:(c[yn]|go|view|upd|del|delok)(:[ -~]{0,20})?", fullmatch=True),
    st.from_regex(r"iks:[0-9]{1,12}", fullmatch=True),
    st.text(min_size=1, max_size=20).map(lambda t: "ik:" + t),
).filter(lambda d: len(d.encode()) <= 64)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=forged_data)
async def test_hypothesis_forged_buttons_are_answered_and_harmless(fake, runner, data):
    patient = getattr(runner, "_forge_patient", None)
    if patient is None:
        patient = runner._forge_patient = TgUser(runner, "Forger")
        await agree(patient)
    before = len(fake.calls_to("answerCallbackQuery"))
    shown = await patient.press_data(data)
    assert len(fake.calls_to("answerCallbackQuery")) == before + 1
    assert all(OOPS not in m.text for m in shown)
    assert fake.violations == []
    # Whatever was pressed, the patient can still reach the questionnaire.
    shown = await patient.send("/start intake")
    assert shown and OOPS not in shown[-1].text
