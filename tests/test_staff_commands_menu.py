"""Staff find their commands: in the menu beside the text box (their private chats and the
staff group) and in /help; patients see neither."""

from __future__ import annotations

import json

from tests.conftest import make_settings
from tests.harness import BotRunner, TgUser


def _names(call) -> list[str]:
    commands = call.params["commands"]
    commands = json.loads(commands) if isinstance(commands, str) else commands
    return [c["command"] for c in commands]


def _scope(call) -> dict | None:
    scope = call.params.get("scope")
    return json.loads(scope) if isinstance(scope, str) else scope


async def test_staff_get_their_commands_in_the_menu_and_in_help(fake, db_url):
    settings = make_settings(fake, db_url, staff_ids="42,43", staff_chat_id=-1001)
    fake.fail_next("setMyCommands", 400, "Bad Request: chat not found", chat_id=43)
    runner = BotRunner(fake, settings)
    await runner.start()  # one staff member who never opened the bot does not stop the start
    try:
        calls = fake.calls_to("setMyCommands")
        default = [c for c in calls if _scope(c) is None]
        assert len(default) == 1 and "book" not in _names(default[0])
        scoped = {_scope(c)["chat_id"]: _names(c) for c in calls if _scope(c) is not None}
        assert set(scoped) == {42, -1001}  # 43's was refused, and logged
        for names in scoped.values():
            assert names[:len(_names(default[0]))] == _names(default[0])
            assert {"book", "cancel_appt", "noshow", "staff", "reply"} <= set(names)

        staff, patient = TgUser(runner, "Staff", user_id=42), TgUser(runner, "Anna")
        shown = await staff.send("/help")
        assert "<b>Staff commands</b>" in shown[0].text
        assert "/book — Book: /book PATIENT DATE TIME" in shown[0].text
        shown = await patient.send("/help")
        assert "Staff commands" not in shown[0].text and "/book" not in shown[0].text
    finally:
        await runner.stop()
