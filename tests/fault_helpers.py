"""Helpers for the fault tests: the real bot (`run_bot.py run`) as a child process that can be
SIGKILLed, fast-dispatch content (engine tunables are content, not code), due reminders in bulk,
and a loopback TCP proxy in front of PostgreSQL that can be cut and restored."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select, text

from bot.config import ROOT
from bot.db.appointment_models import Appointment, Reminder
from bot.db.engine import Database
from bot.db.models import Patient
from tests.conftest import TEST_ENCRYPTION_KEY
from tests.fake_bot_api import TOKEN, FakeBotAPI

CHAT_BASE = 5_000_000


def fast_content(tmp: Path, **engine: object) -> Path:
    """A copy of content/ whose reminders.yaml engine section has the given tunables."""
    target = tmp / "content"
    shutil.copytree(ROOT / "content", target)
    path = target / "reminders.yaml"
    text = path.read_text(encoding="utf-8")
    for key, value in engine.items():
        text, n = re.subn(rf"(?m)^(  {key}:)\s*[^#\n]*", rf"\g<1> {value}  ", text, count=1)
        assert n == 1, f"engine.{key} not found in reminders.yaml"
    path.write_text(text, encoding="utf-8")
    return target


def bot_env(fake: FakeBotAPI, database_url: str, content_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(
        ("BOT_", "DATABASE_", "STAFF_", "TELEGRAM_", "ENCRYPTION_", "CONTENT_", "RATE_"))}
    env.update({
        "BOT_TOKEN": TOKEN, "TELEGRAM_API_BASE_URL": fake.base_url, "DATABASE_URL": database_url,
        "STAFF_IDS": "42", "ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY, "CONTENT_DIR": str(content_dir),
        # Patients' replies keep PTB's limiter in production; the dispatcher paces itself.
        "RATE_LIMITER": "false", "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
    })
    return env


class BotProcess:
    """`python run_bot.py run` in its own process group (cwd: a temp dir, so no .env)."""

    def __init__(self, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.env, self.cwd, self.log = env, cwd, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "run_bot.py"), "run"],
                                     cwd=self.cwd, env=self.env, stdout=out, stderr=out,
                                     start_new_session=True)
        out.close()

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        assert self.proc.returncode == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


async def seed_due_reminders(db: Database, n: int, now: datetime) -> None:
    """n patients, each with one appointment in 3 hours and one 'same_day' reminder due now."""
    rows_p, rows_a, rows_r = [], [], []
    for i in range(n):
        rows_p.append({"id": i + 1, "telegram_user_id": CHAT_BASE + i, "chat_id": CHAT_BASE + i,
                       "first_name": f"P{i}", "created_at": now, "last_seen_at": now})
        rows_a.append({"id": i + 1, "patient_id": i + 1, "starts_at": now + timedelta(hours=3),
                       "duration_min": 45, "area": "face", "session_no": 1, "course_size": 4,
                       "status": "booked", "plan_version": 1, "created_at": now, "updated_at": now})
        rows_r.append({"key": f"appt:{i + 1}:same_day", "appointment_id": i + 1,
                       "patient_id": i + 1, "kind": "same_day",
                       "due_at": now - timedelta(seconds=1) - timedelta(milliseconds=i),
                       "expires_at": now + timedelta(hours=3), "quiet_ok": True,
                       "status": "pending", "attempts": 0, "outcome_unknown": False,
                       "created_at": now})
    async with db.session() as session:
        for lo in range(0, n, 500):
            await session.execute(insert(Patient), rows_p[lo:lo + 500])
            await session.execute(insert(Appointment), rows_a[lo:lo + 500])
            await session.execute(insert(Reminder), rows_r[lo:lo + 500])
        if db.dialect == "postgresql":  # explicit ids: move the sequences past them
            for table in ("patients", "appointments"):
                await session.execute(text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {n})"))


def sends_per_chat(fake: FakeBotAPI) -> Counter[int]:
    return Counter(int(c.params["chat_id"]) for c in fake.calls_to("sendMessage")
                   if int(c.params["chat_id"]) >= CHAT_BASE)


async def reminder_rows(db: Database) -> list[Reminder]:
    async with db.session() as session:
        return list((await session.execute(select(Reminder).order_by(Reminder.id))).scalars())


async def wait_until(predicate, timeout: float, step: float = 0.05) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise TimeoutError("condition not reached in time")
        await asyncio.sleep(step)


class TcpProxy:
    """A loopback TCP proxy (e.g. in front of PostgreSQL). `cut()` drops every open connection
    and refuses new ones, like a network outage; `restore()` accepts again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.up = True
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._pipes.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                self._pipes.discard(dst)
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        self.up = False
        for w in list(self._pipes):
            w.transport.abort()
        self._pipes.clear()

    def restore(self) -> None:
        self.up = True

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
