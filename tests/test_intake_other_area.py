"""Choosing "Other" among the areas asks which (staff could not prepare for "Other"); unticking
it later drops that answer. ask_if on a multi_choice: any chosen option among the values."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.content import ContentError
from bot.intake.spec import load_intake
from tests.harness import TgUser
from tests.intake_support import (
    agree,
    current_question,
    finish_after_phone,
    intake_runner,  # noqa: F401 - the `runner` fixture
    toggle_done,
)

STAFF_ID = 42
INTAKE = Path(__file__).resolve().parent.parent / "content" / "intake.yaml"


async def _after_areas(patient: TgUser) -> None:
    await patient.press("No, never")
    await patient.press("No")  # allergies
    await patient.press("No")  # medicines
    for _ in range(3):
        await patient.press("No")  # pregnancy, skin, chronic
    await patient.send("07911 123456")


async def test_other_area_asks_which_and_staff_see_it(fake, runner, patient):
    await agree(patient)
    await toggle_done(patient, "Facial rejuvenation")
    shown = await toggle_done(patient, "Face", "Other")
    assert "Which other areas" in shown[-1].text
    shown = await patient.send("Knees <and> ankles")
    assert "aesthetic treatments before" in shown[-1].text
    await _after_areas(patient)
    review = await finish_after_phone(patient)
    assert "Other areas" in review[-1].text and "Knees &lt;and&gt; ankles" in review[-1].text
    await patient.press("📨 Submit")
    summary = fake.last_message(STAFF_ID).text
    assert "Knees &lt;and&gt; ankles" in summary


async def test_no_other_area_no_question_and_unticking_it_drops_the_answer(fake, runner, patient):
    await agree(patient)
    await toggle_done(patient, "Facial rejuvenation")
    shown = await toggle_done(patient, "Scalp")
    assert "Which other areas" not in shown[-1].text
    assert "aesthetic treatments before" in current_question(patient)
    await patient.press("‹ Back")
    await patient.press("▫️ Other")
    await patient.press("Done ✓")
    await patient.send("Knees")
    await _after_areas(patient)
    review = await finish_after_phone(patient)
    assert "Knees" in review[-1].text
    await patient.press("✏️ Areas")
    await patient.press("✅ Other")  # unticked
    shown = await patient.press("Done ✓")
    assert "Please check your answers" in shown[-1].text
    assert "Knees" not in shown[-1].text and "Other areas" not in shown[-1].text


def test_ask_if_on_a_multi_choice_names_its_options(tmp_path):
    text = INTAKE.read_text(encoding="utf-8")
    path = tmp_path / "intake.yaml"
    path.write_text(text.replace("ask_if: {question: areas, is: other}",
                                 "ask_if: {question: areas, is: elsewhere}"), encoding="utf-8")
    with pytest.raises(ContentError) as info:
        load_intake(path)
    assert "ask_if must name answers of a choice, multi_choice or yes/no question" in str(info.value)
    spec = load_intake(INTAKE)
    assert spec.question("areas_other").ask_if == ("areas", frozenset({"other"}))


def test_a_follow_up_sits_beside_a_flag_only_when_asked_for_a_flagged_answer(tmp_path):
    """A clinic flagging one area ("Face") must not see "Other areas: knees" as the Face flag's
    detail; the allergy details still sit beside the allergy flag."""
    from zoneinfo import ZoneInfo

    from bot.crypto import CryptoBox
    from bot.db.intake_models import Intake
    from bot.db.models import Patient
    from bot.intake.flow import IntakeFlow, State
    from tests.conftest import TEST_ENCRYPTION_KEY

    path = tmp_path / "intake.yaml"
    path.write_text(INTAKE.read_text(encoding="utf-8").replace(
        '      - {id: unsure, label: "Not sure yet", exclusive: true}\n\n  - id: areas_other',
        '      - {id: unsure, label: "Not sure yet", exclusive: true}\n'
        '    flag: [face]\n    flag_note: "Face area"\n\n  - id: areas_other'), encoding="utf-8")
    flow = IntakeFlow(load_intake(path), CryptoBox([TEST_ENCRYPTION_KEY]), ZoneInfo("Europe/London"))
    answers = {"goal": ["face"], "areas": ["face", "other"], "areas_other": "knees",
               "previous": "none", "allergies": "yes", "allergies_detail": "latex"}
    notice = flow._staff_notice(Patient(id=1, first_name="Anna"), State(Intake(id=1), answers, {}),
                                None, is_update=False)
    flags = notice.text_parts[1]
    [face] = [line for line in flags.splitlines() if "Face area" in line]
    [allergy] = [line for line in flags.splitlines() if "Allergies reported" in line]
    assert "knees" not in face and "latex" in allergy
