"""The outbox dispatcher: claim due reminder rows, send them, record the outcome.

`Dispatcher.run(now)` is a function of an injected `now` (tests move time by hand); one PTB
JobQueue job calls it with the service clock. All state lives in the database: a row is
pending -> sending (claimed) -> sent | failed | dead | expired | cancelled. A row left in
'sending' by a crash is put back to pending with outcome_unknown set once its lease runs out.

One run at a time across instances: on PostgreSQL a run holds an advisory lock
(`bot/db/exclusive.py`); an instance that finds it taken skips its run. Telegram's limits (~30/s,
~1/s per chat) are the bot's, so two instances pacing each for itself would break them; the
lock is freed with its connection, so a killed instance's work is taken up at the next tick.
Pacing lives in the process, so a run keeps the lock until what it used of the limits has run
out (a 429 pause; the per-chat second, if it held a chat's next reminder back for it).

Claiming: `SELECT ... FOR UPDATE SKIP LOCKED` on PostgreSQL (so two runs never share a row, even
if the lock was lost mid-run), then a guarded `UPDATE ... WHERE status='pending' RETURNING id`
(the only guard SQLite needs, where one dispatcher process runs).

Recording: each outcome is committed right after its send (inside the concurrency slot), so a
crash (SIGKILL) leaves at most `concurrency` sends unrecorded; those rows come back as
outcome_unknown and are sent again. If the database goes away mid-run, outcomes already known
are kept in memory, no further send starts, and they are recorded first once it is back.

Errors (subclasses first: BadRequest and TimedOut are NetworkErrors):
  RetryAfter(n)  -> due = now + n, not an attempt; all sending pauses n seconds, from then on
  Forbidden      -> patient unreachable, their future reminders cancelled, staff told
  BadRequest     -> dead letter, staff told (usually a bug)
  TimedOut       -> attempt with outcome unknown, jittered backoff; then dead letter, staff told
  NetworkError   -> (5xx and the like) the same without the unknown mark
Pacing: an overall limit of evenly spaced sends (below Telegram's ~30/s, real time) and one message per
chat per `per_chat_seconds` of the injected time (so at most one per chat per run), on top of
PTB's AIORateLimiter.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Update, and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut

from bot import telegram_html
from bot.clock import Clock
from bot.config import Settings
from bot.db.appointment_models import Appointment, Reminder
from bot.db.engine import Database
from bot.db.errors import is_db_unavailable
from bot.db.exclusive import Holding, alone
from bot.db.group_commit import GroupCommit
from bot.db.models import Patient
from bot.db.preference_models import Broadcast, PatientPreference
from bot.preferences import from_columns
from bot.reminders.planner import QuietHours
from bot.reminders.plans import ReminderContent
from bot.reminders.render import reminder_message
from bot.reminders.service import (
    FORBIDDEN,
    NEXT_BOOKED,
    UNREACHABLE,
    next_booked,
    replan_unblocked,
)

log = logging.getLogger(__name__)

BEFORE_KINDS = {"confirmation", "preparation", "same_day", "push_before"}
Notify = Callable[[str], Awaitable[None]]
RUN_LOCK = "reminder-dispatcher"
MAX_NAP_SECONDS = 0.5  # a send waiting out a pause looks this often whether the bot is stopping
MAX_SETTLE_SECONDS = 30.0  # the longest a run keeps the lock after its work to hand over cleanly
FRESH_CLAIM_SECONDS = 0.5  # claims younger than this are sent without re-reading the row


@dataclass
class DispatchStats:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    rate_limited: int = 0
    dead: int = 0
    unreachable: int = 0
    expired: int = 0
    cancelled: int = 0
    recovered: int = 0
    deferred: int = 0
    opted_out: int = 0
    replanned: int = 0
    elsewhere: int = 0  # runs skipped: another instance was dispatching

    def add(self, other: DispatchStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))



def wanted(appt: Appointment, kind: str) -> bool:
    """Whether the appointment's state still wants a reminder of this kind sent: the cancellation
    notice only while it is cancelled; nothing once cancelled or a no-show; nothing for before
    the visit once it is completed. Staff retries check the same rule (bot/console.py)."""
    if kind == "cancelled":
        return appt.status == "cancelled"
    if appt.status in ("cancelled", "no_show"):
        return False
    return not (appt.status == "completed" and kind in BEFORE_KINDS)

class PacedLimiter:
    """Sends spaced evenly at `rate` per second (monotonic time).

    Even spacing, not bursts: a burst-then-wait window lets requests delayed on their way (a
    busy event loop) bunch up with the next window's and exceed Telegram's limit; evenly spaced
    requests need a delay of a whole extra slot to do that."""

    def __init__(self, rate: float, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 running: Callable[[], bool] = lambda: True) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0
        self._lock = asyncio.Lock()
        self._monotonic, self._sleep, self._running = monotonic, sleep, running

    def pause(self, seconds: float) -> None:
        """Telegram said RetryAfter: nothing goes out before `seconds` have passed."""
        self._next = max(self._next, self._monotonic() + seconds)

    @property
    def resume_at(self) -> float:
        """Monotonic time of the next free slot (after any pause)."""
        return self._next

    async def acquire(self) -> bool:
        """Wait for this send's slot. False: the bot began to stop meanwhile (do not send).

        Long waits (a 429's pause) are slept in naps, so a stopping bot is not held up by one."""
        async with self._lock:
            while True:
                if not self._running():
                    return False
                now = self._monotonic()
                slot = max(now, self._next)
                if slot <= now:
                    break
                whole = slot - now <= MAX_NAP_SECONDS
                await self._sleep(slot - now if whole else MAX_NAP_SECONDS)
                if whole and self._next <= slot:
                    break  # our slot has come; else a pause() moved it, or that was a nap
            self._next = slot + self.interval
            return True


@dataclass
class _Job:
    row: Reminder
    appt: Appointment | None
    chat_id: int
    outcome: dict[str, Any] = field(default_factory=dict)
    staff_note: str | None = None
    unreachable_patient: int | None = None
    retry_after: float | None = None
    broadcast_text: str | None = None  # kind 'broadcast': the staff-written text (raw)
    claimed_mono: float = 0.0  # monotonic time of the claim
    unreachable_count: int | None = None
    next_booked: bool = False  # kind 'next_session': the patient has a later session booked
    recorded: bool = False
    released: bool = False


class Dispatcher:
    def __init__(self, db: Database, bot: Bot, content: ReminderContent, settings: Settings, *,
                 notify_staff: Notify | None = None, rate_limit: bool = True,
                 monotonic: Callable[[], float] = time.monotonic,
                 rng: Callable[[], float] = random.random, exclusive: bool = True,
                 running: Callable[[], bool] = lambda: True) -> None:
        self.db, self.bot, self.content, self.settings = db, bot, content, settings
        self._running = running  # False once the application is stopping
        # One run at a time across instances: Telegram's limits are the bot's, not the
        # instance's. False only where a test needs two runs at once to prove the claim.
        self.exclusive = exclusive
        self.engine = content.engine
        self.quiet = QuietHours(settings.quiet_hours_start, settings.quiet_hours_end, settings.tz)
        self.notify_staff = notify_staff
        self._monotonic = monotonic
        self.limiter = PacedLimiter(self.engine.max_per_second, monotonic,
                                    running=lambda: self._running()) if rate_limit else None
        self._rng = rng
        self._chat_last: dict[int, datetime] = {}  # per-chat pacing, in the injected time
        self._lock = asyncio.Lock()
        self._recovered_at_start = False
        self._skipped_in_claim = False  # a claim round that only deferred or skipped rows
        self._held_back = False  # this run left rows due for a chat it had just messaged
        self._last_send_mono: float | None = None
        self._unrecorded: list[_Job] = []  # outcomes of sends made while the database went away
        self._outcomes: GroupCommit[_Job, None] = GroupCommit(self._commit_group)
        self._db_down = False

    # ------------------------------------------------------------------ the run
    async def run(self, now: datetime, *, max_rounds: int = 10_000,
                  clock: Clock | None = None) -> DispatchStats:
        """Send everything due at `now` (in rounds of batch_size). Safe to call concurrently
        (serialised in-process; in other instances a run is skipped while this one holds the
        run lock, and the claim keeps runs apart should the lock be lost).

        With a clock, `now` is read again once the lock is held and at every round: a run that
        waited or lasts long must not judge expiry, quiet hours or claim leases by a stale time.
        """
        async with self._lock:
            stats = DispatchStats()
            # Outcomes of sends made while the database was away, first and without the run
            # lock: another instance's housekeeping would otherwise take those rows for
            # interrupted once their lease ran out, and send them again.
            await self._flush_unrecorded(stats)
            async with self._alone() as holding:
                if holding is None:
                    stats.elsewhere = 1
                    return stats
                await self._run_rounds(now, clock, max_rounds, holding, stats)
            return stats

    async def _run_rounds(self, now: datetime, clock: Clock | None, max_rounds: int,
                          holding: Holding, stats: DispatchStats) -> None:
        if clock is not None:
            now = clock.now()
        self._held_back, paused = False, False
        if not self._recovered_at_start:
            self._recovered_at_start = True
            if self.db.dialect == "sqlite":  # one dispatcher process: 'sending' = interrupted
                stats.recovered += await self.recover_interrupted(now)
        await self._housekeeping(now, stats)
        for _ in range(max_rounds):
            if not self._running():
                break  # the bot is stopping: what is left waits for the next start or instance
            if clock is not None:
                now = clock.now()
            if not await holding.still_held():
                return  # another instance may be dispatching now: two would pace apart
            jobs = await self._claim(now, stats)
            if not jobs:
                if self._skipped_in_claim:
                    continue  # those rows left the due set: look at the next ones
                break
            paused = await self._send_all(jobs, now, stats)
            if paused:
                break
        if holding.shared:
            await self._settle(paused)

    async def _settle(self, paused: bool) -> None:
        """Before another instance may take over: let Telegram's limits that this run used run
        out, since its pacing lives in this process. A 429 pause, and the per-chat gap after
        the last send when rows were held back for it (the next holder would send them at once)."""
        mono, wait = self._monotonic(), 0.0
        if paused and self.limiter is not None:
            wait = self.limiter.resume_at - mono
        if self._held_back and self._last_send_mono is not None:
            wait = max(wait, self._last_send_mono + self.engine.per_chat_seconds - mono)
        loop = asyncio.get_running_loop()
        end = loop.time() + min(wait, MAX_SETTLE_SECONDS)
        # A stopping bot does not wait it out. Polled: Application.running has no event.
        while self._running() and (left := end - loop.time()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(min(left, 0.25))

    def _alone(self):
        if not self.exclusive:
            return contextlib.nullcontext(Holding(None))
        return alone(self.db, RUN_LOCK)

    async def recover_interrupted(self, now: datetime) -> int:
        """At start with a single dispatcher (SQLite): any 'sending' row was interrupted."""
        async with self.db.session() as session:
            result = await session.execute(
                update(Reminder).where(Reminder.status == "sending").values(
                    status="pending", outcome_unknown=True,
                    last_error="interrupted while sending (restart)")
                .execution_options(synchronize_session=False))
        return result.rowcount or 0

    async def _housekeeping(self, now: datetime, stats: DispatchStats) -> None:
        async with self.db.session() as session:
            expired = await session.execute(
                update(Reminder).where(Reminder.status == "pending", Reminder.expires_at <= now)
                .values(status="expired").execution_options(synchronize_session=False))
            stats.expired += expired.rowcount or 0
            recovered = await session.execute(
                update(Reminder).where(Reminder.status == "sending",
                                       Reminder.claimed_at <= now - self.engine.sending_lease)
                .values(status="pending", outcome_unknown=True,
                        last_error="interrupted while sending")
                .execution_options(synchronize_session=False))
            stats.recovered += recovered.rowcount or 0
            stats.replanned += await replan_unblocked(session, now=now, content=self.content,
                                                      settings=self.settings)

    async def _claim(self, now: datetime, stats: DispatchStats) -> list[_Job]:
        batch = self.engine.batch_size
        async with self.db.session() as session:
            query = (
                select(Reminder.id, Reminder.quiet_ok, Reminder.expires_at, Patient.chat_id,
                       Reminder.kind, PatientPreference.disabled_kinds,
                       PatientPreference.quiet_start, PatientPreference.quiet_end)
                .join(Patient, Patient.id == Reminder.patient_id)
                .outerjoin(PatientPreference, PatientPreference.patient_id == Reminder.patient_id)
                .where(Reminder.status == "pending", Reminder.due_at <= now,
                       Reminder.expires_at > now, Patient.chat_id.is_not(None),
                       Patient.unreachable.is_(False))
                .order_by(Reminder.due_at, Reminder.id)
                .limit(batch * 2)
            )
            if self.db.dialect == "postgresql":
                query = query.with_for_update(of=Reminder, skip_locked=True)
            candidates = (await session.execute(query)).all()
            self._skipped_in_claim = False
            if not candidates:
                return []
            quiet_now = self.quiet.contains(now)
            gap = timedelta(seconds=self.engine.per_chat_seconds)
            if len(self._chat_last) > 10_000:
                self._chat_last = {c: t for c, t in self._chat_last.items() if now - t < gap}
            chosen: list[int] = []
            chats: set[int] = set()
            for rid, quiet_ok, expires_at, chat_id, kind, off, q_start, q_end in candidates:
                prefs = from_columns(off, q_start, q_end)
                if not prefs.allows(kind):
                    # The patient turned this kind off in /settings: never sent.
                    await session.execute(update(Reminder).where(
                        Reminder.id == rid, Reminder.status == "pending").values(
                        status="cancelled", last_error="patient opted out")
                        .execution_options(synchronize_session=False))
                    stats.opted_out += 1
                    self._skipped_in_claim = True
                    continue
                personal = prefs.quiet(self.settings.tz)
                quiet = self.quiet if quiet_now else (
                    personal if personal is not None and personal.contains(now) else None)
                if quiet is not None and not quiet_ok:
                    # Deferrable and it is night (the dispatcher was down, or a retry), or the
                    # patient's own quiet hours: the morning.
                    morning = quiet.morning_after(now)
                    if quiet is self.quiet and personal is not None and personal.contains(morning):
                        morning = personal.morning_after(morning)
                    values: dict[str, Any] = ({"due_at": morning} if morning < expires_at else
                                              {"status": "expired",
                                               "last_error": "quiet hours until expiry"})
                    await session.execute(update(Reminder).where(
                        Reminder.id == rid, Reminder.status == "pending").values(**values)
                        .execution_options(synchronize_session=False))
                    stats.deferred += "due_at" in values
                    stats.expired += "status" in values
                    self._skipped_in_claim = True
                    continue
                if chat_id in chats:
                    self._held_back = True
                    continue  # one per chat per round
                last = self._chat_last.get(chat_id)
                if last is not None and now - last < gap:
                    self._held_back = True
                    continue
                chats.add(chat_id)
                chosen.append(rid)
                if len(chosen) >= batch:
                    break
            if not chosen:
                return []
            claimed = (await session.execute(
                claim_statement(chosen, now, self.db.dialect))).scalars().all()
            if not claimed:
                return []
            rows = (await session.execute(
                select(Reminder, Appointment, Patient.chat_id)
                .join(Patient, Patient.id == Reminder.patient_id)
                .outerjoin(Appointment, Appointment.id == Reminder.appointment_id)
                .where(Reminder.id.in_(claimed)).order_by(Reminder.due_at, Reminder.id))).all()
            broadcast_ids = {_broadcast_id(row.key) for row, _, _ in rows if row.kind == "broadcast"}
            broadcast_ids.discard(None)
            texts = dict((await session.execute(
                select(Broadcast.id, Broadcast.text).where(Broadcast.id.in_(broadcast_ids)))).all()
            ) if broadcast_ids else {}
            # Booking the next session cancels these; this catches rows written before it did.
            # One query, and only for a batch holding 'next_session' rows.
            nexts = {r.appointment_id for r, _, _ in rows if r.kind == "next_session"}
            booked = await next_booked(session, nexts) if nexts else set()
        stats.claimed += len(rows)
        claimed_at = self._monotonic()
        return [_Job(row, appt, chat_id, broadcast_text=texts.get(_broadcast_id(row.key)),
                     claimed_mono=claimed_at,
                     next_booked=row.kind == "next_session" and row.appointment_id in booked)
                for row, appt, chat_id in rows]

    # ------------------------------------------------------------------ sending
    def _still_wanted(self, job: _Job) -> bool:
        if job.appt is None:
            return True
        return not job.next_booked and wanted(job.appt, job.row.kind)

    def _backoff(self, attempts: int) -> timedelta:
        steps = self.engine.backoff
        base = steps[min(max(attempts, 1) - 1, len(steps) - 1)]
        return min(base * (0.8 + 0.4 * self._rng()), steps[-1])

    async def _send_one(self, job: _Job, now: datetime, sem: asyncio.Semaphore,
                        stats: DispatchStats) -> None:
        row = job.row
        if not self._still_wanted(job):
            job.outcome = {"status": "cancelled", "last_error": NEXT_BOOKED if job.next_booked
                           else "appointment no longer active"}
            async with sem:
                await self._record_or_keep(job, stats)
            return
        tz = self.settings.tz
        if row.kind == "broadcast":
            if job.broadcast_text is None:
                job.outcome = {"status": "cancelled", "last_error": "broadcast withdrawn"}
                async with sem:
                    await self._record_or_keep(job, stats)
                return
            # Staff-written text: escaped by Texts.get, shown under a header naming no treatment.
            text, rows = self.content.texts.get("reminder_broadcast", text=job.broadcast_text), []
        else:
            assert job.appt is not None
            text, rows = reminder_message(row.kind, self.content.texts, job.appt, tz, now)
        markup = InlineKeyboardMarkup(
            [[InlineKeyboardButton(telegram_html.label(label), callback_data=data)
              for label, data in r] for r in rows]
        ) if rows else None
        async with sem:
            if self._db_down:  # not sent: back to pending as it was, once the database is back
                job.released = True
                job.outcome = {"status": "pending", "attempts": row.attempts - 1,
                               "last_error": "database unavailable"}
                self._unrecorded.append(job)
                return
            if self.limiter is not None and not await self.limiter.acquire():
                # The bot is stopping: not sent, back to pending as it was for the next start.
                job.released = True
                job.outcome = {"status": "pending", "attempts": row.attempts - 1,
                               "last_error": "not sent: the bot was stopping"}
                await self._record_or_keep(job, stats)
                return
            try:
                # A claim this fresh races a cancellation no more than the send itself does;
                # older ones (pacing, a 429 pause) are read again before they go.
                still_ours = (self._monotonic() - job.claimed_mono < FRESH_CLAIM_SECONDS
                              or await self._fresh_check(job))
            except Exception as exc:
                if not is_db_unavailable(exc):
                    raise
                self._db_down = True
                job.released = True
                job.outcome = {"status": "pending", "attempts": row.attempts - 1,
                               "last_error": "database unavailable"}
                self._unrecorded.append(job)
                return
            if not still_ours:
                job.outcome = {"status": "cancelled", "last_error": "cancelled while queued"}
                await self._record_or_keep(job, stats)
                return
            self._chat_last[job.chat_id] = now
            try:
                message = await self.bot.send_message(
                    job.chat_id, text, reply_markup=markup, parse_mode=ParseMode.HTML,
                    read_timeout=self.engine.send_timeout)
            except RetryAfter as exc:
                seconds = _retry_after_seconds(exc)
                job.retry_after = seconds
                if self.limiter is not None:  # at once: the batch's other sends wait too
                    self.limiter.pause(seconds)
                job.outcome = {"status": "pending", "attempts": row.attempts - 1,
                               "due_at": now + timedelta(seconds=seconds),
                               "last_error": f"RetryAfter {seconds:g}s"}
            except Forbidden:
                job.outcome = {"status": "failed", "last_error": FORBIDDEN}
                job.unreachable_patient = row.patient_id
            except BadRequest as exc:
                job.outcome = {"status": "dead", "last_error": f"BadRequest: {_short(exc)}"}
                job.staff_note = "BadRequest"
            except TimedOut:
                self._retry_or_dead(job, now, "TimedOut", unknown=True)
            except NetworkError as exc:
                self._retry_or_dead(job, now, f"NetworkError: {_short(exc)}", unknown=False)
            except TelegramError as exc:  # ChatMigrated, InvalidToken, Conflict...
                job.outcome = {"status": "dead", "last_error": f"{type(exc).__name__}: {_short(exc)}"}
                job.staff_note = type(exc).__name__
            except Exception as exc:  # noqa: BLE001 - never lose a row to an unexpected error
                log.exception("reminder %s: unexpected error", row.id)
                self._retry_or_dead(job, now, f"error: {type(exc).__name__}", unknown=True)
            else:
                job.outcome = {"status": "sent", "sent_at": now, "message_id": message.message_id,
                               "last_error": None}
            # Once Telegram has answered: the message was with it by then (the per-chat gap
            # a handover keeps counts from here).
            self._last_send_mono = self._monotonic()
            await self._record_or_keep(job, stats)

    async def _fresh_check(self, job: _Job) -> bool:
        """Right before the send: is the row still ours, and its appointment still on?

        The claim may be seconds old (pacing, a 429 pause): a cancellation or reschedule made
        meanwhile marks the row cancelled, and this read stops the send.
        """
        async with self.db.session() as session:
            found = (await session.execute(
                select(Reminder.status, Appointment.status)
                .outerjoin(Appointment, Appointment.id == Reminder.appointment_id)
                .where(Reminder.id == job.row.id))).first()
        if found is None or found[0] != "sending":
            return False
        if job.appt is not None and found[1] is not None:
            job.appt.status = found[1]
        return self._still_wanted(job)

    def _retry_or_dead(self, job: _Job, now: datetime, error: str, *, unknown: bool) -> None:
        row = job.row
        next_due = now + self._backoff(row.attempts)
        values: dict[str, Any] = {"last_error": error[:200]}
        if unknown:
            values["outcome_unknown"] = True
        if row.attempts >= self.engine.max_attempts or next_due >= row.expires_at:
            values["status"] = "dead"
            job.staff_note = error.split(":")[0]
        else:
            values.update(status="pending", due_at=next_due)
        job.outcome = values

    async def _send_all(self, jobs: list[_Job], now: datetime, stats: DispatchStats) -> bool:
        sem = asyncio.Semaphore(self.engine.concurrency)
        results = await asyncio.gather(*(self._send_one(job, now, sem, stats) for job in jobs),
                                       return_exceptions=True)
        pause = max((j.retry_after for j in jobs if j.retry_after is not None), default=None)
        if pause is not None and self.limiter is not None:
            self.limiter.pause(pause)
        texts = self.content.texts
        for job in jobs:
            if job.unreachable_count is not None:
                await self._tell_staff(texts.get("staff_unreachable", patient=job.unreachable_patient,
                                                 count=job.unreachable_count))
            if job.staff_note and job.outcome.get("status") == "dead" and job.recorded:
                await self._tell_staff(texts.get("staff_dead_letter", reminder=job.row.key,
                                                 error=job.staff_note))
        for result in results:
            if isinstance(result, BaseException):
                raise result  # the database went away: the job logs it and the next run retries
        return pause is not None

    async def _apply(self, session: AsyncSession, job: _Job) -> None:
        """The statements that record one outcome (inside the caller's transaction)."""
        table = Reminder.__table__
        status = job.outcome.get("status")
        guard = [table.c.status == "sending"]
        if status == "sent":  # recovered meanwhile but not yet sent again: still ours to close
            guard = [or_(table.c.status == "sending",
                         and_(table.c.status == "pending", table.c.outcome_unknown.is_(True)))]
        await session.execute(update(table).where(table.c.id == job.row.id, *guard)
                              .values(**job.outcome))
        pid = job.unreachable_patient
        if pid is not None:
            await session.execute(update(Patient).where(Patient.id == pid)
                                  .values(unreachable=True))
            result = await session.execute(
                update(Reminder).where(Reminder.patient_id == pid, Reminder.status == "pending")
                .values(status="cancelled", last_error=UNREACHABLE)
                .execution_options(synchronize_session=False))
            job.unreachable_count = result.rowcount or 0

    async def _commit_group(self, jobs: list[_Job]) -> list[None]:
        """One transaction for the group; outcomes of the same shape (nearly all: 'sent') go
        as one executemany, since building a statement per row costs more than the write."""
        shapes: dict[tuple[str, ...], list[_Job]] = {}
        async with self.db.session() as session:
            for job in jobs:
                if job.unreachable_patient is not None:
                    await self._apply(session, job)
                else:
                    shapes.setdefault(tuple(sorted(job.outcome)), []).append(job)
            for keys, group in shapes.items():
                if len(group) == 1:
                    await self._apply(session, group[0])
                    continue
                sent = group[0].outcome.get("status") == "sent"
                await session.execute(outcome_statement(keys, sent), [
                    {"b_id": job.row.id, **{f"b_{key}": job.outcome[key] for key in keys}}
                    for job in group if (job.outcome.get("status") == "sent") == sent
                ])
                for job in group:  # a shape whose status differs (rare): on its own
                    if (job.outcome.get("status") == "sent") != sent:
                        await self._apply(session, job)
        return [None] * len(jobs)

    async def _record(self, job: _Job, stats: DispatchStats) -> None:
        """Commit one outcome right after its send, so a crash (SIGKILL) can leave at most the
        sends in flight (`concurrency`) unrecorded: those come back as outcome_unknown.

        Group commit (bot/db/group_commit.py): outcomes that finish while a commit is running
        are committed together by the next one, so a database write per send does not cap the
        send rate; every caller still returns only once its own outcome is durable.
        """
        await self._outcomes.submit(job)
        job.recorded = True
        status = job.outcome.get("status")
        if job.unreachable_patient is not None:
            stats.unreachable += 1
        if status == "sent":
            stats.sent += 1
        elif status == "dead":
            stats.dead += 1
        elif status == "cancelled":
            stats.cancelled += 1
        elif job.retry_after is not None:
            stats.rate_limited += 1
        elif status == "pending" and not job.released:
            stats.retried += 1

    async def _record_or_keep(self, job: _Job, stats: DispatchStats) -> None:
        try:
            await self._record(job, stats)
        except Exception as exc:
            if not is_db_unavailable(exc):
                raise
            # The database is unreachable: keep the outcome (a send must not be forgotten and
            # repeated), stop sending, and record it first thing once the database is back.
            self._db_down = True
            self._unrecorded.append(job)
            raise

    async def _flush_unrecorded(self, stats: DispatchStats) -> None:
        while self._unrecorded:
            await self._record(self._unrecorded[0], stats)  # raises while still unreachable
            self._unrecorded.pop(0)
        self._db_down = False

    async def _tell_staff(self, text: str) -> None:
        if self.notify_staff is None:
            return
        try:
            await self.notify_staff(text)
        except Exception:  # noqa: BLE001 - telling staff must never break the dispatcher
            log.warning("staff notification failed", exc_info=True)


def claim_statement(ids: list[int], now: datetime, dialect: str) -> Update:
    """Mark the chosen rows 'sending' unless something else took them meanwhile.

    Both databases would plan a plain status guard badly without fresh statistics (a new file,
    a bulk import before autovacuum's ANALYZE): they combine the status index with the primary
    keys and so read every pending row: 30 ms per claim with 500,000 stored on SQLite, 0.9 s
    with 2,000,000 on PostgreSQL (benchmarks/scale_bench.py, "mark ms").
    """
    if dialect == "postgresql":
        # The claim's SELECT .. FOR UPDATE holds these rows in this transaction: still pending.
        guard = []
    else:
        # SQLite has no row locks; likely() tells its planner the term is not selective, so it
        # looks the rows up by primary key (test_claim_uses_primary_key_not_status_index).
        guard = [func.likely(Reminder.status == "pending")]
    return (update(Reminder).where(Reminder.id.in_(ids), *guard)
            .values(status="sending", claimed_at=now, attempts=Reminder.attempts + 1)
            .returning(Reminder.id).execution_options(synchronize_session=False))


@functools.cache
def outcome_statement(keys: tuple[str, ...], sent: bool) -> Update:
    """The guarded UPDATE that `_apply` builds, with bound parameters for executemany."""
    table = Reminder.__table__
    guard = table.c.status == "sending"
    if sent:
        guard = or_(guard, and_(table.c.status == "pending", table.c.outcome_unknown.is_(True)))
    return (update(table).where(table.c.id == bindparam("b_id"), guard)
            .values({key: bindparam(f"b_{key}") for key in keys}))


def _broadcast_id(key: str) -> int | None:
    parts = key.split(":")
    return int(parts[1]) if len(parts) == 3 and parts[0] == "bc" and parts[1].isdigit() else None


def _retry_after_seconds(exc: RetryAfter) -> float:
    import warnings

    with warnings.catch_warnings():  # PTB 22.2+: int now, timedelta in a future major version
        warnings.simplefilter("ignore")
        value = exc.retry_after
    if isinstance(value, timedelta):
        return max(value.total_seconds(), 1.0)
    return max(float(value), 1.0)


def _short(exc: Exception) -> str:
    # Telegram's description, never the message text we sent (it is not part of the error).
    return str(exc)[:120]


async def dispatch_due(dispatcher: Dispatcher, now: datetime) -> DispatchStats:
    return await dispatcher.run(now)
