"""/staff: the staff console menu, and /stats. Features add their own console entries."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes

from bot.content import load_yaml
from bot.menu import Screen
from bot.services import Services
from handlers.common import answer_press, command, send_screen, services, show_screen
from handlers.common_staff import require_staff

# Every key of content/staff.yaml: a clinic may reword them, not remove one.
STAFF_MESSAGES = (
    "staff_menu", "staff_menu_empty", "staff_stats_title", "staff_stat_line",
    "stat_patients_total", "stat_patients_week", "button_staff_stats", "button_staff_back",
    "staff_commands", "staff_help",
)


def console(svc: Services) -> Screen:
    rows = [[entry] for entry in svc.staff_menu]
    rows.append([(svc.messages.get("button_staff_stats"), "staff:stats")])
    return Screen(svc.messages.get("staff_menu"), rows)


async def stats_screen(svc: Services) -> Screen:
    now = svc.clock.now()
    lines = [svc.messages.get("staff_stats_title", timezone=svc.settings.clinic_timezone)]
    async with svc.db.session() as session:
        for provider in svc.stat_providers:
            for key, value in await provider(session, now):
                label = svc.messages.get(key) if svc.messages.has(key) else key
                lines.append(svc.messages.get("staff_stat_line", label=label, value=value))
    return Screen("\n".join(lines), [[(svc.messages.get("button_staff_back"), "staff:menu")]])


async def staff_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if await require_staff(update, context, "staff_menu"):
        await send_screen(update, context, console(services(context)))


async def stats_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if await require_staff(update, context, "stats"):
        await send_screen(update, context, await stats_screen(services(context)))


async def staff_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    assert query is not None
    if not await require_staff(update, context, f"button {query.data}"[:64]):
        return
    await answer_press(update)
    svc = services(context)
    screen = await stats_screen(svc) if query.data == "staff:stats" else console(svc)
    await show_screen(update, context, screen)


def register(application: Application, svc: Services) -> None:
    path = svc.settings.content_dir / "staff.yaml"
    svc.content.messages.add(load_yaml(path), path, STAFF_MESSAGES)
    application.add_handler(command("staff", staff_command))
    application.add_handler(command("stats", stats_command))
    application.add_handler(CallbackQueryHandler(staff_button, pattern=r"^staff:(menu|stats)$"))
