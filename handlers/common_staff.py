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
