"""Webhook mode end to end: the real run_webhook server on loopback, the fake Bot API behind it."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import run_bot
from bot.config import ConfigError
from bot.webhook import MAX_UPDATE_BYTES
from tests.conftest import TEST_ENCRYPTION_KEY, make_settings
from tests.fake_bot_api import TOKEN, FakeBotAPI
from tests.scale_helpers import (
    WEBHOOK_SECRET,
    WEBHOOK_URL,
    Sabotage,
    free_port,
    webhook_instance,
)

ROOT = Path(__file__).resolve().parent.parent


def text_update(fake: FakeBotAPI, user_id: int, text: str) -> dict[str, Any]:
    user = {"id": user_id, "is_bot": False, "first_name": "Anna", "language_code": "en"}
    message: dict[str, Any] = {"message_id": fake.next_update_id(), "date": int(time.time()),
                               "chat": {"id": user_id, "type": "private", "first_name": "Anna"},
                               "from": user, "text": text}
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"update_id": fake.next_update_id(), "message": message}


def press_update(fake: FakeBotAPI, user_id: int, label: str) -> dict[str, Any]:
    """A callback_query for the button `label` on the latest keyboard in the chat."""
    chat = fake.messages[user_id]
    for message_id in sorted(chat, reverse=True):
        stored = chat[message_id]
        for row in (stored.reply_markup or {}).get("inline_keyboard", []):
            for button in row:
                if button["text"].startswith(label):
                    user = {"id": user_id, "is_bot": False, "first_name": "Anna"}
                    query = {"id": f"q{fake.next_update_id()}", "from": user, "chat_instance": "ci",
                             "data": button["callback_data"],
                             "message": stored.as_api({"parse_mode": "HTML"})}
                    return {"update_id": fake.next_update_id(), "callback_query": query}
    raise AssertionError(f"no button {label!r} in chat {user_id}")


def webhook_settings(fake: FakeBotAPI, db_url: str, **extra: object):
    return make_settings(fake, db_url, webhook_url=WEBHOOK_URL, webhook_secret_token=WEBHOOK_SECRET,
                         webhook_listen="127.0.0.1", webhook_port=0, **extra)


async def test_webhook_serves_start_and_menu_navigation(fake: FakeBotAPI, db_url: str):
    async with webhook_instance(webhook_settings(fake, db_url)) as bot:
        registered = fake.calls_to("setWebhook")
        assert len(registered) == 1
        assert registered[0].params["url"] == WEBHOOK_URL
        assert registered[0].params["secret_token"] == WEBHOOK_SECRET
        assert not fake.calls_to("getUpdates"), "webhook mode must not poll"

        assert await bot.post(text_update(fake, 7001, "/start")) == 200
        greeting = fake.last_message(7001)
        assert greeting is not None and "Hello, Anna!" in greeting.text

        assert await bot.post(press_update(fake, 7001, "Uses of Mesotherapy")) == 200
        assert fake.calls_to("answerCallbackQuery")
        edited = fake.calls_to("editMessageText", chat_id=7001)
        assert edited and edited[-1].params["message_id"] == greeting.message_id


@pytest.mark.parametrize("secret", [None, "", "wrong-secret-token-0123456789",
                                    WEBHOOK_SECRET[:-1], WEBHOOK_SECRET + "x"])
async def test_webhook_refuses_requests_without_the_right_secret(fake: FakeBotAPI, db_url: str,
                                                                  secret: str | None):
    async with webhook_instance(webhook_settings(fake, db_url)) as bot:
        status = await bot.post(text_update(fake, 7002, "/start"), secret=secret)
        assert status == 403
        assert bot.server is not None and bot.server.rejected == 1
        # Give a wrongly queued update every chance to be (wrongly) processed.
        await asyncio.sleep(0.05)
        assert not fake.calls_to("sendMessage", chat_id=7002)
        # The same update with the right secret is then processed normally.
        assert await bot.post(text_update(fake, 7002, "/start")) == 200
        assert len(fake.calls_to("sendMessage", chat_id=7002)) == 1


async def test_webhook_answers_400_to_an_undecodable_body_and_413_to_an_oversized_one(fake: FakeBotAPI, db_url: str):
    async with webhook_instance(webhook_settings(fake, db_url)) as bot:
        assert bot.server is not None
        async with aiohttp.ClientSession() as http:
            headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET,
                       "Content-Type": "application/json"}
            async with http.post(bot.server.url, data=b"{not json", headers=headers) as resp:
                assert resp.status == 400
            huge = b'{"update_id": 1, "x": "' + b"a" * (MAX_UPDATE_BYTES + 1) + b'"}'
            async with http.post(bot.server.url, data=huge, headers=headers) as resp:
                assert resp.status == 413
            async with http.get(bot.server.url) as resp:
                assert resp.status == 405  # only POST is served on the webhook path
        assert fake.violations == []


async def test_healthz_is_ok_while_every_pooled_connection_is_busy(fake: FakeBotAPI, db_url: str):
    """A busy instance is not a down one: with the pool's connections all in use (32 updates at
    once), /healthz answered 503 and the load balancer took a healthy instance out."""
    async with webhook_instance(webhook_settings(fake, db_url)) as bot:
        engine = bot.db.engine
        held = [await engine.connect() for _ in range(engine.pool.size() + 10)]  # + overflow
        try:
            status, body = await bot.get("/healthz")
        finally:
            for connection in held:
                await connection.close()
        assert (status, body["database"]) == (200, "ok")


async def test_a_secret_header_that_is_not_utf8_is_refused_with_403(fake: FakeBotAPI, db_url: str):
    """Raw header bytes, as any scanner may send: refused like a wrong secret, not a 500 with
    an error logged."""
    async with webhook_instance(webhook_settings(fake, db_url)) as bot:
        assert bot.server is not None
        reader, writer = await asyncio.open_connection(bot.server.listen, bot.server.port)
        body = b'{"update_id": 1}'
        writer.write(b"POST " + bot.server.path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                     b"X-Telegram-Bot-Api-Secret-Token: \xff\xfe\r\n"
                     b"Content-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
        status_line = await reader.readline()
        writer.close()
        assert b" 403 " in status_line and bot.server.rejected == 1


async def test_healthz_reports_the_database(fake: FakeBotAPI, db_url: str):
    async with webhook_instance(webhook_settings(fake, db_url)) as bot:
        status, body = await bot.get("/healthz")
        assert (status, body["status"], body["database"]) == (200, "ok", "ok")
        async with Sabotage(bot.db) as sabotage:
            status, body = await bot.get("/healthz")
            assert (status, body["status"], body["database"]) == (503, "unavailable", "unavailable")
            await sabotage.restore()
            status, body = await bot.get("/healthz")
            assert status == 200


def test_webhook_mode_requires_url_and_secret(fake: FakeBotAPI, db_url: str):
    settings = make_settings(fake, db_url)
    with pytest.raises(ConfigError) as exc:
        settings.require_webhook()
    assert "WEBHOOK_URL and WEBHOOK_SECRET_TOKEN" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        make_settings(fake, db_url, webhook_url=WEBHOOK_URL).require_webhook()
    assert "WEBHOOK_SECRET_TOKEN" in str(exc.value) and "WEBHOOK_URL " not in str(exc.value)
    with pytest.raises(ConfigError, match="WEBHOOK_URL must be a public https"):
        make_settings(fake, db_url, webhook_url="http://insecure.example/hook")
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET_TOKEN must be 16-256"):
        make_settings(fake, db_url, webhook_secret_token="short")
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET_TOKEN must be 16-256"):
        make_settings(fake, db_url, webhook_secret_token="has spaces and ü " * 3)
    # The secret is never shown in the error or the settings' repr.
    settings = make_settings(fake, db_url, webhook_secret_token=WEBHOOK_SECRET)
    assert WEBHOOK_SECRET not in repr(settings)


def test_cli_webhook_without_settings_is_one_clear_line(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    for name in ("WEBHOOK_URL", "WEBHOOK_SECRET_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert run_bot.main(["run", "--webhook"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("Configuration error: webhook mode needs WEBHOOK_URL and WEBHOOK_SECRET_TOKEN")
    assert "\n" not in err and "Traceback" not in err


async def test_run_bot_webhook_process_end_to_end(fake: FakeBotAPI, tmp_path: Path):
    """`run_bot.py run --webhook` as a real process: health, an update, SIGTERM shutdown."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("WEBHOOK_", "DATABASE_", "STAFF_"))}
    env.update({
        "BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": fake.base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}", "RATE_LIMITER": "false",
        "WEBHOOK_URL": WEBHOOK_URL, "WEBHOOK_SECRET_TOKEN": WEBHOOK_SECRET,
        "WEBHOOK_LISTEN": "127.0.0.1", "WEBHOOK_PORT": str(port), "LOG_LEVEL": "INFO",
        "ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
    })
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "run_bot.py"), "run", "--webhook",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 20
            while True:
                assert proc.returncode is None, "the bot process exited during start-up"
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert time.monotonic() < deadline, "the webhook server never became healthy"
                await asyncio.sleep(0.1)
            url = f"http://127.0.0.1:{port}/telegram/webhook"
            async with http.post(url, json=text_update(fake, 7003, "/start")) as resp:
                assert resp.status == 403
            async with http.post(url, json=text_update(fake, 7003, "/start"),
                                 headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}) as resp:
                assert resp.status == 200
        await fake.wait_for(lambda c: c.method == "sendMessage" and c.params.get("chat_id") == "7003",
                            timeout=10)
        assert len(fake.calls_to("sendMessage", chat_id=7003)) == 1
        proc.send_signal(signal.SIGTERM)
        output = (await asyncio.wait_for(proc.communicate(), 20))[0].decode()
        assert proc.returncode == 0, output
        assert TOKEN not in output and WEBHOOK_SECRET not in output
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
