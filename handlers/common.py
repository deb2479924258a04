"""Helpers shared by handler modules: the services, and sending or editing a Screen."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import BaseHandler, CommandHandler, ContextTypes, filters

from bot import patients, telegram_html
from bot.db.models import Patient
from bot.menu import Screen
from bot.services import Services

log = logging.getLogger(__name__)

PRIVATE = filters.ChatType.PRIVATE


def command(name: str, callback: Callable[..., Awaitable[object]],
            only: filters.BaseFilter | None = None) -> BaseHandler:
    """A command handler that answers new messages only. PTB's CommandHandler also answers an
    edited message by default: staff correcting "/book … 12:00" to 13:00 booked twice, and an
    edited /reply reached the patient twice."""
    new = filters.UpdateType.MESSAGE
    return CommandHandler(name, callback, filters=new if only is None else new & only)


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return context.application.bot_data["services"]


_KEYBOARDS: dict[tuple[tuple[tuple[str, str], ...], ...], InlineKeyboardMarkup] = {}
_KEYBOARD_CACHE_SIZE = 2048


def keyboard(screen: Screen) -> InlineKeyboardMarkup | None:
    if not screen.rows:
        return None
    # Markups are immutable (frozen TelegramObjects): the same rows share one, so the menus'
    # keyboards are built once instead of on every press. Bounded: dynamic keyboards (ids in
    # callback data) would otherwise grow it for ever.
    key = tuple(tuple(row) for row in screen.rows)
    markup = _KEYBOARDS.get(key)
    if markup is None:
        if len(_KEYBOARDS) >= _KEYBOARD_CACHE_SIZE:
            _KEYBOARDS.clear()
        markup = _KEYBOARDS[key] = InlineKeyboardMarkup(
            [[InlineKeyboardButton(telegram_html.label(label), callback_data=data)
              for label, data in row] for row in key])
    return markup


async def upsert_patient(session: AsyncSession, update: Update, now: datetime) -> Patient:
    """The sender's patient row, created or refreshed from what Telegram tells us about them."""
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None
    return await patients.upsert_from_telegram(
        session, user_id=user.id, chat_id=chat.id, first_name=user.first_name,
        language_code=user.language_code, now=now)


async def answer_press(update: Update, text: str | None = None, *,
                       show_alert: bool | None = None) -> None:
    """Stop the button's spinner. Best effort: a press Telegram no longer lets us answer ("query
    is too old" after a backlog or a restart) or a timeout must not fail the action pressed for,
    nor the screen the patient waits for."""
    query = update.callback_query
    if query is None:
        return
    try:
        await query.answer(text, show_alert=show_alert)
    except TelegramError as exc:
        log.info("press of update %s not answered (%s)", update.update_id, type(exc).__name__)


async def send_screen(update: Update, context: ContextTypes.DEFAULT_TYPE, screen: Screen) -> Message:
    chat = update.effective_chat
    assert chat is not None
    return await context.bot.send_message(chat.id, screen.text, reply_markup=keyboard(screen))


async def show_screen(update: Update, context: ContextTypes.DEFAULT_TYPE, screen: Screen) -> None:
    """Edit the pressed message in place; fall back to a new message if it cannot be edited."""
    query = update.callback_query
    if query is None or query.message is None or not query.message.is_accessible:
        await send_screen(update, context, screen)
        return
    try:
        await query.edit_message_text(screen.text, reply_markup=keyboard(screen))
    except BadRequest as exc:
        text = str(exc).lower()
        if "not modified" in text:
            return  # the patient pressed the button of the screen already shown
        if "can't be edited" in text or "not found" in text:
            await send_screen(update, context, screen)
            return
        raise


async def notify_staff(context: ContextTypes.DEFAULT_TYPE, text: str,
                       rows: list[list[tuple[str, str]]] | None = None) -> int:
    """Send `text` to every staff notification chat; returns how many received it.

    One unreachable staff member must not stop the others from being told.
    """
    from telegram.error import TelegramError

    from bot.staff import notification_chats

    svc = services(context)
    markup = keyboard(Screen(text, rows or []))
    delivered = 0
    for chat_id in notification_chats(svc.settings):
        try:
            await context.bot.send_message(chat_id, text, reply_markup=markup)
            delivered += 1
        except TelegramError as exc:
            log.warning("staff chat %s not notified: %s", chat_id, type(exc).__name__)
    return delivered


async def run_alone(svc: Services, lock: str, work: Callable[[], Awaitable[object]]) -> None:
    """One run of a periodic job: on one instance at a time (the others skip this run), and
    never raising, since the next run tries again."""
    from bot.db.errors import is_db_unavailable
    from bot.db.exclusive import alone

    try:
        async with alone(svc.db, lock) as holding:
            if holding is not None:
                await work()
    except Exception as exc:  # noqa: BLE001 - never kill the job
        if is_db_unavailable(exc):
            log.warning("%s: database unavailable (%s)", lock, type(exc).__name__)
        else:
            log.exception("%s failed", lock)
