"""Free text is a question: answer from the document, hand off to staff, escalate red flags.

Not questions for the document (bot/qa.py kinds): text the bot cannot read goes to staff at
once; the patient's own symptom is offered to staff; a booking request gets the consultation
questionnaire's button (ik:go, handlers/intake.py), or without the questionnaire the handoff.

Group 0, before the fallback: intake (group -1) consumes its own answers first and stops there.
Staff replies are caught in group -2, before anything else, and only from staff.

Callback data (<= 64 bytes, re-validated on every press):
  qa:ask:<question id>     the patient asks for staff (only for their own question)
  qa:reply:<question id>   staff: the next message in this chat (a reply to the prompt) is the reply
  qa:cancel                staff: forget the pending reply
"""

from __future__ import annotations

import html
import logging
import re
from datetime import datetime, timedelta

from telegram import ForceReply, Message, Update
from telegram.error import Forbidden, TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot import audit, console
from bot import questions as repo
from bot.content import Node, fill
from bot.crypto import CryptoBox
from bot.db.qa_models import RED_FLAG
from bot.inputs import is_number
from bot.menu import Screen, paginate
from bot.privacy import DataSection
from bot.qa import QAEngine, Result, unreadable
from bot.services import Services
from bot.staff import is_staff, notification_chats, staff_place
from handlers.common import (
    PRIVATE,
    answer_press,
    command,
    notify_staff,
    run_alone,
    send_screen,
    services,
    show_screen,
    upsert_patient,
)
from handlers.common_staff import require_staff
from handlers.fallback import unknown_command
from handlers.menu import KEEP_HOME

log = logging.getLogger(__name__)

QUOTE_BUDGET = 2500  # the quote, inside a message with a header and a note
STAFF_QUOTE = 3000   # a patient's question quoted to staff
PATIENT_QUOTE = 600  # the patient's own question quoted back with the reply
_ASK = re.compile(r"^qa:ask:(\d{1,9})$")
_REPLY = re.compile(r"^qa:reply:(\d{1,9})$")


def _crypto(svc: Services) -> CryptoBox:
    """Questions are health data: stored only encrypted. `run` refuses to start without keys."""
    if svc.crypto is None:
        raise RuntimeError("ENCRYPTION_KEYS is not set: patients' questions cannot be stored")
    return svc.crypto


def reply_rows(qa: QAEngine, question_id: int) -> list[list[tuple[str, str]]]:
    """The Reply button under a staff alert: the staff member's next message answers it."""
    return [[(qa.config.text("button_reply"), f"qa:reply:{question_id}")]]


def _engine(svc: Services) -> QAEngine:
    assert svc.qa is not None, "build_services builds the QA engine"
    return svc.qa


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _section_name(node: Node) -> str:
    parts = [node.label]
    parent = node.parent
    while parent is not None and parent.parent is not None:
        parts.insert(0, parent.label)
        parent = parent.parent
    return " › ".join(parts)


def answer_screen(svc: Services, result: Result, question_id: int) -> Screen:
    qa = _engine(svc)
    best = result.best
    assert best is not None
    node = best.node
    pages = paginate([b.html() for b in node.blocks], QUOTE_BUDGET)
    quote = pages[0]
    if len(pages) > 1:
        quote += "\n" + qa.config.text("answer_more")
    text = fill(qa.config.texts["answer"], {
        "section": html.escape(_section_name(node), quote=False), "quote": quote}, "qa.yaml:answer")
    rows: list[list[tuple[str, str]]] = [[(node.label, f"n:{node.id}")]]
    parent = node.parent
    if parent is not None and parent.parent is not None:
        rows.append([(parent.label, f"n:{parent.id}")])
    for other in result.matches[1:]:
        # A close second is offered as a related entry, never quoted.
        if other.confidence >= qa.config.threshold and other.score >= 0.8 * best.score \
                and other.node.id != node.id and other.node.id != getattr(parent, "id", None):
            rows.append([(other.node.label, f"n:{other.node.id}")])
            break
    rows.append([(qa.config.text("button_ask_clinic"), f"qa:ask:{question_id}")])
    rows.append([(qa.config.text("button_main_menu"), "home")])
    return Screen(text, rows)


# ------------------------------------------------------------------------------ patients

async def escalate_red_flag(update: Update, context: ContextTypes.DEFAULT_TYPE, *,
                            menu_button: bool = False) -> None:
    """The message is urgent (QAEngine.red_flag_in): record it as a question, tell the patient
    to get help, alert staff. For handlers that take the message themselves (the
    questionnaire), so the advice comes before what they show next."""
    svc = services(context)
    message = update.effective_message
    assert message is not None and words_of(message)
    result = _engine(svc).ask(words_of(message))
    assert result.kind == "red_flag"
    question_id, patient_id, name = await _record_question(update, svc, result)
    await _alert(update, context, result, question_id, patient_id, name, menu_button=menu_button)


def words_of(message: Message) -> str:
    """What the patient wrote: the text, or the caption under a photo or file."""
    return message.text or message.caption or ""


async def on_caption(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Words under a photo or file are read for red flags like a typed message (a picture of
    a reaction captioned "my lips are swelling"). Anything else: the fallback says the bot
    reads text only."""
    svc = services(context)
    message = update.effective_message
    if svc.qa is None or message is None or svc.qa.red_flag_in(words_of(message)) is None:
        return
    await escalate_red_flag(update, context, menu_button=True)
    raise ApplicationHandlerStop


async def _record_question(update: Update, svc: Services, result: Result) -> tuple[int, int, str]:
    """Store the patient's message as a question (encrypted): its id, the patient's, a name."""
    message, user, chat = update.effective_message, update.effective_user, update.effective_chat
    assert message is not None and words_of(message) and user is not None and chat is not None
    now = svc.clock.now()
    async with svc.db.session() as session:
        patient = await upsert_patient(session, update, now)
        question = await repo.record(session, patient, words_of(message), result, now,
                                     _crypto(svc), message_id=message.message_id)
        ids = question.id, patient.id, patient.first_name or "?"
    log.info("question %s from patient %s: %s", ids[0], ids[1], result.kind)
    return ids


async def _alert(update: Update, context: ContextTypes.DEFAULT_TYPE, result: Result,
                 question_id: int, patient_id: int, name: str, *,
                 menu_button: bool = True) -> None:
    svc = services(context)
    qa = _engine(svc)
    message, chat = update.effective_message, update.effective_chat
    assert result.red_flag is not None and message is not None and chat is not None
    # The advice stays in the chat: its Main menu button sends the menu below it.
    rows = [[(qa.config.text("button_main_menu"), KEEP_HOME)]] if menu_button else []
    await send_screen(update, context, Screen(svc.messages.with_contact(qa.config.text("red_flag")), rows))
    # Under a photo or file: staff learn there is one (the bot keeps none).
    text = _alert_text(qa, question_id, patient_id, name, words_of(message),
                       flag=result.red_flag.category, attachment=message.text is None)
    if await alert_staff(context, question_id, text) == 0:  # resend_alerts tries again
        log.error("red flag %s: no staff chat could be alerted", question_id)
    else:
        await context.bot.send_message(chat.id, qa.config.text("red_flag_staff_alerted"))


async def on_edited_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A patient edits a message they sent: answering it again would repeat the bot, but an
    edit that now says something urgent ("my throat is tight") is handled like one sent."""
    svc = services(context)
    message, user = update.effective_message, update.effective_user
    if message is None or not message.text or user is None or svc.settings.is_staff(user.id):
        return  # staff correcting a reply they sent are no patient
    result = _engine(svc).ask(message.text)
    if result.kind != "red_flag":
        return
    async with svc.db.session() as session:
        if await repo.alerted_for(session, user.id, message.message_id):
            return  # urgent already (a typo fixed): staff were alerted once
    question_id, patient_id, name = await _record_question(update, svc, result)
    await _alert(update, context, result, question_id, patient_id, name)


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    qa = _engine(svc)
    message, user, chat = update.effective_message, update.effective_user, update.effective_chat
    if message is None or user is None or chat is None or not message.text:
        return
    result = qa.ask(message.text)
    if result.kind in ("empty", "greeting", "thanks", "help"):
        intro = qa.config.text("empty_question" if result.kind == "empty" else result.kind)
        await send_screen(update, context, svc.menu.main(intro=intro))
        return
    question_id, patient_id, name = await _record_question(update, svc, result)
    if result.kind == "booking" and svc.intake is not None:
        # The questionnaire's own entry button (the main menu's), and staff for what it is not
        # ("my daughter wants to book, is there an age limit?").
        await send_screen(update, context, Screen(qa.config.text("booking"), [
            [(svc.intake.t("menu_button"), "ik:go")],
            [(qa.config.text("button_send_to_staff"), f"qa:ask:{question_id}")],
            [(qa.config.text("button_main_menu"), "home")],
        ]))
        return
    if result.kind == "red_flag":
        await _alert(update, context, result, question_id, patient_id, name)
        return
    if result.kind == "unreadable":
        await _pass_unreadable(update, context, question_id, patient_id, name)
        return
    if result.kind == "answer":
        await send_screen(update, context, answer_screen(svc, result, question_id))
        return
    # Below the threshold, the patient's own symptom, or a booking without the questionnaire:
    # offered to staff, nothing sent without the patient's say-so.
    key = {"symptom": "symptom_report", "booking": "booking_handoff"}.get(result.kind, "no_answer")
    text = qa.config.text(key)
    if key == "symptom_report":
        text = svc.messages.with_contact(text)
    await send_screen(update, context, Screen(text, [
        [(qa.config.text("button_send_to_staff"), f"qa:ask:{question_id}")],
        [(qa.config.text("button_main_menu"), "home")],
    ]))


async def _pass_unreadable(update: Update, context: ContextTypes.DEFAULT_TYPE, question_id: int,
                           patient_id: int, name: str) -> None:
    """A message the bot cannot read (another script) goes to staff at once, like a red flag:
    it may be urgent ("my lips are swollen" in Russian), and a patient who does not read
    English may not understand an offer to pass it on. The patient hears first, then whether
    staff were reached (if not, resend_alerts keeps trying: the question is handed off)."""
    svc = services(context)
    qa = _engine(svc)
    message = update.effective_message
    assert message is not None
    await send_screen(update, context, Screen(svc.messages.with_contact(qa.config.text("unreadable")),
                                              [[(qa.config.text("button_main_menu"), KEEP_HOME)]]))
    async with svc.db.session() as session:
        await repo.hand_off(session, question_id, svc.clock.now())
    delivered = await alert_staff(
        context, question_id, _alert_text(qa, question_id, patient_id, name, words_of(message)))
    if delivered:
        log.info("unreadable question %s passed to staff", question_id)
    await context.bot.send_message(update.effective_chat.id, qa.config.text("handoff_done")
                                   if delivered else svc.messages.with_contact(qa.config.text("handoff_failed")))


async def on_ask(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The patient asks for staff. Only their own question, and only once."""
    svc = services(context)
    qa = _engine(svc)
    query = update.callback_query
    assert query is not None and query.data is not None
    match = _ASK.match(query.data)
    user = update.effective_user
    async with svc.db.session() as session:
        question = await repo.of_patient(session, int(match.group(1)), user.id) if match and user \
            else None
        if question is None:
            await answer_press(update)
            await context.bot.send_message(update.effective_chat.id,
                                           qa.config.text("question_unknown"))
            return
        first_time = await repo.hand_off(session, question.id, svc.clock.now())
        found = await repo.with_patient(session, question.id)
        assert found is not None
        _, patient = found
        question_id, patient_id = question.id, patient.id
        name, text = patient.first_name or "?", repo.question_text(_crypto(svc), question)
    await answer_press(update)
    chat_id = update.effective_chat.id
    if not first_time:
        await context.bot.send_message(chat_id, qa.config.text("handoff_already"))
        return
    if await alert_staff(context, question_id,
                         _alert_text(qa, question_id, patient_id, name, text)) == 0:
        # Kept, handed off: it is among the console's open questions, and resend_alerts
        # tells staff once a staff chat can be reached. The patient learns it may take longer.
        await context.bot.send_message(chat_id, svc.messages.with_contact(qa.config.text("handoff_failed")))
        return
    log.info("question %s handed off to staff", question_id)
    await context.bot.send_message(chat_id, qa.config.text("handoff_done"))


async def alert_staff(context: ContextTypes.DEFAULT_TYPE, question_id: int, text: str,
                      rows: list[list[tuple[str, str]]] | None = None) -> int:
    """Tell staff about a question (with its Reply button unless `rows` are given); how many
    staff chats got it. Recorded once one did, or resend_alerts tries again."""
    svc = services(context)
    if rows is None and svc.qa is not None:
        rows = reply_rows(svc.qa, question_id)
    delivered = await notify_staff(context, text, rows)
    if delivered:
        async with svc.db.session() as session:
            await repo.mark_alerted(session, question_id, svc.clock.now())
    return delivered


ALERT_RESEND_SECONDS = 60
ALERT_GRACE = timedelta(minutes=3)  # an alert still on its way (a staff group's rate limit)
ALERT_WITHIN = timedelta(days=7)  # older ones: staff find them in the console


async def resend_alerts(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Job: questions waiting for staff whose alert reached no staff chat are alerted again,
    red flags first, until one does (one instance at a time)."""
    svc = services(context)
    if svc.qa is None or svc.crypto is None or not notification_chats(svc.settings):
        return
    qa = svc.qa

    async def resend() -> None:
        async with svc.db.session() as session:
            waiting = await repo.unalerted(session, svc.clock.now(), grace=ALERT_GRACE,
                                           within=ALERT_WITHIN)
            alerts = []
            for q, p in waiting:
                words = repo.question_text(svc.crypto, q)
                alerts.append((q.id, _alert_text(qa, q.id, p.id, p.first_name or "?", words,
                                                 flag=_flag_of(qa, words) if q.status == RED_FLAG
                                                 else None)))
        for question_id, text in alerts:
            if await alert_staff(context, question_id, text):
                log.info("question %s: staff alerted again", question_id)

    await run_alone(svc, "question-alerts", resend)


def _flag_of(qa: QAEngine, text: str) -> str:
    """The red-flag category of a stored question, found again in its text as when it was
    asked (QAEngine.ask): the row keeps only that it was one (bot.questions.FLAGGED). "?" if the
    red flags have changed since and none is found."""
    flag = qa.red_flag_in(text)
    return flag.category if flag is not None else "?"


def _alert_text(qa: QAEngine, question_id: int, patient_id: int, name: str, text: str, *,
                flag: str | None = None, attachment: bool = False) -> str:
    """The staff alert of a question: urgent when it raised a red flag (`flag`, its category)."""
    values = {"question_id": question_id, "patient_id": patient_id, "name": name,
              "question": ("📎 " if attachment else "") + _cut(text, STAFF_QUOTE)}
    if flag is not None:
        return qa.config.text("staff_red_flag", flag=flag.replace("_", " "), **values)
    if unreadable(text):  # passed on without asking the patient: staff must check it soon
        return qa.config.text("staff_unreadable", **values)
    return qa.config.text("staff_question", **values)


# ------------------------------------------------------------------------------ staff

async def _refuse(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A non-staff press on a staff button: the shared, audited refusal."""
    data = update.callback_query.data if update.callback_query else None
    await require_staff(update, context, f"qa {data or ''}".strip()[:64])


async def on_reply_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    qa = _engine(svc)
    query = update.callback_query
    user, chat = update.effective_user, update.effective_chat
    assert query is not None and chat is not None
    if user is None or not is_staff(svc.settings, user.id):
        await _refuse(update, context)
        return
    match = _REPLY.match(query.data or "")
    now = svc.clock.now()
    async with svc.db.session() as session:
        found = await repo.with_patient(session, int(match.group(1))) if match else None
        if found is None:
            await answer_press(update)
            await context.bot.send_message(chat.id, qa.config.text(
                "staff_question_not_found", question_id=match.group(1) if match else "?"))
            return
        question, patient = found
        await repo.start_reply(session, user.id, question.id, chat.id, now)
        # Drafts take the chat's text first (group -3): an open one would take the reply as
        # the broadcast text. The button pressed last wins.
        draft = await console.open_draft(session, user.id, chat.id, now)
        if draft is not None:
            await console.cancel_draft(session, draft.id, user.id)
        question_id, name = question.id, patient.first_name or "?"
    await answer_press(update)
    if draft is not None:
        await context.bot.send_message(chat.id, svc.messages.get("broadcast_cancelled"))
    # A message carries either inline buttons or ForceReply: Cancel comes first, on its own.
    await send_screen(update, context, Screen(
        qa.config.text("staff_reply_started", question_id=question_id, name=name),
        [[(qa.config.text("button_cancel_reply"), "qa:cancel")]]))
    # In a group, Telegram's default privacy mode shows the bot only commands and replies to
    # its own messages: ForceReply makes the staff member's answer such a reply. Selective, for
    # the staff member mentioned in the prompt only, not the whole group.
    minutes = qa.config.reply_window_minutes
    prompt = await context.bot.send_message(
        chat.id,
        qa.config.text("staff_reply_prompt", question_id=question_id, name=name,
                       staff_id=user.id, staff=user.first_name, minutes=minutes),
        reply_markup=ForceReply(selective=True, input_field_placeholder=qa.config.text(
            "staff_reply_placeholder", question_id=question_id)))
    if chat.type != "private":
        # A reply to another message of the bot there (an answer to another alert, say) must
        # not reach this patient: only the reply to this prompt answers.
        async with svc.db.session() as session:
            await repo.set_reply_prompt(session, user.id, question_id, prompt.message_id)


async def on_cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    qa = _engine(svc)
    query, user = update.callback_query, update.effective_user
    assert query is not None
    if user is None or not is_staff(svc.settings, user.id):
        await _refuse(update, context)
        return
    async with svc.db.session() as session:
        question_id = await repo.clear_reply(session, user.id)
    await answer_press(update)
    if question_id is not None:
        await context.bot.send_message(
            update.effective_chat.id, qa.config.text("staff_reply_cancelled", question_id=question_id))


async def relay(context: ContextTypes.DEFAULT_TYPE, staff_chat_id: int, staff_user_id: int,
                question_id: int, reply: str, *, pending_since: datetime | None = None,
                prompt_message_id: int | None = None) -> None:
    """Send a staff reply to the patient and record it; tell the staff member how it went.

    With `pending_since` (the reply to a pressed Reply, staff_text): if it does not reach the
    patient (a network error, the database), the Reply stays pending, so the staff member can
    send it again without pressing Reply again. Once it reached the patient it never does: the
    patient would get it twice, or the staff member's next, unrelated message."""
    svc = services(context)
    qa = _engine(svc)
    try:
        name = await _send_to_patient(context, staff_chat_id, question_id, reply)
    except Exception:
        if pending_since is not None:
            async with svc.db.session() as session:
                await repo.start_reply(session, staff_user_id, question_id, staff_chat_id,
                                       pending_since, prompt_message_id)
        raise
    if name is None:
        return
    earlier = None
    async with svc.db.session() as session:
        found = await repo.with_patient(session, question_id)
        if found is not None:
            earlier = await repo.record_reply(session, found[0], staff_user_id, reply.strip(),
                                              svc.clock.now(), _crypto(svc))
    log.info("staff %s replied to question %s", staff_user_id, question_id)
    sent = qa.config.text("staff_reply_sent", question_id=question_id, name=name)
    if earlier is not None:  # a colleague (or they) answered first: the patient has both
        sent += "\n" + qa.config.text(
            "staff_reply_followup", staff=earlier.staff_user_id or "?",
            when=earlier.at.astimezone(svc.settings.tz).strftime("%d %b %H:%M"))
    try:
        await context.bot.send_message(staff_chat_id, sent)
    except TelegramError as exc:
        # Delivered and recorded: the error handler's "try again" would send it twice.
        log.warning("reply to question %s sent; its confirmation to staff not: %s",
                    question_id, type(exc).__name__)


async def _send_to_patient(context: ContextTypes.DEFAULT_TYPE, staff_chat_id: int,
                           question_id: int, reply: str) -> str | None:
    """The reply sent to the patient: their name, or None if it was not (staff were told why)."""
    svc = services(context)
    qa = _engine(svc)
    reply = reply.strip()
    if not reply:
        await context.bot.send_message(staff_chat_id, qa.config.text("staff_reply_empty"))
        return None
    async with svc.db.session() as session:
        found = await repo.with_patient(session, question_id)
        if found is None:
            await context.bot.send_message(staff_chat_id, qa.config.text(
                "staff_question_not_found", question_id=question_id))
            return None
        question, patient = found
        name = patient.first_name or "?"
        quoted = _cut(repo.question_text(_crypto(svc), question), PATIENT_QUOTE)
        chat_id = patient.chat_id
    text = qa.config.text("reply_to_patient", question=quoted, reply=reply)
    try:
        if chat_id is None:
            raise Forbidden("no chat with this patient")
        if len(text) > 4096:
            await context.bot.send_message(chat_id, qa.config.text(
                "reply_to_patient", question=quoted, reply=""))
            await context.bot.send_message(chat_id, html.escape(reply, quote=False))
        else:
            await context.bot.send_message(chat_id, text)
    except Forbidden:
        async with svc.db.session() as session:
            found = await repo.with_patient(session, question_id)
            if found is not None:
                found[1].unreachable = True
        await context.bot.send_message(staff_chat_id, qa.config.text(
            "staff_reply_undeliverable", question_id=question_id))
        return None
    return name


async def staff_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Group -2: a staff member who pressed Reply types the answer. Everyone else passes on."""
    svc = services(context)
    message, user, chat = update.effective_message, update.effective_user, update.effective_chat
    if message is None or user is None or chat is None or not message.text:
        return
    if not is_staff(svc.settings, user.id):
        return
    qa = _engine(svc)
    window = timedelta(minutes=qa.config.reply_window_minutes)
    if not message.text.strip():
        return  # whitespace answers nothing: the Reply stays pending for the real answer
    now = svc.clock.now()
    async with svc.db.session() as session:
        target = await repo.take_reply_target(
            session, user.id, chat.id, now, window,
            message.reply_to_message.message_id if message.reply_to_message else None)
    if target is None:
        return
    if target.expired:
        replied_to = message.reply_to_message
        if replied_to is None or replied_to.from_user is None \
                or replied_to.from_user.id != context.bot.id:
            return
        # A late answer to the prompt: in a group nothing else would say it went nowhere.
        await context.bot.send_message(chat.id, qa.config.text(
            "staff_reply_expired", question_id=target.question_id,
            minutes=qa.config.reply_window_minutes))
        raise ApplicationHandlerStop
    await relay(context, chat.id, user.id, target.question_id, message.text, pending_since=now,
                prompt_message_id=target.prompt_message_id)
    raise ApplicationHandlerStop


async def reply_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/reply <question id> <text> (staff only; to anyone else it is an unknown command)."""
    svc = services(context)
    qa = _engine(svc)
    message, user, chat = update.effective_message, update.effective_user, update.effective_chat
    if message is None or chat is None:
        return
    if user is None or not is_staff(svc.settings, user.id):
        log.warning("/reply refused for user %s", user.id if user else None)
        async with svc.db.session() as session:
            await audit.record(session, now=svc.clock.now(), action="staff_denied",
                               actor_user_id=user.id if user else None, subject="reply_command")
        if chat.type == chat.PRIVATE:
            await unknown_command(update, context)
        return
    if not staff_place(svc.settings, chat.id, chat.type):  # its confirmation names the patient
        await context.bot.send_message(chat.id, svc.messages.get("staff_elsewhere"))
        return
    parts = (message.text or "").split(maxsplit=2)
    number = parts[1].removeprefix("#") if len(parts) > 1 else ""  # "#12", as the alert names it
    if len(parts) < 3 or not is_number(number) or len(number) > 9:
        await context.bot.send_message(chat.id, qa.config.text("staff_reply_usage"))
        return
    await relay(context, chat.id, user.id, int(number), parts[2])


async def on_staff_console(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Staff console: open questions with a Reply button each; each listed question is audited."""
    query = update.callback_query
    assert query is not None
    if not await require_staff(update, context, "staff:questions"):
        return
    svc = services(context)
    qa = _engine(svc)
    await answer_press(update)
    staff_id, now = update.effective_user.id, svc.clock.now()
    items, rows = [], []
    budget = 3800 - len(qa.config.text("staff_open_title"))  # one message, whole items only
    async with svc.db.session() as session:
        for question, patient in await repo.open_questions(session):
            item = qa.config.text(
                "staff_open_item", marker="🚨" if question.red_flag else "❓",
                question_id=question.id, name=patient.first_name or "patient",
                when=question.created_at.astimezone(svc.settings.tz).strftime("%d %b %H:%M"),
                question=_cut(repo.question_text(_crypto(svc), question), 300))
            budget -= len(item) + 2
            if budget < 0:
                break
            await audit.record(session, now=now, action="question_read", actor_user_id=staff_id,
                               patient_id=patient.id, subject=f"question:{question.id}")
            items.append(item)
            rows.append([(qa.config.text("button_reply_to", question_id=question.id),
                          f"qa:reply:{question.id}")])
        more = await repo.count_open_questions(session) - len(items) if items else 0
    text = "\n\n".join([qa.config.text("staff_open_title"), *items]) if items \
        else qa.config.text("staff_open_empty")
    if more > 0:  # cut at ten, or at one message: say so
        text += "\n\n" + qa.config.text("staff_open_more", count=more)
    rows.append([(svc.messages.get("button_staff_back"), "staff:menu")])
    await show_screen(update, context, Screen(text, rows))


async def question_stats(svc: Services, session, now):  # noqa: ANN001, ANN201
    qa = _engine(svc)
    typed, handed, flagged = await repo.weekly_stats(session, now)
    return [(qa.config.text("stat_questions_week"), str(typed)),
            (qa.config.text("stat_questions_handed_off_week"), str(handed)),
            (qa.config.text("stat_red_flags_week"), str(flagged))]


def register(application: Application, svc: Services) -> None:
    if application.job_queue is not None:
        application.job_queue.run_repeating(
            resend_alerts, interval=ALERT_RESEND_SECONDS, first=ALERT_RESEND_SECONDS,
            name="question-alerts",
            job_kwargs={"misfire_grace_time": None, "coalesce": True, "max_instances": 1})
    if svc.qa is not None:
        svc.staff_menu.append((svc.qa.config.text("staff_console_button"), "staff:questions"))
        svc.stat_providers.append(lambda session, now: question_stats(svc, session, now))
    application.add_handler(CallbackQueryHandler(on_staff_console, pattern=r"^staff:questions$"))
    async def export(session, patient):  # noqa: ANN001, ANN202 - a DataSection exporter
        return await repo.export_for(session, patient, _crypto(svc))

    svc.privacy.register(DataSection("questions", export, repo.erase_for,
                                     ("questions", "staff_reply_targets")))
    text = filters.UpdateType.MESSAGE & filters.TEXT & ~filters.COMMAND
    application.add_handler(MessageHandler(text, staff_text), group=-2)
    application.add_handler(command("reply", reply_command))
    application.add_handler(CallbackQueryHandler(on_ask, pattern=r"^qa:ask:"))
    application.add_handler(CallbackQueryHandler(on_reply_button, pattern=r"^qa:reply:"))
    application.add_handler(CallbackQueryHandler(on_cancel, pattern=r"^qa:cancel$"))
    application.add_handler(MessageHandler(text & PRIVATE, on_text))
    application.add_handler(MessageHandler(
        filters.UpdateType.EDITED_MESSAGE & filters.TEXT & ~filters.COMMAND & PRIVATE,
        on_edited_text))
    # Before the fallback (group 0) says the bot reads text only; the questionnaire (group -5)
    # screens captions itself.
    application.add_handler(MessageHandler(
        filters.UpdateType.MESSAGE & filters.CAPTION & PRIVATE, on_caption), group=-1)

