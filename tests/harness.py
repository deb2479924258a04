"""Drive the real Application (built by build_application) through the fake Bot API.

The bot long-polls the fake exactly as it polls Telegram. The Application subclass below marks
each update as processed once every handler group has run (even if one raised
ApplicationHandlerStop), so a scripted user waits for the bot to finish, never for a timer.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from telegram import Update
from telegram.ext import Application

from bot.app import build_application
from bot.clock import Clock
from bot.config import Settings
from tests.fake_bot_api import TOKEN, FakeBotAPI, StoredMessage


class TrackingApplication(Application):
    """Resolves a future when an update has been fully processed."""

    async def process_update(self, update: object) -> None:
        try:
            await super().process_update(update)
        finally:
            done = self.bot_data.get("_done", {})
            if isinstance(update, Update) and update.update_id in done:
                future = done.pop(update.update_id)
                if not future.done():
                    future.set_result(None)


class BotRunner:
    def __init__(self, fake: FakeBotAPI, settings: Settings, clock: Clock | None = None, *,
                 periodic_dispatch: bool = True) -> None:
        self.fake = fake
        self.settings = settings
        self.clock = clock
        self.periodic_dispatch = periodic_dispatch
        self.app: Application | None = None
        self._done: dict[int, asyncio.Future[None]] = {}

    async def start(self) -> Application:
        app = build_application(self.settings, token=TOKEN, clock=self.clock,
                                application_class=TrackingApplication)
        app.bot_data["_done"] = self._done
        await app.initialize()
        if app.post_init:
            await app.post_init(app)
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=2, allowed_updates=Update.ALL_TYPES)
        await app.start()
        if not self.periodic_dispatch:
            for job in app.job_queue.get_jobs_by_name("reminder-dispatcher"):
                job.enabled = False
        self.app = app
        return app

    async def stop(self) -> None:
        app, self.app = self.app, None
        if app is None:
            return
        if app.updater and app.updater.running:
            stopping = asyncio.create_task(app.updater.stop())
            while not stopping.done():
                await self.fake.release_polls()
                await asyncio.sleep(0.01)
            await stopping
        if app.running:
            await app.stop()
        if app.post_stop:
            await app.post_stop(app)
        await app.shutdown()
        if app.post_shutdown:
            await app.post_shutdown(app)

    async def restart(self) -> Application:
        await self.stop()
        return await self.start()

    async def deliver(self, update: dict[str, Any], timeout: float = 10.0) -> None:
        """Push an update through getUpdates and wait until every handler group has run."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._done[update["update_id"]] = future
        await self.fake.push_update(update)
        await asyncio.wait_for(future, timeout)


_user_ids = itertools.count(5001)


class TgUser:
    """A scripted Telegram user in a private chat with the bot."""

    def __init__(self, runner: BotRunner, first_name: str = "Anna", user_id: int | None = None,
                 last_name: str | None = None, language_code: str = "en") -> None:
        self.runner = runner
        self.fake = runner.fake
        self.id = user_id or next(_user_ids)
        self.user = {"id": self.id, "is_bot": False, "first_name": first_name,
                     "language_code": language_code}
        if last_name:
            self.user["last_name"] = last_name
        self.chat = {"id": self.id, "type": "private", "first_name": first_name}
        self._message_ids = itertools.count(1)

    # ------------------------------------------------------------------ acting
    def _message(self, **fields: Any) -> dict[str, Any]:
        return {"message_id": next(self._message_ids), "date": int(time.time()),
                "chat": self.chat, "from": self.user, **fields}

    async def send(self, text: str) -> list[StoredMessage]:
        fields: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            fields["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return await self.send_raw(self._message(**fields))

    async def send_raw(self, message: dict[str, Any], kind: str = "message") -> list[StoredMessage]:
        before = len(self.fake.calls)
        await self.runner.deliver({"update_id": self.fake.next_update_id(), kind: message})
        return self._shown_since(before)

    async def send_contact(self, phone: str) -> list[StoredMessage]:
        contact = {"phone_number": phone, "first_name": self.user["first_name"], "user_id": self.id}
        return await self.send_raw(self._message(contact=contact))

    async def press(self, label: str, message: StoredMessage | None = None) -> list[StoredMessage]:
        """Press the inline button labelled `label` (exact or prefix) on the latest keyboard."""
        message = message or self.last_keyboard_message()
        assert message is not None, "no message with a keyboard in this chat"
        data = None
        for row in (message.reply_markup or {}).get("inline_keyboard", []):
            for button in row:
                if button["text"] == label or button["text"].startswith(label):
                    data = button.get("callback_data")
                    break
            if data:
                break
        assert data is not None, f"no button {label!r} in {self.labels(message)}"
        return await self.press_data(data, message)

    async def press_data(self, data: str, message: StoredMessage | None = None) -> list[StoredMessage]:
        message = message or self.last_keyboard_message()
        assert message is not None
        before = len(self.fake.calls)
        query = {"id": f"q{self.fake.next_update_id()}", "from": self.user, "chat_instance": "ci",
                 "data": data, "message": message.as_api({"parse_mode": "HTML"})}
        await self.runner.deliver({"update_id": self.fake.next_update_id(), "callback_query": query})
        # This press, not any earlier one (a refused answer counts: the bot did answer).
        assert any(c.method == "answerCallbackQuery"
                   and str(c.params.get("callback_query_id")) == query["id"]
                   for c in self.fake.calls[before:]), f"the press {data!r} was never answered"
        return self._shown_since(before)

    # ------------------------------------------------------------------ observing
    def _shown_since(self, index: int) -> list[StoredMessage]:
        shown = []
        for call in self.fake.calls[index:]:
            if call.method in ("sendMessage", "editMessageText", "sendDocument") and call.status == 200 \
                    and str(call.params.get("chat_id")) == str(self.id):
                message_id = int(call.result["message_id"])
                stored = self.fake.messages[self.id].get(message_id)
                if stored is not None:
                    shown.append(stored)
        return shown

    @staticmethod
    def document_in(shown: list[StoredMessage]) -> StoredMessage:
        """The one file among the messages shown. The dispatcher runs on its own timer, so a due
        reminder may land in the chat among a command's replies: look for the file by kind."""
        (document,) = [m for m in shown if m.document]
        return document

    def last_keyboard_message(self) -> StoredMessage | None:
        chat = self.fake.messages.get(self.id) or {}
        for message_id in sorted(chat, reverse=True):
            if chat[message_id].reply_markup and chat[message_id].reply_markup.get("inline_keyboard"):
                return chat[message_id]
        return None

    @staticmethod
    def labels(message: StoredMessage | None) -> list[str]:
        if message is None or not message.reply_markup:
            return []
        return [b["text"] for row in message.reply_markup.get("inline_keyboard", []) for b in row]

    def last_text(self) -> str:
        message = self.fake.last_message(self.id)
        return message.text if message else ""
