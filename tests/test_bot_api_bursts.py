"""The Bot API answering bursts of 429, 5xx, timeouts (some after delivering the message) and 403
while 300 reminders go out: none lost, a repeat only where the outcome was unknown (recorded as
such), a 403 marks the patient unreachable, cancels their other reminders and tells staff."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select
from telegram import Bot

from bot.db.appointment_models import Reminder
from bot.db.engine import Database
from bot.db.migrate import upgrade
from bot.db.models import Patient
from bot.reminders.dispatcher import Dispatcher, DispatchStats
from bot.reminders.plans import load_reminder_content
from tests.conftest import make_settings
from tests.fake_bot_api import TOKEN, FakeBotAPI
from tests.fault_helpers import CHAT_BASE, fast_content, reminder_rows, seed_due_reminders

N = 300
BLOCKED = [CHAT_BASE + i for i in (3, 50, 51, 140, 299)]
LATE_DELIVERED = 5


async def test_bursts_of_bot_api_errors(fake: FakeBotAPI, tmp_path: Path):
    content_dir = fast_content(tmp_path, send_timeout=2, max_attempts=8, concurrency=8)
    settings = make_settings(fake, f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}",
                             content_dir=content_dir)
    content = load_reminder_content(content_dir)
    now = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    db = Database(settings.database_url)
    await upgrade(db)
    await seed_due_reminders(db, N, now)
    async with db.session() as session:  # the blocked patients also have a later reminder
        await session.execute(insert(Reminder), [
            {"key": f"appt:{c - CHAT_BASE + 1}:later", "appointment_id": c - CHAT_BASE + 1,
             "patient_id": c - CHAT_BASE + 1, "kind": "same_day", "due_at": now + timedelta(hours=2),
             "expires_at": now + timedelta(hours=3), "quiet_ok": True, "status": "pending",
             "attempts": 0, "outcome_unknown": False, "created_at": now} for c in BLOCKED])
    for chat in BLOCKED:
        fake.block(chat)
    send = "sendMessage"
    fake.fail_next(send, 429, retry_after=1, count=40)
    fake.fail_next(send, 500, count=25)
    # Delays well past send_timeout, which is itself well past any pause of a busy machine.
    fake.fail_next(send, 504, count=8, delay=3)              # timed out, not delivered
    fake.fail_next(send, 502, count=15)
    fake.fail_next(send, 200, count=LATE_DELIVERED, delay=3, deliver=True)  # delivered, late
    fake.fail_next(send, 429, retry_after=2, count=20)
    fake.fail_next(send, 503, count=10)

    staff: list[str] = []

    async def notify(text: str) -> None:
        staff.append(text)

    bot = Bot(TOKEN, base_url=fake.base_url)
    await bot.initialize()
    dispatcher = Dispatcher(db, bot, content, settings, notify_staff=notify, rate_limit=False)
    total = DispatchStats()
    clock = now
    try:
        for _ in range(200):
            total.add(await dispatcher.run(clock))
            rows = await reminder_rows(db)
            if all(r.status not in ("pending", "sending") or r.due_at > now + timedelta(hours=1)
                   for r in rows):
                break
            clock += timedelta(seconds=45)
    finally:
        await bot.shutdown()
    assert not any(fake.faults.values()), "every burst was served"
    rows = await reminder_rows(db)
    by_patient: dict[int, list[Reminder]] = {}
    for r in rows:
        by_patient.setdefault(r.patient_id, []).append(r)
    per_chat = Counter(int(c.params["chat_id"]) for c in fake.calls_to(send))
    blocked_ids = {c - CHAT_BASE + 1 for c in BLOCKED}
    for pid, own in by_patient.items():
        chat = CHAT_BASE + pid - 1
        if pid in blocked_ids:
            assert sorted(r.status for r in own) == ["cancelled", "failed"]
            assert per_chat[chat] == 0
        else:
            (row,) = own
            assert row.status == "sent", (row.status, row.last_error)  # none lost
            assert per_chat[chat] >= 1
            if per_chat[chat] > 1:
                assert per_chat[chat] == 2 and row.outcome_unknown  # repeated only if unknown
    assert sum(per_chat.values()) - (N - len(BLOCKED)) == LATE_DELIVERED
    async with db.session() as session:
        unreachable = set((await session.execute(
            select(Patient.id).where(Patient.unreachable.is_(True)))).scalars())
    assert unreachable == blocked_ids
    assert sorted(staff) == sorted(
        f"Patient #{pid} has blocked the bot; their 1 pending reminder(s) were cancelled."
        for pid in blocked_ids)
    assert len(staff) == len(BLOCKED) and total.unreachable == len(BLOCKED)
    assert total.rate_limited >= 60 and total.retried >= 60 and total.dead == 0
    await db.dispose()
