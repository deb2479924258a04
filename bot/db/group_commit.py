"""Group commit: writes that arrive while one transaction commits go together in the next.

A transaction per small write (an update claim, a reminder outcome) costs far more than the
write itself: on SQLite about 1 ms of CPU through the async driver's thread hops. Callers still
each wait until their own item is durable, so nothing is acknowledged early; a lone caller is
flushed at once (no added latency when idle), and under load the batch grows with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(self, flush: Callable[[list[T]], Awaitable[Sequence[R]]]) -> None:
        """`flush(items)` writes the items in one transaction and returns one result each."""
        self._flush = flush
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._lock = asyncio.Lock()

    async def submit(self, item: T) -> R:
        """Return once `item` is committed (its result), or raise what its flush raised."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        async with self._lock:
            if not future.done():  # nobody flushed it while we waited: flush everything queued
                batch, self._waiting = self._waiting, []
                try:
                    results = await self._flush([i for i, _ in batch])
                except asyncio.CancelledError:
                    # This caller was cancelled (shutdown): the others are still waiting for
                    # the lock, and the next of them flushes their items.
                    self._waiting[:0] = [(i, f) for i, f in batch if f is not future]
                    raise
                except Exception as exc:
                    for _, f in batch:
                        if not f.done():
                            f.set_exception(exc)
                else:
                    for (_, f), result in zip(batch, results, strict=True):
                        if not f.done():
                            f.set_result(result)
        return await future
