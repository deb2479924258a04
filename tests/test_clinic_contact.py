"""How to reach the clinic (messages.yaml clinic_contact) under every advice to contact it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import BotRunner, TgUser

CONTACT = "+44 20 7946 0000 (Mon-Sat 9:00-19:00) & weekends <urgent line>"


@pytest.fixture
async def contact_runner(fake, settings, tmp_path: Path) -> AsyncIterator[BotRunner]:
    content = tmp_path / "content"
    shutil.copytree(settings.content_dir, content)
    messages = content / "messages.yaml"
    text = messages.read_text(encoding="utf-8")
    assert 'clinic_contact: ""' in text
    messages.write_text(text.replace('clinic_contact: ""', f'clinic_contact: "{CONTACT}"'),
                        encoding="utf-8")
    runner = BotRunner(fake, settings.model_copy(update={"content_dir": content}))
    await runner.start()
    yield runner
    await runner.stop()


async def test_the_urgent_advice_and_help_say_how_to_reach_the_clinic(fake, contact_runner):
    anna = TgUser(contact_runner)
    shown = await anna.send("my lips are swelling")
    advice = next(m for m in shown if "Please get help now" in m.text)
    # Plain text, escaped: the & and <...> arrive as written.
    assert "📞 +44 20 7946 0000 (Mon-Sat 9:00-19:00) &amp; weekends &lt;urgent line&gt;" in advice.text
    shown = await anna.send("/help")
    assert "📞 +44 20 7946 0000" in shown[-1].text
    shown = await anna.send("I have a rash after the injection")  # their own symptom
    assert "📞 +44 20 7946 0000" in shown[-1].text


async def test_without_a_contact_the_advice_shows_no_empty_line(fake, runner):
    anna = TgUser(runner)
    shown = await anna.send("my lips are swelling")
    advice = next(m for m in shown if "Please get help now" in m.text)
    assert "📞" not in advice.text and advice.text.rstrip() == advice.text
    assert "📞" not in (await anna.send("/help"))[-1].text


@pytest.mark.parametrize("kind", ["aftercare", "push_after"])
def test_reminders_that_say_contact_the_clinic_say_how(kind):
    """The aftercare messages (and the check-in's concern answer) end their advice with the
    contact; without one, nothing is added."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from bot.config import ROOT
    from bot.content import load_content
    from bot.db.appointment_models import Appointment
    from bot.reminders.plans import content_from_messages, load_reminder_content
    from bot.reminders.render import reminder_message

    now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    appt = Appointment(id=7, patient_id=1, starts_at=now, duration_min=60, area="face",
                       session_no=1, course_size=3, status="completed", plan_version=1,
                       created_at=now, updated_at=now)
    tz, content_dir = ZoneInfo("Europe/London"), ROOT / "content"
    with_contact = load_reminder_content(content_dir, "Clinic", "📞 +44 20 7946 0000 &amp; more")
    text, _ = reminder_message(kind, with_contact.texts, appt, tz, now)
    assert text.endswith("emergency number.\n📞 +44 20 7946 0000 &amp; more")
    assert with_contact.texts.get("checkin_concern").endswith("\n📞 +44 20 7946 0000 &amp; more")
    shipped = content_from_messages(content_dir, load_content(content_dir).messages)
    text, _ = reminder_message(kind, shipped.texts, appt, tz, now)
    assert text.endswith("emergency number.")  # clinic_contact ships empty


@pytest.mark.parametrize("key", ["reminder_cancelled", "my_appointments_none", "appointment_gone",
                                 "link_invalid"])
def test_texts_that_send_the_patient_to_the_clinic_say_how(key):
    from bot.config import ROOT
    from bot.reminders.plans import load_reminder_content

    texts = load_reminder_content(ROOT / "content", "Clinic", "📞 +44 20 7946 0000").texts
    assert texts.get(key, when="today").endswith("\n📞 +44 20 7946 0000")
    without = load_reminder_content(ROOT / "content", "Clinic", "").texts
    assert "📞" not in without.get(key, when="today")
