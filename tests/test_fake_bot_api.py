"""The fake must fail tests the way Telegram would fail the bot: prove it rejects bad calls."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.fake_bot_api import TOKEN, FakeBotAPI


@pytest.fixture
async def api():
    fake = FakeBotAPI()
    await fake.start()
    yield fake
    await fake.stop()


async def _post(api: FakeBotAPI, method: str, data: dict) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(f"{api.base_url}{TOKEN}/{method}", data=data)


def _kb(data: str) -> str:
    return json.dumps({"inline_keyboard": [[{"text": "x", "callback_data": data}]]})


@pytest.mark.parametrize(
    ("method", "data", "problem"),
    [
        ("sendMesage", {"chat_id": "1", "text": "hi"}, "unknown method"),
        ("sendMessage", {"chat_id": "1", "text": "hi", "colour": "red"}, "unknown parameter 'colour'"),
        ("sendMessage", {"chat_id": "1"}, "missing required parameter 'text'"),
        ("sendMessage", {"chat_id": "1", "text": "hi", "reply_markup": _kb("x" * 65)}, "callback_data of 65 bytes"),
        ("sendMessage", {"chat_id": "1", "text": "é" * 4097}, "4097 characters"),
        ("sendMessage", {"chat_id": "1", "text": "<b>open", "parse_mode": "HTML"}, "can't parse entities"),
        ("sendMessage", {"chat_id": "1", "text": "Tom & Jerry", "parse_mode": "HTML"}, "unescaped &"),
        ("sendMessage", {"chat_id": "1", "text": "x", "reply_markup": json.dumps(
            {"inline_keyboard": [[{"text": "x", "bogus": 1}]]})}, "unknown field 'bogus'"),
        ("answerCallbackQuery", {"callback_query_id": "1", "text": "x" * 201}, "over 200"),
    ],
)
async def test_fake_rejects_what_telegram_rejects(api, method, data, problem):
    response = await _post(api, method, data)
    assert response.status_code in (400, 404)
    assert response.json()["ok"] is False
    assert any(problem in v for v in api.violations), api.violations


async def test_fake_accepts_a_valid_call_and_edits(api):
    response = await _post(api, "sendMessage", {"chat_id": "5", "text": "<b>ok</b> &amp; fine",
                                                "parse_mode": "HTML", "reply_markup": _kb("n:1")})
    body = response.json()
    assert body["ok"] and body["result"]["text"] == "ok & fine"
    mid = str(body["result"]["message_id"])
    same = await _post(api, "editMessageText", {"chat_id": "5", "message_id": mid,
                                                "text": "<b>ok</b> &amp; fine", "parse_mode": "HTML",
                                                "reply_markup": _kb("n:1")})
    assert same.status_code == 400 and "not modified" in same.json()["description"]
    changed = await _post(api, "editMessageText", {"chat_id": "5", "message_id": mid, "text": "new"})
    assert changed.json()["ok"]
    assert api.violations == []


async def test_faults_and_blocked_chats(api):
    api.fail_next("sendMessage", 429, retry_after=3)
    first = await _post(api, "sendMessage", {"chat_id": "5", "text": "a"})
    assert first.status_code == 429 and first.json()["parameters"]["retry_after"] == 3
    assert (await _post(api, "sendMessage", {"chat_id": "5", "text": "a"})).status_code == 200
    api.block(5)
    blocked = await _post(api, "sendMessage", {"chat_id": "5", "text": "a"})
    assert blocked.status_code == 403 and "blocked" in blocked.json()["description"]


async def test_wrong_token_is_unauthorized(api):
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{api.base_url}1:wrong/getMe")
    assert response.status_code == 401
