"""The staff console: only staff get in, every attempt by anyone else is refused and recorded."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import TgUser


def _denied(db_url: str) -> list[tuple]:
    with sqlite3.connect(Path(db_url.split("///", 1)[1])) as conn:
        return conn.execute("select actor_user_id, subject from audit_events where action='staff_denied'").fetchall()


async def test_staff_see_the_console_and_stats(fake, runner):
    patient = TgUser(runner, first_name="Anna")
    await patient.send("/start")
    staff = TgUser(runner, first_name="Nurse", user_id=42)
    shown = await staff.send("/staff")
    assert "Staff console" in shown[0].text
    shown = await staff.press("📊 Statistics")
    assert "Patients who have written to the bot: <b>1</b>" in shown[0].text
    shown = await staff.press("‹ Staff console")
    assert "Staff console" in shown[0].text
    shown = await staff.send("/stats")
    assert "New patients this week" in shown[0].text


async def test_non_staff_are_refused_every_staff_command(fake, runner, db_url):
    mallory = TgUser(runner, first_name="Mallory")
    for command in ("/staff", "/stats"):
        shown = await mallory.send(command)
        assert [m.text for m in shown] == ["Sorry, this is only for clinic staff."]
    assert _denied(db_url) == [(mallory.id, "staff_menu"), (mallory.id, "stats")]


async def test_forged_staff_buttons_are_refused(fake, runner):
    mallory = TgUser(runner, first_name="Mallory")
    await mallory.send("/start")
    for data in ("staff:menu", "staff:stats"):
        before = len(fake.calls_to("answerCallbackQuery"))
        shown = await mallory.press_data(data)
        assert shown == []  # nothing edited or sent
        answers = fake.calls_to("answerCallbackQuery")[before:]
        assert answers[-1].params.get("text") == "Sorry, this is only for clinic staff."


# Every staff button there is, and arbitrary data under the same prefix.
REAL_STAFF_BUTTONS = st.one_of(
    st.sampled_from(["staff:menu", "staff:stats", "staff:today", "staff:failed",
                     "staff:broadcast", "staff:intakes", "staff:questions"]),
    st.from_regex(r"staff:intake:[0-9]{1,12}", fullmatch=True),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(REAL_STAFF_BUTTONS, st.from_regex(r"staff:[ -~]{0,58}", fullmatch=True)))
async def test_no_forged_staff_callback_shows_staff_content(fake, runner, db_url, data):
    mallory = TgUser(runner, first_name="Mallory", user_id=6666)
    await mallory.send("/start")
    denied = len(_denied(db_url))
    shown = await mallory.press_data(data)
    for message in shown:
        assert "Staff console" not in message.text and "Statistics" not in message.text
    if STAFF_BUTTON.fullmatch(data):
        assert shown == []  # refused: nothing edited or sent
        assert len(_denied(db_url)) == denied + 1  # and recorded


STAFF_BUTTON = re.compile(r"staff:(menu|stats|today|failed|broadcast|intakes|questions"
                          r"|intake:\d{1,12})")
