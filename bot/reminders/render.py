"""Texts and buttons of reminders and appointment screens (pure; no Telegram objects)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.db.appointment_models import Appointment, Reminder
from bot.db.models import Patient
from bot.reminders.plans import Texts

Button = tuple[str, str]


def local_date(at: datetime, tz: ZoneInfo, now: datetime | None = None) -> str:
    local = at.astimezone(tz)
    text = f"{local:%a} {local.day} {local:%b}"
    if now is None or now.astimezone(tz).year != local.year:
        text += f" {local.year}"
    return text


def when(at: datetime, tz: ZoneInfo, now: datetime) -> str:
    """'today, Wed 2 Dec, at 14:30', 'tomorrow, Thu 3 Dec, at 09:00', 'on Thu 3 Dec at 14:30'
    (clinic time). "Today" and "tomorrow" keep their date: a message stays in the chat, and
    read the next day a bare "tomorrow" would name the wrong day."""
    local, today = at.astimezone(tz), now.astimezone(tz).date()
    hm, day = f"{local:%H:%M}", local_date(at, tz, now)
    if local.date() == today:
        return f"today, {day}, at {hm}"
    if local.date() == today + timedelta(days=1):
        return f"tomorrow, {day}, at {hm}"
    return f"on {day} at {hm}"


def when_plain(at: datetime, tz: ZoneInfo) -> str:
    local = at.astimezone(tz)
    return f"{local_date(at, tz)} {local:%H:%M}"


STATUS_ICON = {"pending": "⏳", "sending": "📤", "sent": "✅", "failed": "🚫", "expired": "⌛",
               "cancelled": "✖️", "dead": "❗"}


# How staff screens name the kinds (the code's names are not words).
KIND_LABELS = {"same_day": "same-day", "checkin": "check-in", "next_session": "next session",
               "push_before": "push", "push_after": "push (after)", "cancelled": "cancellation"}


def reminder_statuses(reminders: Iterable[Reminder], tz: ZoneInfo, now: datetime) -> str:
    """Staff screens: "✅ confirmation, ⏳ preparation Wed 2 Dec 14:30"; a pending one with its
    date, since it may be due weeks from now. One per kind, the latest: after a reschedule the
    old time's rows would list every kind twice."""
    latest = {r.kind: r for r in sorted(reminders, key=lambda r: (r.id or 0))}
    parts = []
    for r in sorted(latest.values(), key=lambda r: (r.id or 0)):
        label = f"{STATUS_ICON.get(r.status, '?')} {KIND_LABELS.get(r.kind, r.kind)}"
        if r.status == "pending":
            due = r.due_at.astimezone(tz)
            label += f" {local_date(due, tz, now)} {due:%H:%M}"
        parts.append(label)
    return ", ".join(parts) or "-"


def patient_label(patient: Patient | None) -> str:
    """A patient as staff messages name them: "Anna (#12)"."""
    return "?" if patient is None else f"{patient.first_name or 'patient'} (#{patient.id})"


def staff_who(patient: Patient | None) -> str:
    """patient_label, with what stops reminders."""
    if patient is None:
        return "?"
    who = patient_label(patient)
    if patient.chat_id is None:
        who += " ⚠ not linked"
    if patient.unreachable:
        who += " ⚠ unreachable"
    return who


def confirm_stamp(appt: Appointment) -> int:
    """The appointment's start in minutes since the epoch, as its Confirm button carries it."""
    return int(appt.starts_at.timestamp()) // 60


def appointment_buttons(texts: Texts, appt: Appointment) -> list[list[Button]]:
    rows: list[list[Button]] = []
    first: list[Button] = []
    if appt.status == "booked":
        # The time the patient confirms: a press under a message about an earlier time is not
        # a yes to the new one.
        first.append((texts.get("button_confirm"), f"ap:c:{appt.id}:{confirm_stamp(appt)}"))
    first.append((texts.get("button_calendar"), f"ap:i:{appt.id}"))
    rows.append(first)
    rows.append([(texts.get("button_reschedule"), f"ap:r:{appt.id}"),
                 (texts.get("button_cancel"), f"ap:x:{appt.id}")])
    return rows


def reminder_message(kind: str, texts: Texts, appt: Appointment, tz: ZoneInfo,
                     now: datetime) -> tuple[str, list[list[Button]]]:
    params = {"when": when(appt.starts_at, tz, now), "minutes": appt.duration_min,
              "area": appt.area, "session_no": appt.session_no, "course_size": appt.course_size,
              "date": local_date(appt.starts_at, tz, now)}
    if kind == "confirmation" and appt.previous_starts_at == appt.starts_at:
        text = texts.get("reminder_changed", **params)  # the duration, told the same start
    elif kind == "confirmation" and appt.previous_starts_at is not None:
        # A moved appointment's confirmation: "moved", not "booked" (a second appointment?).
        text = texts.get("reminder_moved", previous=when(appt.previous_starts_at, tz, now),
                         **params)
    else:
        text = texts.get(f"reminder_{kind}", **params)
    rows: list[list[Button]] = []
    if kind in ("confirmation", "preparation", "same_day", "push_before"):
        rows = appointment_buttons(texts, appt) if appt.active else []
    elif kind == "checkin":
        rows = [[(texts.get("button_all_fine"), f"ck:ok:{appt.id}"),
                 (texts.get("button_concern"), f"ck:cn:{appt.id}")]]
    elif kind == "next_session":
        rows = [[(texts.get("button_book_next"), f"nx:{appt.id}")]]
    return text, rows
