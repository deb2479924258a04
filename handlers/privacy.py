"""/mydata (export as a JSON file) and /forget (erasure after confirmation)."""

from __future__ import annotations

import json

from telegram import InputFile, Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes

from bot import patients
from bot.content import load_yaml
from bot.menu import Screen
from bot.services import Services
from handlers.common import (
    PRIVATE,
    answer_press,
    command,
    notify_staff,
    send_screen,
    services,
    show_screen,
)

# Every key of content/privacy.yaml: a clinic may reword them, not remove one.
PRIVACY_MESSAGES = (
    "mydata_caption", "mydata_none", "forget_confirm", "button_forget_yes", "button_forget_no",
    "forget_done", "forget_kept", "forget_nothing", "staff_only", "staff_elsewhere",
)


async def mydata(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    user = update.effective_user
    assert user is not None and update.effective_chat is not None
    async with svc.db.session() as session:
        patient = await patients.by_telegram_id(session, user.id)
        if patient is None:
            data = None
        else:
            data = await svc.privacy.export(session, patient, now=svc.clock.now())
    if data is None:
        await context.bot.send_message(update.effective_chat.id, svc.messages.get("mydata_none"))
        return
    payload = json.dumps(data, indent=2, ensure_ascii=False, default=str).encode()
    await context.bot.send_document(update.effective_chat.id, InputFile(payload, filename="my-data.json"),
                                    caption=svc.messages.get("mydata_caption"))


async def forget(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    rows = [[(svc.messages.get("button_forget_yes"), "forget:yes")],
            [(svc.messages.get("button_forget_no"), "forget:no")]]
    await send_screen(update, context, Screen(svc.messages.get("forget_confirm"), rows))


async def forget_answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    query = update.callback_query
    assert query is not None and query.from_user is not None
    await answer_press(update)
    if query.data != "forget:yes":
        await show_screen(update, context, Screen(svc.messages.get("forget_kept"), [
            [(svc.messages.get("button_main_menu"), "home")]]))
        return
    notes: list[str] = []
    async with svc.db.session() as session:
        # Only ever the pressing user's own record: the button carries no id to forge. Locked:
        # a double tap handled by two instances erases (and tells staff) once.
        patient = await patients.by_telegram_id(session, query.from_user.id, lock=True)
        if patient is not None:
            notes = await svc.privacy.erase(session, patient, now=svc.clock.now())
    key = "forget_done" if patient is not None else "forget_nothing"
    try:
        await show_screen(update, context, Screen(svc.messages.get(key)))
    finally:  # erased and committed: staff must learn e.g. which diary slots are free now
        for note in notes:
            await notify_staff(context, note)


def register(application: Application, svc: Services) -> None:
    path = svc.settings.content_dir / "privacy.yaml"
    svc.content.messages.add(load_yaml(path), path, PRIVACY_MESSAGES)
    application.add_handler(command("mydata", mydata, PRIVATE))
    application.add_handler(command("forget", forget, PRIVATE))
    application.add_handler(CallbackQueryHandler(forget_answer, pattern=r"^forget:(yes|no)$"))
