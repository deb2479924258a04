"""Async engine and session factory for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, func, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

CONNECT_TIMEOUT_SECONDS = 5
SQLITE_BUSY_TIMEOUT_MS = 20_000
POOL_TIMEOUT_SECONDS = 10


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the dispatcher read while a handler writes; busy_timeout waits instead of failing.
    # SQLite takes one writer at a time, and its busy handler retries with pauses growing to
    # 100 ms, so the writer that waited longest retries least often: with 500 patients
    # answering at once on 2 cores, one write in about 25,000 waited past 5 s and the patient
    # got "try again shortly". 20 s keeps that for a lock that is really stuck.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
    # SQLite's lower() folds ASCII only ("ÉLODIE" stays "Élodie"); name lookups use this one.
    dbapi_conn.create_function("casefold", 1, _casefold, deterministic=True)


def _casefold(text: str | None) -> str | None:
    return text.casefold() if isinstance(text, str) else text


def case_blind_equal(dialect: str, column: Any, value: str) -> Any:
    """`column` equals `value`, letter case aside, like with like: SQLite's casefold() (above)
    with Python's, PostgreSQL's lower() (the database's locale) with Python's lower(); they
    differ on a few letters ("ß", a final "ς"), so a caller that must be exact checks in
    Python too."""
    if dialect == "sqlite":
        return func.casefold(column) == value.casefold()
    return func.lower(column) == value.lower()


def upsert_insert(dialect: str) -> Any:
    """`insert` with ON CONFLICT for this dialect: PostgreSQL's, else SQLite's."""
    return pg_insert if dialect == "postgresql" else sqlite_insert


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    # SQL errors otherwise quote their parameters (names, phone numbers, ciphertexts) into the
    # exception text, which then reaches the logs.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # Fail fast when the server is unreachable (asyncpg waits 60 s by default): the patient gets
    # "try again shortly" and the health check turns 503 instead of both hanging.
    kwargs["connect_args"] = {"timeout": CONNECT_TIMEOUT_SECONDS, **kwargs.get("connect_args", {})}
    kwargs.setdefault("pool_timeout", POOL_TIMEOUT_SECONDS)
    return create_async_engine(url, **kwargs)


class Database:
    """Owns the engine; `session()` yields a session inside a transaction."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self._probe: tuple[AsyncEngine, AsyncEngine] | None = None  # (engine, its probe)

    async def answers(self) -> None:
        """SELECT 1 on a connection of its own, outside the pool: whether the database
        answers, not whether the pool has a connection free (a busy instance is not a down
        one: /healthz would take it out of the load balancer). Raises if it does not."""
        if self._probe is None or self._probe[0] is not self.engine:  # the engine was replaced
            if self._probe is not None:
                await self._probe[1].dispose()
            url = self.engine.url.render_as_string(hide_password=False)
            connect = {} if url.startswith("sqlite") else {"timeout": CONNECT_TIMEOUT_SECONDS}
            self._probe = (self.engine, create_async_engine(
                url, poolclass=NullPool, hide_parameters=True, connect_args=connect))
        async with self._probe[1].connect() as conn:
            await conn.execute(text("SELECT 1"))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._probe is not None:
            await self._probe[1].dispose()
