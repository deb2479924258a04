"""The last line of defence: log the failure (ids only) and tell the person politely."""

from __future__ import annotations

import logging
import traceback

from telegram import Update
from telegram.error import Forbidden, TelegramError
from telegram.ext import Application, ContextTypes

from bot.services import Services

log = logging.getLogger("bot.errors")


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    error = context.error
    update_id = update.update_id if isinstance(update, Update) else None
    # Only the type and the traceback: exception messages can quote what a patient typed.
    frames = "".join(traceback.format_tb(error.__traceback__)) if error else ""
    log.error("handler failed for update %s: %s\n%s", update_id, type(error).__name__, frames)
    if not isinstance(update, Update) or update.effective_chat is None or isinstance(error, Forbidden):
        return
    svc: Services = context.application.bot_data["services"]
    try:
        if update.callback_query is not None:
            await update.callback_query.answer()
        await context.bot.send_message(update.effective_chat.id, svc.messages.get("error"))
    except TelegramError:
        log.warning("could not tell chat about the failure of update %s", update_id)


def register(application: Application, svc: Services) -> None:
    application.add_error_handler(on_error)
