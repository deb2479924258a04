"""Tell "the database is unreachable or overloaded right now" apart from bugs."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import exc as sa_exc

try:  # asyncpg is a dependency, but keep SQLite-only installs importable
    import asyncpg.exceptions as pg_exc

    _ASYNCPG: tuple[type[BaseException], ...] = (
        pg_exc.PostgresConnectionError, pg_exc.CannotConnectNowError,
        pg_exc.TooManyConnectionsError, pg_exc.ConnectionDoesNotExistError,
        pg_exc.InterfaceError, pg_exc.AdminShutdownError, pg_exc.CrashShutdownError,
    )
except ImportError:  # pragma: no cover
    _ASYNCPG = ()

_TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # connection refused / reset, DNS; asyncpg raises these raw while connecting
    TimeoutError,
    sa_exc.OperationalError,  # SQLite "database is locked", PG server gone
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # the connection pool is exhausted
    *_ASYNCPG,
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_db_unavailable(exc: BaseException | None) -> bool:
    """True if `exc` (or what caused it) means the database cannot be used at the moment."""
    if exc is None:
        return False
    for link in _chain(exc):
        if isinstance(link, sa_exc.DBAPIError) and link.connection_invalidated:
            return True
        if isinstance(link, _TRANSIENT):
            return True
    return False
