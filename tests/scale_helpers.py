"""Helpers for the scale and fault tests: webhook instances, database sabotage, PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.app import build_application
from bot.config import Settings
from bot.db.engine import Database, make_engine
from bot.webhook import SECRET_HEADER, WebhookServer, run_webhook
from tests.fake_bot_api import TOKEN
from tests.harness import TrackingApplication

WEBHOOK_SECRET = "s3cret-token_for-the-webhook-tests-0123456789"
WEBHOOK_URL = "https://bot.clinic.example/telegram/webhook"

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dead_database_url() -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test"


class Sabotage:
    """Point a live Database at a PostgreSQL port where nothing listens; `restore()` undoes it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._saved = (db.engine, db.sessionmaker)

    async def __aenter__(self) -> Sabotage:
        dead = make_engine(dead_database_url(), connect_args={"timeout": 2})
        self.db.engine = dead
        self.db.sessionmaker = async_sessionmaker(dead, expire_on_commit=False)
        return self

    async def restore(self) -> None:
        if self.db.engine is not self._saved[0]:
            await self.db.engine.dispose()
            self.db.engine, self.db.sessionmaker = self._saved

    async def __aexit__(self, *exc: object) -> None:
        await self.restore()


class WebhookInstance:
    """One bot process in webhook mode (the real run_webhook), on a loopback port."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app: TrackingApplication | None = None
        self.server: WebhookServer | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._done: dict[int, asyncio.Future[None]] = {}
        self._http: aiohttp.ClientSession | None = None

    @property
    def db(self) -> Database:
        assert self.app is not None
        return self.app.bot_data["services"].db

    async def start(self) -> None:
        app = build_application(self.settings, token=TOKEN, application_class=TrackingApplication)
        app.bot_data["_done"] = self._done
        self.app = app
        started: asyncio.Future[WebhookServer] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(run_webhook(app, self.settings, self.db, self._stop, started))
        done, _ = await asyncio.wait({self._task, started}, timeout=20,
                                     return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            self._task.result()  # raises the start-up failure
        self.server = started.result()
        self._http = aiohttp.ClientSession()

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.close()
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 20)

    async def post(self, update: dict[str, Any], secret: str | None = WEBHOOK_SECRET,
                   wait: bool = True, wait_seconds: float = 10.0) -> int:
        """POST an update as Telegram would; with wait, return once every handler group ran."""
        assert self.server is not None and self._http is not None
        future: asyncio.Future[None] | None = None
        if wait:
            future = asyncio.get_running_loop().create_future()
            self._done[update["update_id"]] = future
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        async with self._http.post(self.server.url, json=update, headers=headers) as response:
            status = response.status
        if future is not None:
            if status == 200:
                await asyncio.wait_for(future, wait_seconds)
            else:
                self._done.pop(update["update_id"], None)
        return status

    async def get(self, path: str) -> tuple[int, dict[str, Any]]:
        assert self.server is not None and self._http is not None
        url = f"http://{self.server.listen}:{self.server.port}{path}"
        async with self._http.get(url) as response:
            return response.status, await response.json()


@asynccontextmanager
async def webhook_instance(settings: Settings) -> AsyncIterator[WebhookInstance]:
    instance = WebhookInstance(settings)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.stop()


# ----------------------------------------------------------------------------- PostgreSQL

async def until_one_waits_on_a_lock(db: Database, what: str) -> None:
    """Until a transaction on this database waits for a lock another one holds: how a test
    makes two transactions overlap for certain instead of by timing. Fails with `what`."""
    import pytest
    from sqlalchemy import text

    # AUTOCOMMIT: PostgreSQL reads pg_stat_activity once per transaction, so polls inside one
    # transaction would see their first reading forever (CI failed so when the first poll came
    # before the wait began).
    async with db.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for _ in range(1000):
            if await conn.scalar(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'")):
                return
            await asyncio.sleep(0.01)
    pytest.fail(f"{what} never waited for the lock")


async def pg_reachable() -> str | None:
    """None when the test server answers, else the reason to skip."""
    import asyncpg

    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
    except Exception as exc:  # noqa: BLE001 - any failure means "no server here"
        return (f"PostgreSQL not reachable at 127.0.0.1:5432 (database test, user postgres): "
                f"{type(exc).__name__}; start it to run the PostgreSQL tests")
    await conn.close()
    return None


@asynccontextmanager
async def pg_database() -> AsyncIterator[str]:
    """A fresh, uniquely named database on the test server, dropped afterwards; yields its URL."""
    import asyncpg

    name = f"clinic_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def update_factory() -> Callable[[], int]:
    counter = iter(range(10_000_000, 20_000_000))
    return lambda: next(counter)
