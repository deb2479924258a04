"""The last line of defence: log the failure (ids only) and tell the person politely."""

from __future__ import annotations

import logging
import traceback

from telegram import Update
from telegram.error import Forbidden, TelegramError
from telegram.ext import Application, ApplicationHandlerStop, ContextTypes

from bot.db.errors import is_db_unavailable
from bot.services import Services
from handlers.common import send_screen

log = logging.getLogger("bot.errors")


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    error = context.error
    update_id = update.update_id if isinstance(update, Update) else None
    db_down = is_db_unavailable(error)
    if db_down:
        # An outage, not a bug: one line, no traceback (the health check reports it too).
        log.warning("database unavailable while handling update %s: %s", update_id,
                    type(error).__name__)
    else:
        # Only the type and the traceback: exception messages can quote what a patient typed.
        frames = "".join(traceback.format_tb(error.__traceback__)) if error else ""
        log.error("handler failed for update %s: %s\n%s", update_id, type(error).__name__, frames)
    if not isinstance(update, Update):
        return
    if update.effective_chat is not None and not isinstance(error, Forbidden):
        await _tell(update, context, db_down)
    # The person has been told: later handler groups (e.g. the fallback after a failed group -1
    # feature handler) must not answer the same update a second time.
    raise ApplicationHandlerStop


async def _tell(update: Update, context: ContextTypes.DEFAULT_TYPE, db_down: bool) -> None:
    assert update.effective_chat is not None
    update_id = update.update_id
    svc: Services = context.application.bot_data["services"]
    if update.callback_query is not None:
        try:
            await update.callback_query.answer()
        except TelegramError:
            pass  # the failed handler may have answered it already
    try:
        if db_down and update.effective_chat.type == "private":
            # The menus need no database: offer them while the rest comes back.
            screen = svc.menu.main(intro=svc.messages.get("db_unavailable"))
            await send_screen(update, context, screen)
        else:
            await context.bot.send_message(update.effective_chat.id, svc.messages.get(
                "db_unavailable" if db_down else "error"))
    except TelegramError:
        log.warning("could not tell chat about the failure of update %s", update_id)


def register(application: Application, svc: Services) -> None:
    application.add_error_handler(on_error)
