"""Fuzz: random Telegram updates into the real Application through the fake Bot API.

Every update must be handled without an unhandled exception (the error handler is hooked and
ERROR log records are collected) and without a single Bot API spec violation. Private chats must
never be left silent. The default run is FUZZ_EXAMPLES=300; the full run is
`FUZZ_EXAMPLES=10000 python -m pytest tests/test_fuzz.py`.

The bot and the fake live on an event loop in a background thread for the whole module, so
hypothesis drives a plain synchronous test (and can shrink a failure to a minimal update).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_settings
from tests.fake_bot_api import BOT_USER, FakeBotAPI
from tests.harness import BotRunner

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
TEXT_LIMIT = 4096


class BackgroundBot:
    """The fake and a started BotRunner on their own loop; `call` runs a coroutine there."""

    def __init__(self, db_path: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-bot", daemon=True)
        self.thread.start()
        self.errors: list[str] = []
        self.db_path = db_path
        self.fake: FakeBotAPI = self.call(self._start())

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> FakeBotAPI:
        fake = FakeBotAPI()
        await fake.start()
        self.runner = BotRunner(fake, make_settings(fake, f"sqlite+aiosqlite:///{self.db_path}"))
        app = await self.runner.start()

        async def record(update: object, context: Any) -> None:
            self.errors.append(f"{type(context.error).__name__}: {context.error}")

        # First in line: the bot's own error handler stops the chain once it has replied.
        others = dict(app.error_handlers)
        app.error_handlers.clear()
        app.add_error_handler(record)
        app.error_handlers.update(others)
        self.node_ids = sorted(app.bot_data["services"].content.nodes)
        return fake

    async def _stop(self) -> None:
        await self.runner.stop()
        await self.fake.stop()

    def close(self) -> None:
        try:
            self.call(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()[:300]}")


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundBot]:
    background = BackgroundBot(tmp_path_factory.mktemp("fuzz") / "fuzz.db")
    yield background
    background.close()
    assert background.fake.violations == []


@pytest.fixture(scope="module")
def error_log() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


# ------------------------------------------------------------------------------- strategies

_ids = itertools.count(1)
_chars = st.characters(exclude_categories=("Cs",))  # Telegram never sends lone surrogates
_tricky = st.sampled_from(["<", ">", "&", "&amp;", "<b>", "</i>", "<a href='x'>", "\"", "'", "{",
                           "}", "{first_name}", "%s", "\\", "\x00", "\u200b", "\u202e", "🙂",
                           "👩‍⚕️", "💉", "🇬🇧", "\n", "\t", " ", "Ω", "ß", "中文", "مرحبا"])
texts = st.one_of(
    st.text(_chars, min_size=1, max_size=200),
    st.lists(st.one_of(_tricky, st.text(_chars, max_size=5)), min_size=1, max_size=40).map("".join),
    st.builds(lambda c, n: (c * n)[:TEXT_LIMIT], st.text(_chars, min_size=1, max_size=3),
              st.integers(1000, TEXT_LIMIT)),
).filter(lambda t: t.strip() != "")
commands = st.builds(
    lambda name, mention, args: f"/{name}{mention}{args}",
    st.one_of(st.sampled_from(["start", "menu", "help", "mydata", "forget", "cancel", "START"]),
              st.from_regex(r"[a-z0-9_]{1,32}", fullmatch=True)),
    st.sampled_from(["", "@clinic_test_bot", "@other_bot", "@"]),
    st.one_of(st.just(""), texts.map(lambda t: " " + t[:200])),
)
users = st.fixed_dictionaries(
    {"id": st.integers(1, 2**40), "is_bot": st.just(False),
     "first_name": st.text(_chars, min_size=1, max_size=64)},
    optional={"last_name": st.text(_chars, max_size=64),
              "username": st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{4,31}", fullmatch=True),
              "language_code": st.sampled_from(["en", "ru", "de", "uk", "pt-br", "xx", ""])},
)
chat_kinds = st.sampled_from(["private", "private", "private", "group", "supergroup"])


def _utf8_at_most(limit: int):
    return lambda s: 1 <= len(s.encode()) <= limit


@st.composite
def callback_data(draw: st.DrawFn, node_ids: list[str]) -> str:
    node = draw(st.sampled_from(node_ids)) if node_ids else "0" * 10
    return draw(st.one_of(
        st.text(_chars, min_size=1, max_size=64).filter(_utf8_at_most(64)),
        st.binary(min_size=1, max_size=64).map(lambda b: b.decode("latin-1")).filter(_utf8_at_most(64)),
        st.sampled_from(["home", "n:", "r:", "n:0000000000", f"n:{node}", f"r:{node}"]),
        st.builds(lambda k, p: f"{k}:{node}:{p}", st.sampled_from("nr"), st.integers(0, 999)),
        st.from_regex(r"[nr]:[0-9a-f]{10}(:[0-9]{1,3})?", fullmatch=True),
    ))


def _chat(kind: str, user: dict[str, Any]) -> dict[str, Any]:
    if kind == "private":
        return {"id": user["id"], "type": "private", "first_name": user["first_name"]}
    if kind == "group":
        return {"id": -user["id"], "type": "group", "title": "Group"}
    return {"id": -1_000_000_000_000 - user["id"], "type": "supergroup", "title": "Supergroup"}


@st.composite
def message_content(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["text", "text", "command", "contact", "sticker", "location",
                                 "photo", "caption-only"]))
    if kind == "text":
        return {"text": draw(texts)}
    if kind == "command":
        text = draw(commands)
        return {"text": text, "entities": [{"type": "bot_command", "offset": 0,
                                            "length": len(text.split()[0].encode("utf-16-le")) // 2}]}
    if kind == "contact":
        return {"contact": {"phone_number": draw(st.from_regex(r"\+?[0-9 ()-]{1,20}", fullmatch=True)),
                            "first_name": draw(st.text(_chars, min_size=1, max_size=30)),
                            **({"user_id": draw(st.integers(1, 2**40))} if draw(st.booleans()) else {})}}
    if kind == "sticker":
        return {"sticker": {"file_id": "CAAC", "file_unique_id": "AgAD", "type": "regular",
                            "width": 512, "height": 512, "is_animated": draw(st.booleans()),
                            "is_video": False, "emoji": "🙂"}}
    if kind == "location":
        return {"location": {"latitude": draw(st.floats(-90, 90)), "longitude": draw(st.floats(-180, 180))}}
    photo = [{"file_id": "AgAC", "file_unique_id": "AQAD", "width": 90, "height": 90}]
    if kind == "photo":
        return {"photo": photo}
    return {"photo": photo, "caption": draw(texts)[:1024]}


@st.composite
def updates(draw: st.DrawFn, bot: BackgroundBot) -> dict[str, Any]:
    user = draw(users)
    chat = _chat(draw(chat_kinds), user)
    now = int(time.time())
    kind = draw(st.sampled_from(["message", "message", "message", "edited_message",
                                 "callback_query", "callback_query", "channel_post",
                                 "edited_channel_post", "my_chat_member"]))
    update_id = 1_000_000 + next(_ids)
    if kind in ("message", "edited_message"):
        message = {"message_id": draw(st.integers(1, 2**31 - 1)), "date": now, "chat": chat,
                   "from": user, **draw(message_content())}
        if kind == "edited_message":
            message["edit_date"] = now
        return {"update_id": update_id, kind: message}
    if kind in ("channel_post", "edited_channel_post"):
        channel = {"id": -1_002_000_000_000 - user["id"] % 10**9, "type": "channel", "title": "News"}
        post = {"message_id": draw(st.integers(1, 2**31 - 1)), "date": now, "chat": channel,
                "sender_chat": channel, **draw(message_content())}
        return {"update_id": update_id, kind: post}
    if kind == "my_chat_member":
        member = {"user": BOT_USER, "status": "member"}
        return {"update_id": update_id, "my_chat_member": {
            "chat": chat, "from": user, "date": now, "old_chat_member": member,
            "new_chat_member": {"user": BOT_USER, "status": "kicked", "until_date": 0}}}
    # callback_query: on a message the bot really sent, one it never sent, or an inaccessible one
    # Draw the same things on every branch: hypothesis needs generation independent of state.
    target = draw(st.sampled_from(["known", "unknown", "inaccessible"]))
    message_id = draw(st.integers(1, 2**31 - 1))
    stored = bot.fake.last_message(chat["id"])
    if target == "known" and stored is not None:
        message = stored.as_api({"parse_mode": "HTML"})
        message["chat"] = chat
    elif target == "inaccessible":
        message = {"message_id": message_id, "date": 0, "chat": chat}
    else:
        message = {"message_id": message_id, "date": now, "chat": chat,
                   "from": BOT_USER, "text": "Main menu"}
    query = {"id": str(update_id), "from": user, "chat_instance": str(chat["id"]),
             "data": draw(callback_data(bot.node_ids)), "message": message}
    return {"update_id": update_id, "callback_query": query}


# ------------------------------------------------------------------------------------ test

def test_random_updates_never_crash_nor_violate_the_api(bot: BackgroundBot, error_log: ErrorLog):
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        update = data.draw(updates(bot))
        before = len(bot.fake.calls)
        bot.call(bot.runner.deliver(update))
        assert bot.errors == [], bot.errors
        assert error_log.records == [], error_log.records
        assert bot.fake.violations == [], bot.fake.violations
        calls = bot.fake.calls[before:]
        if "callback_query" in update:
            # A pressed button is always answered, or the patient's spinner never stops.
            assert any(c.method == "answerCallbackQuery" for c in calls), update
        message = update.get("message")
        if message and message["chat"]["type"] == "private":
            # Never silence in a private chat.
            # (/mydata from a known patient answers with a document, not a text.)
            assert any(c.method in ("sendMessage", "sendDocument") and str(c.params.get("chat_id")) ==
                       str(message["chat"]["id"]) for c in calls), update
        if message and message["chat"]["type"] != "private":
            assert not any(c.method == "sendMessage" for c in calls), "the bot spoke in a group"

    check()
    # The run really exercised the bot (a fuzz test that sends nothing proves nothing).
    assert len(bot.fake.calls_to("sendMessage")) > EXAMPLES // 10
    assert bot.fake.calls_to("answerCallbackQuery")
