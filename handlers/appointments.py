"""Appointments and reminders in Telegram: staff commands, the patient's appointment screens,
reminder buttons, deep-link linking, and the dispatcher job. Logic lives in bot/reminders/."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from icalendar import Calendar, Event
from sqlalchemy import select
from telegram import InputFile, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    ContextTypes,
    filters,
)

from bot import audit, patients, questions
from bot.db.appointment_models import ACTIVE_STATUSES, Appointment
from bot.db.errors import is_db_unavailable
from bot.db.models import Patient
from bot.db.qa_models import CONCERN, NEXT_SESSION, RESCHEDULE
from bot.inputs import is_number, row_id
from bot.menu import Screen
from bot.reminders import privacy as reminder_privacy
from bot.reminders import service
from bot.reminders.dispatcher import Dispatcher
from bot.reminders.parse import (
    InputError,
    Who,
    parse_book,
    parse_date,
    parse_duration_tokens,
    parse_when,
    parse_who,
    split_args,
)
from bot.reminders.planner import resolve_local
from bot.reminders.plans import ReminderContent, content_from_messages
from bot.reminders.render import (
    appointment_buttons,
    confirm_stamp,
    local_date,
    patient_label,
    reminder_statuses,
    staff_who,
    when,
    when_plain,
)
from bot.services import Services
from bot.staff import notification_chats
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
from handlers.questions import alert_staff, reply_rows

log = logging.getLogger(__name__)
DEEP_LINK = re.compile(r"^/start(?:@\w+)?\s+(lk_[A-Za-z0-9_-]{10,60})\s*$")


def rc(context: ContextTypes.DEFAULT_TYPE) -> ReminderContent:
    return context.application.bot_data["reminder_content"]


def dispatcher(context: ContextTypes.DEFAULT_TYPE) -> Dispatcher:
    return context.application.bot_data["reminder_dispatcher"]


async def reply(update: Update, context: ContextTypes.DEFAULT_TYPE, text: str,
                rows: list[list[tuple[str, str]]] | None = None) -> None:
    await send_screen(update, context, Screen(text, rows or []))


async def tell_staff(context: ContextTypes.DEFAULT_TYPE, text: str,
                     rows: list[list[tuple[str, str]]] | None = None, *,
                     question_id: int | None = None) -> None:
    """Staff are told; for a request kept as a question, that it reached them is recorded
    (else the question alerts job tells them again)."""
    from handlers.common import notify_staff

    if question_id is None:
        await notify_staff(context, text, rows)
    else:
        await alert_staff(context, question_id, text, rows)


def args_of(update: Update) -> str:
    text = update.effective_message.text or ""
    return text.split(maxsplit=1)[1] if len(text.split(maxsplit=1)) > 1 else ""


async def staff_guard(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """The staff check on every command and button press (audited when refused)."""
    from handlers.common_staff import require_staff

    action = (update.callback_query.data if update.callback_query is not None
              else (update.effective_message.text or "").split(maxsplit=1)[0]) or "appointments"
    return await require_staff(update, context, action[:64])


def _nav_rows(context: ContextTypes.DEFAULT_TYPE) -> list[list[tuple[str, str]]]:
    svc = services(context)
    return [[(svc.messages.get("button_back"), "ap:list"),
             (svc.messages.get("button_main_menu"), "home")]]


def _session_label(texts, appt: Appointment) -> str:
    return texts.get("session_of", n=appt.session_no, m=appt.course_size) if appt.course_size > 1 else ""


# ------------------------------------------------------------------------------ staff commands
async def book_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if not await staff_guard(update, context):
        return
    svc, content = services(context), rc(context)
    texts, now, tz = content.texts, svc.clock.now(), svc.settings.tz
    raw = args_of(update)
    if not raw.strip():
        await reply(update, context, texts.get("staff_book_usage"))
        return
    try:
        req = parse_book(split_args(raw), now, tz)
    except InputError as exc:
        await reply(update, context, texts.get("staff_bad_input", problem=str(exc)) + "\n\n"
                    + texts.get("staff_book_usage"))
        return
    token, namesakes = None, []
    try:
        async with svc.db.session() as session:
            patient: Patient | None = None
            if req.who.telegram_id is not None:
                patient = await patients.by_telegram_id(session, req.who.telegram_id)
                if patient is None:
                    raise service.BookingError(
                        f"no patient with Telegram id {req.who.telegram_id} has opened the bot; "
                        "book with a phone number or a quoted name to get a link for them")
            elif req.who.patient_id is not None:
                patient = await service.patient_by_number(session, req.who.patient_id)
            else:
                invitation = await service.patient_for_contact(
                    session, name=req.who.name, phone=req.who.phone, now=now, content=content)
                patient, token = invitation.patient, invitation.token
            appt = await service.book(
                session, patient_id=patient.id, starts_at=req.starts_at,
                duration_min=req.duration_min, area=req.area, session_no=req.session_no,
                course_size=req.course_size, now=now, content=content, settings=svc.settings,
                named=await service.named_record(session, patient_id=req.who.patient_id,
                                                 phone=req.who.phone))
            if patient.chat_id is None and token is None:
                # Booked by #id before they opened the bot: a link to THIS patient record.
                invitation = await service.invite_existing(
                    session, patient, name=patient.first_name, phone=None, now=now, content=content)
                token = invitation.token
            who = patient_label(patient) if patient.first_name else (req.who.phone or f"#{patient.id}")
            if req.who.name is not None and req.who.phone is None:
                namesakes = await service.same_name(session, req.who.name, besides=patient.id)
    except service.BookingError as exc:
        await reply(update, context, texts.get("staff_not_done", problem=str(exc)))
        return
    text = texts.get("staff_booked", id=appt.id, who=who, when=when_plain(appt.starts_at, tz),
                     minutes=appt.duration_min, area=appt.area, session=_session_label(texts, appt))
    if token:
        link = f"https://t.me/{context.bot.username}?start={token}"
        text += "\n\n" + texts.get("staff_invite", who=who, link=link)
    if namesakes:
        text += "\n\n" + texts.get(
            "staff_same_name", id=appt.id, patient=f"#{patient.id}",
            who=", ".join(f"#{n}" for n in namesakes))
    await reply(update, context, text)


async def _patient_arg(update: Update, context: ContextTypes.DEFAULT_TYPE,
                       usage_key: str) -> Who | None:
    """A placeholder patient as staff name it: #patient-id or the phone (which may hold
    spaces); the usage text, and None, for anything else."""
    try:
        args = split_args(args_of(update))
        who = parse_who(" ".join(args)) if args else None
    except InputError:
        who = None
    if who is None or not (who.patient_id or who.phone):
        await reply(update, context, rc(context).texts.get(usage_key))
        return None
    return who


async def link_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/link PATIENT: a new link for a patient who has not opened the bot (links expire; an
    earlier one may be lost), without booking anything again."""
    if not await staff_guard(update, context):
        return
    svc, content = services(context), rc(context)
    texts, now = content.texts, svc.clock.now()
    who = await _patient_arg(update, context, "staff_link_usage")
    if who is None:
        return
    try:
        async with svc.db.session() as session:
            if who.patient_id is not None:
                patient = await service.patient_by_number(session, who.patient_id)
            else:
                patient = await service.patient_with_phone(session, who.phone)
                if patient is None:
                    raise service.BookingError("nobody was booked with that phone number")
            label = patient_label(patient) if patient.first_name else (who.phone or f"#{patient.id}")
            if patient.chat_id is not None:
                await reply(update, context, texts.get("staff_link_not_needed", who=label))
                return
            invitation = await service.invite_existing(session, patient, name=patient.first_name,
                                                       phone=who.phone, now=now, content=content)
    except service.BookingError as exc:
        await reply(update, context, texts.get("staff_not_done", problem=str(exc)))
        return
    link = f"https://t.me/{context.bot.username}?start={invitation.token}"
    await reply(update, context, texts.get("staff_invite", who=label, link=link))


async def unlink_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/unlink PATIENT: a link opened by the wrong person is theirs no more (see service.unlink)."""
    if not await staff_guard(update, context):
        return
    svc, texts = services(context), rc(context).texts
    who = await _patient_arg(update, context, "staff_unlink_usage")
    if who is None:
        return
    try:
        async with svc.db.session() as session:
            placeholder, opener, back = await service.unlink(
                session, patient_id=who.patient_id, phone=who.phone)
            await audit.record(session, now=svc.clock.now(), action="placeholder_unlinked",
                               actor_user_id=update.effective_user.id, patient_id=placeholder.id)
    except service.BookingError as exc:
        await reply(update, context, texts.get("staff_not_done", problem=str(exc)))
        return
    await reply(update, context, texts.get(
        "staff_unlinked" if back else "staff_unlinked_none_back", id=placeholder.id,
        who=patient_label(opener), appointments=", ".join(f"#{a}" for a in back)))


async def _appointment_arg(update: Update, context: ContextTypes.DEFAULT_TYPE,
                           usage_key: str) -> tuple[int, list[str]] | None:
    texts = rc(context).texts
    try:
        args = split_args(args_of(update))
    except InputError as exc:
        await reply(update, context, texts.get("staff_bad_input", problem=str(exc)))
        return None
    if not args or not re.fullmatch(r"#?\d{1,9}", args[0]):
        await reply(update, context, texts.get(usage_key))
        return None
    return int(args[0].lstrip("#")), args[1:]


async def reschedule_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if not await staff_guard(update, context):
        return
    parsed = await _appointment_arg(update, context, "staff_reschedule_usage")
    if parsed is None:
        return
    appt_id, rest = parsed
    svc, content = services(context), rc(context)
    texts, now, tz = content.texts, svc.clock.now(), svc.settings.tz
    try:
        starts_at, used = parse_when(rest, now, tz)
        minutes, taken = parse_duration_tokens(rest[used:])
        if rest[used + taken:]:  # never ignored: "90mins" or a typo must not pass unnoticed
            raise InputError(f"unexpected {' '.join(rest[used + taken:])!r} after the time")
    except InputError as exc:
        await reply(update, context, texts.get("staff_bad_input", problem=str(exc)) + "\n"
                    + texts.get("staff_reschedule_usage"))
        return
    try:
        async with svc.db.session() as session:
            appt = await service.active_appointment(session, appt_id)
            if appt is None:
                await reply(update, context, texts.get("staff_no_appointment", id=appt_id))
                return
            previous = appt.starts_at
            await service.reschedule(session, appt, starts_at=starts_at, now=now, content=content,
                                     settings=svc.settings, duration_min=minutes)
            patient = await session.get(Patient, appt.patient_id)
            await audit.record(session, now=now, action="appointments_read",
                               actor_user_id=update.effective_user.id,
                               patient_id=appt.patient_id, subject="reschedule")
    except service.BookingError as exc:
        await reply(update, context, texts.get("staff_not_done", problem=str(exc)))
        return
    await reply(update, context, texts.get(
        "staff_rescheduled", id=appt_id, who=staff_who(patient), previous=when_plain(previous, tz),
        when=when_plain(starts_at, tz), minutes=appt.duration_min))


async def cancel_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/cancel_appt N: which appointment, whose and when, to confirm with a button. A mistyped
    number would otherwise cancel another patient's visit and message them at once."""
    if not await staff_guard(update, context):
        return
    parsed = await _appointment_arg(update, context, "staff_cancel_usage")
    if parsed is None:
        return
    appt_id, rest = parsed
    svc, content = services(context), rc(context)
    texts, now = content.texts, svc.clock.now()
    if rest:  # "/cancel_appt 21 22": one at a time, each confirmed
        await reply(update, context, texts.get(
            "staff_bad_input", problem=f"unexpected {' '.join(rest)!r} after the appointment")
            + "\n" + texts.get("staff_cancel_usage"))
        return
    async with svc.db.session() as session:
        appt = await service.active_appointment(session, appt_id)
        if appt is None:
            await reply(update, context, texts.get("staff_no_appointment", id=appt_id))
            return
        patient = await session.get(Patient, appt.patient_id)
        await audit.record(session, now=now, action="appointments_read",
                           actor_user_id=update.effective_user.id, patient_id=appt.patient_id,
                           subject="cancel_appt")
    await reply(update, context, texts.get(
        "staff_cancel_confirm", id=appt_id, who=staff_who(patient), area=appt.area,
        when=when_plain(appt.starts_at, svc.settings.tz)), [
        # The plan version: a Yes pressed after the appointment moved cancels nothing unseen.
        [(texts.get("button_staff_cancel_yes", id=appt_id), f"sc:y:{appt_id}:{appt.plan_version}")],
        [(texts.get("button_staff_cancel_no"), f"sc:n:{appt_id}:{appt.plan_version}")]])


async def cancel_confirm(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The staff member's answer to /cancel_appt's question."""
    from handlers.common_staff import confirmation_answer

    if not await staff_guard(update, context):
        return
    if (answer := await confirmation_answer(update, context, "staff_cancel_kept")) is None:
        return
    (appt_id, version), svc, content = answer, services(context), rc(context)
    async with svc.db.session() as session:
        appt = await service.active_appointment(session, appt_id)
        if appt is not None and appt.plan_version != version:
            await show_screen(update, context, Screen(content.texts.get(
                "staff_cancel_changed", id=appt_id)))
            return
        if appt is not None:  # a double tap, or cancelled meanwhile: said below
            await service.cancel(session, appt, now=svc.clock.now(), content=content,
                                 notify_patient=True)
    if appt is None:
        await show_screen(update, context, Screen(content.texts.get("staff_no_appointment",
                                                                    id=appt_id)))
        return
    await show_screen(update, context, Screen(content.texts.get(
        "staff_cancelled", id=appt_id, when=when_plain(appt.starts_at, svc.settings.tz))))


PUSH_REFUSED = {service.NO_APPOINTMENT: "staff_no_appointment",
                service.UNREACHABLE_PATIENT: "staff_push_unreachable",
                service.NOT_LINKED: "staff_push_not_linked",
                service.CONSULTATION_OVER: "staff_push_over"}


async def _queue_push(context: ContextTypes.DEFAULT_TYPE, appt_id: int, *, once: str | None = None,
                      check_only: bool = False) -> str | None:
    """Queue a /push; the text key of why it was refused, or None (queued, or would be)."""
    svc, content = services(context), rc(context)
    async with svc.db.session() as session:
        appt = await service.active_appointment(session, appt_id)
        if refused := await service.push_refused(session, appt, now=svc.clock.now(),
                                                 content=content):
            return PUSH_REFUSED[refused]
        if check_only:
            return None
        await service.push(session, appt, now=svc.clock.now(), content=content, once=once)
    # Now, not at the next tick: a dispatcher run right away (serialised with the job's).
    context.application.create_task(dispatch_job(context), name=f"push-{appt_id}")
    return None


async def push_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if not await staff_guard(update, context):
        return
    parsed = await _appointment_arg(update, context, "staff_push_usage")
    if parsed is None:
        return
    appt_id, _ = parsed
    svc, texts = services(context), rc(context).texts
    quiet = service.quiet_hours(svc.settings).contains(svc.clock.now())
    if refused := await _queue_push(context, appt_id, check_only=quiet):
        await reply(update, context, texts.get(refused, id=appt_id))
    elif quiet:
        # Whose and when: a night message to the wrong patient is worse than none.
        async with svc.db.session() as session:
            appt = await service.active_appointment(session, appt_id)
            if appt is None:  # cancelled, or erased by the patient, a moment ago
                await reply(update, context, texts.get("staff_no_appointment", id=appt_id))
                return
            patient = await session.get(Patient, appt.patient_id)
            await audit.record(session, now=svc.clock.now(), action="appointments_read",
                               actor_user_id=update.effective_user.id, patient_id=patient.id,
                               subject="push")
        await reply(update, context, texts.get(
            "staff_push_quiet", id=appt_id, who=staff_who(patient),
            when=when_plain(appt.starts_at, svc.settings.tz)),
            [[(texts.get("button_push_anyway"), f"ps:{appt_id}")],
             [(texts.get("button_push_not_now"), f"pn:{appt_id}")]])
    else:
        await reply(update, context, texts.get("staff_pushed", id=appt_id))


async def retry_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if not await staff_guard(update, context):
        return
    parsed = await _appointment_arg(update, context, "staff_retry_usage")
    if parsed is None:
        return
    appt_id, _ = parsed
    svc, texts = services(context), rc(context).texts
    async with svc.db.session() as session:
        retry = await service.retry_dead(session, appt_id, now=svc.clock.now())
    if retry.refused == service.NO_APPOINTMENT:
        await reply(update, context, texts.get("staff_no_appointment", id=appt_id))
        return
    if retry.refused in (service.UNREACHABLE_PATIENT, service.NOT_LINKED):
        key = "staff_retry_unreachable" if retry.refused == service.UNREACHABLE_PATIENT \
            else "staff_retry_not_linked"
        await reply(update, context, texts.get(key, id=appt_id))
        return
    await reply(update, context, texts.get("staff_retried", id=appt_id, count=retry.count))
    if retry.count:
        context.application.create_task(dispatch_job(context), name=f"retry-{appt_id}")


async def push_confirm(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if not await staff_guard(update, context):
        return
    texts = rc(context).texts
    appt_id = row_id(query.data.split(":")[1])
    await answer_press(update)
    # Keyed by the button's message: a double tap pushes once (a new /push pushes again).
    pressed = query.message
    once = f"m{pressed.chat.id}:{pressed.message_id}" if pressed is not None else None
    refused = await _queue_push(context, appt_id, once=once)
    await show_screen(update, context, Screen(texts.get(refused or "staff_pushed", id=appt_id)))


async def push_not_now(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """"Not now" under /push's night question: nothing is queued."""
    if not await staff_guard(update, context):
        return
    appt_id = row_id(update.callback_query.data.split(":")[1])
    await answer_press(update)
    await show_screen(update, context, Screen(rc(context).texts.get("staff_push_not_sent",
                                                                    id=appt_id)))


async def upcoming_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if not await staff_guard(update, context):
        return
    svc, texts = services(context), rc(context).texts
    args = args_of(update).split()
    start: date | None = None
    if "from" in [a.lower() for a in args]:  # "/upcoming 7 from 12/12": later days too
        at = [a.lower() for a in args].index("from")
        try:
            start, _ = parse_date(args[at + 1:], svc.clock.now().astimezone(svc.settings.tz).date())
        except InputError as exc:
            await reply(update, context, texts.get("staff_bad_input", problem=str(exc)))
            return
        args = args[:at]
    arg = args[0] if args else ""
    # Longer than the cap: the cap, which the reply's title states (not the default instead).
    days = min(int(arg), service.UPCOMING_MAX_DAYS) if is_number(arg) and int(arg) >= 1 else None
    for page in await upcoming_pages(context, days, update.effective_user.id, start):
        await reply(update, context, page)


async def upcoming_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if not await staff_guard(update, context):
        return
    await answer_press(update)
    svc = services(context)
    text = await upcoming_text(context, None, update.effective_user.id)
    await show_screen(update, context, Screen(text, [[
        (svc.messages.get("button_staff_back"), "staff:menu")]]))


UPCOMING_CHARS = 3990  # of HTML; Telegram takes 4096 once the tags are parsed
UPCOMING_PAGES = 4  # messages one /upcoming sends: a busy day (40 appointments) is listed whole


async def upcoming_text(context: ContextTypes.DEFAULT_TYPE, days: int | None,
                        staff_user_id: int, start: date | None = None) -> str:
    """The first message of /upcoming (the console's button shows one screen)."""
    return (await upcoming_pages(context, days, staff_user_id, start, pages=1))[0]


async def upcoming_pages(context: ContextTypes.DEFAULT_TYPE, days: int | None,
                         staff_user_id: int, start: date | None = None, *,
                         pages: int = UPCOMING_PAGES) -> list[str]:
    svc, content = services(context), rc(context)
    texts, now, tz = content.texts, svc.clock.now(), svc.settings.tz
    days = min(days or content.engine.upcoming_days, service.UPCOMING_MAX_DAYS)
    since = resolve_local(datetime.combine(start, datetime.min.time()), tz) if start else None
    async with svc.db.session() as session:
        entries, more = await service.upcoming(session, now=now, days=days, start=since)
        if not entries:
            return [texts.get("staff_upcoming_none", days=days) if start is None else
                    texts.get("staff_upcoming_none_from", days=days, date=local_date(since, tz))]
        out = [texts.get("staff_upcoming_title", days=days) if start is None else
               texts.get("staff_upcoming_title_from", days=days, date=local_date(since, tz))]
        shown: set[int] = set()
        rest: Appointment | None = None  # the first one not shown
        for e in entries:
            line = texts.get(
                "staff_upcoming_line", id=e.appt.id, when=when_plain(e.appt.starts_at, tz),
                who=staff_who(e.patient), area=e.appt.area, status=e.appt.status,
                reminders=reminder_statuses(e.reminders, tz, now))
            if len(out[-1]) + len(line) + 200 > UPCOMING_CHARS:  # whole entries per message
                if len(out) == pages:
                    more, rest = True, e.appt
                    break
                out.append("")
            out[-1] += ("\n" if out[-1] else "") + line
            shown.add(e.patient.id)
        # Each patient whose appointments a staff member saw: one audit row (no content).
        for pid in sorted(shown):
            await audit.record(session, now=now, action="appointments_read",
                               actor_user_id=staff_user_id, patient_id=pid, subject="upcoming")
    if rest is None and more:  # beyond what one /upcoming lists: from the last day shown
        rest = entries[-1].appt
    day = rest.starts_at.astimezone(tz).date() if rest is not None else None
    if day is not None and day > entries[0].appt.starts_at.astimezone(tz).date():
        # The command that lists the rest (from the first day not shown whole; a single day
        # too full for all the messages has none).
        out[-1] += "\n" + texts.get("staff_upcoming_more", days=days,
                                    date=f"{day.day}.{day.month}.{day.year}")
    elif more:
        out[-1] += "\n…"
    return out


# ------------------------------------------------------------------------------ patient side
async def _own_appointment(update: Update, context: ContextTypes.DEFAULT_TYPE,
                           appt_id: int, session, *, lock: bool = True) -> Appointment | None:
    """The appointment if it belongs to the pressing user; callback data is untrusted.

    Locked (PostgreSQL) for a press that changes something or tells staff: a staff cancel or
    reschedule, or the same press handled by another instance, finishes first and this one
    then sees what it did."""
    user = update.effective_user
    if user is None:
        return None
    query = (select(Appointment).join(Patient, Patient.id == Appointment.patient_id)
             .where(Appointment.id == appt_id, Patient.telegram_user_id == user.id))
    if lock:
        query = query.with_for_update(of=Appointment)
    return (await session.execute(query)).scalar_one_or_none()


async def my_appointments(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc, texts = services(context), rc(context).texts
    now, tz = svc.clock.now(), svc.settings.tz
    user = update.effective_user
    await answer_press(update)
    async with svc.db.session() as session:
        appts = (await session.execute(
            select(Appointment).join(Patient, Patient.id == Appointment.patient_id)
            .where(Patient.telegram_user_id == user.id,
                   Appointment.status.in_(ACTIVE_STATUSES),
                   Appointment.starts_at > now - timedelta(hours=1))
            .order_by(Appointment.starts_at).limit(10))).scalars().all()
    back = [(svc.messages.get("button_back"), "home"), (svc.messages.get("button_main_menu"), "home")]
    if not appts:
        await show_screen(update, context, Screen(texts.get("my_appointments_none"), [back]))
        return
    lines = [texts.get("my_appointments_title")]
    rows: list[list[tuple[str, str]]] = []
    for appt in appts:
        lines.append(texts.get(
            "appointment_line", when=when(appt.starts_at, tz, now), area=appt.area,
            minutes=appt.duration_min, session=_session_label(texts, appt),
            status=texts.get("status_confirmed") if appt.status == "confirmed" else ""))
        label_when = when_plain(appt.starts_at, tz)
        for row in appointment_buttons(texts, appt):
            rows.append([(f"{label} · {label_when}" if len(appts) > 1 else label, data)
                         for label, data in row])
    rows.append(back)
    await show_screen(update, context, Screen("\n".join(lines), rows))


async def appointment_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    svc, content = services(context), rc(context)
    texts, now, tz = content.texts, svc.clock.now(), svc.settings.tz
    # Confirm carries the start it confirms (none on buttons sent before it did).
    match = re.fullmatch(r"ap:(c|r|x|xx|k|i):(\d{1,9})(?::(\d{1,10}))?", query.data or "")
    if match is None:
        await answer_press(update)
        return
    action, appt_id = match.group(1), int(match.group(2))
    gone = Screen(texts.get("appointment_gone"), _nav_rows(context))
    screen, calendar = gone, None
    staff_note: str | None = None
    staff_rows: list[list[tuple[str, str]]] | None = None
    staff_question: int | None = None  # the request kept as a question, if the note is one
    # Telegram is called only after the transaction: not while the appointment is locked.
    async with svc.db.session() as session:
        appt = await _own_appointment(update, context, appt_id, session,
                                      lock=action in ("c", "r", "xx"))
        usable = appt is not None and appt.active and (action == "i" or appt.starts_at > now)
        if usable:  # else `gone`
            w = when(appt.starts_at, tz, now)
            info = {"patient": appt.patient_id, "id": appt.id,
                    "when": when_plain(appt.starts_at, tz)}
            if action == "c" and match.group(3) and int(match.group(3)) != confirm_stamp(appt) \
                    and appt.status == "booked":
                screen = Screen(texts.get("confirm_moved", when=w),
                                appointment_buttons(texts, appt) + _nav_rows(context))
            elif action == "c":
                confirmed_now = await service.confirm(session, appt, now=now)
                if confirmed_now or (appt.active and appt.status == "confirmed"):
                    screen = Screen(texts.get("confirm_done", when=w), _nav_rows(context))
                if confirmed_now:  # a second press confirms nothing new: staff are told once
                    staff_note = texts.get("staff_patient_confirmed", **info)
                # else staff changed it meanwhile: `gone`
            elif action == "r":
                request = await _record_request(context, session, appt, RESCHEDULE, texts.get(
                    "reschedule_question", when=info["when"]))
                screen = Screen(texts.get("reschedule_requested"), _nav_rows(context))
                if request.alert:
                    staff_note = texts.get("staff_patient_reschedule", **info)
                    staff_rows, staff_question = request.reply_rows(svc), request.question_id
            elif action == "x":
                screen = Screen(texts.get("cancel_question", when=w), [[
                    (texts.get("button_cancel_yes"), f"ap:xx:{appt.id}"),
                    (texts.get("button_cancel_no"), f"ap:k:{appt.id}")]])
            elif action == "xx":
                await service.cancel(session, appt, now=now, content=content, notify_patient=False)
                screen = Screen(texts.get("cancel_done", when=w), _nav_rows(context))
                staff_note = texts.get("staff_patient_cancelled", **info)
            elif action == "k":
                screen = Screen(texts.get("cancel_kept", when=w), _nav_rows(context))
            else:
                calendar = appt
    await answer_press(update)
    if calendar is not None:
        await _send_calendar(update, context, calendar)
        return
    await show_screen(update, context, screen)
    if staff_note:
        await tell_staff(context, staff_note, staff_rows, question_id=staff_question)


async def _send_calendar(update: Update, context: ContextTypes.DEFAULT_TYPE, appt: Appointment) -> None:
    svc, texts = services(context), rc(context).texts
    cal = Calendar()
    cal.add("prodid", "-//clinic-bot//appointments//EN")
    cal.add("version", "2.0")
    event = Event()
    # One UID per appointment, SEQUENCE per reschedule: a calendar app updates the entry it
    # has rather than keeping the old time beside the new one.
    event.add("uid", f"appointment-{appt.id}@clinic-bot")
    event.add("sequence", appt.plan_version - 1)
    event.add("dtstamp", svc.clock.now())
    event.add("dtstart", appt.starts_at)
    event.add("dtend", appt.starts_at + timedelta(minutes=appt.duration_min))
    # The calendar entry names no treatment: calendars are often shared or synced.
    event.add("summary", plain(texts.get("calendar_summary")))  # a calendar is not HTML
    cal.add_component(event)
    await context.bot.send_document(
        update.effective_chat.id,
        InputFile(cal.to_ical(), filename=f"appointment-{appt.id}.ics"),
        caption=texts.get("calendar_caption", when=when_plain(appt.starts_at, svc.settings.tz)))


async def _record_request(context: ContextTypes.DEFAULT_TYPE, session, appt: Appointment,
                          source: str, text: str) -> Request:
    """Kept, not only told: the request stays among the console's open questions until staff
    reply (the alert's Reply button), even if no staff chat got the alert."""
    svc = services(context)
    if svc.crypto is None:  # nothing can be stored encrypted: staff are told, as before
        return Request(None, alert=True)
    # Kept as the words the patient saw, like a typed question: the console escapes it.
    question, new = await questions.record_request(session, appt.patient_id, appt.id, source,
                                                   plain(text), svc.clock.now(), svc.crypto)
    return Request(question.id, alert=new)


@dataclass
class Request:
    question_id: int | None
    alert: bool  # False: the same request is still open, staff were told then

    def reply_rows(self, svc: Services) -> list[list[tuple[str, str]]] | None:
        if self.question_id is None or svc.qa is None:
            return None
        return reply_rows(svc.qa, self.question_id)


async def checkin_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    svc, texts = services(context), rc(context).texts
    match = re.fullmatch(r"ck:(ok|cn):(\d{1,9})", query.data or "")
    await answer_press(update)
    if match is None:
        return
    concern, request = match.group(1) == "cn", None
    async with svc.db.session() as session:
        appt = await _own_appointment(update, context, int(match.group(2)), session)
        if appt is not None and concern:
            request = await _record_request(context, session, appt, CONCERN, texts.get(
                "concern_question", when=when_plain(appt.starts_at, svc.settings.tz)))
    if appt is None:
        await show_screen(update, context, Screen(texts.get("appointment_gone"), _nav_rows(context)))
        return
    if request is None:
        await show_screen(update, context, Screen(texts.get("checkin_fine"), _nav_rows(context)))
        return
    await show_screen(update, context, Screen(texts.get("checkin_concern"), _nav_rows(context)))
    if request.alert:
        await tell_staff(context, texts.get(
            "staff_patient_concern", patient=appt.patient_id, id=appt.id,
            when=when_plain(appt.starts_at, svc.settings.tz)), request.reply_rows(svc),
            question_id=request.question_id)


async def next_session_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    svc, texts = services(context), rc(context).texts
    match = re.fullmatch(r"nx:(\d{1,9})", query.data or "")
    await answer_press(update)
    if match is None:
        return
    booked: Appointment | None = None
    async with svc.db.session() as session:
        appt = await _own_appointment(update, context, int(match.group(1)), session)
        if appt is not None:
            # Pressed on the reminder after the next session was booked: staff need not call.
            booked = (await service.continuations(session, [appt.id])).get(appt.id)
        if appt is not None and booked is None:
            request = await _record_request(context, session, appt, NEXT_SESSION, texts.get(
                "next_session_question", n=appt.session_no + 1, m=appt.course_size))
    if appt is None:
        await show_screen(update, context, Screen(texts.get("appointment_gone"), _nav_rows(context)))
        return
    if booked is not None:
        await show_screen(update, context, Screen(texts.get(
            "next_session_already", when=when(booked.starts_at, svc.settings.tz, svc.clock.now())),
            _nav_rows(context)))
        return
    await show_screen(update, context, Screen(texts.get("next_session_requested"), _nav_rows(context)))
    if request.alert:
        await tell_staff(context, texts.get("staff_patient_next", patient=appt.patient_id, id=appt.id,
                                            n=appt.session_no + 1, m=appt.course_size),
                         request.reply_rows(svc), question_id=request.question_id)


async def deep_link_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start lk_<token>: link this chat to the patient staff booked; then the usual menu."""
    svc, texts = services(context), rc(context).texts
    user, chat = update.effective_user, update.effective_chat
    match = DEEP_LINK.match(update.effective_message.text or "")
    if match is None or user is None or chat is None:
        return
    async with svc.db.session() as session:
        redeemed = await service.redeem_invite(session, token=match.group(1), user_id=user.id,
                                               chat_id=chat.id, first_name=user.first_name,
                                               now=svc.clock.now())
        if redeemed is None:
            await upsert_patient(session, update, svc.clock.now())
    if redeemed is None:
        await send_screen(update, context, svc.menu.main(intro=texts.get("link_invalid")))
    else:
        await send_screen(update, context, svc.menu.main(intro=texts.get("link_done")))
        if redeemed.first_time and redeemed.merged_from is not None:
            await tell_staff(context, texts.get(
                "staff_patient_linked_existing", id=redeemed.merged_from,
                patient=redeemed.patient.id, who=patient_label(redeemed.patient),
                appointments=", ".join(f"#{a}" for a in redeemed.moved) or "-"))
        elif redeemed.first_time:  # opening the link again tells staff nothing new
            await tell_staff(context, texts.get("staff_patient_linked", patient=redeemed.patient.id))
    raise ApplicationHandlerStop


# ------------------------------------------------------------------------------ the job
async def dispatch_job(context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    try:
        stats = await dispatcher(context).run(svc.clock.now(), clock=svc.clock)
    except Exception as exc:  # noqa: BLE001 - the next run tries again; never kill the job
        if is_db_unavailable(exc):  # an outage, not a bug: one line, no traceback
            log.warning("reminder dispatch: database unavailable (%s); next run retries",
                        type(exc).__name__)
        else:
            log.exception("reminder dispatch failed")
        return
    if stats.claimed or stats.expired or stats.recovered:
        log.info("reminders: %s", stats)


def make_staff_notifier(application: Application, svc: Services):
    async def notify(text: str) -> None:
        for chat_id in notification_chats(svc.settings):
            try:
                await application.bot.send_message(chat_id, text)
            except TelegramError as exc:
                log.warning("staff chat %s not notified: %s", chat_id, type(exc).__name__)

    return notify


def register(application: Application, svc: Services) -> None:
    content = content_from_messages(svc.settings.content_dir, svc.messages)
    application.bot_data["reminder_content"] = content
    disp = Dispatcher(svc.db, application.bot, content, svc.settings,
                      notify_staff=make_staff_notifier(application, svc),
                      rate_limit=True, running=lambda: application.running)
    application.bot_data["reminder_dispatcher"] = disp
    texts = content.texts
    # UI texts join the shared messages (key clashes fail at start; text checks see them all).
    svc.content.messages.add(texts.items(), content.path)
    svc.menu.extra_main_buttons.append((texts.get("button_my_appointments"), "ap:list"))
    svc.staff_menu.append((texts.get("button_staff_upcoming"), "ap:staff:upcoming"))
    svc.stat_providers.append(reminder_privacy.stats)
    svc.privacy.register(reminder_privacy.section(content.texts, svc.settings.tz))

    # /start <token> must win over the menu's /start: group -1, then stop.
    application.add_handler(command(
        "start", deep_link_start, PRIVATE & filters.Regex(DEEP_LINK)), group=-1)
    application.add_handler(command("book", book_command))
    application.add_handler(command("reschedule", reschedule_command))
    application.add_handler(command("cancel_appt", cancel_command))
    application.add_handler(command("push", push_command))
    application.add_handler(command("upcoming", upcoming_command))
    application.add_handler(command("retry_dead", retry_command))
    application.add_handler(command("link", link_command))
    application.add_handler(command("unlink", unlink_command))
    application.add_handler(CallbackQueryHandler(my_appointments, pattern=r"^ap:list$"))
    application.add_handler(CallbackQueryHandler(upcoming_button, pattern=r"^ap:staff:upcoming$"))
    application.add_handler(CallbackQueryHandler(appointment_button, pattern=r"^ap:"))
    application.add_handler(CallbackQueryHandler(checkin_button, pattern=r"^ck:"))
    application.add_handler(CallbackQueryHandler(next_session_button, pattern=r"^nx:"))
    application.add_handler(CallbackQueryHandler(push_confirm, pattern=r"^ps:\d{1,12}$"))
    application.add_handler(CallbackQueryHandler(push_not_now, pattern=r"^pn:\d{1,12}$"))
    application.add_handler(CallbackQueryHandler(cancel_confirm,
                                                 pattern=r"^sc:[yn]:\d{1,12}:\d{1,9}$"))

    if application.job_queue is not None:
        application.job_queue.run_repeating(
            dispatch_job, interval=content.engine.interval_seconds, first=1.0,
            name="reminder-dispatcher",
            job_kwargs={"misfire_grace_time": None, "coalesce": True, "max_instances": 1})
    else:  # pragma: no cover - the job-queue extra is a dependency
        log.error("PTB JobQueue unavailable: reminders will not be sent")
