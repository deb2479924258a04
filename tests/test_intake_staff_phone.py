"""Staff pressing "📞 Phone number" on a summary the patient has since updated."""

from __future__ import annotations

from sqlalchemy import select

from bot.db.privacy_models import AuditEvent
from tests.harness import TgUser
from tests.intake_support import (
    MENU_BUTTON,
    complete,
    intake_runner,  # noqa: F401 - the `runner` fixture: the bot on the intake tests' clock
)

STAFF_ID = 42


def staff_messages(fake) -> list:  # noqa: ANN001
    return [m for _, m in sorted((fake.messages.get(STAFF_ID) or {}).items())]


async def test_the_phone_button_of_a_superseded_summary_points_to_the_update(fake, runner):
    patient = TgUser(runner, "<Anna>")
    await complete(patient, phone="+447911123456")
    await patient.press("📨 Submit")
    first = staff_messages(fake)[-1]
    await patient.press(MENU_BUTTON)
    await patient.press("✏️ Update my answers")
    await patient.press("✏️ Phone")
    await patient.send("+44 20 7946 0958")
    await patient.press("📨 Submit")
    assert "Updated consultation answers" in staff_messages(fake)[-1].text
    staff = TgUser(runner, "Staff", user_id=STAFF_ID)
    shown = await staff.press("📞 Phone number", first)
    # Was: "That request no longer exists (the patient may have deleted it)."
    assert "no longer exists" not in shown[-1].text
    assert "&lt;Anna&gt;" in shown[-1].text and "updated their answers on 24 Nov 2026" in shown[-1].text
    assert "+44 20 7946 0958" in shown[-1].text and "7911" not in shown[-1].text
    svc = runner.app.bot_data["services"]
    async with svc.db.session() as session:
        viewed = (await session.scalars(select(AuditEvent.subject).where(
            AuditEvent.action == "intake_contact_viewed"))).all()
    assert len(viewed) == 1  # the read is on record, for the request the number came from


async def test_the_phone_button_after_the_patient_deleted_everything_says_so(fake, runner):
    patient = TgUser(runner, "Anna")
    await complete(patient)
    await patient.press("📨 Submit")
    first = staff_messages(fake)[-1]
    await patient.press(MENU_BUTTON)
    await patient.press("🗑 Delete my answers")
    await patient.press("🗑 Yes, delete them")
    staff = TgUser(runner, "Staff", user_id=STAFF_ID)
    shown = await staff.press("📞 Phone number", first)
    assert "no longer exists" in shown[-1].text
