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
