"""Consultation intake in Telegram: thin glue between updates and bot.intake.flow.

Registered handlers:
  group -5  /start intake (deep link), /cancel while an intake is open, and any message while a
            question is open (consumed with ApplicationHandlerStop; otherwise later groups run).
            Its own group, not -1: within a group only the first matching handler runs, so a
            catch-all here would hide other features' group -1 free-text handlers.
  group 0   ik:* buttons (patients), iks:* buttons (staff, checked on every press), /cancel
"""

from __future__ import annotations

import asyncio
import logging
import re

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot import patients, telegram_html
from bot.crypto import CryptoError
from bot.inputs import row_id
from bot.intake.flow import NOTIFIED, IntakeFlow, Out, Reply, StaffNotice, erase_intake
from bot.menu import Screen, paginate
from bot.privacy import DataSection
from bot.services import Services
from bot.staff import notification_chats
from handlers.common import (
    PRIVATE,
    answer_press,
    command,
    run_alone,
    send_screen,
    services,
    show_screen,
)
from handlers.common_staff import require_staff
from handlers.questions import escalate_red_flag, words_of

log = logging.getLogger(__name__)
GROUP = -5  # after dedupe (-100), before the group -1 free-text routers and group 0
DEEP_LINK = filters.Regex(r"^/start(@\w+)?\s+intake\s*$")
NOTICE_RESEND_SECONDS = 300  # how often summaries no staff chat received are tried again


def _flow(svc: Services) -> IntakeFlow | None:
    return svc.intake


async def _patient(session, update: Update, svc: Services, loaded):  # noqa: ANN001, ANN202
    """The patient row brought up to date with the update, created if this is their first."""
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    fresh = {"chat_id": chat.id, "first_name": user.first_name,
             "language_code": user.language_code, "now": svc.clock.now()}
    if loaded is None:
        return await patients.upsert_from_telegram(session, user_id=user.id, **fresh)
    patients.refresh(loaded, **fresh)
    return loaded


def _markup(out: Out):  # noqa: ANN202
    if out.contact_keyboard:
        first, *rest = out.contact_keyboard
        rows = [[KeyboardButton(telegram_html.label(first[0]), request_contact=True)]]
        rows += [[KeyboardButton(telegram_html.label(label)) for label in row] for row in rest]
        return ReplyKeyboardMarkup(rows, resize_keyboard=True, is_persistent=True)
    if out.remove_keyboard:
        return ReplyKeyboardRemove()
    if out.rows:
        return InlineKeyboardMarkup([[InlineKeyboardButton(telegram_html.label(label), callback_data=data)
                                      for label, data in row] for row in out.rows])
    return None


async def render(update: Update, context: ContextTypes.DEFAULT_TYPE, reply: Reply) -> None:
    try:
        await _render_messages(update, context, reply)
    finally:  # the staff summary goes even if the patient's screens could not
        if reply.staff is not None:
            await notify_staff_intake(context, reply.staff)


async def _render_messages(update: Update, context: ContextTypes.DEFAULT_TYPE,
                           reply: Reply) -> None:
    svc, chat, query = services(context), update.effective_chat, update.callback_query
    assert chat is not None
    for out in reply.messages:
        markup = _markup(out)
        can_edit = (out.edit and query is not None and query.message is not None
                    and query.message.is_accessible
                    and not isinstance(markup, ReplyKeyboardMarkup | ReplyKeyboardRemove))
        if can_edit:
            try:
                await query.edit_message_text(out.text, reply_markup=markup)
                continue
            except BadRequest as exc:
                if "not modified" in str(exc).lower():
                    continue
                if "can't be edited" not in str(exc).lower() and "not found" not in str(exc).lower():
                    raise
        await context.bot.send_message(chat.id, out.text, reply_markup=markup)
    if reply.show_menu:
        await send_screen(update, context, svc.menu.main())


async def send_notice(context: ContextTypes.DEFAULT_TYPE, chat_id: int, notice: StaffNotice) -> None:
    """The summary (flags first), paged to Telegram's limit; buttons on the last page.

    The "message the patient" button links their account (tg://user), which Telegram refuses
    (BUTTON_USER_PRIVACY_RESTRICTED) when the patient's privacy settings forbid it: then the
    page goes without that button rather than not at all.
    """
    contact = [InlineKeyboardButton(telegram_html.label(notice.contact_label), callback_data=f"iks:{notice.intake_id}")]
    rows = [contact]
    if notice.patient_telegram_id:
        rows.append([InlineKeyboardButton(telegram_html.label(notice.chat_label),
                                          url=f"tg://user?id={notice.patient_telegram_id}")])
    pages = paginate(notice.text_parts)
    for i, page in enumerate(pages):
        if i < len(pages) - 1:
            await context.bot.send_message(chat_id, page)
            continue
        try:
            await context.bot.send_message(chat_id, page, reply_markup=InlineKeyboardMarkup(rows))
        except BadRequest as exc:
            if len(rows) == 1 or "privacy" not in str(exc).lower():
                raise
            await context.bot.send_message(chat_id, page, reply_markup=InlineKeyboardMarkup([contact]))


async def notify_staff_intake(context: ContextTypes.DEFAULT_TYPE, notice: StaffNotice) -> int:
    """The summary (flags first), paged to Telegram's limit; buttons on the last page."""
    svc = services(context)
    delivered = 0
    for chat_id in notification_chats(svc.settings):
        try:
            await send_notice(context, chat_id, notice)
            delivered += 1
        except TelegramError as exc:
            log.warning("staff chat %s not told of intake %s: %s", chat_id, notice.intake_id,
                        type(exc).__name__)
    log.info("intake %s submitted; %d staff chat(s) notified", notice.intake_id, delivered)
    if delivered:
        async with svc.db.session() as session:
            await svc.intake.audit(session, notice.intake_id, None, NOTIFIED, svc.clock.now())
    return delivered


async def resend_staff_notices(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Job: summaries no staff chat received are sent again (one instance at a time)."""
    svc = services(context)
    if svc.intake is None or not notification_chats(svc.settings):
        return
    async def resend() -> None:
        async with svc.db.session() as session:
            notices = await svc.intake.unnotified(session, svc.clock.now())
        for notice in notices:
            log.info("intake %s: staff summary sent again", notice.intake_id)
            await notify_staff_intake(context, notice)

    await run_alone(svc, "intake-staff-notices", resend)


async def entry_deep_link(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _run(update, context, "entry")
    raise ApplicationHandlerStop


async def on_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await _run(update, context, "press")


async def on_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if await _run(update, context, "typed"):
        raise ApplicationHandlerStop


async def on_edited(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An edited message: if it answered a question, the patient is told the edit is not read."""
    if await _run(update, context, "edited"):
        raise ApplicationHandlerStop


async def on_cancel_early(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if await _run(update, context, "cancel"):
        raise ApplicationHandlerStop


async def on_cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    flow = _flow(svc)
    text = flow.t("nothing_to_cancel") if flow else svc.messages.get("unknown_text")
    user, args = update.effective_user, (update.effective_message.text or "").split()[1:]
    if (args and re.fullmatch(r"#?\d{1,9}", args[0]) and user is not None
            and svc.settings.is_staff(user.id) and svc.messages.has("staff_cancel_hint")):
        # Staff typing "/cancel 21" for an appointment: the command they meant.
        text = svc.messages.get("staff_cancel_hint", id=args[0].lstrip("#"))
    await send_screen(update, context, svc.menu.main(intro=text))


# Words that, typed at the review, mean "send it": the review is shown again (its buttons
# submit). Anything else, however short ("I'm pregnant", "rash on face"), goes on to the
# questions handler, which answers it or offers to pass it to staff.
REVIEW_WORDS = frozenset({"ok", "okay", "yes", "yes please", "submit", "send", "send it",
                          "send them", "done", "confirm", "finished", "ready"})


def _at_review(svc: Services, row, message) -> bool:  # noqa: ANN001
    """A confirmation word or a greeting typed at the review screen, which asks nothing."""
    if row is None or row.stage != "review" or message is None or not message.text:
        return False
    words = " ".join(re.findall(r"[^\W_]+", message.text.casefold()))
    if words in REVIEW_WORDS:
        return True
    return svc.qa is not None and svc.qa.ask(message.text).kind in ("empty", "greeting", "thanks")


async def _run(update: Update, context: ContextTypes.DEFAULT_TYPE, kind: str) -> bool:
    """Apply one event in one transaction, then show the result. False: not an intake update."""
    urgent = answer = False
    waiting: str | None = None
    reply: Reply | None = None
    svc = services(context)
    flow = _flow(svc)
    if flow is None:
        if kind in ("typed", "cancel", "edited"):
            return False
        log.error("intake unavailable: ENCRYPTION_KEYS or content/intake.yaml missing")
        await answer_press(update)
        # Say so plainly, and offer the rest of the bot: nothing is collected without encryption.
        await send_screen(update, context, svc.menu.main(intro=svc.messages.get("intake_unavailable")))
        return True
    now = svc.clock.now()
    message = update.effective_message
    try:
        async with svc.db.session() as session:
            user = update.effective_user
            if user is None:  # private chats always name the sender; anything else is not ours
                return False
            patient, open_row = await flow.with_patient(session, user.id)
            if kind in ("typed", "cancel", "edited"):
                # Every message passes here first: only patients with an intake go on.
                if patient is None:
                    return False
                if kind == "typed":
                    # None: no open question; history: "years ago I got hives" is no emergency.
                    waiting, history = flow.waiting(open_row)
                    if waiting is None and not _at_review(svc, open_row, message):
                        return False
                    # Clinical safety first: an urgent message is escalated (the patient told
                    # to get help, staff alerted) before the questionnaire goes on. An answer to
                    # a question about the past (allergy history naming a reaction) is also
                    # kept as the answer; anything else (a sentence typed at a choice, at
                    # "Which other areas?" or a phone number) is not an answer, and the open
                    # question is shown again below the advice.
                    words = words_of(message) if message is not None else ""
                    urgent = bool(words and svc.qa is not None
                                  and svc.qa.red_flag_in(words, history=history) is not None)
                    answer = not urgent or (waiting == "text" and history and bool(message.text))
            patient = await _patient(session, update, svc, patient)
            if kind == "edited":
                assert message is not None
                found = await flow.edited(session, patient, message.message_id, now)
                if found is not None:
                    reply, history = found
                    # The new words are read for urgency all the same ("now my lips swell").
                    words = words_of(message)
                    urgent = bool(words and svc.qa is not None
                                  and svc.qa.red_flag_in(words, history=history) is not None)
            elif kind == "entry":
                reply = await flow.entry(session, patient, now)
            elif kind == "press":
                reply = await flow.press(session, patient, update.callback_query.data or "", now)
            elif kind == "cancel":
                reply = await flow.cancel(session, patient)
            elif not answer or waiting is None:  # not an answer, or "ok" at the review
                reply = await flow.current(session, patient, now)
            else:
                assert message is not None
                if message.contact is not None:
                    # Shared with the keyboard's button, it is the sender's own; a card from the
                    # address book (another user_id, or none) is someone else's.
                    reply = await flow.typed(session, patient, message.contact.phone_number, now,
                                             is_contact=True,
                                             own_contact=message.contact.user_id == user.id)
                else:
                    reply = await flow.typed(session, patient, message.text, now,
                                             message_id=message.message_id)
    except CryptoError:
        # A key was removed before rotation finished: say so to the operator (no data in logs).
        log.error("intake data of user %s cannot be decrypted with ENCRYPTION_KEYS",
                  update.effective_user.id if update.effective_user else None)
        if urgent:  # the questionnaire is out of order, the patient's safety is not
            await escalate_red_flag(update, context)
        await answer_press(update)
        await context.bot.send_message(update.effective_chat.id, flow.t("unavailable"))
        return True
    if reply is None:
        return False
    if urgent:
        await escalate_red_flag(update, context)
    if update.callback_query is not None:
        # Stop the button's spinner while the screens go out: independent Bot API calls.
        await asyncio.gather(answer_press(update, reply.toast), render(update, context, reply))
    else:
        await render(update, context, reply)
    return True


async def on_staff_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    svc = services(context)
    flow = _flow(svc)
    user_id = update.effective_user.id if update.effective_user else None
    if not await require_staff(update, context, "intake_contact"):
        return
    if flow is None:
        await answer_press(update)
        return
    intake_id = row_id((query.data or "iks:0").split(":", 1)[1])
    async with svc.db.session() as session:
        text = await flow.staff_contact(session, intake_id, user_id, svc.clock.now())
    log.info("staff %s viewed the contact details of intake %s", user_id, intake_id)
    await answer_press(update)
    await context.bot.send_message(update.effective_chat.id, text)


async def on_staff_console(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Staff console: the latest requests with their flag counts, and one request in full."""
    query = update.callback_query
    assert query is not None
    if not await require_staff(update, context, (query.data or "")[:64]):
        return
    svc = services(context)
    flow = _flow(svc)
    await answer_press(update)
    if flow is None:
        return
    staff_id = update.effective_user.id
    back = [(svc.messages.get("button_staff_back"), "staff:menu")]
    if query.data == "staff:intakes":
        async with svc.db.session() as session:
            listed = await flow.staff_recent(session, staff_id, svc.clock.now())
        text = flow.t("staff_list_title") if listed else flow.t("staff_list_empty")
        rows = [[(label, f"staff:intake:{intake_id}")] for intake_id, label, _ in listed]
        await show_screen(update, context, Screen(text, [*rows, back]))
        return
    intake_id = row_id((query.data or "").rsplit(":", 1)[1])
    async with svc.db.session() as session:
        notice = await flow.staff_view(session, intake_id, staff_id, svc.clock.now())
    if notice is None:
        await context.bot.send_message(update.effective_chat.id, flow.t("staff_not_found"))
        return
    await send_notice(context, update.effective_chat.id, notice)


async def intake_stats(svc: Services, session, now):  # noqa: ANN001, ANN201
    return await svc.intake.stats(session, now) if svc.intake is not None else []


def register(application: Application, svc: Services) -> None:
    if svc.intake is not None:
        svc.menu.extra_main_buttons.append((svc.intake.t("menu_button"), "ik:go"))
        svc.staff_menu.append((svc.intake.t("staff_console_button"), "staff:intakes"))
        svc.stat_providers.append(lambda session, now: intake_stats(svc, session, now))
    application.add_handler(CallbackQueryHandler(on_staff_console,
                                                 pattern=r"^staff:(intakes|intake:\d{1,12})$"))

    async def export(session, patient):  # noqa: ANN001, ANN202
        if svc.intake is None:
            return {"note": "not readable: ENCRYPTION_KEYS is not configured"}
        return await svc.intake.export(session, patient)

    # Registered even when the questionnaire is disabled: /forget must still delete the rows.
    svc.privacy.register(DataSection("consultation_intake", export, erase_intake,
                                     ("intakes", "intake_consents")))
    application.add_handler(
        command("start", entry_deep_link, PRIVATE & DEEP_LINK), group=GROUP)
    application.add_handler(command("cancel", on_cancel_early, PRIVATE), group=GROUP)
    application.add_handler(
        MessageHandler(PRIVATE & filters.UpdateType.MESSAGE & ~filters.COMMAND, on_message),
        group=GROUP)
    application.add_handler(
        MessageHandler(PRIVATE & filters.UpdateType.EDITED_MESSAGE & filters.TEXT
                       & ~filters.COMMAND, on_edited), group=GROUP)
    application.add_handler(CallbackQueryHandler(on_button, pattern=r"^ik:"))
    application.add_handler(CallbackQueryHandler(on_staff_button, pattern=r"^iks:\d{1,12}$"))
    if application.job_queue is not None:
        application.job_queue.run_repeating(
            resend_staff_notices, interval=NOTICE_RESEND_SECONDS, first=NOTICE_RESEND_SECONDS,
            name="intake-staff-notices",
            job_kwargs={"misfire_grace_time": None, "coalesce": True, "max_instances": 1})
    application.add_handler(command("cancel", on_cancel, PRIVATE))
