"""Group commit: writes that arrive while one transaction commits go together in the next.

A transaction per small write (an update claim, a reminder outcome) costs far more than the
write itself: on SQLite about 1 ms of CPU through the async driver's thread hops. Callers still
each wait until their own item is durable, so nothing is acknowledged early; a lone caller is
flushed at once (no added latency when idle), and under load the batch grows with it.

Every item taken into a flush gets that flush's outcome, whatever happens to the caller that
started it: the flush runs as its own task, shielded, because a cancelled commit may still have
committed, and flushing its items again would then report them as something else (a claimed
update as a duplicate).
"""

from __future__ import annotations

import asyncio
import contextlib
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
        entry = (item, future)
        self._waiting.append(entry)
        try:
            async with self._lock:
                # Flush only if no flush took ours meanwhile: the others then queue up for one
                # bigger batch instead of each starting a small one.
                if any(e is entry for e in self._waiting):
                    batch = [(i, f) for i, f in self._waiting if not f.done()]
                    self._waiting = []
                    task = asyncio.ensure_future(self._flush([i for i, _ in batch]))
                    task.add_done_callback(lambda done: _resolve(batch, done))
                    # wait() neither raises the flush's error (every caller gets it from its
                    # future) nor cancels the flush when this caller is cancelled.
                    await asyncio.wait([task])
        except asyncio.CancelledError:
            future.cancel()  # nobody will read it; a flush that took it skips it
            with contextlib.suppress(ValueError):
                self._waiting.remove(entry)  # cancelled before any flush took it
            raise
        return await future


def _resolve(batch: list[tuple[T, asyncio.Future[R]]], task: asyncio.Future[Sequence[R]]) -> None:
    """Give every item of a finished flush its outcome (futures already cancelled are skipped)."""
    error: BaseException | None
    if task.cancelled():
        error = asyncio.CancelledError()
    else:
        error = task.exception()
    results: Sequence[R] = ()
    if error is None:
        results = task.result()
        if len(results) != len(batch):
            error = RuntimeError(f"flush returned {len(results)} results for {len(batch)} items")
    for n, (_, future) in enumerate(batch):
        if future.done():
            continue
        if error is None:
            future.set_result(results[n])
        elif isinstance(error, asyncio.CancelledError):
            future.cancel()
        else:
            future.set_exception(error)
