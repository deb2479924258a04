"""Staff read submitted consultation requests from the console; every read is audited."""

from __future__ import annotations

from sqlalchemy import select

from bot.db.privacy_models import AuditEvent
from tests.harness import BotRunner, TgUser
from tests.intake_support import (
    complete,
    intake_runner,  # noqa: F401 - the `runner` fixture
)

STAFF_ID = 42


async def _actions(runner: BotRunner) -> list[tuple[str, int | None]]:
    svc = runner.app.bot_data["services"]
    async with svc.db.session() as session:
        rows = await session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        return [(r.action, r.actor_user_id) for r in rows]


async def test_staff_list_and_read_requests_with_flags_and_audit(fake, runner):
    patient = TgUser(runner, first_name="Ann <i>")
    await complete(patient)  # consent, every question, the review screen
    await patient.press("📨 Submit")
    staff = TgUser(runner, first_name="Nurse", user_id=STAFF_ID)
    await staff.send("/staff")
    shown = await staff.press("📝 Consultation requests")
    labels = staff.labels(shown[0])
    assert "Latest consultation requests" in shown[0].text
    entry = next(label for label in labels if label.startswith("Ann <i>"))
    assert "⚠️" in entry  # the sample answers carry contraindication flags
    shown = await staff.press(entry)
    assert "Possible contraindications" in shown[0].text
    assert shown[0].text.index("Possible contraindications") < shown[0].text.index("Goal")
    assert "Ann &lt;i&gt;" in fake.calls_to("sendMessage", STAFF_ID)[-len(shown)].params["text"]
    actions = await _actions(runner)
    assert ("intake_flags_read", STAFF_ID) in actions
    assert ("intake_read", STAFF_ID) in actions
    shown = await staff.send("/stats")
    assert "Consultation requests this week: <b>1</b>" in shown[0].text


async def test_patients_cannot_open_the_intake_console(fake, runner):
    mallory = TgUser(runner, first_name="Mallory")
    await mallory.send("/start")
    for data in ("staff:intakes", "staff:intake:1", "iks:1"):
        before = len(fake.calls_to("answerCallbackQuery"))
        shown = await mallory.press_data(data)
        assert shown == []
        answer = fake.calls_to("answerCallbackQuery")[before:][-1]
        assert "only for clinic staff" in answer.params["text"]
    assert [a for a in await _actions(runner) if a[0] == "staff_denied"] == [("staff_denied", mallory.id)] * 3


async def test_a_request_whose_key_is_gone_does_not_take_the_list_or_the_figures_down(fake, runner):
    """A key removed before rotation finished: that request shows 🔒 in the list, the others
    and /stats still work."""
    from bot.crypto import CryptoBox, new_key
    from bot.db.intake_models import Intake

    for name in ("Ann", "Bea"):
        patient = TgUser(runner, first_name=name)
        await complete(patient)
        await patient.press("📨 Submit")
    svc = runner.app.bot_data["services"]
    async with svc.db.session() as session:
        row = await session.scalar(select(Intake).order_by(Intake.id).limit(1))
        row.data = CryptoBox([new_key()]).encrypt_json({"answers": {}}, context="x")  # Ann's
    staff = TgUser(runner, first_name="Nurse", user_id=STAFF_ID)
    await staff.send("/staff")
    shown = await staff.press("📝 Consultation requests")
    labels = staff.labels(shown[0])
    assert any(label.startswith("Ann") and "🔒" in label for label in labels)
    assert any(label.startswith("Bea") and "⚠️" in label for label in labels)
    shown = await staff.send("/stats")
    assert "Consultation requests this week: <b>2</b>" in shown[0].text
