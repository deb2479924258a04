"""/start, /menu, /help and menu navigation (inline buttons that edit the message in place)."""

from __future__ import annotations

import asyncio
import html

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes

from bot import patients
from bot.menu import parse_callback
from bot.services import Services
from handlers.common import PRIVATE, answer_press, command, send_screen, services, show_screen


async def remember_patient(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return
    svc = services(context)
    async with svc.db.session() as session:
        await patients.touch_from_telegram(
            session, user_id=user.id, chat_id=chat.id, first_name=user.first_name,
            language_code=user.language_code, now=svc.clock.now(),
        )


async def _intake_still_open(update: Update, svc: Services) -> str | None:
    """A line saying the user's questionnaire is still open, else None."""
    user = update.effective_user
    if svc.intake is None or user is None:
        return None
    async with svc.db.session() as session:
        return await svc.intake.still_open(session, user.id)


def _joined(*parts: str | None) -> str | None:
    return "\n\n".join(p for p in parts if p) or None


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    await remember_patient(update, context)
    user = update.effective_user
    name = (user.first_name or "").strip() if user else ""
    greeting = (svc.messages.get("greeting", first_name=name) if name
                else svc.messages.get("greeting_anonymous"))
    intro = _joined(greeting, await _intake_still_open(update, svc))
    await send_screen(update, context, svc.menu.main(intro=intro))


async def menu(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    await send_screen(update, context, svc.menu.main(intro=await _intake_still_open(update, svc)))


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    intro = svc.messages.with_contact(svc.messages.get("help"), gap="\n\n")
    user = update.effective_user
    if svc.settings.is_staff(user.id if user else None):
        lines = [svc.messages.get("staff_help")] + [
            f"/{name} — {html.escape(text, quote=False)}"
            for name, text in svc.messages.raw("staff_commands").items()]
        intro = f"{intro}\n\n" + "\n".join(lines)
    await send_screen(update, context, svc.menu.main(intro=intro))


# The main menu as a new message, the pressed one left as it is (the urgent "get help now").
KEEP_HOME = "home:new"


async def navigate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    svc = services(context)
    if query.data == KEEP_HOME:  # under advice that must stay in the chat: a menu below it
        await asyncio.gather(answer_press(update), send_screen(update, context, svc.menu.main()))
        return
    nav = parse_callback(query.data)
    screen = svc.menu.resolve(nav) if nav else None
    if screen is None:
        # Callback data is untrusted: a stale button (content edited) or a forged one.
        await answer_press(update)
        await show_screen(update, context, svc.menu.main(intro=svc.messages.get("stale_button")))
        return
    # Answer the press and redraw at once: two independent Bot API calls.
    await asyncio.gather(answer_press(update), show_screen(update, context, screen))


def register(application: Application, svc: Services) -> None:
    application.add_handler(command("start", start, PRIVATE))
    application.add_handler(command("menu", menu, PRIVATE))
    application.add_handler(command("help", help_command, PRIVATE))
    application.add_handler(CallbackQueryHandler(navigate, pattern=r"^(n:|r:|home$|home:new$)"))
