"""The staff check, done on every staff command and every staff button press, and recorded."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot import audit
from bot.menu import Screen
from bot.staff import is_staff, staff_place
from handlers.common import answer_press, keyboard, services


async def require_staff(update: Update, context: ContextTypes.DEFAULT_TYPE, action: str) -> bool:
    """True for staff. Anyone else gets a polite refusal, and the attempt is audited."""
    svc = services(context)
    user, chat = update.effective_user, update.effective_chat
    if is_staff(svc.settings, user.id if user else None):
        if chat is None or staff_place(svc.settings, chat.id, chat.type):
            return True
        # Staff in another group (a patients' community, say): what the console shows about
        # patients must not be posted to everyone there.
        text = svc.messages.get("staff_elsewhere")
        if update.callback_query is not None:
            await answer_press(update, text, show_alert=True)
        else:
            await context.bot.send_message(chat.id, text)
        return False
    async with svc.db.session() as session:
        await audit.record(session, now=svc.clock.now(), action="staff_denied",
                           actor_user_id=user.id if user else None, subject=action[:64])
    text = svc.messages.get("staff_only")
    if update.callback_query is not None:
        await answer_press(update, text, show_alert=True)
    elif update.effective_chat is not None:
        # A patient who typed a staff command gets their way back (a group gets none).
        markup = keyboard(Screen(text, [[(svc.messages.get("button_main_menu"), "home")]])) \
            if update.effective_chat.type == "private" else None
        await context.bot.send_message(update.effective_chat.id, text, reply_markup=markup)
    return False


async def confirmation_answer(update: Update, context: ContextTypes.DEFAULT_TYPE,
                              kept_text: str) -> tuple[int, int] | None:
    """A staff member's answer to a Yes/No question ("xx:y:ID:VERSION"), the press answered:
    (the appointment id, the plan version the question showed) for a Yes; for a No, None once
    `kept_text` (a template with {id}) is shown."""
    from bot.inputs import row_id
    from handlers.common import show_screen

    _, answer, raw_id, raw_version = update.callback_query.data.split(":")
    appt_id = row_id(raw_id)
    await answer_press(update)
    if answer == "n":
        await show_screen(update, context, Screen(services(context).messages.get(kept_text,
                                                                                 id=appt_id)))
        return None
    return appt_id, int(raw_version)
