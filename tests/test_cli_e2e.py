"""The bot started as users start it: `run_bot.py` as a process, and the terminal sandbox."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

from tests.conftest import TEST_ENCRYPTION_KEY
from tests.fake_bot_api import TOKEN, FakeBotAPI

ROOT = Path(__file__).resolve().parent.parent


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in {"BOT_TOKEN", "DATABASE_URL"}}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


async def test_run_bot_process_answers_start_and_never_logs_the_token(fake: FakeBotAPI, tmp_path):
    env = _env(BOT_TOKEN=TOKEN, TELEGRAM_API_BASE_URL=fake.base_url,
               DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", LOG_LEVEL="DEBUG",
               RATE_LIMITER="false", ENCRYPTION_KEYS=TEST_ENCRYPTION_KEY)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "run_bot.py"), "run", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        await fake.wait_for(lambda c: c.method == "getUpdates", timeout=30)
        user = {"id": 777, "is_bot": False, "first_name": "Zoe"}
        await fake.push_update({"update_id": fake.next_update_id(), "message": {
            "message_id": 1, "date": int(time.time()), "text": "/start", "from": user,
            "chat": {"id": 777, "type": "private"},
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}})
        call = await fake.wait_for(lambda c: c.method == "sendMessage", timeout=30)
        assert "Hello, Zoe!" in call.params["text"]
        assert fake.calls_to("setMyCommands")
        # A patient's own words, in an update and (quoted) in a reply, must not reach the logs
        # even at DEBUG, where python-telegram-bot would log every call's parameters.
        await fake.push_update({"update_id": fake.next_update_id(), "message": {
            "message_id": 2, "date": int(time.time()), "text": "allergic to penicillinxyz?",
            "from": user, "chat": {"id": 777, "type": "private"}}})
        await fake.wait_for(lambda c: c.method == "sendMessage" and c.params is not call.params
                            and str(c.params.get("chat_id")) == "777", timeout=30)
    finally:
        proc.send_signal(signal.SIGINT)
        for _ in range(100):
            await fake.release_polls()
            if proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
    output = (stdout + stderr).decode()
    assert TOKEN not in output
    assert TOKEN.split(":")[1] not in output
    assert "penicillinxyz" not in output and "Hello, Zoe" not in output
    assert "DEBUG" in output  # the level was on: the bot's own DEBUG records were written


async def test_sandbox_shows_the_menu_and_presses_buttons(tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "run_bot.py"), "sandbox", "--database-url",
        f"sqlite+aiosqlite:///{tmp_path / 'sandbox.db'}", cwd=tmp_path, env=_env(),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(b"2\n1\n99\nhello\nquit\n"), 60)
    out = stdout.decode()
    assert proc.returncode == 0, stderr.decode()
    assert "Hello, Sandbox!" in out
    assert "[2] Uses of Mesotherapy" in out
    assert "• Improves skin texture, tone, and hydration." in out
    assert "there is no button 99" in out
    assert "Ask me a question in your own words" in out  # free text is a question now (issue 5)
    assert "Traceback" not in out + stderr.decode()


async def test_a_token_telegram_rejects_stops_with_one_line_and_never_prints_it(fake, tmp_path):
    """Well-shaped but revoked: PTB's InvalidToken message quotes the token."""
    revoked = "987654321:AAH-revoked-token-abcdefghijklmnopqrstu"
    env = _env(BOT_TOKEN=revoked, TELEGRAM_API_BASE_URL=fake.base_url,
               DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", RATE_LIMITER="false",
               ENCRYPTION_KEYS=TEST_ENCRYPTION_KEY)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "run_bot.py"), "run", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    output = (stdout + stderr).decode()
    assert proc.returncode == 2
    assert "BOT_TOKEN was rejected by Telegram" in output and "Traceback" not in output
    assert revoked not in output and revoked.split(":")[1] not in output
