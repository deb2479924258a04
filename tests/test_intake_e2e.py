"""The consultation intake end to end through the fake Bot API (the real Application)."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.db.intake_models import Intake, IntakeConsent
from bot.db.privacy_models import AuditEvent
from tests.harness import BotRunner, TgUser
from tests.intake_support import (
    MENU_BUTTON,
    agree,
    answer_until_phone,
    clock,
    complete,
    current_question,
    finish_after_phone,
    intake_runner,  # noqa: F401 - the `runner` fixture: the bot on the intake tests' clock
    open_intake,
    reply_keyboard,
    toggle_done,
)

STAFF_ID = 42


def staff_messages(fake) -> list:
    return [m for _, m in sorted((fake.messages.get(STAFF_ID) or {}).items())]


def urgent_alerts(fake) -> int:
    return sum("URGENT" in c.params["text"] for c in fake.calls_to("sendMessage", STAFF_ID))


def everything_shown(fake, chat_id: int) -> str:
    """Every text ever sent to or edited in a chat (edits keep their earlier versions here)."""
    return "\n".join(str(c.params.get("text", "")) for c in fake.calls
                     if c.method in ("sendMessage", "editMessageText")
                     and str(c.params.get("chat_id")) == str(chat_id))


async def count(runner: BotRunner, model) -> int:
    svc = runner.app.bot_data["services"]
    async with svc.db.session() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def test_happy_path_consent_questions_review_submit_and_staff_summary(fake, runner, patient):
    shown = await patient.send("/start")
    assert MENU_BUTTON in patient.labels(shown[-1])
    shown = await patient.press(MENU_BUTTON)
    consent = shown[-1].text
    for needed in ("What I will ask about", "Why:", "Who sees it:", "Deleting it:"):
        assert needed in consent or needed.lower() in consent.lower()
    assert patient.labels(shown[-1]) == ["✅ I agree", "✖️ No, thanks"]

    shown = await patient.press("✅ I agree")
    assert "✓ <b>I agree</b>" in shown[0].text and shown[0].reply_markup is None  # consent edited, no buttons
    assert "Question 1 of" in shown[-1].text and "mesotherapy" in shown[-1].text
    assert "Facial rejuvenation" in " ".join(patient.labels(shown[-1]))
    svc = runner.app.bot_data["services"]
    async with svc.db.session() as session:
        consent_row = await session.scalar(select(IntakeConsent))
    assert consent_row.version == svc.intake.spec.consent_version
    assert consent_row.agreed_at == clock().now()

    shown = await patient.press("▫️ Facial rejuvenation")
    assert "✅ Facial rejuvenation" in patient.labels(shown[-1])  # toggled in place
    await patient.press("Done ✓")
    await answer_until_phone(patient, goal=False)
    phone_prompt = fake.last_message(patient.id)
    keyboard = reply_keyboard(phone_prompt)
    assert keyboard is not None, "the phone question offers Telegram's share-contact keyboard"
    assert keyboard["keyboard"][0][0].get("request_contact") is True

    shown = await patient.send_contact("+44 7911 123456")
    assert shown[0].reply_markup == {"remove_keyboard": True}  # the contact keyboard goes away
    assert "When would suit you" in shown[-1].text
    review = await finish_after_phone(patient)
    text = review[-1].text
    for expected in ("Facial rejuvenation", "Penicillin: I had a rash", "Yes, blood thinners",
                     "Warfarin 5 mg daily", "+44 7911 123456", "Weekday mornings", "15 Jan 2027",
                     "(skipped)"):
        assert expected in text, expected
    assert "📨 Submit" in patient.labels(review[-1])

    shown = await patient.press("📨 Submit")
    assert "sent to the clinic" in shown[0].text and "+44 7911 123456" in shown[0].text
    assert "What happens next" in shown[0].text

    staff = staff_messages(fake)
    assert len(staff) == 1
    summary = staff[0].text
    flags_at = summary.index("Possible contraindications (2)")
    assert flags_at < summary.index("Goal:"), "flags come before the answers"
    assert "Allergies reported" in summary and "Takes blood thinners" in summary
    assert "Pregnant" not in summary.split("Goal:")[0]  # answered No: not flagged
    buttons = [b for row in staff[0].reply_markup["inline_keyboard"] for b in row]
    assert buttons[0]["callback_data"].startswith("iks:")
    assert buttons[1]["url"] == f"tg://user?id={patient.id}"

    staff_user = TgUser(runner, "Staff", user_id=STAFF_ID)
    shown = await staff_user.press("📞 Phone number", staff[0])
    assert "+44 7911 123456" in shown[-1].text
    # A patient forging the staff button learns nothing.
    before = len(fake.messages.get(patient.id, {}))
    await patient.press_data(buttons[0]["callback_data"], staff[0])
    assert len(fake.messages.get(patient.id, {})) == before
    answers = [c for c in fake.calls_to("answerCallbackQuery") if c.params.get("show_alert")]
    assert answers and "only for clinic staff" in answers[-1].params["text"]
    async with svc.db.session() as session:
        audit = [(a.action, a.actor_user_id, a.subject) for a in await session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("intake%")).order_by(AuditEvent.id))]
    assert audit == [("intake_submitted", 0, "intake:1"),  # 0: the patient (never their id)
                     ("intake_staff_notified", None, "intake:1"),
                     ("intake_contact_viewed", STAFF_ID, "intake:1")]


async def test_old_buttons_are_stale_and_harmless(fake, runner, patient):
    await agree(patient)
    goal_message = patient.last_keyboard_message()
    done = goal_message.reply_markup["inline_keyboard"][-2][0]["callback_data"]
    assert done == "ik:1:d:goal"
    await toggle_done(patient, "Cellulite")
    shown = await patient.press_data(done, goal_message)  # the first question's old button
    assert "earlier step" in shown[-1].text and "Which areas" in shown[-1].text
    shown = await patient.press_data("ik:1:a:areas:../../etc", goal_message)  # forged
    assert "earlier step" in shown[-1].text
    shown = await patient.press_data("ik:999:x", goal_message)  # someone else's intake id
    assert "earlier step" in shown[-1].text
    assert await count(runner, Intake) == 1  # nothing was cancelled


async def test_staff_group_chat_receives_the_summary(fake, db_url):
    from tests.conftest import make_settings

    bot_runner = BotRunner(fake, make_settings(fake, db_url, staff_chat_id=-1001234), clock=clock())
    await bot_runner.start()
    try:
        patient = TgUser(bot_runner, "Gina")
        await complete(patient)
        await patient.press("📨 Submit")
        group = list((fake.messages.get(-1001234) or {}).values())
        assert len(group) == 1 and group[0].text.index("Possible contraindications") < \
            group[0].text.index("Goal:")
        assert not fake.messages.get(STAFF_ID)
    finally:
        await bot_runner.stop()


async def test_deep_link_opens_consent(runner, patient):
    shown = await patient.send("/start intake")
    assert len(shown) == 1 and "your consent" in shown[0].text
    assert patient.labels(shown[0]) == ["✅ I agree", "✖️ No, thanks"]


async def test_decline_consent_collects_nothing(fake, runner, patient):
    await open_intake(patient)
    shown = await patient.press("✖️ No, thanks")
    assert "nothing was saved" in shown[0].text
    assert MENU_BUTTON in patient.labels(shown[-1])  # back at the main menu
    assert await count(runner, IntakeConsent) == 0
    assert await count(runner, Intake) == 0
    # Free text afterwards is not swallowed by the intake.
    shown = await patient.send("hello")
    assert "Ask me a question" in shown[-1].text  # the questions feature took it


async def test_back_and_edit(fake, runner, patient):
    await agree(patient)
    await toggle_done(patient, "Fat reduction")
    shown = await patient.press("‹ Back")
    assert "What would you like mesotherapy to help with" in shown[-1].text
    assert "✅ Fat reduction" in patient.labels(shown[-1])  # the previous answer is kept, shown
    await patient.press("✅ Fat reduction")  # untick
    await toggle_done(patient, "Cellulite")
    shown = await toggle_done(patient, "Thighs")
    # Back on the third question goes to the second, whose answer is remembered.
    await patient.press("No, never")
    shown = await patient.press("‹ Back")
    assert "Which areas" not in shown[-1].text and "aesthetic treatments before" in shown[-1].text
    assert "Your answer so far: No, never" in shown[-1].text
    await patient.press("Yes, other treatments")
    assert "allergies" in current_question(patient)
    await patient.press("Yes")
    await patient.send("Latex")
    await patient.press("No")  # medicines: none -> the details question is not asked
    assert "pregnant" in current_question(patient)
    await patient.press("No")
    await patient.press("No")
    await patient.press("No")
    # Back from the phone question (a reply keyboard) works by its typed label.
    shown = await patient.send("‹ Back")
    assert shown[0].reply_markup == {"remove_keyboard": True}
    assert "long-term" in shown[-1].text
    await patient.press("No")
    await patient.send("07911 123456")
    review = await finish_after_phone(patient)
    assert "Cellulite" in review[-1].text and "Fat reduction" not in review[-1].text
    assert "Yes, other treatments" in review[-1].text

    # Edit from the review: allergies Yes -> No drops the allergy details; back to the review.
    shown = await patient.press("✏️ Allergies")
    assert "allergies" in shown[-1].text
    shown = await patient.press("No")
    assert "Please check your answers" in shown[-1].text
    assert "Latex" not in shown[-1].text and "Allergy details" not in shown[-1].text
    # Edit medicines to blood thinners: the follow-up is asked first, then the review again.
    await patient.press("✏️ Medicines")
    shown = await patient.press("Yes, blood thinners")
    assert "Which medicines" in shown[-1].text
    shown = await patient.send("Apixaban")
    assert "Please check your answers" in shown[-1].text and "Apixaban" in shown[-1].text
    # Edit the phone from the review: typed, validated, keyboard removed, back to review.
    await patient.press("✏️ Phone")
    shown = await patient.send("+44 20 7946 0958")
    assert shown[0].reply_markup == {"remove_keyboard": True}
    assert "+44 20 7946 0958" in shown[-1].text
    shown = await patient.press("📨 Submit")
    summary = staff_messages(fake)[-1].text
    assert "Takes blood thinners" in summary and "Allergies reported" not in summary


async def test_cancel_at_any_point_deletes_the_answers(fake, runner, patient):
    await agree(patient)
    await toggle_done(patient, "Cellulite")
    shown = await patient.send("/cancel")  # answers given: asked first
    assert "will be deleted" in shown[-1].text
    assert patient.labels(shown[-1]) == ["✖️ Yes, stop", "‹ No, go on"]
    assert await count(runner, Intake) == 1
    shown = await patient.press("✖️ Yes, stop")
    assert "Cancelled" in shown[0].text
    assert MENU_BUTTON in patient.labels(shown[-1])
    assert await count(runner, Intake) == 0
    shown = await patient.send("/cancel")
    assert "nothing to cancel" in shown[-1].text
    # Cancel button, and cancel while the phone keyboard is up.
    await patient.press(MENU_BUTTON)
    shown = await patient.press("✅ I agree")
    shown = await patient.press("✖️ Cancel")  # nothing answered yet: at once
    assert "Cancelled" in shown[0].text
    assert await count(runner, Intake) == 0
    await patient.press(MENU_BUTTON)
    await patient.press("✅ I agree")
    await answer_until_phone(patient)
    shown = await patient.send("✖️ Cancel")
    assert shown[0].reply_markup == {"remove_keyboard": True} and "will be deleted" in shown[-1].text
    asked = shown[-1]
    shown = await patient.press("‹ No, go on", asked)  # the phone question again, keyboard up
    assert "phone number" in shown[-1].text and "keyboard" in (shown[-1].reply_markup or {})
    # The question answered lost its buttons: a "Yes, stop" pressed there later deleted all.
    assert patient.labels(fake.messages[patient.id][asked.message_id]) == []
    assert "✓ <b>No, go on</b>" in fake.messages[patient.id][asked.message_id].text
    shown = await patient.send("✖️ Cancel")
    shown = await patient.press("✖️ Yes, stop", shown[-1])
    assert "Cancelled" in shown[0].text
    assert await count(runner, Intake) == 0


async def test_restart_mid_intake_continues(fake, runner, patient):
    await agree(patient)
    await answer_until_phone(patient)
    await runner.restart()
    shown = await patient.send("07911 123456")  # answers the open phone question after restart
    assert "your number is saved" in shown[0].text
    await runner.restart()
    shown = await patient.send("/start")
    shown = await patient.press(MENU_BUTTON)
    assert "Welcome back" in shown[-1].text and "When would suit you" in shown[-1].text
    review = await finish_after_phone(patient)
    assert "Warfarin 5 mg daily" in review[-1].text
    await runner.restart()
    await patient.press("📨 Submit")
    assert len(staff_messages(fake)) == 1


async def test_two_patients_interleaved_never_see_each_other(fake, runner):
    anna = TgUser(runner, "Anna")
    ben = TgUser(runner, "Ben")
    await agree(anna)
    await agree(ben)
    await toggle_done(anna, "Cellulite")
    await toggle_done(ben, "Stretch marks")
    await toggle_done(anna, "Thighs")
    await toggle_done(ben, "Arms")
    await anna.press("No, never")
    await ben.press("Yes, mesotherapy")
    await anna.press("Yes")
    await ben.press("Yes")
    await anna.send("ANNA-ALLERGY-SECRET")
    await ben.send("BEN-ALLERGY-SECRET")
    # Ben presses a button copied from Anna's chat (forged callback data): rejected as stale.
    anna_button = anna.last_keyboard_message()
    data = anna_button.reply_markup["inline_keyboard"][0][0]["callback_data"]
    shown = await ben.press_data(data, ben.last_keyboard_message())
    assert "earlier step" in shown[-1].text
    for user in (anna, ben):
        await user.press("No")  # medicines
        await user.press("No")
        await user.press("No")
        await user.press("No")
    shown = await anna.send("07911 123456")
    assert "When would suit you" in shown[-1].text, [m.text for m in shown]
    shown = await ben.send("07911 123457")
    assert "When would suit you" in shown[-1].text, [m.text for m in shown]
    await finish_after_phone(anna)
    await finish_after_phone(ben)
    await anna.press("📨 Submit")
    await ben.press("📨 Submit")
    anna_text, ben_text = everything_shown(fake, anna.id), everything_shown(fake, ben.id)
    assert "ANNA-ALLERGY-SECRET" in anna_text and "BEN-" not in anna_text
    assert "BEN-ALLERGY-SECRET" in ben_text and "ANNA-ALLERGY-SECRET" not in ben_text
    assert "7911 123457" not in anna_text and "7911 123456" not in ben_text
    staff = staff_messages(fake)
    assert len(staff) == 2
    assert "ANNA-ALLERGY-SECRET" in staff[0].text and "BEN-ALLERGY-SECRET" not in staff[0].text
    assert "BEN-ALLERGY-SECRET" in staff[1].text and "ANNA-ALLERGY-SECRET" not in staff[1].text


async def test_returning_patient_reviews_updates_and_deletes(fake, runner, patient):
    await complete(patient)
    await patient.press("📨 Submit")
    shown = await patient.press(MENU_BUTTON)
    assert "You sent your consultation answers on 24 Nov 2026" in shown[-1].text
    shown = await patient.press("👀 Review my answers")
    assert "Warfarin 5 mg daily" in shown[-1].text
    shown = await patient.press("✏️ Update my answers")
    assert "Please check your answers" in shown[-1].text and "Warfarin" in shown[-1].text
    await patient.press("✏️ Medicine details")
    shown = await patient.send("Rivaroxaban")
    await patient.press("📨 Submit")
    staff = staff_messages(fake)
    assert len(staff) == 2 and "Updated consultation answers" in staff[-1].text
    assert "Rivaroxaban" in staff[-1].text
    shown = await patient.press(MENU_BUTTON)
    shown = await patient.press("👀 Review my answers")
    assert "Rivaroxaban" in shown[-1].text and "Warfarin" not in shown[-1].text
    await patient.press("🗑 Delete my answers")
    shown = await patient.press("🗑 Yes, delete them")
    assert "deleted" in shown[0].text
    assert await count(runner, Intake) == 0 and await count(runner, IntakeConsent) == 0
    assert await count(runner, AuditEvent) >= 3  # who read them stays on record (ids only)
    # The old staff button now finds nothing.
    staff_user = TgUser(runner, "Staff", user_id=STAFF_ID)
    shown = await staff_user.press("📞 Phone number", staff[-1])
    assert "no longer exists" in shown[-1].text


async def test_cancelling_an_update_keeps_the_sent_answers_and_says_so(fake, runner, patient):
    await complete(patient)
    await patient.press("📨 Submit")
    shown = await patient.press(MENU_BUTTON)
    assert "‹ Back" in patient.labels(shown[-1])  # never a dead end
    await patient.press("✏️ Update my answers")
    shown = await patient.send("/cancel")
    assert "the answers you sent on 24 Nov 2026 stay as they are" in shown[-1].text
    shown = await patient.press("✖️ Yes, stop")
    assert "the answers you sent on 24 Nov 2026 are unchanged" in shown[0].text
    assert "deleted" not in shown[0].text
    shown = await patient.press(MENU_BUTTON)
    assert "You sent your consultation answers on 24 Nov 2026" in shown[-1].text
    shown = await patient.press("‹ Back", shown[-1])
    assert "Main menu" in shown[-1].text or MENU_BUTTON in patient.labels(shown[-1])


async def test_database_file_holds_no_plaintext_health_answer(fake, runner, patient, tmp_path):
    secrets = ["Penicillin-rash-ZX81", "Warfarin-dose-QQ42", "Tell-nobody-KK7"]
    await complete(patient, allergy=secrets[0], medicine=secrets[1])
    await patient.press("✏️ Anything else")
    await patient.send(secrets[2])
    await patient.press("📨 Submit")
    await runner.stop()  # checkpoint and close: everything is on disk
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("clinic.db"))
    assert len(raw) > 10_000
    for secret in [*secrets, "+447911123456", "7911123456", "blood_thinners", "2027-01-15"]:
        assert secret.encode() not in raw, secret
        assert secret.encode("utf-16-le") not in raw
    # ... while the bot itself reads them back (it is not just missing).
    await runner.start()
    staff_user = TgUser(runner, "Staff", user_id=STAFF_ID)
    shown = await staff_user.press("📞 Phone number", staff_messages(fake)[-1])
    assert "+44 7911 123456" in shown[-1].text


async def test_mydata_exports_and_forget_erases_the_intake(fake, runner, patient):
    import json

    await complete(patient)
    await patient.press("📨 Submit")
    shown = await patient.send("/mydata")
    data = json.loads(fake.files[TgUser.document_in(shown).document["file_id"]])
    section = data["consultation_intake"]
    assert section["consents"][0]["version"] == "2026-11-25"
    answers = section["questionnaires"][0]["answers"]
    assert answers["Medicine details"] == "Warfarin 5 mg daily"
    assert answers["Phone"] == "+44 7911 123456"
    await patient.send("/forget")
    await patient.press("🗑 Yes")
    assert await count(runner, Intake) == 0 and await count(runner, IntakeConsent) == 0


async def test_longest_answers_fit_telegram_limits(fake, runner, patient):
    long = "Wörd & <tag> " * 38  # ~500 characters that all need escaping
    await complete(patient, allergy=long[:500], medicine=long[:500])
    await patient.press("✏️ Long-term conditions")
    await patient.press("Yes")
    shown = await patient.send(long[:500])
    assert "Please check your answers" in shown[-1].text
    await patient.press("✏️ Anything else")
    review = await patient.send((long * 3)[:1000])
    assert "Please check your answers" in review[-1].text and "…" in review[-1].text
    await patient.press("📨 Submit")
    staff = staff_messages(fake)
    assert len(staff) >= 2, "a long summary is split over several messages"
    assert "Possible contraindications (3)" in staff[0].text
    assert all(len(m.text) <= 4096 for m in staff)
    assert staff[-1].reply_markup and not any(m.reply_markup for m in staff[:-1])
    assert "Wörd &amp; &lt;tag&gt;" in staff[-1].text or "Wörd &amp; &lt;tag&gt;" in staff[0].text


async def test_questionnaire_switched_off_without_keys_says_so_plainly(fake, db_url):
    """No ENCRYPTION_KEYS: nothing is collected, and the patient gets a clear answer + menu."""
    from tests.conftest import make_settings

    settings = make_settings(fake, db_url, encryption_keys="")
    bot_runner = BotRunner(fake, settings)
    await bot_runner.start()
    try:
        user = TgUser(bot_runner, first_name="Nia")
        shown = await user.send("/start intake")
        assert "questionnaire is not available right now" in shown[-1].text
        assert "Uses of Mesotherapy" in user.labels(shown[-1])
        assert await count(bot_runner, Intake) == 0
    finally:
        await bot_runner.stop()


async def test_an_urgent_message_during_the_questionnaire_is_escalated_not_swallowed(fake, runner, patient):
    await agree(patient)
    question_before = current_question(patient)
    shown = await patient.send("my lips are swelling and I can't breathe")
    assert any("emergency" in m.text.lower() for m in shown)
    assert urgent_alerts(fake) == 1  # escalated once, by the intake, not again by the Q&A
    # The advice first; below it the same open question, not taken as an answer.
    advice = next(i for i, m in enumerate(shown) if "emergency" in m.text.lower())
    assert shown[-1].text == question_before and advice < len(shown) - 1
    assert not any("Main menu" in patient.labels(m) for m in shown[:advice + 1])
    await patient.send("/start intake")
    assert current_question(patient) == question_before


async def test_an_urgent_caption_during_the_questionnaire_is_escalated(fake, runner, patient):
    await agree(patient)
    question_before = current_question(patient)
    shown = await patient.send_raw(patient._message(caption="my throat is swelling", photo=[
        {"file_id": "p1", "file_unique_id": "u1", "width": 90, "height": 90}]))
    assert any("emergency" in m.text.lower() for m in shown)
    assert urgent_alerts(fake) == 1
    assert shown[-1].text == question_before


async def _at_allergy_details(patient) -> None:
    await agree(patient)
    await toggle_done(patient, "Facial rejuvenation")
    await toggle_done(patient, "Face")
    await patient.press("No, never")
    await patient.press("Yes")  # allergies: the details question is next


async def test_allergy_history_is_an_answer_not_an_emergency(fake, runner, patient):
    """The allergy question asks what happened: "anaphylaxis in 2019" is history (flagged for
    staff in the summary), not a reason to tell the patient to get help now."""
    await _at_allergy_details(patient)
    shown = await patient.send("Penicillin gave me anaphylaxis in 2019, years ago I got hives")
    assert urgent_alerts(fake) == 0
    assert not any("emergency" in m.text.lower() for m in shown)
    assert "Yes, blood thinners" in patient.labels(shown[-1])  # answered: the next question


async def test_an_urgent_phrase_in_the_allergy_history_is_kept_and_escalated(fake, runner, patient):
    """A free-text answer that describes a reaction happening now is the answer AND reaches
    staff at once."""
    await _at_allergy_details(patient)
    shown = await patient.send("Latex. I touched a glove and my lips are swelling")
    assert urgent_alerts(fake) == 1
    # The advice comes first, the next question last: the patient need not scroll up.
    assert any("emergency" in m.text.lower() for m in shown[:-1])
    assert "Yes, blood thinners" in patient.labels(shown[-1])


def test_red_flags_are_found_at_the_end_of_a_long_message():
    from bot.config import ROOT
    from bot.content import load_content
    from bot.qa import build_qa

    ROOT_CONTENT = ROOT / "content"
    qa = build_qa(load_content(ROOT_CONTENT), ROOT_CONTENT)
    story = "I had my first session last week and everything went well with the area. " * 30
    result = qa.ask(story + "Now my lips are swelling and I cannot breathe")
    assert len(story) > 2000 and result.kind == "red_flag"


async def test_summary_reaches_staff_when_the_patient_forbids_account_links(fake, runner, patient):
    await complete(patient)
    fake.fail_next("sendMessage", 400, "Bad Request: BUTTON_USER_PRIVACY_RESTRICTED", chat_id=STAFF_ID)
    await patient.press("📨 Submit")
    summaries = [c for c in fake.calls_to("sendMessage", STAFF_ID) if "consultation request" in c.params["text"]]
    assert summaries, "staff never got the summary"
    labels = [b["text"] for row in summaries[-1].params["reply_markup"]["inline_keyboard"] for b in row]
    assert labels == ["📞 Phone number"]


async def test_an_intake_press_too_old_to_answer_still_moves_on(fake, runner, patient):
    await agree(patient)
    fake.fail_next("answerCallbackQuery", 400, "Bad Request: query is too old")
    await toggle_done(patient, "Facial rejuvenation")
    assert "Question 2" in current_question(patient)
    texts = everything_shown(fake, patient.id).lower()
    assert "went wrong" not in texts and "error" not in texts


async def test_an_urgent_message_is_escalated_even_when_the_answers_cannot_be_read(
        fake, settings, db_url):
    # An operator removed the key before rotating: the questionnaire is out of order, but an
    # urgent message must still reach staff.
    from bot.crypto import new_key
    from tests.conftest import make_settings

    first = BotRunner(fake, settings, clock=clock())
    await first.start()
    anna = TgUser(first, first_name="Anna")
    await agree(anna)
    await first.stop()
    rekeyed = BotRunner(fake, make_settings(fake, db_url, encryption_keys=new_key()),
                        clock=clock())
    await rekeyed.start()
    try:
        anna.runner = rekeyed
        shown = await anna.send("my lips are swelling and I can't breathe")
        assert any("emergency" in m.text.lower() for m in shown)
        assert urgent_alerts(fake) == 1
        assert "questionnaire" in shown[-1].text.lower()  # and says it is unavailable
    finally:
        await rekeyed.stop()


async def test_a_summary_no_staff_chat_received_is_sent_again(fake, runner, patient):
    await complete(patient)
    fake.fail_next("sendMessage", 502, chat_id=STAFF_ID)  # Telegram fails the staff summary
    shown = await patient.press("📨 Submit")
    assert "sent to the clinic" in shown[0].text  # the patient's part is done
    assert staff_messages(fake) == []
    job = runner.app.job_queue.get_jobs_by_name("intake-staff-notices")[0]
    await job.run(runner.app)  # too soon: the submit's own notice may still be on its way
    assert staff_messages(fake) == []
    runner.clock.advance(minutes=16)
    await job.run(runner.app)
    staff = staff_messages(fake)
    assert len(staff) == 1 and "Possible contraindications (2)" in staff[0].text
    await job.run(runner.app)  # delivered now: not again
    assert len(staff_messages(fake)) == 1
    async with runner.app.bot_data["services"].db.session() as session:
        notified = (await session.scalars(select(AuditEvent.subject).where(
            AuditEvent.action == "intake_staff_notified"))).all()
    assert notified == ["intake:1"]


async def test_staff_get_the_summary_even_when_the_patients_screen_fails(fake, runner, patient):
    await complete(patient)
    fake.fail_next("editMessageText", 500, chat_id=patient.id)  # the "sent" screen fails
    await patient.press("📨 Submit")
    staff = staff_messages(fake)
    assert len(staff) == 1 and "Possible contraindications (2)" in staff[0].text


async def test_a_phone_keyboard_left_up_is_closed_and_its_labels_never_become_answers(fake, runner,
                                                                                   patient):
    """Review -> Edit phone (the share keyboard comes up) -> Edit on the older review message:
    the keyboard closes; and its labels typed at any question act as buttons, not answers."""
    review = (await complete(patient))[-1]
    await patient.press("✏️ Phone")
    assert reply_keyboard(fake.last_message(patient.id))
    shown = await patient.press("✏️ Anything else", review)
    assert shown[0].reply_markup == {"remove_keyboard": True}
    assert "anything else" in shown[-1].text.lower()
    await patient.send("‹ Back")  # as a button: the question before "anything else"
    assert "From which date" in current_question(patient)
    await patient.press("✏️ Anything else", review)
    shown = await patient.send("✖️ Cancel")
    assert "will be deleted" in shown[-1].text
    shown = await patient.press("✖️ Yes, stop")
    assert "Cancelled" in shown[0].text
    assert await count(runner, Intake) == 0


async def test_a_patient_unsure_of_the_areas_can_say_so(fake, runner, patient):
    await agree(patient)
    await toggle_done(patient, "Not sure yet")  # the goal
    shown = await toggle_done(patient, "Not sure yet")  # the areas: no area forced on them
    assert "No, never" in patient.labels(shown[-1])  # on to the next question


async def test_a_word_typed_at_the_review_shows_the_review_again(fake, runner, patient):
    """"ok" or "send it" at the review asks nothing: the review comes back with its Submit
    button, instead of "type your question". A real question is still answered."""
    await complete(patient)
    for word in ("ok", "send it", "thanks", "yes", "submit", "done"):
        shown = await patient.send(word)
        assert "Please check your answers" in shown[-1].text, word
        assert "📨 Submit" in patient.labels(shown[-1])
    shown = await patient.send("what are the risks?")
    assert "Here is what the clinic's information says" in shown[-1].text
    shown = await patient.send("how much does a session cost?")
    assert "Shall I pass your question to the clinic's staff?" in shown[-1].text
    for short in ("I'm pregnant", "rash on face", "talk to staff"):  # never swallowed
        shown = await patient.send(short)
        assert "Please check your answers" not in shown[-1].text, short
    shown = await patient.press("📨 Submit", next(
        m for m in reversed(list(fake.messages[patient.id].values()))
        if "📨 Submit" in patient.labels(m)))
    assert await count(runner, Intake) == 1
