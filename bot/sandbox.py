"""Chat with the real handlers in a terminal, with no Telegram token and no network.

An in-process BaseRequest plays the Bot API: what the bot sends is printed (HTML stripped,
buttons numbered), and what you type becomes a Telegram update. A number of one or two digits
presses a button; k1, k2... press the reply keyboard's buttons under the text box (its "share
my phone number" button sends the sandbox patient's contact); anything else is sent as text.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import func, select
from telegram import Update
from telegram.ext import Application
from telegram.request import BaseRequest, RequestData

from bot import telegram_html
from bot.db.processed_updates import ProcessedUpdate
from bot.inputs import is_number

SANDBOX_TOKEN = "123456789:SANDBOX-sandbox-sandbox-sandbox-xx"
USER = {"id": 1001, "is_bot": False, "first_name": "Sandbox", "language_code": "en"}
BOT = {"id": 123456789, "is_bot": True, "first_name": "Clinic bot", "username": "clinic_sandbox_bot"}
# What a shared contact carries: without the "+", as Telegram sends it. libphonenumber's example
# UK mobile, a valid number that is nobody's.
SANDBOX_PHONE = "447400123456"
# Longer digit strings (a phone number typed without spaces) are text, not a button press.
MAX_BUTTON_DIGITS = 2
KEYBOARD_PICK = re.compile(r"[kK](\d{1,2})")


def _now() -> int:
    return int(datetime.now(UTC).timestamp())


@dataclass
class SandboxRequest(BaseRequest):
    """Answers the Bot API methods the bot uses and prints what it would show the patient."""

    out: TextIO = sys.stdout
    next_message_id: int = 1
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    last_keyboard: list[tuple[str, str]] = field(default_factory=list)
    last_keyboard_message: int | None = None
    # The reply keyboard under the text box: a chat-wide state that stays until replaced or
    # removed, unlike inline buttons that belong to one message.
    reply_keyboard: list[dict[str, Any]] = field(default_factory=list)
    on_print: Callable[[str], None] | None = None

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    @property
    def read_timeout(self) -> float | None:
        return None

    def _print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _show(self, params: dict[str, Any], edited: bool) -> None:
        text = str(params.get("text", ""))
        try:
            visible = telegram_html.plain(text) if params.get("parse_mode") == "HTML" else text
        except telegram_html.HTMLError as exc:  # the sandbox is also a place to find such bugs
            visible = f"[invalid HTML: {exc}] {html.unescape(re.sub('<[^>]+>', '', text))}"
        self._print(("\n~ (edited)\n" if edited else "\n") + visible)
        markup = params.get("reply_markup")
        if isinstance(markup, str):
            markup = json.loads(markup)
        markup = markup or {}
        buttons = [
            (b["text"], b.get("callback_data", ""))
            for row in markup.get("inline_keyboard", []) for b in row
        ]
        message_id = int(params.get("message_id") or self.next_message_id - 1)
        if buttons:
            self.last_keyboard = buttons
            self.last_keyboard_message = message_id
            for i, (label, _) in enumerate(buttons, 1):
                self._print(f"  [{i}] {label}")
        elif edited and message_id == self.last_keyboard_message:
            # An edit without buttons removes them in Telegram: a number must not press them.
            self.last_keyboard = []
            self.last_keyboard_message = None
        if "keyboard" in markup:
            self.reply_keyboard = [b if isinstance(b, dict) else {"text": b}
                                   for row in markup["keyboard"] for b in row]
            self._print(f"  [keyboard: type k1-k{len(self.reply_keyboard)} or the text]")
            for i, button in enumerate(self.reply_keyboard, 1):
                note = "  (shares your phone number)" if button.get("request_contact") else ""
                self._print(f"  [k{i}] {button['text']}{note}")
        elif markup.get("remove_keyboard"):
            self.reply_keyboard = []
            self._print("  [keyboard closed]")

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout: Any = None, write_timeout: Any = None,
                         connect_timeout: Any = None, pool_timeout: Any = None) -> tuple[int, bytes]:
        name = url.rsplit("/", 1)[-1]
        params = dict(request_data.json_parameters) if request_data else {}
        result: Any = True
        if name == "getMe":
            result = BOT
        elif name in ("sendMessage", "editMessageText"):
            edited = name == "editMessageText"
            if edited:
                message_id = int(params["message_id"])
            else:
                message_id = self.next_message_id
                self.next_message_id += 1
                params["message_id"] = message_id
            self._show(params, edited)
            result = {"message_id": message_id, "date": _now(), "text": "",
                      "chat": {"id": USER["id"], "type": "private", "first_name": USER["first_name"]},
                      "from": BOT}
        elif name == "sendDocument":
            self._print("\n[a file was sent]")
            result = {"message_id": self.next_message_id, "date": _now(),
                      "chat": {"id": USER["id"], "type": "private"}, "from": BOT}
            self.next_message_id += 1
        elif name == "getUpdates":
            result = []
        return 200, json.dumps({"ok": True, "result": result}).encode()


class Sandbox:
    """Turns terminal lines into updates and feeds them to the Application."""

    def __init__(self, application: Application, request: SandboxRequest) -> None:
        self.app = application
        self.request = request
        self.update_id = 0
        self.user_message_id = 10_000

    def _next_update_id(self) -> int:
        self.update_id += 1
        return self.update_id

    async def continue_update_ids(self) -> None:
        """Number this run's updates after the highest the database has already claimed: the
        dedupe (handlers/dedupe.py) drops a claimed id as a Telegram redelivery, so restarting
        at 1 against an existing sandbox.db silently swallowed the first updates of a run."""
        async with self.app.bot_data["services"].db.session() as session:
            highest = await session.scalar(select(func.max(ProcessedUpdate.update_id)))
        self.update_id = max(self.update_id, highest or 0)

    def _message_update(self, **content: Any) -> Update:
        self.user_message_id += 1
        data = {
            "update_id": self._next_update_id(),
            "message": {
                "message_id": self.user_message_id, "date": _now(), "from": USER,
                "chat": {"id": USER["id"], "type": "private", "first_name": USER["first_name"]},
                **content,
            },
        }
        return Update.de_json(data, self.app.bot)

    def text_update(self, text: str) -> Update:
        entities = []
        if text.startswith("/"):
            entities = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return self._message_update(text=text, entities=entities)

    def keyboard_update(self, number: int) -> Update | None:
        """A reply-keyboard button: its text, as Telegram sends it, or the patient's contact."""
        buttons = self.request.reply_keyboard
        if not 1 <= number <= len(buttons):
            return None
        button = buttons[number - 1]
        if button.get("request_contact"):
            return self._message_update(contact={
                "phone_number": SANDBOX_PHONE, "first_name": USER["first_name"],
                "user_id": USER["id"]})
        return self.text_update(button["text"])

    def press_update(self, number: int) -> Update | None:
        buttons = self.request.last_keyboard
        if not 1 <= number <= len(buttons):
            return None
        data = {
            "update_id": self._next_update_id(),
            "callback_query": {
                "id": str(self.update_id), "from": USER, "chat_instance": "sandbox",
                "data": buttons[number - 1][1],
                "message": {
                    "message_id": self.request.last_keyboard_message, "date": _now(), "text": "",
                    "from": BOT, "chat": {"id": USER["id"], "type": "private"},
                },
            },
        }
        return Update.de_json(data, self.app.bot)

    async def handle_line(self, line: str) -> bool:
        """Process one typed line; False means quit."""
        line = line.strip()
        if line.lower() in {"quit", "exit", ":q"}:
            return False
        if not line:
            return True
        pick = KEYBOARD_PICK.fullmatch(line)
        if pick:
            update = self.keyboard_update(int(pick.group(1)))
            if update is None:
                self.request._print(f"(there is no keyboard button {line}; type one shown "
                                    "as [k…])")
                return True
        elif is_number(line) and len(line) <= MAX_BUTTON_DIGITS:
            update = self.press_update(int(line))
            if update is None:
                self.request._print(f"(there is no button {line}; type a number shown in [ ])")
                return True
        else:
            update = self.text_update(line)
        await self.app.process_update(update)
        return True


async def run_sandbox(application: Application, request: SandboxRequest,
                      read_line: Callable[[], str | None] | None = None) -> None:
    sandbox = Sandbox(application, request)

    def _stdin() -> str | None:
        try:
            return input("\nyou> ")
        except EOFError:
            return None

    reader = read_line or _stdin
    request._print("Sandbox: you are chatting with the clinic bot. Type text, a /command, "
                   "a button number, or k1, k2... for a keyboard button; 'quit' ends.")
    try:
        async with application:
            if application.post_init is not None:  # run_polling would call it; we drive updates
                await application.post_init(application)  # migrates: the claims table exists
            await sandbox.continue_update_ids()
            # Starts the job queue too, so reminders booked in the sandbox arrive in the terminal.
            await application.start()
            try:
                await sandbox.handle_line("/start")
                while True:
                    line = await asyncio.get_running_loop().run_in_executor(None, reader)
                    if line is None or not await sandbox.handle_line(line):
                        break
            finally:
                await application.stop()
    finally:
        # Also run_polling's: it closes the database, whose pooled connections would otherwise
        # be collected after the event loop closed ("Event loop is closed" from their threads).
        if application.post_shutdown is not None:
            await application.post_shutdown(application)
    request._print("Bye!")
