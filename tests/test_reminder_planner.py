"""The planner (pure): local times across both DST transitions of Europe/London, quiet hours,
late bookings; and the reminders.yaml loader."""

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.content import ContentError
from bot.reminders.planner import (
    AppointmentFacts,
    QuietHours,
    apply_offset,
    plan_appointment,
    resolve_local,
)
from bot.reminders.plans import load_reminder_content, parse_offset

ROOT = Path(__file__).resolve().parent.parent
LONDON = ZoneInfo("Europe/London")
QUIET = QuietHours(time(21, 0), time(8, 0), LONDON)


@pytest.fixture(scope="module")
def content():
    return load_reminder_content(ROOT / "content")


def local(y, mo, d, h, mi=0) -> datetime:
    return resolve_local(datetime(y, mo, d, h, mi), LONDON)


def wall(at: datetime) -> str:
    return at.astimezone(LONDON).strftime("%Y-%m-%d %H:%M %Z")


def plan(content, start, *, booked, minutes=60, n=1, m=4, version=1, plans=None):
    facts = AppointmentFacts(7, start, minutes, n, m, version)
    return {p.kind: p for p in plan_appointment(facts, plans or content.plans, booked, QUIET)}


def test_spring_forward_local_times(content):
    # Clocks go forward Sun 29 Mar 2026 01:00 GMT -> 02:00 BST.
    start = local(2026, 3, 29, 10, 0)  # Sunday 10:00 BST
    got = plan(content, start, booked=local(2026, 3, 20, 12))
    assert wall(got["confirmation"].due_at) == "2026-03-20 12:00 GMT"
    assert wall(got["preparation"].due_at) == "2026-03-28 10:00 GMT"  # same wall time, 23 h
    assert start - got["preparation"].due_at == timedelta(hours=23)
    assert wall(got["preparation"].expires_at) == "2026-03-29 08:00 BST"
    assert wall(got["same_day"].due_at) == "2026-03-29 08:00 BST"
    assert wall(got["aftercare"].due_at) == "2026-03-29 11:00 BST"
    assert wall(got["aftercare"].expires_at) == "2026-03-30 11:00 BST"
    assert wall(got["checkin"].due_at) == "2026-03-30 11:00 BST"
    assert got["checkin"].expires_at - got["checkin"].due_at == timedelta(hours=72)
    assert wall(got["next_session"].due_at) == "2026-04-19 11:00 BST"
    assert got["next_session"].expires_at - got["next_session"].due_at == timedelta(days=14)


def test_fall_back_local_times(content):
    # Clocks go back Sun 25 Oct 2026 02:00 BST -> 01:00 GMT.
    start = local(2026, 10, 25, 10, 0)  # Sunday 10:00 GMT
    got = plan(content, start, booked=local(2026, 10, 1, 12))
    assert wall(got["preparation"].due_at) == "2026-10-24 10:00 BST"
    assert start - got["preparation"].due_at == timedelta(hours=25)
    assert wall(got["same_day"].due_at) == "2026-10-25 08:00 GMT"
    # A check-in a day after a Saturday session lands at the same wall time on Sunday.
    sat = plan(content, local(2026, 10, 24, 14, 0), booked=local(2026, 10, 1, 12))
    assert wall(sat["checkin"].due_at) == "2026-10-25 15:00 GMT"
    # A course interval across the change keeps the wall time.
    oct_ = plan(content, local(2026, 10, 12, 16, 0), booked=local(2026, 10, 1, 12))
    assert wall(oct_["next_session"].due_at) == "2026-11-02 17:00 GMT"


def test_same_day_reminder_may_go_in_quiet_hours_but_preparation_waits(content):
    start = local(2026, 12, 3, 9, 0)
    got = plan(content, start, booked=local(2026, 11, 20, 12))
    assert wall(got["same_day"].due_at) == "2026-12-03 07:00 GMT"  # time-critical: sent at 07:00
    late = plan(content, local(2026, 12, 3, 22, 0), booked=local(2026, 11, 20, 12))
    assert wall(late["preparation"].due_at) == "2026-12-03 08:00 GMT"  # 22:00 the day before -> morning
    assert late["preparation"].due_at < late["preparation"].expires_at
    assert wall(late["aftercare"].due_at) == "2026-12-04 08:00 GMT"  # ends 23:00 -> morning
    for p in late.values():
        if not p.quiet_ok:
            assert not QUIET.contains(p.due_at), p


def test_evening_fallback_when_the_morning_is_too_late(content):
    # A custom plan: preparation 12 h before, valid until 2 h before; a 09:00 appointment
    # would be due at 21:00 (quiet) and the morning (08:00) is after expiry (07:00).
    plans = dict(content.plans)
    plans["preparation"] = replace(plans["preparation"], offset=parse_offset("-12h"))
    got = plan(content, local(2026, 12, 3, 9, 0), booked=local(2026, 11, 20, 12), plans=plans)
    assert wall(got["preparation"].due_at) == "2026-12-02 20:30 GMT"


def test_booking_three_hours_ahead_sends_no_tomorrow_message(content):
    now = local(2026, 12, 3, 11, 0)
    got = plan(content, now + timedelta(hours=3), booked=now)
    assert "preparation" not in got
    assert wall(got["same_day"].due_at) == "2026-12-03 12:00 GMT"
    assert got["confirmation"].due_at == now
    one_hour = plan(content, now + timedelta(hours=1), booked=now)
    assert set(one_hour) == {"confirmation", "aftercare", "checkin", "next_session"}


def test_course_complete_has_no_next_session_and_keys_are_versioned(content):
    start = local(2026, 12, 3, 14, 0)
    last = plan(content, start, booked=local(2026, 11, 1, 9), n=4, m=4)
    assert "next_session" not in last
    v1 = plan(content, start, booked=local(2026, 11, 1, 9))
    v2 = plan(content, start, booked=local(2026, 11, 1, 9), version=2)
    assert v1["aftercare"].key == "appt:7:aftercare"
    assert v2["aftercare"].key == "appt:7:aftercare:v2"


def test_offsets_and_gaps():
    assert parse_offset("-1d").days == -1
    assert parse_offset("+3w").days == 21
    assert parse_offset("-2h").elapsed == timedelta(hours=-2)
    assert parse_offset("1d2h").elapsed == timedelta(hours=2)
    with pytest.raises(ValueError):
        parse_offset("soon")
    # 01:30 on 29 Mar 2026 does not exist in London: it moves forward past the gap.
    assert wall(resolve_local(datetime(2026, 3, 29, 1, 30), LONDON)) == "2026-03-29 02:30 BST"
    base = datetime(2026, 3, 28, 1, 30, tzinfo=UTC)
    assert wall(apply_offset(base, parse_offset("1d"), LONDON)) == "2026-03-29 02:30 BST"


def test_broken_reminders_yaml_names_file_and_line(tmp_path):
    good = (ROOT / "content" / "reminders.yaml").read_text()
    (tmp_path / "reminders.yaml").write_text(good.replace('offset: "-2h"', 'offset: "-2 hours"', 1))
    with pytest.raises(ContentError) as err:
        load_reminder_content(tmp_path)
    assert "reminders.yaml:" in str(err.value) and "preparation" in str(err.value)
    line = int(str(err.value).split("reminders.yaml:")[1].split(":")[0])
    assert good.splitlines()[line - 1].strip() == "preparation:"
    (tmp_path / "reminders.yaml").write_text(good.replace("<b>Time for", "<b>Time for <x>", 1))
    with pytest.raises(ContentError, match="reminder_next_session"):
        load_reminder_content(tmp_path)


def test_texts_come_from_the_document():
    doc = (ROOT / "content" / "mesotherapy.md").read_text()
    for phrase in ("the treatment area is cleansed, and a topical anesthetic may be applied",
                   "avoiding strenuous activities or sun exposure for a short period",
                   "typically resolves within a few days",
                   "Multiple sessions are often required to achieve desired results, typically "
                   "spaced a few weeks apart"):
        assert phrase.lower() in doc.lower()
        assert phrase.lower() in (ROOT / "content" / "reminders.yaml").read_text().lower()
