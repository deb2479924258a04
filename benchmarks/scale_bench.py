#!/usr/bin/env python3
"""Scale: 1,000,000 stored appointments. Start-up time, memory and the due-reminder query stay flat.

The database grows in steps (default 10k -> 100k -> 1M appointments; 5 appointments per patient,
2 reminders each: one sent, one pending in the future, plus the same 200 reminders due now at
every step), written with bulk core inserts. At each step:
  - start-up: a fresh process imports the bot, builds the Application, initialises it against the
    fake Bot API (in its own process), runs post_init (migrations, commands) and the dispatcher's
    first sweep and claim query: wall time and peak RSS of that process;
  - due-reminder query: the dispatcher's expiry/recovery sweep, its claim query (the SELECT of
    due rows, LIMIT 2 x batch) and the UPDATE that marks 100 of them claimed (rolled back),
    median of 20 runs each, and the query plans (they must use an index / the primary key).

  python benchmarks/scale_bench.py                       # SQLite temp file, up to 1,000,000
  python benchmarks/scale_bench.py --steps 10000,100000
  python benchmarks/scale_bench.py --database postgresql+asyncpg://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select, text  # noqa: E402

from benchmarks.reminders_bench import fake_in_process  # noqa: E402
from bot.db.appointment_models import Appointment, Reminder  # noqa: E402
from bot.db.engine import Database  # noqa: E402
from bot.db.migrate import upgrade  # noqa: E402
from bot.db.models import Patient  # noqa: E402
from tests.conftest import TEST_ENCRYPTION_KEY, make_settings  # noqa: E402
from tests.fake_bot_api import TOKEN, FakeBotAPI  # noqa: E402

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CHUNK = 5000
DUE = 200

PROBE = r"""
import asyncio, json, resource, sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
from datetime import datetime, timezone
from bot.app import build_application
from bot.config import load_settings
from bot.reminders.dispatcher import DispatchStats

async def main():
    settings = load_settings(_env_file=None)
    app = build_application(settings)
    await app.initialize()
    await app.post_init(app)
    disp = app.bot_data["reminder_dispatcher"]
    now = datetime.fromisoformat(sys.argv[2])
    await disp._housekeeping(now, DispatchStats())   # the first run's sweep
    async with disp.db.session() as s:                # and its claim query (no sends)
        from benchmarks.scale_bench import due_query
        rows = (await s.execute(due_query(now, disp.engine.batch_size * 2))).all()
    elapsed = time.perf_counter() - t0
    await app.post_shutdown(app)
    await app.shutdown()
    print(json.dumps({"start": elapsed, "due": len(rows),
                      "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
asyncio.run(main())
"""


def due_query(now: datetime, limit: int):
    """The dispatcher's claim SELECT (bot/reminders/dispatcher.py `_claim`), without the lock."""
    return (select(Reminder.id, Reminder.quiet_ok, Reminder.expires_at, Patient.chat_id)
            .join(Patient, Patient.id == Reminder.patient_id)
            .where(Reminder.status == "pending", Reminder.due_at <= now, Reminder.expires_at > now,
                   Patient.chat_id.is_not(None), Patient.unreachable.is_(False))
            .order_by(Reminder.due_at, Reminder.id).limit(limit))


SQLITE_TIME = "strftime('%Y-%m-%d %H:%M:%S', '2026-12-01 09:00:00'{})  || '.000000'"
STARTS = SQLITE_TIME.format(", '+' || (1 + i % 300) || ' days', '+' || ((i % 40) * 15) || ' minutes'")
SEQ = "WITH RECURSIVE s(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM s WHERE i + 1 < :hi) "


async def grow_sqlite(db: Database, start: int, stop: int) -> None:
    """The same rows as `grow`, generated inside SQLite (a million rows in seconds, not minutes)."""
    now, yesterday = SQLITE_TIME.format(""), SQLITE_TIME.format(", '-1 days'")
    minute_ago = SQLITE_TIME.format(", '-1 minutes'")
    statements = [
        "INSERT INTO patients (id, telegram_user_id, chat_id, unreachable, created_at, last_seen_at) "
        + SEQ + f"SELECT i / 5 + 1, 30000000 + i / 5, 30000000 + i / 5, 0, {now}, {now} "
        "FROM s WHERE i % 5 = 0",
        "INSERT INTO appointments (id, patient_id, starts_at, duration_min, area, session_no, "
        "course_size, status, plan_version, created_at, updated_at) " + SEQ
        + f"SELECT i + 1, i / 5 + 1, {STARTS}, 45, 'face', 1, 4, 'booked', 1, {now}, {now} FROM s",
        "INSERT INTO reminders (key, appointment_id, patient_id, kind, due_at, expires_at, quiet_ok,"
        " status, sent_at, attempts, outcome_unknown, created_at) " + SEQ
        + f"SELECT 'appt:' || (i + 1) || '\\:confirmation', i + 1, i / 5 + 1, 'confirmation', "
        f"{yesterday}, {STARTS}, 1, 'sent', {yesterday}, 1, 0, {now} FROM s "
        + "UNION ALL SELECT 'appt:' || (i + 1) || '\\:same_day', i + 1, i / 5 + 1, 'same_day', "
        f"CASE WHEN i < {DUE} THEN {minute_ago} ELSE "
        f"strftime('%Y-%m-%d %H:%M:%S', '2026-12-01 09:00:00', '+' || (1 + i % 300) || ' days', "
        f"'+' || ((i % 40) * 15) || ' minutes', '-3 hours') || '.000000' END, {STARTS}, 1, "
        f"'pending', NULL, 0, 0, {now} FROM s",
    ]
    for lo in range(start, stop, 200_000):
        params = {"lo": lo, "hi": min(lo + 200_000, stop)}
        async with db.session() as session:
            for statement in statements:
                await session.execute(text(statement), params)


async def grow(db: Database, start: int, stop: int) -> None:
    if db.dialect == "sqlite":
        await grow_sqlite(db, start, stop)
        return
    per_patient = 5
    for lo in range(start, stop, CHUNK):
        hi = min(lo + CHUNK, stop)
        async with db.session() as session:
            pats = range(lo // per_patient, (hi + per_patient - 1) // per_patient)
            await session.execute(insert(Patient), [
                {"id": p + 1, "telegram_user_id": 30_000_000 + p, "chat_id": 30_000_000 + p,
                 "created_at": NOW, "last_seen_at": NOW} for p in pats if p * per_patient >= lo])
            appts, rems = [], []
            for i in range(lo, hi):
                starts = NOW + timedelta(days=1 + i % 300, minutes=(i % 40) * 15)
                appts.append({"id": i + 1, "patient_id": i // per_patient + 1, "starts_at": starts,
                              "duration_min": 45, "area": "face", "session_no": 1,
                              "course_size": 4, "status": "booked", "plan_version": 1,
                              "created_at": NOW, "updated_at": NOW})
                rems.append({"key": f"appt:{i + 1}:confirmation", "appointment_id": i + 1,
                             "patient_id": i // per_patient + 1, "kind": "confirmation",
                             "due_at": NOW - timedelta(days=1), "expires_at": starts,
                             "quiet_ok": True, "status": "sent", "sent_at": NOW - timedelta(days=1),
                             "attempts": 1, "outcome_unknown": False, "created_at": NOW})
                # the first DUE appointments' same-day reminders are due now; the rest later
                due = NOW - timedelta(minutes=1) if i < DUE else starts - timedelta(hours=3)
                rems.append({"key": f"appt:{i + 1}:same_day", "appointment_id": i + 1,
                             "patient_id": i // per_patient + 1, "kind": "same_day",
                             "due_at": due, "expires_at": starts, "quiet_ok": True,
                             "status": "pending", "attempts": 0, "outcome_unknown": False,
                             "created_at": NOW})
            await session.execute(insert(Appointment), appts)
            await session.execute(insert(Reminder), rems)


async def query_figures(db: Database) -> tuple[float, float, list[str]]:
    from bot.reminders.dispatcher import Dispatcher, DispatchStats, claim_statement
    from bot.reminders.plans import load_reminder_content

    settings = make_settings(FakeBotAPI(), db.url)  # the fake only names a URL: no sends here
    disp = Dispatcher(db, None, load_reminder_content(settings.content_dir), settings)  # type: ignore[arg-type]
    sweeps, claims, marks = [], [], []
    for _ in range(20):
        t = time.perf_counter()
        await disp._housekeeping(NOW, DispatchStats())
        sweeps.append(time.perf_counter() - t)
        t = time.perf_counter()
        async with db.session() as session:
            rows = (await session.execute(due_query(NOW, 200))).all()
        claims.append(time.perf_counter() - t)
        assert len(rows) == DUE, len(rows)
        # ...and the UPDATE that marks them 'sending' (rolled back, so every round finds them)
        ids = [row[0] for row in rows[:100]]
        t = time.perf_counter()
        async with db.engine.connect() as conn:
            transaction = await conn.begin()
            marked = (await conn.execute(claim_statement(ids, NOW, db.dialect))).all()
            await transaction.rollback()
        marks.append(time.perf_counter() - t)
        assert len(marked) == len(ids)
    plans = []
    async with db.engine.connect() as conn:  # EXPLAIN (without ANALYZE) runs nothing
        for statement in (due_query(NOW, 200), claim_statement(ids, NOW, db.dialect)):
            compiled = statement.compile(db.engine, compile_kwargs={"literal_binds": True,
                                                                    "render_postcompile": True})
            if db.dialect == "sqlite":
                plans.append([r[-1] for r in await conn.execute(
                    text(f"EXPLAIN QUERY PLAN {compiled}"))])
            else:
                plans.append([r[0] for r in await conn.execute(text(f"EXPLAIN {compiled}"))])
    return (statistics.median(sweeps) * 1000, statistics.median(claims) * 1000,
            statistics.median(marks) * 1000, plans)


def probe(url: str, base_url: str) -> dict[str, float]:
    env = {"BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": base_url, "DATABASE_URL": url,
           "ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY, "STAFF_IDS": "42", "LOG_LEVEL": "WARNING",
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", PROBE, str(ROOT), NOW.isoformat()], env=env,
                         cwd=tempfile.gettempdir(), capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


async def main(args: argparse.Namespace) -> None:
    base_url, server = await fake_in_process()
    tmp = tempfile.TemporaryDirectory()
    url = args.database or f"sqlite+aiosqlite:///{Path(tmp.name) / 'scale.db'}"
    db = Database(url)
    await upgrade(db)
    print(f"database: {db.dialect}; {DUE} reminders due at every size")
    print(f"{'appointments':>12} {'reminders':>10} {'insert s':>9} {'start s':>8} {'RSS MiB':>8} "
          f"{'sweep ms':>9} {'claim ms':>9} {'mark ms':>8}")
    done = 0
    plans: list[list[str]] = []
    try:
        for step in [int(s) for s in args.steps.split(",")]:
            t = time.perf_counter()
            await grow(db, done, step)
            inserted = time.perf_counter() - t
            done = step
            sweep, claim, mark, plans = await query_figures(db)
            figures = probe(url, base_url)
            assert figures["due"] == DUE
            print(f"{step:>12,} {2 * step:>10,} {inserted:>9.1f} {figures['start']:>8.2f} "
                  f"{figures['rss']:>8.0f} {sweep:>9.2f} {claim:>9.2f} {mark:>8.2f}", flush=True)
        for name, plan in zip(("claim query (SELECT of due rows)",
                               "mark claimed (UPDATE .. RETURNING, 100 ids)"), plans, strict=True):
            print(f"{name} plan:")
            for line in plan:
                print(f"  {line}")
    finally:
        await db.dispose()
        server.terminate()
        await server.wait()
        tmp.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", default="10000,100000,1000000",
                        help="appointment counts to measure at, ascending")
    parser.add_argument("--database", help="an empty database URL (default: a temp SQLite file)")
    asyncio.run(main(parser.parse_args()))
