#!/usr/bin/env python3
"""Update handling: the clinic bot vs a bare python-telegram-bot echo bot, measured in one run.

Two processes per bot, so the bot is charged only for its own work:
- "Telegram" (this process): the loopback fake Bot API (HTTP + spec validation of every call)
  and the N simulated patients. Each patient sends one update, waits until the fake has seen the
  bot's full reply to it, then sends the next.
- the bot, in a child process of its own (the real clinic Application, or a bare PTB echo bot),
  long-polling the fake over loopback HTTP.

Each clinic patient sends /start, presses 3 menu buttons (n:, r:, home), sends /menu, then
fills in the whole consultation questionnaire (consent, 13 answers by buttons, text and a
shared contact, review, submit: 20 updates, each an encrypted database write). A menu press is
answered with answerCallbackQuery + editMessageText (concurrently); an intake answer with the
callback answer, an edit of the question (the answer shown) and the next question. Every update
also passes the processed-update claim (a database write, group-committed). The echo bot gets
the same number of updates from the same number of users and answers each with one sendMessage.

An update is "handled" when the fake has received every reply call it expects for it in the
patient's chat: the callback answer (by query id) and the number of screens (editMessageText /
sendMessage) that step shows. Latency runs from the moment getUpdates hands the update to the
bot until that last reply call arrives, both timed in this process; throughput = updates / wall
time of the whole run. The bot process's CPU time during the run is read from /proc. The staff
notification of each submitted questionnaire (another chat) is counted, not waited for.

The echo bot runs twice: with PTB's default transport (httpx), which is "bare PTB", and with the
aiohttp transport the clinic bot uses (bot/transport.py), so the ratio can be read both ways.
A fourth bot, "same calls, no database", makes the clinic's Bot API calls for the clinic's
steps (told by each update how many screens to show) on the clinic's transport and concurrency,
and nothing else: it splits the gap between the echo bot and the clinic into what the Bot API
calls cost and what the clinic's own work (database, content, logic) costs.

  python benchmarks/updates_bench.py                  # 500 patients x 25 updates, SQLite
  python benchmarks/updates_bench.py --patients 100   # quicker
  python benchmarks/updates_bench.py --menus-only     # menu navigation only
  python benchmarks/updates_bench.py --database postgresql+asyncpg://postgres@127.0.0.1:5432/bench
  python benchmarks/updates_bench.py --profile /tmp/clinic.prof   # cProfile of the bot process

The database given must exist (it is migrated; the benchmark's rows are left in it); SQLite
files are made in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fake_bot_api import Call, FakeBotAPI  # noqa: E402

MENU_DATA = re.compile(r"^(n:|r:|home$)")
SCREEN_METHODS = {"sendMessage", "editMessageText"}
TICKS = os.sysconf("SC_CLK_TCK")
STAFF_CHAT = 42  # make_settings' staff id: questionnaire summaries go there
MENU_PRESSES = 3


def intake_script() -> list[tuple[str, str, int]]:
    """(kind, button label / text, screens shown in the patient's chat) from the main menu to a
    submitted questionnaire; the counts are what the bot shows for each step (checked: a
    mismatch shows up as errors)."""
    earliest = (datetime.now(UTC) + timedelta(days=60)).strftime("%d/%m/%Y")
    return [
        ("press", "📝 Book a consultation", 1), ("press", "✅ I agree", 2),
        ("press", "▫️ Facial rejuvenation", 1), ("press", "Done ✓", 2),
        ("press", "▫️ Face", 1), ("press", "Done ✓", 2),
        ("press", "No, never", 2), ("press", "Yes", 2), ("text", "Penicillin: I had a rash", 1),
        ("press", "Yes, blood thinners", 2), ("text", "Warfarin 5 mg daily", 1),
        ("press", "No", 2), ("press", "No", 2), ("press", "No", 2),
        ("contact", "+447911123456", 2),
        ("press", "▫️ Weekday mornings", 1), ("press", "Done ✓", 2), ("text", earliest, 1),
        ("press", "Skip ›", 2), ("press", "📨 Submit", 2),
    ]


def updates_per_patient() -> int:
    return 1 + MENU_PRESSES + 1 + len(intake_script())


# ---------------------------------------------------------------------------------- the bot side
def run_bot(kind: str, base_url: str, db_url: str, profile: str | None, echo_concurrency: int) -> None:
    """Child process: run one bot until stdin closes, then stop cleanly (and write the profile)."""
    import cProfile

    from telegram import Update
    from telegram.ext import Application, ContextTypes, MessageHandler, filters

    from bot.app import build_application
    from bot.transport import AiohttpRequest
    from tests.conftest import make_settings
    from tests.fake_bot_api import TOKEN

    logging.basicConfig(level=logging.WARNING)
    for noisy in ("httpx", "httpcore", "apscheduler", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    async def main() -> None:
        if kind == "calls":
            app = calls_application(base_url)
            await app.initialize()
        elif kind.startswith("echo"):
            async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
                await update.effective_message.reply_text(update.effective_message.text)

            builder = Application.builder().token(TOKEN).base_url(base_url)
            if kind == "echo-aiohttp":
                builder = builder.request(AiohttpRequest(256)).get_updates_request(AiohttpRequest(1))
            if echo_concurrency > 1:
                builder = builder.concurrent_updates(echo_concurrency)
            app = builder.build()
            app.add_handler(MessageHandler(filters.TEXT, echo))
            await app.initialize()
        else:
            fake = FakeBotAPI()  # only for make_settings; the server is the parent process
            fake.port = int(base_url.split(":")[2].split("/")[0])
            app = build_application(make_settings(fake, db_url), token=TOKEN)
            await app.initialize()
            if app.post_init:
                await app.post_init(app)
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        await app.updater.start_polling(poll_interval=0.0, timeout=2,
                                        allowed_updates=Update.ALL_TYPES)
        await app.start()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)  # the parent closes stdin to stop us
        await app.updater.stop()
        await app.stop()
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)
        await app.shutdown()
        if app.post_shutdown:
            await app.post_shutdown(app)

    asyncio.run(main())


def calls_application(base_url: str):  # noqa: ANN201
    """The clinic's Bot API traffic without the clinic: each update says how many screens to
    show ("e:N" on a button, "e N" in a message) and gets the calls the clinic makes for such a
    step (a press: the callback answer, concurrently with an edit of the pressed message, then
    N-1 new messages; a message: N new messages). Same transport and per-chat concurrency as the
    clinic bot, and a keyboard on every screen; no database, no content, no logic."""
    from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
    from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler

    from bot.transport import AiohttpRequest
    from bot.update_processor import PerChatOrderedProcessor
    from tests.fake_bot_api import TOKEN

    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton(f"Option {i}", callback_data=f"e:{i}")]
                                     for i in range(1, 5)])
    text = "<i>Question {} of 12</i>\n\n<b>A question of the usual length?</b>\n\n<i>/cancel</i>"

    async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        screens = int(query.data.split(":")[1])

        async def show() -> None:
            shown = text.format(update.update_id)  # an edit must change the message
            await query.edit_message_text(shown, reply_markup=keyboard)
            for _ in range(screens - 1):
                await context.bot.send_message(query.from_user.id, shown, reply_markup=keyboard)

        await asyncio.gather(query.answer(), show())

    async def on_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        for _ in range(int(update.effective_message.text.split()[1])):
            await context.bot.send_message(update.effective_chat.id, text.format(update.update_id),
                                           reply_markup=keyboard)

    from telegram.ext import filters

    app = (Application.builder().token(TOKEN).base_url(base_url)
           .request(AiohttpRequest(256)).get_updates_request(AiohttpRequest(1))
           .concurrent_updates(PerChatOrderedProcessor(32)).build())
    app.add_handler(CallbackQueryHandler(on_press))
    app.add_handler(MessageHandler(filters.TEXT, on_message))
    return app


# ----------------------------------------------------------------------------- the Telegram side
@dataclass
class Waiter:
    answer: bool  # a callbackQuery answer still expected
    screens: int  # screens still expected in the patient's chat
    future: asyncio.Future[float]
    handed_out: float = 0.0


@dataclass
class Result:
    name: str
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"menu": [], "intake": []})
    seconds: float = 0.0
    errors: int = 0
    bot_cpu: float = 0.0
    telegram_cpu: float = 0.0
    replies: int = 0
    expected_replies: int = 0
    staff_messages: int = 0
    api_calls: int = 0

    @property
    def all(self) -> list[float]:
        return [x for values in self.latencies.values() for x in values]

    @property
    def handled(self) -> int:
        return len(self.all)

    @property
    def throughput(self) -> float:
        return self.handled / self.seconds if self.seconds else 0.0

    def pct(self, q: float, kind: str | None = None) -> float:
        ordered = sorted(self.latencies[kind] if kind else self.all)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


class ObservingFake(FakeBotAPI):
    """The fake Bot API, telling each waiting patient when the bot's reply calls arrive."""

    def __init__(self) -> None:
        super().__init__()
        self.waiters: dict[int, Waiter] = {}  # chat id -> the patient's pending update
        self.reply_calls = 0  # calls that completed a patient's expectation
        self.api_calls = 0  # every call but getUpdates, start-up included
        self.unexpected: list[str] = []
        self.staff_messages = 0
        self.staff_expected = 0
        self.staff_done = asyncio.Event()
        self.failed_calls: list[str] = []

    def expect(self, chat_id: int, answer: bool, screens: int) -> asyncio.Future[float]:
        future = asyncio.get_running_loop().create_future()
        self.waiters[chat_id] = Waiter(answer, screens, future)
        return future

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        updates = await super()._get_updates(params)
        now = time.perf_counter()
        for update in updates:
            waiter = self.waiters.get(_chat_of_update(update))
            if waiter is not None and not waiter.handed_out:
                waiter.handed_out = now
        return updates

    async def _record(self, call: Call) -> None:
        # Only what the benchmark needs: the full call log of the tests is not kept.
        if call.method == "getUpdates":
            return
        self.api_calls += 1
        now = time.perf_counter()
        if call.method == "answerCallbackQuery":
            kind, chat_id = "answer", int(str(call.params["callback_query_id"]).split("-")[1])
        elif call.method in SCREEN_METHODS:
            kind, chat_id = "screen", int(call.params["chat_id"])
        else:
            return
        if call.status != 200:
            self.failed_calls.append(f"{call.method} -> {call.status}")
        if chat_id == STAFF_CHAT:
            self.staff_messages += 1
            if self.staff_messages >= self.staff_expected:
                self.staff_done.set()
            return
        waiter = self.waiters.get(chat_id)
        if waiter is None or (kind == "answer" and not waiter.answer) or (
                kind == "screen" and waiter.screens <= 0):
            self.unexpected.append(f"{call.method} in chat {chat_id}")
            return
        self.reply_calls += 1
        if kind == "answer":
            waiter.answer = False
        else:
            waiter.screens -= 1
        if not waiter.answer and waiter.screens == 0:
            del self.waiters[chat_id]
            if not waiter.future.done():
                waiter.future.set_result(now - waiter.handed_out)


def _chat_of_update(update: dict[str, Any]) -> int:
    if "callback_query" in update:
        return update["callback_query"]["from"]["id"]
    return update["message"]["chat"]["id"]


def _user(uid: int) -> dict[str, Any]:
    return {"id": uid, "is_bot": False, "first_name": f"P{uid}", "language_code": "en"}


def message_update(fake: FakeBotAPI, uid: int, **fields: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"message_id": fake.next_update_id(), "date": int(time.time()),
                               "chat": {"id": uid, "type": "private", "first_name": f"P{uid}"},
                               "from": _user(uid), **fields}
    text = fields.get("text", "")
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
    return {"update_id": fake.next_update_id(), "message": message}


def text_update(fake: FakeBotAPI, uid: int, text: str) -> dict[str, Any]:
    return message_update(fake, uid, text=text)


def _press(fake: FakeBotAPI, uid: int, stored: Any, data: str) -> dict[str, Any]:
    query = {"id": f"q-{uid}-{fake.next_update_id()}", "from": _user(uid),
             "chat_instance": "b", "data": data, "message": stored.as_api({"parse_mode": "HTML"})}
    return {"update_id": fake.next_update_id(), "callback_query": query}


def _newest_buttons(fake: FakeBotAPI, uid: int):
    chat = fake.messages.get(uid) or {}
    for message_id in sorted(chat, reverse=True):
        stored = chat[message_id]
        buttons = [b for row in (stored.reply_markup or {}).get("inline_keyboard", []) for b in row]
        if buttons:
            return stored, buttons
    return None, []


def press_menu_button(fake: FakeBotAPI, uid: int, rng: random.Random) -> dict[str, Any] | None:
    """A press of a random menu-navigation button on the patient's newest keyboard."""
    stored, buttons = _newest_buttons(fake, uid)
    buttons = [b for b in buttons if MENU_DATA.match(b.get("callback_data", ""))]
    return _press(fake, uid, stored, rng.choice(buttons)["callback_data"]) if buttons else None


def press_label(fake: FakeBotAPI, uid: int, label: str) -> dict[str, Any]:
    """A press of the button labelled `label` (exact, else prefix) on the newest keyboard."""
    stored, buttons = _newest_buttons(fake, uid)
    for match in (lambda t: t == label, lambda t: t.startswith(label)):
        for button in buttons:
            if match(button["text"]):
                return _press(fake, uid, stored, button["callback_data"])
    raise LookupError(f"patient {uid}: no button {label!r} in {[b['text'] for b in buttons]}")


async def send(fake: ObservingFake, update: dict[str, Any], result: Result, kind: str,
               screens: int = 1) -> bool:
    chat_id = _chat_of_update(update)
    press = "callback_query" in update
    result.expected_replies += screens + press
    future = fake.expect(chat_id, press, screens)
    await fake.push_update(update)
    try:
        result.latencies[kind].append(await asyncio.wait_for(future, 60))
        return True
    except TimeoutError:
        fake.waiters.pop(chat_id, None)
        result.errors += 1
        return False


async def clinic_patient(fake: ObservingFake, uid: int, result: Result,
                         menus_only: bool = False) -> None:
    rng = random.Random(uid)
    await send(fake, text_update(fake, uid, "/start"), result, "menu")
    presses = updates_per_patient() - 2 if menus_only else MENU_PRESSES
    for _ in range(presses):
        update = press_menu_button(fake, uid, rng) or text_update(fake, uid, "/menu")
        await send(fake, update, result, "menu")
    await send(fake, text_update(fake, uid, "/menu"), result, "menu")
    if menus_only:
        return
    for kind, arg, screens in intake_script():
        try:
            update = (press_label(fake, uid, arg) if kind == "press" else
                      text_update(fake, uid, arg) if kind == "text" else
                      message_update(fake, uid, contact={"phone_number": arg, "user_id": uid,
                                                         "first_name": f"P{uid}"}))
        except LookupError as exc:
            print(exc)
            result.errors += 1
            return
        if not await send(fake, update, result, "intake", screens):
            return


async def echo_patient(fake: ObservingFake, uid: int, result: Result,
                       menus_only: bool = False) -> None:
    for n in range(updates_per_patient()):
        await send(fake, text_update(fake, uid, f"hello {n}"), result,
                   "menu" if menus_only or n < 1 + MENU_PRESSES + 1 else "intake")


async def calls_patient(fake: ObservingFake, uid: int, result: Result,
                        menus_only: bool = False) -> None:
    """The clinic patient's steps, each asking for the screens the clinic shows for it."""
    steps = [("text", 1)] + [("press", 1)] * MENU_PRESSES + [("text", 1)]
    if menus_only:
        steps = [("text", 1)] + [("press", 1)] * (updates_per_patient() - 2) + [("text", 1)]
    else:
        steps += [("press" if kind == "press" else "text", screens)
                  for kind, _, screens in intake_script()]
    for n, (kind, screens) in enumerate(steps):
        chat = fake.messages.get(uid) or {}
        if kind == "press" and chat:
            update = _press(fake, uid, chat[max(chat)], f"e:{screens}")
        else:
            update = text_update(fake, uid, f"e {screens}")
        if not await send(fake, update, result, "menu" if n < 2 + MENU_PRESSES else "intake",
                          screens):
            return


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


async def measure(name: str, kind: str, patient, args: argparse.Namespace, db_url: str) -> Result:
    result = Result(name)
    fake = ObservingFake()
    await fake.start()
    polled = asyncio.get_running_loop().create_future()
    original_get_updates = fake._get_updates

    async def first_poll(params: dict[str, Any]) -> list[dict[str, Any]]:
        if not polled.done():
            polled.set_result(None)
        return await original_get_updates(params)

    fake._get_updates = first_poll  # type: ignore[method-assign]
    profile = args.profile if kind == "clinic" else None
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--bot", kind, "--base-url", fake.base_url, "--database", db_url,
        "--echo-concurrency", str(args.echo_concurrency), *(["--profile", profile] if profile else []),
        stdin=asyncio.subprocess.PIPE)
    try:
        await asyncio.wait_for(polled, 60)
        await asyncio.sleep(0.5)  # let start-up settle (set_my_commands, the first polls)
        bot_cpu, own_cpu = cpu_seconds(proc.pid), time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(patient(fake, 100_000 + n, result, args.menus_only)
                               for n in range(args.patients)))
        result.seconds = time.perf_counter() - started
        result.bot_cpu = cpu_seconds(proc.pid) - bot_cpu
        result.telegram_cpu = time.process_time() - own_cpu
        if kind == "clinic" and not args.menus_only:  # summaries come after the patient's screens
            fake.staff_expected = args.patients
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fake.staff_done.wait(), 10)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        await fake.release_polls()
        await asyncio.wait_for(proc.wait(), 60)
        await fake.stop()
    result.replies = fake.reply_calls
    result.api_calls = fake.api_calls
    result.staff_messages = fake.staff_messages
    problems = fake.violations + fake.failed_calls + fake.unexpected
    if problems:
        print(f"{name}: {len(problems)} failed, invalid or unexpected Bot API calls, "
              f"e.g. {problems[0]}")
        result.errors += len(problems)
    if result.replies != result.expected_replies:
        print(f"{name}: {result.replies} reply calls for {result.expected_replies} expected")
        result.errors += abs(result.replies - result.expected_replies)
    if kind == "clinic" and not args.menus_only and result.staff_messages != args.patients:
        print(f"{name}: {result.staff_messages} questionnaires reached staff, "
              f"{args.patients} submitted")
        result.errors += 1
    return result


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiohttp").setLevel(logging.ERROR)
    conc = "" if args.echo_concurrency == 1 else f", {args.echo_concurrency} conc."
    with tempfile.TemporaryDirectory() as tmp:
        db_url = args.database or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        results = [
            await measure(f"echo (bare PTB{conc})", "echo", echo_patient, args, db_url),
            await measure(f"echo (PTB+aiohttp{conc})", "echo-aiohttp", echo_patient, args, db_url),
            await measure("clinic bot", "clinic", clinic_patient, args, db_url),
            await measure("same calls, no database", "calls", calls_patient, args, db_url),
        ]

    backend = "PostgreSQL" if db_url.startswith("postgresql") else "SQLite"
    bare, echo_aio, clinic, calls = results
    script = (f"/start, {updates_per_patient() - 2} menu presses, /menu" if args.menus_only else
              f"/start, {MENU_PRESSES} menu presses, /menu, {len(intake_script())} questionnaire "
              "steps")
    print(f"\n{args.patients} patients x {updates_per_patient()} updates at once (clinic: {script}); "
          f"fake Bot API + patients in one process, each bot in its own; clinic bot on {backend}\n")
    print(f"{'bot':<26}{'updates':>8}{'errors':>7}{'seconds':>8}{'updates/s':>10}"
          f"{'p50 ms':>8}{'p99 ms':>8}{'calls/upd':>10}{'bot CPU ms/upd':>15}{'bot CPU':>8}"
          f"{'fake CPU':>9}")
    for r in results:
        n = max(1, r.handled)
        print(f"{r.name:<26}{r.handled:>8}{r.errors:>7}{r.seconds:>8.2f}{r.throughput:>10.1f}"
              f"{r.pct(0.50):>8.1f}{r.pct(0.99):>8.1f}{r.api_calls / n:>10.2f}"
              f"{r.bot_cpu / n * 1000:>15.2f}"
              f"{r.bot_cpu / r.seconds:>8.0%}{r.telegram_cpu / r.seconds:>9.0%}")
    for kind in ("menu", "intake"):
        print(f"  clinic {kind:<7} updates: {len(clinic.latencies[kind]):>6}, p50 "
              f"{clinic.pct(0.5, kind):.1f} ms, p99 {clinic.pct(0.99, kind):.1f} ms")
    print(f"  questionnaires submitted and sent to staff: {clinic.staff_messages}")
    ratio = clinic.throughput / bare.throughput if bare.throughput else 0.0
    ratio_aio = clinic.throughput / echo_aio.throughput if echo_aio.throughput else 0.0
    print(f"\nclinic / bare PTB echo throughput: {ratio:.0%}   (aim: >= 70%)")
    print(f"clinic / echo on the same aiohttp transport: {ratio_aio:.0%}")
    if calls.throughput and bare.throughput:
        print(f"same calls without database / bare PTB echo: {calls.throughput / bare.throughput:.0%}"
              f"   (the ceiling of the first ratio: the Bot API calls alone)")
        print(f"clinic / same calls without database: {clinic.throughput / calls.throughput:.0%}"
              f"   (what the database, content and logic cost)")
    print(f"mean latency: clinic {statistics.fmean(clinic.all or [0]) * 1000:.1f} ms, "
          f"bare echo {statistics.fmean(bare.all or [0]) * 1000:.1f} ms")
    print(f"""
Fairness notes:
- Same patients, same number of updates, same measurement for every bot: latency from
  getUpdates handing the update out to the fake receiving the bot's last reply call for it.
- The work differs by design: a clinic menu press makes 2 Bot API calls (answerCallbackQuery +
  editMessageText, concurrently), a questionnaire step up to 3 and an encrypted database write;
  every clinic update also makes the processed-update claim (a database write). The echo bot
  makes 1 call and no database work.
- "bare PTB" is PTB's defaults (httpx transport, {'sequential updates' if args.echo_concurrency
  == 1 else f'{args.echo_concurrency} concurrent updates'}); the clinic bot uses the aiohttp
  transport (the echo rows show what it saves) and processes up to 32 chats concurrently
  (PerChatOrderedProcessor). The second echo row has the same transport as the clinic bot; try
  --echo-concurrency 32 for the same concurrency too.
- "calls/upd" counts every Bot API call but getUpdates (the clinic's include each
  questionnaire's staff summary and start-up).
- "fake CPU" is the fake Bot API + patients process: near 100% means the fake, not the bot,
  limits throughput (it validates every call against the Bot API spec). The machine has
  {os.cpu_count()} CPUs; the bot and the fake compete for them.
- Loopback HTTP, no network latency: real Telegram adds tens of ms per call, which hides most of
  the difference in practice.""")
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=500)
    parser.add_argument("--database", help="database URL for the clinic bot (default: SQLite)")
    parser.add_argument("--menus-only", action="store_true",
                        help="clinic patients only navigate menus (no questionnaire)")
    parser.add_argument("--profile", help="write a cProfile of the clinic bot process here")
    parser.add_argument("--echo-concurrency", type=int, default=1,
                        help="concurrent updates for the echo bots (1 = PTB's default)")
    parser.add_argument("--bot", choices=("echo", "echo-aiohttp", "clinic", "calls"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    cli = parser.parse_args()
    if cli.bot:
        run_bot(cli.bot, cli.base_url, cli.database, cli.profile, cli.echo_concurrency)
        sys.exit(0)
    sys.exit(asyncio.run(main(cli)))
