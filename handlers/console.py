"""Staff console additions (today and tomorrow, reminders needing attention with Retry,
broadcast, /noshow, /stats lines) and the patient's /settings. Logic lives in bot/console.py
and bot/preferences.py; the retention job in bot/retention.py."""

from __future__ import annotations

import logging
import re

from telegram import ForceReply, Update
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot import audit, console, patients, preferences, questions, retention
from bot.content import load_yaml
from bot.db.appointment_models import Appointment
from bot.db.models import Patient
from bot.inputs import is_number
from bot.menu import Screen
from bot.reminders.render import local_date, reminder_statuses, staff_who, when_plain
from bot.services import Services
from bot.staff import is_staff
from bot.telegram_html import plain
from handlers.common import (
    PRIVATE,
    answer_press,
    command,
    send_screen,
    services,
    show_screen,
    upsert_patient,
)
from handlers.common_staff import confirmation_answer, require_staff

log = logging.getLogger(__name__)
DRAFT_GROUP = -3  # before questions' staff replies (-2): a broadcast text is not a reply
MESSAGE_LIMIT = 4000  # characters of HTML; Telegram takes 4096 once the tags are parsed


# Every key of content/console.yaml: a clinic may reword them, not remove one.
CONSOLE_MESSAGES = (
    "button_staff_today", "button_staff_failed", "button_staff_broadcast", "staff_day_title",
    "staff_day_none", "staff_day_continued", "staff_day_more", "staff_day_line",
    "staff_confirmed", "staff_not_confirmed", "staff_no_show", "staff_completed",
    "staff_failed_title", "staff_failed_none", "staff_failed_more", "staff_failed_line",
    "staff_failed_unreachable",
    "button_retry_reminder", "staff_retry_done", "staff_retry_gone", "staff_retry_inactive",
    "staff_noshow_usage", "staff_noshow_done", "staff_noshow_refused", "staff_noshow_unknown",
    "staff_noshow_not_started", "staff_noshow_confirm", "button_noshow_yes", "button_noshow_no",
    "staff_noshow_kept", "staff_noshow_changed", "stat_confirmation_rate",
    "stat_no_shows", "stat_reminders_sent_7d", "stat_reminders_failed_7d",
    "stat_reminders_opted_out_7d", "broadcast_choose", "button_broadcast_tomorrow",
    "button_broadcast_upcoming", "button_broadcast_send", "button_broadcast_cancel",
    "broadcast_audience_tomorrow", "broadcast_audience_upcoming", "broadcast_ask_text",
    "broadcast_reply_prompt", "broadcast_confirm", "broadcast_nobody", "broadcast_too_long",
    "broadcast_not_reached",
    "broadcast_queued", "broadcast_cancelled", "broadcast_stale", "broadcast_not_yours",
    "settings_title",
    "settings_quiet", "settings_quiet_clinic", "settings_quiet_own", "settings_quiet_choose",
    "settings_saved",
    "button_settings", "settings_none", "kind_preparation", "kind_same_day", "kind_aftercare",
    "kind_checkin", "kind_next_session", "kind_broadcast", "button_kind_on", "button_kind_off",
    "button_quiet_off", "button_quiet_preset", "button_quiet_current",
)


def _back(svc: Services) -> list[tuple[str, str]]:
    return [(svc.messages.get("button_staff_back"), "staff:menu")]


def _kick_dispatcher(context: ContextTypes.DEFAULT_TYPE, name: str) -> None:
    from handlers.appointments import dispatch_job

    context.application.create_task(dispatch_job(context), name=name)


# ------------------------------------------------------------------ today and tomorrow
def _confirmation(svc: Services, status: str) -> str:
    key = {"confirmed": "staff_confirmed", "no_show": "staff_no_show",
           "completed": "staff_completed"}.get(status, "staff_not_confirmed")
    return svc.messages.get(key)


async def today_screens(svc: Services, staff_user_id: int) -> list[Screen]:
    """Today and tomorrow in as many messages as they need: every appointment is shown."""
    now, tz = svc.clock.now(), svc.settings.tz
    blocks: list[console.Block] = []
    async with svc.db.session() as session:
        for days_ahead in (0, 1):
            entries, more = await console.day_entries(session, now, tz, days_ahead)
            start, _ = console.local_day_bounds(now, tz, days_ahead)
            day = ("Today" if days_ahead == 0 else "Tomorrow") + ", " + local_date(start, tz)
            lines: list[str] = []
            if not entries:
                lines.append(svc.messages.get("staff_day_none"))
            for e in entries:
                lines.append(svc.messages.get(
                    "staff_day_line", id=e.appt.id, time=f"{e.appt.starts_at.astimezone(tz):%H:%M}",
                    who=staff_who(e.patient), area=e.appt.area,
                    confirmation=_confirmation(svc, e.appt.status),
                    reminders=reminder_statuses(e.reminders, tz, now)))
            if more:  # beyond day_entries' limit: said, not dropped silently (and not audited)
                lines.append(svc.messages.get("staff_day_more", count=more))
            blocks.append(console.Block(svc.messages.get("staff_day_title", day=day),
                                        svc.messages.get("staff_day_continued", day=day), lines))
            # Each patient whose appointments a staff member saw: one audit row (no content).
            for pid in sorted({e.patient.id for e in entries}):
                await audit.record(session, now=now, action="appointments_read",
                                   actor_user_id=staff_user_id, patient_id=pid,
                                   subject="today" if days_ahead == 0 else "tomorrow")
    texts = console.pages(blocks, MESSAGE_LIMIT)
    return [Screen(text) for text in texts[:-1]] + [Screen(texts[-1], [_back(svc)])]


# ------------------------------------------------------------------ reminders needing attention
async def failed_screen(svc: Services, staff_user_id: int) -> Screen:
    now = svc.clock.now()
    rows: list[list[tuple[str, str]]] = []
    async with svc.db.session() as session:
        items = await console.needing_attention(session, now)
        total = await console.count_needing_attention(session, now) if items else 0
        for pid in sorted({p.id for _, p in items}):
            await audit.record(session, now=now, action="reminders_read",
                               actor_user_id=staff_user_id, patient_id=pid, subject="failed")
    if not items:
        return Screen(svc.messages.get("staff_failed_none"), [_back(svc)])
    lines = [svc.messages.get("staff_failed_title")]
    for r, p in items:
        blocked = p.unreachable or p.chat_id is None
        lines.append(svc.messages.get(
            "staff_failed_line", id=r.id, kind=r.kind, patient=p.id,
            appt=f" (appointment #{r.appointment_id})" if r.appointment_id else "",
            status=r.status, error=(r.last_error or "-")[:80],
            note=svc.messages.get("staff_failed_unreachable") if blocked else ""))
        if not blocked:
            rows.append([(svc.messages.get("button_retry_reminder", id=r.id), f"rt:{r.id}")])
    if total > len(items):  # the list is cut (console.needing_attention): say so
        lines.append(svc.messages.get("staff_failed_more", count=total - len(items)))
    rows.append(_back(svc))
    return Screen("\n".join(lines), rows)


async def retry_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if not await require_staff(update, context, (query.data or "rt")[:64]):
        return
    await answer_press(update)
    svc = services(context)
    match = re.fullmatch(r"rt:(\d{1,9})", query.data or "")
    if match is None:
        return
    rid = int(match.group(1))
    async with svc.db.session() as session:
        retry = await console.retry_reminder(session, rid, svc.clock.now())
        row = retry.row
        if row is not None:
            await audit.record(session, now=svc.clock.now(), action="reminder_retry",
                               actor_user_id=query.from_user.id, patient_id=row.patient_id,
                               subject=f"reminder {rid}")
    if row is not None:
        text = svc.messages.get("staff_retry_done", id=rid)
    elif retry.inactive is not None:
        text = svc.messages.get("staff_retry_inactive", id=rid, appt=retry.inactive.id,
                                status=retry.inactive.status)
    else:
        text = svc.messages.get("staff_retry_gone", id=rid)
    await show_screen(update, context, Screen(text, [
        [(svc.messages.get("button_staff_failed"), "staff:failed")], _back(svc)]))
    if row is not None:
        _kick_dispatcher(context, f"retry-reminder-{rid}")


async def console_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if not await require_staff(update, context, (query.data or "staff")[:64]):
        return
    await answer_press(update)
    svc = services(context)
    if query.data == "staff:today":
        first, *rest = await today_screens(svc, query.from_user.id)
        await show_screen(update, context, first)
        for screen in rest:
            await send_screen(update, context, screen)
        return
    if query.data == "staff:failed":
        screen = await failed_screen(svc, query.from_user.id)
    else:
        screen = broadcast_choice(svc)
    await show_screen(update, context, screen)


async def today_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if await require_staff(update, context, "today"):
        for screen in await today_screens(services(context), update.effective_user.id):
            await send_screen(update, context, screen)


def _noshow_refused(svc: Services, appt_id: int, reason: str) -> Screen:
    if reason == console.NO_SHOW_UNKNOWN:
        return Screen(svc.messages.get("staff_noshow_unknown", id=appt_id))
    if reason == console.NO_SHOW_NOT_STARTED:
        return Screen(svc.messages.get("staff_noshow_not_started", id=appt_id))
    return Screen(svc.messages.get("staff_noshow_refused", id=appt_id,
                                   status=reason.replace("_", "-")))


async def noshow_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/noshow N: whose visit and when, to confirm with a button (it cannot be undone, and it
    stops the visit's aftercare and check-in)."""
    if not await require_staff(update, context, "noshow"):
        return
    svc = services(context)
    parts = (update.effective_message.text or "").split()
    if len(parts) != 2 or not re.fullmatch(r"#?\d{1,9}", parts[1]):
        await send_screen(update, context, Screen(svc.messages.get("staff_noshow_usage")))
        return
    appt_id, now = int(parts[1].lstrip("#")), svc.clock.now()
    async with svc.db.session() as session:
        appt = await session.get(Appointment, appt_id)
        if (reason := console.no_show_refused(appt, now)) is not None:
            await send_screen(update, context, _noshow_refused(svc, appt_id, reason))
            return
        patient = await session.get(Patient, appt.patient_id)
        await audit.record(session, now=now, action="appointments_read",
                           actor_user_id=update.effective_user.id, patient_id=appt.patient_id,
                           subject="noshow")
    when = when_plain(appt.starts_at, svc.settings.tz)
    await send_screen(update, context, Screen(
        svc.messages.get("staff_noshow_confirm", id=appt_id, who=staff_who(patient), when=when,
                         area=appt.area),
        # The plan version: a Yes pressed after the appointment moved records nothing unseen.
        [[(svc.messages.get("button_noshow_yes", id=appt_id),
           f"ns:y:{appt_id}:{appt.plan_version}")],
         [(svc.messages.get("button_noshow_no"), f"ns:n:{appt_id}:{appt.plan_version}")]]))


async def noshow_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The staff member's answer to /noshow's question."""
    if not await require_staff(update, context, "noshow"):
        return
    if (answer := await confirmation_answer(update, context, "staff_noshow_kept")) is None:
        return
    (appt_id, version), svc = answer, services(context)
    now = svc.clock.now()
    async with svc.db.session() as session:
        appt = await session.get(Appointment, appt_id)
        if appt is not None and appt.plan_version != version:
            screen = Screen(svc.messages.get("staff_noshow_changed", id=appt_id))
        elif await console.mark_no_show(session, appt_id, now):
            screen = Screen(svc.messages.get("staff_noshow_done", id=appt_id))
        else:  # a double tap, or changed meanwhile: why
            screen = _noshow_refused(svc, appt_id, console.no_show_refused(
                await session.get(Appointment, appt_id), now) or console.NO_SHOW_UNKNOWN)
    await show_screen(update, context, screen)


# ------------------------------------------------------------------ broadcast
def broadcast_choice(svc: Services) -> Screen:
    return Screen(svc.messages.get("broadcast_choose"), [
        [(svc.messages.get("button_broadcast_tomorrow"), "bc:g:tomorrow")],
        [(svc.messages.get("button_broadcast_upcoming"), "bc:g:upcoming")],
        _back(svc)])


async def broadcast_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if await require_staff(update, context, "broadcast"):
        await send_screen(update, context, broadcast_choice(services(context)))


async def broadcast_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if not await require_staff(update, context, (query.data or "bc")[:64]):
        return
    svc = services(context)
    now, tz, user = svc.clock.now(), svc.settings.tz, query.from_user
    match = re.fullmatch(r"bc:(g|send|no):(\w{1,12})", query.data or "")
    action, arg = match.groups() if match else ("", "")
    if action in ("send", "no") and is_number(arg) and len(arg) <= 9:
        async with svc.db.session() as session:
            author = await console.author_of(session, int(arg))
        if author is not None and author != user.id:
            # A colleague's preview in the staff group: theirs to send; the message stays.
            await answer_press(update, svc.messages.get("broadcast_not_yours"), show_alert=True)
            return
    await answer_press(update)
    if match is None:
        return
    if action == "g":
        if arg not in console.AUDIENCES:
            return
        chat_id = update.effective_chat.id
        async with svc.db.session() as session:
            # The draft takes this chat's text first: a pending Reply here would wait for the
            # staff member's next, unrelated message. The button pressed last wins.
            replying_to = await questions.clear_reply(session, user.id, chat_id)
            await console.start_draft(session, user.id, chat_id, arg, now)
            count = len(await console.audience_patients(session, arg, now, tz))
        audience = svc.messages.get(f"broadcast_audience_{arg}")
        await show_screen(update, context, Screen(svc.messages.get(
            "broadcast_ask_text", audience=audience, count=count)))
        if update.effective_chat.type != "private":
            # Telegram's privacy mode shows the bot only replies to its messages in a group:
            # ForceReply makes the text one, asked of this staff member only (selective).
            await context.bot.send_message(chat_id, svc.messages.get(
                "broadcast_reply_prompt", staff_id=user.id, staff=user.first_name),
                reply_markup=ForceReply(selective=True))
        if replying_to is not None and svc.qa is not None:
            await context.bot.send_message(chat_id, svc.qa.config.text(
                "staff_reply_cancelled", question_id=replying_to))
        return
    if not is_number(arg) or len(arg) > 9:  # ids are 32-bit in PostgreSQL
        return
    async with svc.db.session() as session:
        if action == "send":
            count = await console.queue(session, int(arg), user.id, now, tz)
            if count is not None:
                await audit.record(session, now=now, action="broadcast", actor_user_id=user.id,
                                   subject=f"broadcast {arg} to {count}")
        else:
            count = None
            cancelled = await console.cancel_draft(session, int(arg), user.id)
    if action == "send":
        key = "broadcast_stale" if count is None else "broadcast_queued"
        await show_screen(update, context, Screen(svc.messages.get(key, count=count or 0)))
        if count:
            _kick_dispatcher(context, f"broadcast-{arg}")
    else:
        key = "broadcast_cancelled" if cancelled else "broadcast_stale"
        await show_screen(update, context, Screen(svc.messages.get(key)))


async def draft_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Group -3: the text of a broadcast a staff member is composing. Everyone else passes on."""
    svc = services(context)
    message, user, chat = update.effective_message, update.effective_user, update.effective_chat
    if message is None or user is None or chat is None or not message.text:
        return
    if not is_staff(svc.settings, user.id):
        return
    now, tz = svc.clock.now(), svc.settings.tz
    async with svc.db.session() as session:
        draft = await console.open_draft(session, user.id, chat.id, now)
        if draft is None:
            return
        text = message.text.strip()
        if text.startswith("/"):
            if text.split()[0].split("@")[0] == "/cancel_broadcast":
                await console.cancel_draft(session, draft.id, user.id)
                await send_screen(update, context, Screen(svc.messages.get("broadcast_cancelled")))
                raise ApplicationHandlerStop
            return  # other commands work as usual while a draft is open
        audience = svc.messages.get(f"broadcast_audience_{draft.audience}")
        if len(text) > console.BROADCAST_MAX:
            screen = Screen(svc.messages.get("broadcast_too_long", length=len(text),
                                             limit=console.BROADCAST_MAX))
        else:
            count = len(await console.audience_patients(session, draft.audience, now, tz,
                                                        begun_at=draft.created_at))
            missed = await console.audience_patients(session, draft.audience, now, tz,
                                                     reachable=False, begun_at=draft.created_at)
            # Those of the group the bot cannot reach: staff phone them.
            phone = svc.messages.get(
                "broadcast_not_reached", count=len(missed),
                patient=", ".join(f"#{p}" for p in missed[:20]) + (" …" if len(missed) > 20 else "")
            ) if missed else ""
            if count == 0:
                await console.cancel_draft(session, draft.id, user.id)
                screen = Screen(svc.messages.get("broadcast_nobody", audience=audience)
                                + (f"\n\n{phone}" if phone else ""))
            else:
                shown = await console.preview(session, draft, text)
                screen = Screen(svc.messages.get("broadcast_confirm", count=count,
                                                 audience=audience, text=text)
                                + (f"\n\n{phone}" if phone else ""), [
                    [(svc.messages.get("button_broadcast_send", count=count), f"bc:send:{shown.id}")],
                    [(svc.messages.get("button_broadcast_cancel"), f"bc:no:{shown.id}")]])
    await send_screen(update, context, screen)
    raise ApplicationHandlerStop


# ------------------------------------------------------------------ the patient's /settings
def settings_screen(svc: Services, prefs: preferences.Prefs) -> Screen:
    s = svc.settings
    # The clinic's quiet hours always apply; the patient's own come on top of them.
    # Texts placed inside other texts go in as their visible text (escaped once there), not as
    # HTML escaped a second time ("&amp;amp;").
    quiet = plain(svc.messages.get("settings_quiet_clinic", start=f"{s.quiet_hours_start:%H:%M}",
                                   end=f"{s.quiet_hours_end:%H:%M}"))
    if prefs.quiet_start and prefs.quiet_end:
        quiet = plain(svc.messages.get("settings_quiet_own", quiet=quiet,
                                       start=f"{prefs.quiet_start:%H:%M}",
                                       end=f"{prefs.quiet_end:%H:%M}"))
    rows: list[list[tuple[str, str]]] = []
    for kind in preferences.OPTIONAL_KINDS:
        label = plain(svc.messages.get(f"kind_{kind}"))
        key = "button_kind_on" if prefs.allows(kind) else "button_kind_off"
        rows.append([(svc.messages.get(key, label=label), f"pf:k:{kind}")])
    quiet_row: list[tuple[str, str]] = []
    for preset, span in preferences.QUIET_PRESETS.items():
        if (span is not None and preset != prefs.preset
                and not preferences.adds_to_clinic(span, s.quiet_hours_start, s.quiet_hours_end)):
            continue  # inside the clinic's quiet hours: choosing it would change nothing
        label = svc.messages.get(
            "button_quiet_off", start=f"{s.quiet_hours_start:%H}", end=f"{s.quiet_hours_end:%H}"
        ) if span is None else svc.messages.get(
            "button_quiet_preset", start=f"{span[0]:%H}", end=f"{span[1]:%H}")
        if preset == prefs.preset:
            label = svc.messages.get("button_quiet_current", label=plain(label))
        quiet_row.append((label, f"pf:q:{preset}"))
    rows.extend(row for row in (quiet_row[:3], quiet_row[3:]) if row)
    rows.append([(svc.messages.get("button_main_menu"), "home")])
    text = "\n\n".join([svc.messages.get("settings_title"),
                        svc.messages.get("settings_quiet", quiet=quiet),
                        svc.messages.get("settings_quiet_choose")])
    return Screen(text, rows)


async def settings_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    async with svc.db.session() as session:
        patient = await upsert_patient(session, update, svc.clock.now())
        prefs = await preferences.load(session, patient.id)
    await send_screen(update, context, settings_screen(svc, prefs))


async def settings_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    svc = services(context)
    if update.effective_chat is None or update.effective_chat.type != "private":
        await answer_press(update)
        return  # a patient's own settings live only in their private chat with the bot
    if query.data == "pf:open":  # the main menu's button: the screen /settings shows
        await answer_press(update)
        async with svc.db.session() as session:
            patient = await upsert_patient(session, update, svc.clock.now())
            prefs = await preferences.load(session, patient.id)
        await show_screen(update, context, settings_screen(svc, prefs))
        return
    match = re.fullmatch(r"pf:(k|q):(\w{1,16})", query.data or "")
    valid = match is not None and (
        match.group(2) in preferences.OPTIONAL_KINDS if match.group(1) == "k"
        else match.group(2) in preferences.QUIET_PRESETS)
    if not valid:
        await answer_press(update)
        return
    now = svc.clock.now()
    async with svc.db.session() as session:
        # Only ever the pressing user's own record: the button carries no patient id.
        patient = await patients.by_telegram_id(session, query.from_user.id)
        if patient is None:
            patient = await upsert_patient(session, update, now)
        if match.group(1) == "k":
            prefs = await preferences.toggle_kind(session, patient.id, match.group(2), now)
        else:
            prefs = await preferences.set_quiet(session, patient.id, match.group(2), now)
    await answer_press(update, svc.messages.get("settings_saved"))
    await show_screen(update, context, settings_screen(svc, prefs))


# ------------------------------------------------------------------ registration
def register(application: Application, svc: Services) -> None:
    path = svc.settings.content_dir / "console.yaml"
    svc.content.messages.add(load_yaml(path), path, CONSOLE_MESSAGES)
    svc.staff_menu.append((svc.messages.get("button_staff_today"), "staff:today"))
    svc.staff_menu.append((svc.messages.get("button_staff_failed"), "staff:failed"))
    svc.staff_menu.append((svc.messages.get("button_staff_broadcast"), "staff:broadcast"))
    svc.stat_providers.append(console.stats)
    svc.privacy.register(preferences.SECTION)
    svc.menu.extra_main_buttons.append((svc.messages.get("button_settings"), "pf:open"))

    application.add_handler(MessageHandler(filters.TEXT & ~filters.UpdateType.EDITED, draft_text),
                            group=DRAFT_GROUP)
    application.add_handler(command("today", today_command))
    application.add_handler(command("noshow", noshow_command))
    application.add_handler(command("broadcast", broadcast_command))
    application.add_handler(command("settings", settings_command, PRIVATE))
    application.add_handler(CallbackQueryHandler(
        console_button, pattern=r"^staff:(today|failed|broadcast)$"))
    application.add_handler(CallbackQueryHandler(retry_button, pattern=r"^rt:"))
    application.add_handler(CallbackQueryHandler(noshow_button,
                                                 pattern=r"^ns:[yn]:\d{1,12}:\d{1,9}$"))
    application.add_handler(CallbackQueryHandler(broadcast_button, pattern=r"^bc:"))
    application.add_handler(CallbackQueryHandler(settings_button, pattern=r"^pf:"))
    retention.schedule(application, svc)
