"""Lock-screen previews: the first line of every reminder text names no treatment or area."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.content import load_content
from bot.db.appointment_models import Appointment
from bot.reminders.plans import KINDS, content_from_messages
from bot.reminders.render import reminder_message
from bot.telegram_html import plain
from tests.conftest import make_settings

# Treatment words, and every area a booking may name (the appointment below uses a unique one).
FORBIDDEN = re.compile(
    r"meso|inject|needle|treatment|procedure|therap|skin|face|facial|scalp|hair|neck|"
    r"d[eé]collet|body|cellulite|botox|filler|anesthe|anaesthe|CANARY", re.IGNORECASE)
ALL_KINDS = (*KINDS, "cancelled", "push_before", "push_after")


@pytest.fixture
def reminder_content(fake, db_url):
    settings = make_settings(fake, db_url)
    messages = load_content(settings.content_dir).messages
    return content_from_messages(settings.content_dir, messages)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_first_line_of_every_reminder_names_no_treatment(reminder_content, kind):
    now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    appt = Appointment(id=7, patient_id=1, starts_at=now + timedelta(days=1), duration_min=60,
                       area="face CANARY", session_no=1, course_size=3, status="booked",
                       plan_version=1, created_at=now, updated_at=now)
    text, _ = reminder_message(kind, reminder_content.texts, appt, ZoneInfo("Europe/London"), now)
    first = plain(text).splitlines()[0]
    assert first.strip(), kind
    assert not FORBIDDEN.search(first), (kind, first)


def test_broadcast_first_line_is_the_header_not_the_staff_text(reminder_content):
    text = reminder_content.texts.get("reminder_broadcast", text="Mesotherapy day: face offers")
    first, rest = plain(text).split("\n", 1)
    assert not FORBIDDEN.search(first) and "Mesotherapy day" in rest


def test_the_texts_file_itself_keeps_first_lines_clean(reminder_content):
    """Checked on the templates too, so a new placeholder in a first line is caught."""
    for key, template in reminder_content.texts.items().items():
        if key.startswith("reminder_"):
            first = template.splitlines()[0]
            assert "{area}" not in first and not FORBIDDEN.search(first), key


@pytest.mark.parametrize("starts,expected", [
    (datetime(2026, 11, 25, 14, 30, tzinfo=UTC), "today, Wed 25 Nov, at 14:30"),
    (datetime(2026, 11, 26, 9, 0, tzinfo=UTC), "tomorrow, Thu 26 Nov, at 09:00"),
    (datetime(2026, 12, 3, 14, 30, tzinfo=UTC), "on Thu 3 Dec at 14:30"),
])
def test_today_and_tomorrow_keep_their_date(starts, expected):
    """A message stays in the chat: read the next day, a bare "tomorrow" names the wrong day."""
    from bot.reminders.render import when

    assert when(starts, ZoneInfo("Europe/London"), datetime(2026, 11, 25, 8, 0, tzinfo=UTC)) == expected
