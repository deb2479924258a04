"""Never silence: unknown commands, free text and other messages get a helpful answer + menu.

Registered last in group 0: within a group the first matching handler wins, so every feature
handler (questions, intake) registered before these takes precedence.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bot.services import Services
from handlers.common import PRIVATE, answer_press, send_screen, services, show_screen


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    command = (update.effective_message.text or "").split()[0][:64]
    await send_screen(update, context, svc.menu.main(intro=svc.messages.get("unknown_command", command=command)))


async def unknown_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    await send_screen(update, context, svc.menu.main(intro=svc.messages.get("unknown_text")))


async def unsupported(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    await send_screen(update, context, svc.menu.main(intro=svc.messages.get("unsupported_message")))


async def unknown_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    assert update.callback_query is not None
    await answer_press(update)
    if update.effective_chat is None or update.effective_chat.type != "private":
        return  # an old button in the staff group: never turn it into the patient menu
    await show_screen(update, context, svc.menu.main(intro=svc.messages.get("stale_button")))


def register(application: Application, svc: Services) -> None:
    new_messages = filters.UpdateType.MESSAGE & PRIVATE
    application.add_handler(MessageHandler(new_messages & filters.COMMAND, unknown_command))
    application.add_handler(MessageHandler(new_messages & filters.TEXT & ~filters.COMMAND, unknown_text))
    application.add_handler(MessageHandler(new_messages & ~filters.TEXT, unsupported))
    application.add_handler(CallbackQueryHandler(unknown_button))
