"""Appointment -> reminder rows to write. Pure: no database, no Telegram, no wall clock.

Times are planned in the clinic's zone with zoneinfo and returned in UTC. Calendar offsets
(days, weeks) keep the local wall time across daylight-saving changes; hours and minutes are
elapsed time. Quiet hours move a deferrable reminder to the morning; if the morning is past the
reminder's expiry and the plan allows, it goes the evening before instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.reminders.plans import Offset, Plan

EVENING_MARGIN = timedelta(minutes=30)  # evening fallback: this long before quiet hours begin


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time
    tz: ZoneInfo

    def contains(self, at: datetime) -> bool:
        local = at.astimezone(self.tz).time().replace(tzinfo=None)
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def morning_after(self, at: datetime) -> datetime:
        """The first moment after `at` when quiet hours end (UTC)."""
        local = at.astimezone(self.tz)
        day = local.date()
        for _ in range(3):
            candidate = resolve_local(datetime.combine(day, self.end), self.tz)
            if candidate > at:
                return candidate
            day += timedelta(days=1)
        raise AssertionError("unreachable")  # pragma: no cover

    def evening_before(self, at: datetime) -> datetime:
        """The last comfortable moment before the quiet period containing `at` began (UTC)."""
        local = at.astimezone(self.tz)
        day = local.date()
        if self.start > self.end and local.time().replace(tzinfo=None) < self.start:
            day -= timedelta(days=1)  # after midnight: the quiet period began yesterday evening
        began = resolve_local(datetime.combine(day, self.start), self.tz)
        return began - EVENING_MARGIN


def resolve_local(naive: datetime, tz: ZoneInfo) -> datetime:
    """A local wall time -> aware UTC. A time in a DST gap moves forward by the gap;
    an ambiguous time (the repeated hour) takes its first occurrence."""
    # PEP 495: with fold=0 a gap time takes the offset from before the change, which lands
    # after the gap; an ambiguous time takes its first occurrence.
    return naive.replace(tzinfo=tz, fold=0).astimezone(UTC)


def is_nonexistent(naive: datetime, tz: ZoneInfo) -> bool:
    aware = naive.replace(tzinfo=tz)
    return aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive


def apply_offset(at: datetime, offset: Offset, tz: ZoneInfo) -> datetime:
    result = at
    if offset.days:
        local = at.astimezone(tz).replace(tzinfo=None)
        result = resolve_local(local + timedelta(days=offset.days), tz)
    return (result + offset.elapsed).astimezone(UTC)


@dataclass(frozen=True)
class AppointmentFacts:
    id: int
    starts_at: datetime  # aware
    duration_min: int
    session_no: int = 1
    course_size: int = 1
    plan_version: int = 1

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.duration_min)


@dataclass(frozen=True)
class PlannedReminder:
    key: str
    kind: str
    due_at: datetime
    expires_at: datetime
    quiet_ok: bool


def reminder_key(appointment_id: int, kind: str, version: int = 1) -> str:
    base = f"appt:{appointment_id}:{kind}"
    return base if version <= 1 else f"{base}:v{version}"


def plan_one(plan: Plan, appt: AppointmentFacts, now: datetime, quiet: QuietHours) -> PlannedReminder | None:
    tz = quiet.tz
    anchors = {"booking": now, "start": appt.starts_at, "end": appt.ends_at}
    if plan.only_if_course_incomplete and appt.session_no >= appt.course_size:
        return None
    due = apply_offset(anchors[plan.anchor], plan.offset, tz)
    if plan.valid_for is not None:
        expires = due + plan.valid_for
    else:
        assert plan.expires_anchor is not None
        expires = apply_offset(anchors[plan.expires_anchor], plan.expires_offset, tz)
    if plan.anchor != "booking" and due < now:
        return None  # its moment has passed (e.g. a booking 3 h ahead has no "tomorrow")
    if expires <= due:
        return None
    if not plan.quiet_ok and quiet.contains(due):
        morning = quiet.morning_after(due)
        if morning < expires:
            due = morning
        elif plan.evening_fallback:
            evening = quiet.evening_before(due)
            if evening < now:
                return None
            due = evening
        else:
            return None
    return PlannedReminder(reminder_key(appt.id, plan.kind, appt.plan_version), plan.kind,
                           due, expires, plan.quiet_ok)


def plan_appointment(appt: AppointmentFacts, plans: dict[str, Plan], now: datetime,
                     quiet: QuietHours) -> list[PlannedReminder]:
    """Every reminder to write for `appt`, planned at `now` (the booking or rescheduling time)."""
    out = []
    for plan in plans.values():
        planned = plan_one(plan, appt, now, quiet)
        if planned is not None:
            out.append(planned)
    out.sort(key=lambda p: p.due_at)
    return out
