"""A loopback fake of the Telegram Bot API for end-to-end tests.

The real python-telegram-bot Application talks HTTP to it through `base_url`. Every request is
checked against the official method list (api.json): unknown methods or parameters, missing
required ones, callback_data over 64 bytes, text over 4096 characters and malformed HTML are
answered 400 like Telegram would, and recorded in `violations` so the test fails.

Faults on demand: `fail_next(method, status, ...)` answers 429/403/5xx; `block(chat_id)`
makes a chat answer 403 as a patient who blocked the bot.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bot import telegram_html
from tests.api_spec import SpecChecker, UploadedFile

TOKEN = "123456789:TEST-token-for-the-fake-bot-api-000"
BOT_USER = {"id": 123456789, "is_bot": True, "first_name": "Clinic", "username": "clinic_test_bot",
            "can_join_groups": True, "can_read_all_group_messages": False,
            "supports_inline_queries": False}
SENDING = {"sendMessage", "sendDocument", "sendPhoto", "copyMessage", "forwardMessage"}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float
    status: int = 200
    result: Any = None


@dataclass
class Fault:
    status: int
    description: str
    retry_after: int | None = None
    count: int = 1
    chat_id: int | None = None
    delay: float = 0.0  # seconds to stall before answering (simulates a timeout)
    deliver: bool = False  # carry the request out (message delivered), then stall `delay`


@dataclass
class StoredMessage:
    message_id: int
    chat_id: int
    text: str
    reply_markup: dict[str, Any] | None
    date: int
    document: dict[str, Any] | None = None

    def as_api(self, params: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": self.message_id, "date": self.date, "from": BOT_USER,
            "chat": {"id": self.chat_id, "type": "private" if self.chat_id > 0 else "group",
                     **({"first_name": "Patient"} if self.chat_id > 0 else {"title": "Staff"})},
        }
        if self.document:
            message["document"] = self.document
            if self.text:
                message["caption"] = self.text
        elif self.text:
            message["text"] = telegram_html.plain(self.text) if params.get("parse_mode") == "HTML" else self.text
        if self.reply_markup and "inline_keyboard" in self.reply_markup:
            # Like Telegram: a Message carries only an inline keyboard, never a reply keyboard.
            message["reply_markup"] = self.reply_markup
        return message


class FakeBotAPI:
    def __init__(self, token: str = TOKEN, checker: SpecChecker | None = None,
                 rate_limit_per_second: int | None = None) -> None:
        self.token = token
        self.checker = checker or SpecChecker()
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.messages: dict[int, dict[int, StoredMessage]] = defaultdict(dict)
        self.files: dict[str, bytes] = {}
        self.blocked: set[int] = set()
        self.faults: dict[str, list[Fault]] = defaultdict(list)
        self.rate_limit = rate_limit_per_second
        self._sent_times: deque[float] = deque()
        self.too_many_requests = 0
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._new_update = asyncio.Condition()
        self._call_event = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.port = 0

    # ------------------------------------------------------------------ server lifecycle
    async def start(self) -> None:
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        self._closing = True
        await self.release_polls()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bot"

    # ------------------------------------------------------------------ test controls
    def next_update_id(self) -> int:
        return next(self._update_ids)

    async def push_update(self, update: dict[str, Any]) -> None:
        async with self._new_update:
            self._updates.append(update)
            self._new_update.notify_all()

    async def release_polls(self) -> None:
        """Answer any waiting long poll now (empty), so a stopping bot does not wait it out."""
        async with self._new_update:
            self._new_update.notify_all()

    def fail_next(self, method: str, status: int, description: str = "", *,
                  retry_after: int | None = None, count: int = 1, chat_id: int | None = None,
                  delay: float = 0.0, deliver: bool = False) -> None:
        """Answer the next `count` calls of `method` with an error; with `deliver`, carry them
        out and answer late instead (a timeout after the message was delivered)."""
        self.faults[method].append(Fault(status, description or _default_description(status),
                                         retry_after, count, chat_id, delay, deliver))

    def block(self, chat_id: int) -> None:
        self.blocked.add(chat_id)

    def calls_to(self, method: str, chat_id: int | None = None) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.status == 200 and (
            chat_id is None or str(c.params.get("chat_id")) == str(chat_id))]

    def last_message(self, chat_id: int) -> StoredMessage | None:
        chat = self.messages.get(chat_id) or {}
        return chat[max(chat)] if chat else None

    async def wait_for(self, predicate, timeout: float = 5.0) -> Call:
        """Wait until a recorded call satisfies predicate (checked on every new call)."""
        deadline = time.monotonic() + timeout
        async with self._call_event:
            while True:
                for call in self.calls:
                    if predicate(call):
                        return call
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("the bot did not make the expected call")
                try:
                    await asyncio.wait_for(self._call_event.wait(), remaining)
                except TimeoutError:
                    continue

    # ------------------------------------------------------------------ request handling
    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        raw: dict[str, Any] = {}
        if request.can_read_body:
            if request.content_type == "application/json":
                raw = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (await request.json()).items()}
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        raw[key] = UploadedFile(value.filename, value.file.read())
                    else:
                        raw[key] = value
        # multipart uploads reference attached files as attach://name; resolve them first.
        for key, value in list(raw.items()):
            if isinstance(value, str) and value.startswith("attach://") and value[9:] in raw:
                raw[key] = raw.pop(value[9:])
        # PTB sends files under their own field names when not attach://
        if not self.checker.has_method(method):
            return self._record_violation(method, raw, f"unknown method {method!r}", status=404)
        params, problems = self.checker.decode(method, raw)
        problems += self._extra_checks(method, params)
        if problems:
            return self._record_violation(method, params, "; ".join(problems))
        fault = self._take_fault(method, params)
        if fault is not None and fault.deliver:
            result = self._dispatch(method, params)
            await self._record(Call(method, params, time.monotonic(), result=result))
            await asyncio.sleep(fault.delay)
            return _ok(result)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            await self._record(Call(method, params, time.monotonic(), fault.status))
            extra = {"retry_after": fault.retry_after} if fault.retry_after is not None else None
            return _error(fault.status, fault.description, extra)
        chat_id = _int(params.get("chat_id"))
        if method in SENDING | {"editMessageText"} and chat_id in self.blocked:
            await self._record(Call(method, params, time.monotonic(), 403))
            return _error(403, "Forbidden: bot was blocked by the user")
        if method in SENDING and self.rate_limit is not None:
            now = time.monotonic()
            while self._sent_times and now - self._sent_times[0] >= 1.0:
                self._sent_times.popleft()
            if len(self._sent_times) >= self.rate_limit:
                self.too_many_requests += 1
                await self._record(Call(method, params, now, 429))
                return _error(429, "Too Many Requests: retry after 1", {"retry_after": 1})
            self._sent_times.append(now)
        if method == "getUpdates":
            # Recorded when it arrives, so a test can wait for "the bot is polling".
            call = Call(method, params, time.monotonic())
            await self._record(call)
            result: Any = await self._get_updates(params)
            call.result = result
            return _ok(result)
        try:
            result = self._dispatch(method, params)
        except _ApiError as exc:
            await self._record(Call(method, params, time.monotonic(), exc.status))
            return _error(exc.status, exc.description)
        await self._record(Call(method, params, time.monotonic(), result=result))
        return _ok(result)

    def _take_fault(self, method: str, params: dict[str, Any]) -> Fault | None:
        queue = self.faults.get(method) or []
        chat_id = params.get("chat_id")
        if chat_id is None and params.get("scope"):  # setMyCommands for one chat
            scope = params["scope"]
            chat_id = (json.loads(scope) if isinstance(scope, str) else scope).get("chat_id")
        for fault in queue:
            if fault.chat_id is None or str(fault.chat_id) == str(chat_id):
                fault.count -= 1
                if fault.count <= 0:
                    queue.remove(fault)
                return fault
        return None

    async def _record(self, call: Call) -> None:
        async with self._call_event:
            self.calls.append(call)
            self._call_event.notify_all()

    def _record_violation(self, method: str, params: dict[str, Any], problem: str,
                          status: int = 400) -> web.Response:
        self.violations.append(f"{method}: {problem}")
        self.calls.append(Call(method, params, time.monotonic(), status))
        return _error(status, f"Bad Request: {problem}")

    def _extra_checks(self, method: str, params: dict[str, Any]) -> list[str]:
        problems: list[str] = []
        markup = params.get("reply_markup")
        if isinstance(markup, dict):
            for row in markup.get("inline_keyboard", []):
                for button in row:
                    data = button.get("callback_data")
                    if data is not None and not 1 <= len(data.encode()) <= 64:
                        problems.append(f"callback_data of {len(data.encode())} bytes: {data[:70]!r}")
                    if not button.get("text"):
                        problems.append("button without text")
        for key in ("text", "caption"):
            if key in params and isinstance(params[key], str):
                text = params[key]
                if params.get("parse_mode") == "HTML":
                    try:
                        text = telegram_html.check(text)
                    except telegram_html.HTMLError as exc:
                        problems.append(f"can't parse entities in {key}: {exc}")
                        continue
                elif params.get("parse_mode") not in (None, ""):
                    problems.append(f"unexpected parse_mode {params.get('parse_mode')!r}")
                limit = 4096 if key == "text" else 1024
                if not 1 <= len(text.strip()) <= limit:
                    problems.append(f"{key} is {len(text)} characters after parsing (1-{limit})")
        if method == "answerCallbackQuery" and len(params.get("text") or "") > 200:
            problems.append("callback answer text over 200 characters")
        return problems

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = _int(params.get("offset")) or 0
        timeout = float(params.get("timeout") or 0)
        limit = _int(params.get("limit")) or 100
        async with self._new_update:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            if not self._updates and timeout > 0 and not self._closing:
                try:
                    await asyncio.wait_for(self._new_update.wait(), timeout)
                except TimeoutError:
                    pass
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            return self._updates[:limit]

    def _dispatch(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getMe":
            return BOT_USER
        if method in {"setMyCommands", "deleteWebhook", "answerCallbackQuery", "deleteMyCommands",
                      "setWebhook", "setChatMenuButton", "sendChatAction", "logOut", "close",
                      "setMyDescription", "setMyShortDescription"}:
            return True
        if method == "sendMessage":
            return self._store(params, params["text"]).as_api(params)
        if method == "sendDocument":
            doc = params["document"]
            if not isinstance(doc, UploadedFile):
                raise _ApiError(400, "Bad Request: document must be an uploaded file in tests")
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = doc.data
            stored = self._store(params, params.get("caption", ""))
            stored.document = {"file_id": file_id, "file_unique_id": file_id,
                               "file_name": doc.filename, "file_size": doc.size}
            return stored.as_api(params)
        if method == "editMessageText":
            chat_id = _int(params.get("chat_id"))
            message_id = _int(params.get("message_id"))
            stored = self.messages.get(chat_id, {}).get(message_id)  # type: ignore[arg-type]
            if stored is None:
                raise _ApiError(400, "Bad Request: message to edit not found")
            markup = params.get("reply_markup")
            if stored.text == params["text"] and stored.reply_markup == markup:
                raise _ApiError(400, "Bad Request: message is not modified: specified new message "
                                     "content and reply markup are exactly the same")
            stored.text, stored.reply_markup = params["text"], markup
            return stored.as_api(params)
        if method == "editMessageReplyMarkup":
            chat_id = _int(params.get("chat_id"))
            stored = self.messages.get(chat_id, {}).get(_int(params.get("message_id")))  # type: ignore[arg-type]
            if stored is None:
                raise _ApiError(400, "Bad Request: message to edit not found")
            stored.reply_markup = params.get("reply_markup")
            return stored.as_api(params)
        if method == "deleteMessage":
            chat = self.messages.get(_int(params.get("chat_id")), {})  # type: ignore[arg-type]
            chat.pop(_int(params.get("message_id")), None)  # type: ignore[arg-type]
            return True
        if method == "getChat":
            return {"id": _int(params["chat_id"]), "type": "private"}
        self.violations.append(f"{method}: valid per spec but not implemented by the fake")
        raise _ApiError(501, f"fake does not implement {method}")

    def _store(self, params: dict[str, Any], text: str) -> StoredMessage:
        chat_id = _int(params["chat_id"])
        stored = StoredMessage(next(self._message_ids), chat_id, text,  # type: ignore[arg-type]
                               params.get("reply_markup"), int(time.time()))
        self.messages[chat_id][stored.message_id] = stored  # type: ignore[index]
        return stored




class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status, self.description = status, description


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


def _default_description(status: int) -> str:
    return {
        400: "Bad Request: can't parse entities",
        403: "Forbidden: bot was blocked by the user",
        429: "Too Many Requests: retry after 1",
        500: "Internal Server Error",
        502: "Bad Gateway",
    }.get(status, "Error")
