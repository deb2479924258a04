#!/usr/bin/env python3
"""Update handling: the clinic bot vs a bare python-telegram-bot echo bot, measured in one run.

Two processes per bot, so the bot is charged only for its own work:
- "Telegram" (this process): the loopback fake Bot API (HTTP + spec validation of every call)
  and the N simulated patients. Each patient sends one update, waits until the fake has seen the
  bot's full reply to it, then sends the next.
- the bot, in a child process of its own (the real clinic Application, or a bare PTB echo bot),
  long-polling the fake over loopback HTTP.

The clinic patients send /start, then press menu buttons (n:, r:, home); a press is answered
with answerCallbackQuery + editMessageText (two calls, run concurrently), /start and /menu with
a database upsert + sendMessage; every update also passes the processed-update claim (one
database write). The echo bot gets the same number of updates from the same number of users and
answers each with one sendMessage.

An update is "handled" when the fake has received every reply call it expects for it: the
callback answer (by query id) and the screen (editMessageText/sendMessage in that chat) for a
press; the sendMessage for a text. Latency runs from the moment getUpdates hands the update to
the bot until that last reply call arrives, both timed in this process; throughput = updates /
wall time of the whole run. The bot process's CPU time during the run is read from /proc.

  python benchmarks/updates_bench.py                  # 200 patients x 6 updates, SQLite
  python benchmarks/updates_bench.py --patients 500   # the issue's load figure
  python benchmarks/updates_bench.py --database postgresql+asyncpg://postgres@127.0.0.1:5432/bench
  python benchmarks/updates_bench.py --profile /tmp/clinic.prof   # cProfile of the bot process

The database given must exist (it is migrated; the benchmark's rows are left in it); SQLite
files are made in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fake_bot_api import Call, FakeBotAPI  # noqa: E402

MENU_DATA = re.compile(r"^(n:|r:|home$)")
SCREEN_METHODS = {"sendMessage", "editMessageText"}
TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------- the bot side
def run_bot(kind: str, base_url: str, db_url: str, profile: str | None, echo_concurrency: int) -> None:
    """Child process: run one bot until stdin closes, then stop cleanly (and write the profile)."""
    import cProfile

    from telegram import Update
    from telegram.ext import Application, ContextTypes, MessageHandler, filters

    from bot.app import build_application
    from tests.conftest import make_settings
    from tests.fake_bot_api import TOKEN

    logging.basicConfig(level=logging.WARNING)
    for noisy in ("httpx", "httpcore", "apscheduler", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    async def main() -> None:
        if kind == "echo":
            async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
                await update.effective_message.reply_text(update.effective_message.text)

            builder = Application.builder().token(TOKEN).base_url(base_url)
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


# ----------------------------------------------------------------------------- the Telegram side
@dataclass
class Waiter:
    needs: set[str]  # "answer" and/or "screen"
    future: asyncio.Future[float]
    handed_out: float = 0.0


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: int = 0
    bot_cpu: float = 0.0
    telegram_cpu: float = 0.0
    replies: int = 0
    expected_replies: int = 0

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


class ObservingFake(FakeBotAPI):
    """The fake Bot API, telling each waiting patient when the bot's reply calls arrive."""

    def __init__(self) -> None:
        super().__init__()
        self.waiters: dict[int, Waiter] = {}  # chat id -> the patient's pending update
        self.reply_calls = 0
        self.failed_calls: list[str] = []

    def expect(self, chat_id: int, needs: set[str]) -> asyncio.Future[float]:
        future = asyncio.get_running_loop().create_future()
        self.waiters[chat_id] = Waiter(set(needs), future)
        return future

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        updates = await super()._get_updates(params)
        now = time.perf_counter()
        for update in updates:
            chat_id = _chat_of_update(update)
            waiter = self.waiters.get(chat_id)
            if waiter is not None and not waiter.handed_out:
                waiter.handed_out = now
        return updates

    async def _record(self, call: Call) -> None:
        # Only what the benchmark needs: the full call log of the tests is not kept.
        if call.method == "getUpdates":
            return
        now = time.perf_counter()
        if call.method == "answerCallbackQuery":
            kind, chat_id = "answer", int(str(call.params["callback_query_id"]).split("-")[1])
        elif call.method in SCREEN_METHODS:
            kind, chat_id = "screen", int(call.params["chat_id"])
        else:
            return
        self.reply_calls += 1
        if call.status != 200:
            self.failed_calls.append(f"{call.method} -> {call.status}")
        waiter = self.waiters.get(chat_id)
        if waiter is None or kind not in waiter.needs:
            return
        waiter.needs.discard(kind)
        if not waiter.needs:
            del self.waiters[chat_id]
            if not waiter.future.done():
                waiter.future.set_result(now - waiter.handed_out)


def _chat_of_update(update: dict[str, Any]) -> int:
    if "callback_query" in update:
        return update["callback_query"]["from"]["id"]
    return update["message"]["chat"]["id"]


def _user(uid: int) -> dict[str, Any]:
    return {"id": uid, "is_bot": False, "first_name": f"P{uid}", "language_code": "en"}


def text_update(fake: FakeBotAPI, uid: int, text: str) -> dict[str, Any]:
    message: dict[str, Any] = {"message_id": fake.next_update_id(), "date": int(time.time()),
                               "chat": {"id": uid, "type": "private", "first_name": f"P{uid}"},
                               "from": _user(uid), "text": text}
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
    return {"update_id": fake.next_update_id(), "message": message}


def press_menu_button(fake: FakeBotAPI, uid: int, rng: random.Random) -> dict[str, Any] | None:
    """A press of a random menu-navigation button on the patient's newest keyboard."""
    chat = fake.messages.get(uid) or {}
    for message_id in sorted(chat, reverse=True):
        stored = chat[message_id]
        buttons = [b for row in (stored.reply_markup or {}).get("inline_keyboard", []) for b in row
                   if MENU_DATA.match(b.get("callback_data", ""))]
        if buttons:
            data = rng.choice(buttons)["callback_data"]
            query = {"id": f"q-{uid}-{fake.next_update_id()}", "from": _user(uid),
                     "chat_instance": "b", "data": data,
                     "message": stored.as_api({"parse_mode": "HTML"})}
            return {"update_id": fake.next_update_id(), "callback_query": query}
    return None


async def send(fake: ObservingFake, update: dict[str, Any], result: Result) -> None:
    chat_id = _chat_of_update(update)
    needs = {"answer", "screen"} if "callback_query" in update else {"screen"}
    result.expected_replies += len(needs)
    future = fake.expect(chat_id, needs)
    await fake.push_update(update)
    try:
        result.latencies.append(await asyncio.wait_for(future, 60))
    except TimeoutError:
        fake.waiters.pop(chat_id, None)
        result.errors += 1


async def clinic_patient(fake: ObservingFake, uid: int, steps: int, result: Result) -> None:
    rng = random.Random(uid)
    await send(fake, text_update(fake, uid, "/start"), result)
    for _ in range(steps - 1):
        update = press_menu_button(fake, uid, rng) or text_update(fake, uid, "/menu")
        await send(fake, update, result)


async def echo_patient(fake: ObservingFake, uid: int, steps: int, result: Result) -> None:
    for n in range(steps):
        await send(fake, text_update(fake, uid, f"hello {n}"), result)


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
        await asyncio.gather(*(patient(fake, 100_000 + n, args.steps, result)
                               for n in range(args.patients)))
        result.seconds = time.perf_counter() - started
        result.bot_cpu = cpu_seconds(proc.pid) - bot_cpu
        result.telegram_cpu = time.process_time() - own_cpu
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        await fake.release_polls()
        await asyncio.wait_for(proc.wait(), 60)
        await fake.stop()
    result.replies = fake.reply_calls
    problems = fake.violations + fake.failed_calls
    if problems:
        print(f"{name}: {len(problems)} failed or invalid Bot API calls, e.g. {problems[0]}")
        result.errors += len(problems)
    if result.replies != result.expected_replies:
        print(f"{name}: {result.replies} reply calls for {result.expected_replies} expected")
        result.errors += abs(result.replies - result.expected_replies)
    return result


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiohttp").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        db_url = args.database or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        echo_name = "echo (bare PTB)" if args.echo_concurrency == 1 else \
            f"echo (PTB, {args.echo_concurrency} conc.)"
        results = [await measure(echo_name, "echo", echo_patient, args, db_url),
                   await measure("clinic bot", "clinic", clinic_patient, args, db_url)]

    backend = "PostgreSQL" if db_url.startswith("postgresql") else "SQLite"
    echo, clinic = results
    print(f"\n{args.patients} patients x {args.steps} updates at once; fake Bot API + patients in "
          f"one process, each bot in its own; clinic bot on {backend}\n")
    print(f"{'bot':<24}{'updates':>8}{'errors':>7}{'seconds':>8}{'updates/s':>10}"
          f"{'p50 ms':>8}{'p99 ms':>8}{'bot CPU ms/upd':>15}{'bot CPU':>8}{'fake CPU':>9}")
    for r in results:
        n = max(1, len(r.latencies))
        print(f"{r.name:<24}{len(r.latencies):>8}{r.errors:>7}{r.seconds:>8.2f}{r.throughput:>10.1f}"
              f"{r.pct(0.50):>8.1f}{r.pct(0.99):>8.1f}{r.bot_cpu / n * 1000:>15.2f}"
              f"{r.bot_cpu / r.seconds:>8.0%}{r.telegram_cpu / r.seconds:>9.0%}")
    ratio = clinic.throughput / echo.throughput if echo.throughput else 0.0
    print(f"\nclinic / echo throughput: {ratio:.0%}   (aim: >= 70%)")
    print(f"mean latency: clinic {statistics.fmean(clinic.latencies or [0]) * 1000:.1f} ms, "
          f"echo {statistics.fmean(echo.latencies or [0]) * 1000:.1f} ms")
    print(f"""
Fairness notes:
- Same patients, same number of updates, same measurement for both bots: latency from getUpdates
  handing the update out to the fake receiving the bot's last reply call for it.
- The work differs by design: a clinic menu press makes 2 Bot API calls (answerCallbackQuery +
  editMessageText, concurrently) and /start a database upsert; every clinic update also makes
  the processed-update claim (a database write). The echo bot makes 1 call and no database work.
- The echo bot runs PTB's defaults ({'sequential updates' if args.echo_concurrency == 1 else
  f'{args.echo_concurrency} concurrent updates'}); the clinic bot processes up to 32 chats
  concurrently (PerChatOrderedProcessor). Try --echo-concurrency 32 for the echo bot with the
  same concurrency.
- "fake CPU" is the fake Bot API + patients process: near 100% means the fake, not the bot,
  limits throughput (it validates every call against the Bot API spec). The machine has
  {os.cpu_count()} CPUs; the bot and the fake compete for them.
- Loopback HTTP, no network latency: real Telegram adds tens of ms per call, which hides most of
  the difference in practice.""")
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--steps", type=int, default=6, help="updates per patient")
    parser.add_argument("--database", help="database URL for the clinic bot (default: SQLite)")
    parser.add_argument("--profile", help="write a cProfile of the clinic bot process here")
    parser.add_argument("--echo-concurrency", type=int, default=1,
                        help="concurrent updates for the echo bot (1 = PTB's default)")
    parser.add_argument("--bot", choices=("echo", "clinic"), help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    cli = parser.parse_args()
    if cli.bot:
        run_bot(cli.bot, cli.base_url, cli.database, cli.profile, cli.echo_concurrency)
        sys.exit(0)
    sys.exit(asyncio.run(main(cli)))
