"""What stops the bot from starting, and is the operator's to fix, is said in one line: the
database, Telegram refusing the webhook, the webhook's port taken, a time zone that is a folder.
The real `run_bot.py`, in a process of its own, against the fake Bot API."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_ENCRYPTION_KEY
from tests.fake_bot_api import TOKEN, FakeBotAPI

ROOT = Path(__file__).resolve().parent.parent


async def run(fake: FakeBotAPI, tmp_path: Path, *args: str, **env: str) -> tuple[int, str]:
    environment = {k: v for k, v in os.environ.items()
                   if k.upper() not in {"BOT_TOKEN", "DATABASE_URL", "CLINIC_TIMEZONE"}}
    environment.update(PYTHONPATH=str(ROOT), BOT_TOKEN=TOKEN, TELEGRAM_API_BASE_URL=fake.base_url,
                       RATE_LIMITER="false", ENCRYPTION_KEYS=TEST_ENCRYPTION_KEY,
                       DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/clinic.db")
    environment.update(env)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "run_bot.py"), *args, cwd=tmp_path, env=environment,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, (out + err).decode()


def one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert "Traceback" not in output, output[-3000:]
    return lines[-1]


async def test_an_unreachable_postgresql_is_one_line(fake, tmp_path):
    code, output = await run(fake, tmp_path, "run",
                             DATABASE_URL="postgresql+asyncpg://clinic:pw@127.0.0.1:1/clinic")
    line = one_line(output)
    assert code == 2 and line.startswith("The database cannot be used (")
    assert "check DATABASE_URL" in line and "pw" not in output


@pytest.mark.parametrize("command", ["run", "migrate"])
async def test_a_sqlite_file_in_a_missing_folder_is_one_line(fake, tmp_path, command):
    code, output = await run(fake, tmp_path, command,
                             DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/no/such/clinic.db")
    line = one_line(output)
    assert code == 2 and "DATABASE_URL" in line and "no/such' does not exist" in line


async def test_a_webhook_telegram_refuses_is_one_line(fake, tmp_path):
    fake.fail_next("setWebhook", 400, "Bad Request: bad webhook: Webhook can be set up only on "
                   "ports 80, 88, 443 or 8443")
    code, output = await run(fake, tmp_path, "run", "--webhook",
                             WEBHOOK_URL="https://bot.example.com:8080/tg",
                             WEBHOOK_SECRET_TOKEN="s" * 32, WEBHOOK_PORT="0")
    line = one_line(output)
    assert code == 2 and line.startswith("Telegram refused the webhook (")
    assert "ports 80, 88, 443 or 8443" in line and TOKEN not in output


async def test_a_webhook_port_in_use_is_one_line(fake, tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        code, output = await run(fake, tmp_path, "run", "--webhook",
                                 WEBHOOK_URL="https://bot.example.com/tg",
                                 WEBHOOK_SECRET_TOKEN="s" * 32,
                                 WEBHOOK_PORT=str(taken.getsockname()[1]))
    finally:
        taken.close()
    assert code == 2 and one_line(output).startswith("Cannot listen for the webhook (")


@pytest.mark.parametrize("command", ["run", "sandbox"])
async def test_a_time_zone_that_is_a_region_folder_is_one_line(fake, tmp_path, command):
    code, output = await run(fake, tmp_path, command, CLINIC_TIMEZONE="Europe")
    assert code == 2 and "CLINIC_TIMEZONE" in one_line(output)


async def test_polling_with_a_webhook_configured_refuses_rather_than_delete_the_webhook(
        fake, tmp_path):
    code, output = await run(fake, tmp_path, "run", WEBHOOK_URL="https://bot.example.com/tg",
                             WEBHOOK_SECRET_TOKEN="s" * 32)
    assert code == 2 and one_line(output).startswith("WEBHOOK_URL is set: start with `run --webhook`")
    assert not fake.calls_to("deleteWebhook") and not fake.calls_to("getUpdates")


async def test_a_revoked_token_is_one_line_without_unclosed_sessions(fake, tmp_path):
    code, output = await run(fake, tmp_path, "run",
                             BOT_TOKEN="987654321:AAH-revoked-token-abcdefghijklmnopqrstu")
    assert code == 2 and one_line(output).startswith("BOT_TOKEN was rejected by Telegram")
    assert "Unclosed" not in output and "revoked-token" not in output
