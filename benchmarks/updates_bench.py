#!/usr/bin/env python3
"""Update handling: the clinic bot vs a bare python-telegram-bot echo bot, measured in one run.

N simulated patients act at once against the loopback fake Bot API: each sends /start and then
presses menu buttons (each press = answerCallbackQuery + editMessageText, each /start = a
database upsert, the processed-update claim + sendMessage). The echo bot gets the same number of
updates from the same number of users (one sendMessage each). Latency is measured from the moment
an update is handed to getUpdates until every handler group has finished with it.

  python benchmarks/updates_bench.py                  # 200 patients x 6 updates, SQLite
  python benchmarks/updates_bench.py --patients 500   # the issue's load figure
  python benchmarks/updates_bench.py --database postgresql+asyncpg://postgres@127.0.0.1:5432/bench

The database given must exist (it is migrated); SQLite files are made in a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from telegram import Update  # noqa: E402
from telegram.ext import Application, ContextTypes, MessageHandler, filters  # noqa: E402

from tests.conftest import make_settings  # noqa: E402
from tests.fake_bot_api import TOKEN, FakeBotAPI  # noqa: E402
from tests.harness import BotRunner, TrackingApplication  # noqa: E402


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    errors: int = 0

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


class EchoRunner(BotRunner):
    """The same harness, around a bare PTB application that echoes text."""

    async def start(self) -> Application:
        async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            await update.effective_message.reply_text(update.effective_message.text)

        app = (Application.builder().token(TOKEN).base_url(self.fake.base_url)
               .application_class(TrackingApplication).build())
        app.add_handler(MessageHandler(filters.TEXT, echo))
        app.bot_data["_done"] = self._done
        await app.initialize()
        await app.updater.start_polling(poll_interval=0.0, timeout=2,
                                        allowed_updates=Update.ALL_TYPES)
        await app.start()
        self.app = app
        return app


def _user(uid: int) -> dict[str, Any]:
    return {"id": uid, "is_bot": False, "first_name": f"P{uid}", "language_code": "en"}


def text_update(fake: FakeBotAPI, uid: int, text: str) -> dict[str, Any]:
    message: dict[str, Any] = {"message_id": fake.next_update_id(), "date": int(time.time()),
                               "chat": {"id": uid, "type": "private", "first_name": f"P{uid}"},
                               "from": _user(uid), "text": text}
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
    return {"update_id": fake.next_update_id(), "message": message}


def press_random_button(fake: FakeBotAPI, uid: int, rng: random.Random) -> dict[str, Any] | None:
    chat = fake.messages.get(uid) or {}
    for message_id in sorted(chat, reverse=True):
        stored = chat[message_id]
        buttons = [b for row in (stored.reply_markup or {}).get("inline_keyboard", []) for b in row]
        if buttons:
            data = rng.choice(buttons)["callback_data"]
            query = {"id": f"q{fake.next_update_id()}", "from": _user(uid), "chat_instance": "b",
                     "data": data, "message": stored.as_api({"parse_mode": "HTML"})}
            return {"update_id": fake.next_update_id(), "callback_query": query}
    return None


async def timed(runner: BotRunner, update: dict[str, Any], result: Result) -> None:
    start = time.perf_counter()
    try:
        await runner.deliver(update, timeout=120)
    except Exception:  # noqa: BLE001 - counted and reported
        result.errors += 1
        return
    result.latencies.append(time.perf_counter() - start)


async def clinic_patient(runner: BotRunner, uid: int, steps: int, result: Result) -> None:
    rng = random.Random(uid)
    await timed(runner, text_update(runner.fake, uid, "/start"), result)
    for _ in range(steps - 1):
        update = press_random_button(runner.fake, uid, rng)
        if update is None:
            update = text_update(runner.fake, uid, "/menu")
        await timed(runner, update, result)


async def echo_patient(runner: BotRunner, uid: int, steps: int, result: Result) -> None:
    for n in range(steps):
        await timed(runner, text_update(runner.fake, uid, f"hello {n}"), result)


async def measure(name: str, runner: BotRunner, patient, patients: int, steps: int) -> Result:
    result = Result(name)
    await runner.start()
    try:
        started = time.perf_counter()
        await asyncio.gather(*(patient(runner, 100_000 + n, steps, result) for n in range(patients)))
        result.seconds = time.perf_counter() - started
    finally:
        await runner.stop()
    violations = runner.fake.violations
    if violations:
        print(f"{name}: {len(violations)} Bot API spec violations, e.g. {violations[0]}")
        result.errors += len(violations)
    return result


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--steps", type=int, default=6, help="updates per patient")
    parser.add_argument("--database", help="database URL for the clinic bot (default: SQLite)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for noisy in ("httpx", "httpcore", "apscheduler", "aiosqlite"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    with tempfile.TemporaryDirectory() as tmp:
        db_url = args.database or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        results = []
        for name, make_runner, patient in (
            ("echo (bare PTB)", lambda fake: EchoRunner(fake, make_settings(fake, db_url)), echo_patient),
            ("clinic bot", lambda fake: BotRunner(fake, make_settings(fake, db_url)), clinic_patient),
        ):
            fake = FakeBotAPI()
            await fake.start()
            try:
                results.append(await measure(name, make_runner(fake), patient, args.patients, args.steps))
            finally:
                await fake.stop()

    backend = "PostgreSQL" if db_url.startswith("postgresql") else "SQLite"
    print(f"\n{args.patients} patients x {args.steps} updates at once, fake Bot API on loopback, "
          f"clinic bot on {backend}, sequential update processing (PTB default)\n")
    print(f"{'bot':<18}{'updates':>9}{'errors':>8}{'seconds':>9}{'updates/s':>11}"
          f"{'p50 ms':>9}{'p99 ms':>9}")
    for r in results:
        print(f"{r.name:<18}{len(r.latencies):>9}{r.errors:>8}{r.seconds:>9.2f}{r.throughput:>11.1f}"
              f"{r.pct(0.50):>9.1f}{r.pct(0.99):>9.1f}")
    echo, clinic = results
    ratio = clinic.throughput / echo.throughput if echo.throughput else 0.0
    print(f"\nclinic / echo throughput: {ratio:.0%}   (aim: >= 70%)")
    print(f"mean clinic latency {statistics.fmean(clinic.latencies) * 1000:.1f} ms, "
          f"echo {statistics.fmean(echo.latencies) * 1000:.1f} ms")
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
