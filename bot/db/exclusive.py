"""Work that one instance at a time may do, across every instance sharing one PostgreSQL database.

A session-level advisory lock (`pg_try_advisory_lock`) held on a connection of its own for the
length of the work. The server drops it with the connection, so an instance killed (even with
SIGKILL) frees it at once; keepalives on that connection make the server notice within about
30 s an instance whose machine vanished without closing it. Not usable behind a pooler in
transaction mode (PgBouncer), which hands one session's statements to several backends.

SQLite serves one process by design: there the work is always ours.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.db.engine import Database

log = logging.getLogger(__name__)

# The server closes a vanished client's connection (and so frees its lock) after about
# idle + interval * count of silence, or data left unacknowledged for tcp_user_timeout (ms).
_KEEPALIVES = {"tcp_keepalives_idle": 15, "tcp_keepalives_interval": 5, "tcp_keepalives_count": 3,
               "tcp_user_timeout": 30_000}
_SET_KEEPALIVES = text("SELECT " + ", ".join(
    f"set_config('{name}', '{value}', false)" for name, value in _KEEPALIVES.items()))
STILL_HELD_TIMEOUT = 5.0


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (advisory locks are keyed by bigint)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


class Holding:
    """The lock, while held. `still_held()` before each step of long work: if the lock's
    connection died, the server freed the lock and another instance may have taken it."""

    def __init__(self, conn: AsyncConnection | None) -> None:
        self._conn = conn

    @property
    def shared(self) -> bool:
        """Other instances may take the work over once this holding ends."""
        return self._conn is not None

    async def still_held(self) -> bool:
        if self._conn is None:
            return True
        try:
            # Bounded: on a half-open connection the answer could take the kernel's whole
            # retransmission timeout; the timeout invalidates the connection.
            await asyncio.wait_for(self._conn.execute(text("SELECT 1")), STILL_HELD_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - any failure means the session (and lock) is gone
            log.warning("exclusive lock connection lost (%s)", type(exc).__name__)
            return False
        return True


@asynccontextmanager
async def alone(db: Database, name: str) -> AsyncIterator[Holding | None]:
    """Yields a Holding when this instance got the lock, None when another instance holds it."""
    if db.dialect != "postgresql":
        yield Holding(None)
        return
    key = lock_key(name)
    async with db.engine.connect() as conn:
        # Autocommit: the lock is the session's, and no transaction stays open while it is held.
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(_SET_KEEPALIVES)
        if not await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}):
            yield None
            return
        released = False
        try:
            yield Holding(conn)
        finally:
            try:
                released = bool(await conn.scalar(text("SELECT pg_advisory_unlock(:key)"),
                                                  {"key": key}))
            except Exception as exc:  # noqa: BLE001 - the connection is gone, and the lock with it
                log.warning("exclusive lock: unlock failed (%s)", type(exc).__name__)
            if not released:
                # Never hand a connection that may still hold the lock back to the pool.
                await conn.invalidate()
