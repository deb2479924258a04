"""The aiohttp networking backend (bot/transport.py), through real PTB Bot calls to the fake."""

from __future__ import annotations

import asyncio

import pytest
from telegram import Bot
from telegram.error import NetworkError, TimedOut

from bot import transport
from bot.app import build_application
from bot.config import Settings
from bot.transport import AiohttpRequest, client_timeout, proxy_for
from tests.fake_bot_api import TOKEN, FakeBotAPI
from tests.scale_helpers import free_port


async def _bot(fake: FakeBotAPI, **kwargs: float | None) -> Bot:
    bot = Bot(TOKEN, base_url=fake.base_url, request=AiohttpRequest(4, **kwargs))
    await bot.initialize()
    return bot


async def test_the_application_uses_it_by_default(settings: Settings) -> None:
    application = build_application(settings, token=TOKEN, migrate=False)
    assert isinstance(application.bot.request, AiohttpRequest)
    assert isinstance(application.bot._request[0], AiohttpRequest)  # getUpdates' own


async def test_send_message_form_fields_and_markup_arrive(fake: FakeBotAPI) -> None:
    bot = await _bot(fake)
    message = await bot.send_message(42, "<b>Hi</b> &amp; bye", parse_mode="HTML",
                                     reply_markup={"inline_keyboard": [[
                                         {"text": "Back", "callback_data": "m:back"}]]})
    await bot.shutdown()
    assert message.text == "Hi & bye" and message.chat.id == 42
    (call,) = fake.calls_to("sendMessage", 42)
    assert call.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "m:back"


async def test_a_call_without_files_is_one_json_document() -> None:
    """What goes on the wire: one JSON document (the Bot API takes it), not form fields."""
    import json

    from aiohttp import web

    seen: list[tuple[str, bytes]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append((request.content_type, await request.read()))
        return web.json_response({"ok": True, "result": True})

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    request = AiohttpRequest(1)
    await request.initialize()
    try:
        bot = Bot(TOKEN, base_url=f"http://127.0.0.1:{port}/bot", request=request)
        await bot.answer_callback_query("q1", text="Saved ✓", show_alert=False)
    finally:
        await request.shutdown()
        await runner.cleanup()
    ((content_type, body),) = seen
    assert content_type == "application/json"
    sent = json.loads(body)
    # PTB's json_payload: each value as the string its form encoding would send.
    assert sent == {"callback_query_id": "q1", "text": "Saved ✓", "show_alert": "false"}


async def test_file_upload_is_multipart_with_name_and_bytes(fake: FakeBotAPI) -> None:
    bot = await _bot(fake)
    await bot.send_document(42, b"BEGIN:VCALENDAR\r\n", filename="visit.ics", caption="Your visit")
    await bot.shutdown()
    (call,) = fake.calls_to("sendDocument", 42)
    assert call.params["document"].filename == "visit.ics"
    assert call.params["document"].data == b"BEGIN:VCALENDAR\r\n"
    assert call.params["caption"] == "Your visit"


async def test_a_slow_answer_is_timed_out(fake: FakeBotAPI) -> None:
    # 1 s, not less: initialize()'s getMe gets the same default and must be answered in time
    # on a busy machine.
    bot = await _bot(fake, read_timeout=1.0)
    fake.fail_next("sendMessage", 502, delay=3.0, deliver=True)
    with pytest.raises(TimedOut):
        await bot.send_message(42, "late")
    # A per-call timeout wins over the default.
    fake.fail_next("sendMessage", 502, delay=1.5, deliver=True)
    message = await bot.send_message(42, "patient", read_timeout=3)
    await bot.shutdown()
    assert message.text == "patient"


async def test_connection_refused_is_a_network_error_not_a_timeout() -> None:
    bot = Bot(TOKEN, base_url=f"http://127.0.0.1:{free_port()}/bot", request=AiohttpRequest(1))
    await bot._request[1].initialize()
    with pytest.raises(NetworkError) as caught:
        await bot.get_me()
    assert not isinstance(caught.value, TimedOut)
    assert "aiohttp.ClientConnectorError" in caught.value.message
    assert TOKEN not in caught.value.message
    await bot._request[1].shutdown()


async def test_unusable_before_initialize_and_reusable_after_shutdown(fake: FakeBotAPI) -> None:
    request = AiohttpRequest(1)
    bot = Bot(TOKEN, base_url=fake.base_url, request=request)
    with pytest.raises(NetworkError, match="not initialized"):
        await request.post(f"{fake.base_url}{TOKEN}/getMe")
    for _ in range(2):  # Application restarts re-initialize the same request object
        await bot.initialize()
        assert (await bot.get_me()).username
        await bot.shutdown()
    assert len(fake.calls_to("getMe")) >= 2


def test_timeouts_keep_their_meaning() -> None:
    t = client_timeout(connect=5.0, pool=1.0, write=5.0, read=7.0)
    # a new connection gets its full connect time after waiting for a free slot
    assert (t.connect, t.sock_connect, t.sock_read, t.total) == (6.0, 5.0, 7.0, 18.0)
    t = client_timeout(connect=5.0, pool=None, write=5.0, read=None)  # None: no limit
    assert (t.connect, t.sock_connect, t.sock_read, t.total) == (None, 5.0, None, None)


async def test_a_garbled_answer_is_a_network_error_without_the_token() -> None:
    async def garble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: nonsense\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garble, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    bot = Bot(TOKEN, base_url=f"http://127.0.0.1:{port}/bot", request=AiohttpRequest(1))
    await bot._request[1].initialize()
    try:
        with pytest.raises(NetworkError) as caught:
            await bot.get_me()
        assert caught.value.message.startswith("aiohttp.")
        assert TOKEN not in caught.value.message and TOKEN.split(":")[1] not in str(caught.value)
    finally:
        await bot._request[1].shutdown()
        server.close()
        await server.wait_closed()


def test_proxies_come_from_the_environment_as_with_httpx(monkeypatch, caplog) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy",
                 "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    api = f"https://api.telegram.org/bot{TOKEN}/getMe"
    transport._env_proxy.cache_clear()
    assert proxy_for(api) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://user:pw@proxy.clinic.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1:8081,[::1]")
    transport._env_proxy.cache_clear()
    assert proxy_for(api) == "http://user:pw@proxy.clinic.example:3128"
    assert proxy_for(f"http://127.0.0.1:8081/bot{TOKEN}/getMe") is None  # no http proxy named
    monkeypatch.setenv("ALL_PROXY", "http://proxy.clinic.example:3128")
    transport._env_proxy.cache_clear()
    assert proxy_for(f"http://127.0.0.1:8081/bot{TOKEN}/getMe") is None  # NO_PROXY host:port
    assert proxy_for(f"http://127.0.0.1:9999/bot{TOKEN}/getMe") is not None  # other port
    assert proxy_for(f"http://localhost:8081/bot{TOKEN}/getMe") is None  # NO_PROXY host
    # aiohttp cannot speak SOCKS: such a proxy is refused with a warning, not half-used.
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.setenv("ALL_PROXY", "socks5://proxy.clinic.example:1080")
    transport._env_proxy.cache_clear()
    with caplog.at_level("WARNING", logger="bot.transport"):
        assert proxy_for(api) is None
    assert "only http(s) proxies" in caplog.text
    transport._env_proxy.cache_clear()
