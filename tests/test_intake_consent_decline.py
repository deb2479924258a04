"""Declining a new consent text after having submitted: the answers sent are kept, and said so."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.db.intake_models import Intake
from tests.harness import TgUser
from tests.intake_support import (
    MENU_BUTTON,
    complete,
    intake_runner,  # noqa: F401 - the `runner` fixture: the bot on the intake tests' clock
)


async def test_declining_a_new_consent_after_submitting_says_the_sent_answers_are_kept(runner):
    patient = TgUser(runner, "Anna")
    await complete(patient)
    await patient.press("📨 Submit")
    svc = runner.app.bot_data["services"]
    svc.intake.spec.consent_version = "2027-01-05"  # the clinic publishes a new consent text
    await patient.press(MENU_BUTTON)
    shown = await patient.press("✏️ Update my answers")
    assert "consent text has changed" in shown[-1].text
    shown = await patient.press("✖️ No, thanks")
    # Was: "No problem: nothing was saved." while the submitted answers are stored.
    assert "nothing was saved" not in shown[0].text
    assert "The answers you sent on 24 Nov 2026 are kept" in shown[0].text
    assert "<i>Delete my answers</i>" in shown[0].text
    async with svc.db.session() as session:
        kept = await session.scalar(select(func.count()).select_from(Intake)
                                    .where(Intake.status == "submitted"))
    assert kept == 1


async def test_declining_the_first_consent_still_says_nothing_was_saved(runner):
    patient = TgUser(runner, "Anna")
    await patient.send("/start")
    await patient.press(MENU_BUTTON)
    shown = await patient.press("✖️ No, thanks")
    assert "nothing was saved" in shown[0].text
