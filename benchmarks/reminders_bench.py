#!/usr/bin/env python3
"""Reminder engine: plan 100,000 appointments, then dispatch 10,000 due reminders.

1. Planning: the pure planner for N appointments spread over 90 days (rate), then the same
   plans written to the database in bulk (appointments + reminder rows; rate).
2. Dispatch: 10,000 of the booking confirmations are left due (the rest marked sent), so the
   dispatcher claims and sends them while ~5 future reminders per appointment stay stored;
   against the loopback fake Bot API with the dispatcher's own rate limit off.
Peak memory is the process's peak resident set size (ru_maxrss) after each phase; the dispatch
claims in fixed batches, so its memory does not grow with the number of stored reminders.

  python benchmarks/reminders_bench.py                     # 100,000 planned, 10,000 sent
  python benchmarks/reminders_bench.py --appointments 20000 --dispatch 2000
  python benchmarks/reminders_bench.py --appointments 5000 --dispatch 900 --rate-limited
  python benchmarks/reminders_bench.py --database postgresql+asyncpg://postgres@127.0.0.1:5432/bench
  python benchmarks/reminders_bench.py --appointments 5000 --dispatch 900 --rate-limited \
      --instances 2 --database postgresql+asyncpg://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select, update  # noqa: E402
from telegram import Bot  # noqa: E402

from bot.db.appointment_models import Appointment, Reminder  # noqa: E402
from bot.db.engine import Database  # noqa: E402
from bot.db.migrate import upgrade  # noqa: E402
from bot.db.models import Patient  # noqa: E402
from bot.reminders.dispatcher import Dispatcher, DispatchStats  # noqa: E402
from bot.reminders.planner import AppointmentFacts, QuietHours, plan_appointment  # noqa: E402
from bot.reminders.plans import load_reminder_content  # noqa: E402
from bot.transport import AiohttpRequest  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.fake_bot_api import TOKEN, FakeBotAPI  # noqa: E402

CHUNK = 2000
FAKE_SERVER = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from tests.fake_bot_api import FakeBotAPI
async def main():
    limit = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] != "0" else None
    fake = FakeBotAPI(rate_limit_per_second=limit)
    await fake.start()
    print(fake.port, flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


async def fake_in_process(rate_limit: int = 0) -> tuple[str, asyncio.subprocess.Process]:
    """The fake Bot API in its own process, so its work does not count as the dispatcher's;
    with rate_limit, it answers 429 to sends beyond that many in any second, like Telegram."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FAKE_SERVER, str(ROOT), str(rate_limit),
        stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    port = int((await proc.stdout.readline()).decode().strip())
    return f"http://127.0.0.1:{port}/bot", proc


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    fake = FakeBotAPI()  # only for its settings; the server runs in a separate process
    base_url, server = await fake_in_process(30 if args.rate_limited else 0)
    fake.port = int(base_url.split(":")[2].split("/")[0])
    tmp = tempfile.TemporaryDirectory()
    url = args.database or f"sqlite+aiosqlite:///{Path(tmp.name) / 'bench.db'}"
    settings = make_settings(fake, url, rate_limiter=False)
    content = load_reminder_content(settings.content_dir)
    quiet = QuietHours(settings.quiet_hours_start, settings.quiet_hours_end, settings.tz)
    db = Database(url)
    await upgrade(db)
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    n = args.appointments

    facts = [AppointmentFacts(i + 1, now + timedelta(hours=3 + (i * 7) % (90 * 24), minutes=(i % 4) * 15),
                              60, 1 + i % 4, 4) for i in range(n)]
    started = time.perf_counter()
    plans = [plan_appointment(f, content.plans, now, quiet) for f in facts]
    planning = time.perf_counter() - started
    rows = sum(len(p) for p in plans)
    print(f"planning (pure):    {n:>7,} appointments in {planning:6.2f} s = "
          f"{n / planning:>9,.0f} appointments/s ({rows:,} reminders)")
    print(f"  peak memory after planning: {peak_mib():,.0f} MiB")

    started = time.perf_counter()
    async with db.session() as session:
        for lo in range(0, n, CHUNK):
            part = range(lo, min(lo + CHUNK, n))
            await session.execute(insert(Patient), [
                {"id": i + 1, "telegram_user_id": 10_000_000 + i, "chat_id": 10_000_000 + i,
                 "created_at": now, "last_seen_at": now} for i in part])
            await session.execute(insert(Appointment), [
                {"id": facts[i].id, "patient_id": i + 1, "starts_at": facts[i].starts_at,
                 "duration_min": 60, "area": "face", "session_no": facts[i].session_no,
                 "course_size": 4, "status": "booked", "plan_version": 1, "created_at": now,
                 "updated_at": now} for i in part])
            await session.execute(insert(Reminder), [
                {"key": p.key, "appointment_id": facts[i].id, "patient_id": i + 1, "kind": p.kind,
                 "due_at": p.due_at, "expires_at": p.expires_at, "quiet_ok": p.quiet_ok,
                 "status": "pending", "attempts": 0, "outcome_unknown": False, "created_at": now}
                for i in part for p in plans[i]])
    storing = time.perf_counter() - started
    print(f"planning + storing: {n:>7,} appointments in {storing:6.2f} s = "
          f"{n / storing:>9,.0f} appointments/s")
    del plans, facts

    # Leave `dispatch` confirmations due; the others count as already sent.
    async with db.session() as session:
        await session.execute(update(Reminder).where(
            Reminder.kind == "confirmation", Reminder.appointment_id > args.dispatch)
            .values(status="sent", sent_at=now))
    # One instance, or several (each its own engine and bot, as separate processes would be)
    # sharing the database: on PostgreSQL one of them dispatches at a time.
    dbs = [db] + [Database(url) for _ in range(args.instances - 1)]
    bots = [Bot(TOKEN, base_url=fake.base_url, request=AiohttpRequest())  # as the application
            for _ in dbs]
    for bot in bots:
        await bot.initialize()
    dispatchers = [Dispatcher(d, b, content, settings, rate_limit=args.rate_limited)
                   for d, b in zip(dbs, bots, strict=True)]
    before = peak_mib()
    stats = DispatchStats()

    async def instance(dispatcher: Dispatcher) -> None:
        at = now
        while True:
            got = await dispatcher.run(at)
            stats.add(got)
            if stats.sent >= args.dispatch:
                return
            if got.elsewhere:
                await asyncio.sleep(0.2)  # another instance is dispatching: try again shortly
            elif got.rate_limited:
                at += timedelta(seconds=60)  # 429s: their retry is due
            elif args.instances == 1 or not got.claimed:
                return  # nothing left due (the check after the run says if any was not sent)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(instance(d) for d in dispatchers))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    sent = stats.sent
    assert sent == args.dispatch, stats
    async with db.session() as session:  # every outcome really recorded, none left claimed
        recorded = await session.scalar(select(func.count()).select_from(Reminder).where(
            Reminder.kind == "confirmation", Reminder.status == "sent",
            Reminder.message_id.is_not(None)))
        claimed = await session.scalar(select(func.count()).select_from(Reminder).where(
            Reminder.status == "sending"))
    assert recorded == args.dispatch and claimed == 0, (recorded, claimed)
    if args.rate_limited:
        rate = sent / elapsed
        together = f", {args.instances} instances together" if args.instances > 1 else ""
        print(f"dispatch, rate limiter ON{together}: {sent:,} reminders in {elapsed:6.2f} s = "
              f"{rate:5.2f} messages/s sustained ({rate / 30:.1%} of Telegram's 30/s; the engine "
              f"paces at {content.engine.max_per_second:g}/s); 429s answered by the fake "
              f"(30/s enforced): {stats.rate_limited}")
    mode = "rate limit ON, fake enforcing 30/s" if args.rate_limited else "rate limit off"
    print(f"dispatch:           {sent:>7,} reminders    in {elapsed:6.2f} s = "
          f"{sent / elapsed:>9,.0f} reminders/s (fake Bot API in its own process, {mode})")
    print(f"  dispatcher overhead: {cpu:.2f} CPU s in the bot process = {sent / cpu:,.0f} "
          f"reminders per CPU second (claim, render, PTB request, record)")
    print(f"  peak memory: {before:,.0f} MiB before dispatch, {peak_mib():,.0f} MiB after "
          f"({rows - args.dispatch:,} future reminders stored)")
    for bot in bots:
        await bot.shutdown()
    for d in dbs:
        await d.dispose()
    server.terminate()
    await server.wait()
    tmp.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--appointments", type=int, default=100_000)
    parser.add_argument("--dispatch", type=int, default=10_000)
    parser.add_argument("--rate-limited", action="store_true",
                        help="dispatcher pacing on, fake enforcing Telegram's 30 messages/s "
                             "(use with e.g. --dispatch 900: it runs at about 27/s)")
    parser.add_argument("--database", help="an existing database URL (default: a temp SQLite file)")
    parser.add_argument("--instances", type=int, default=1,
                        help="dispatchers sharing the database, as separate instances would "
                             "(PostgreSQL only: SQLite serves one process)")
    parsed = parser.parse_args()
    if parsed.instances > 1 and not (parsed.database or "").startswith("postgresql"):
        parser.error("--instances above 1 needs --database postgresql+asyncpg://...")
    asyncio.run(main(parsed))
