"""Group commit (bot/db/group_commit.py) and the update claims built on it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from bot.db import processed_updates
from bot.db.engine import Database
from bot.db.group_commit import GroupCommit

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


async def settle() -> None:
    """Let the tasks started so far run until they wait (a flush runs as its own task)."""
    for _ in range(5):
        await asyncio.sleep(0)


class Recorder:
    """A flush that takes a while (like a commit) and remembers each batch."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.gates: list[asyncio.Event] = []  # one per flush: set it to let that flush finish
        self.fail_on = fail_on
        self.release = asyncio.Event()  # lets every flush finish

    async def flush(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        gate = asyncio.Event()
        self.gates.append(gate)
        waits = [asyncio.ensure_future(gate.wait()), asyncio.ensure_future(self.release.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if self.fail_on in items:
            raise RuntimeError("database went away")
        return [i * 10 for i in items]


async def test_a_lone_item_is_flushed_at_once_and_later_ones_wait_for_the_next_batch() -> None:
    rec = Recorder()
    group = GroupCommit(rec.flush)
    first = asyncio.create_task(group.submit(1))
    await settle()
    assert rec.batches == [[1]]  # no waiting for company
    rest = [asyncio.create_task(group.submit(i)) for i in (2, 3, 4)]
    await settle()
    assert rec.batches == [[1]]  # queued behind the running flush
    rec.release.set()
    assert await first == 10
    assert await asyncio.gather(*rest) == [20, 30, 40]
    assert rec.batches == [[1], [2, 3, 4]]  # one flush for everything that queued


async def test_a_failed_flush_fails_every_item_in_it_and_the_next_batch_still_runs() -> None:
    rec = Recorder(fail_on=3)
    group = GroupCommit(rec.flush)
    first = asyncio.create_task(group.submit(1))
    await settle()
    failing = [asyncio.create_task(group.submit(i)) for i in (2, 3)]
    rec.release.set()
    assert await first == 10
    for task in failing:
        with pytest.raises(RuntimeError, match="went away"):
            await task
    assert await group.submit(5) == 50


async def test_a_cancelled_flusher_does_not_stop_the_flush_the_others_wait_for() -> None:
    # A cancelled commit may have committed: its items must get that outcome, not a second
    # flush (a claimed update would then read as a duplicate and be dropped).
    rec = Recorder()
    group = GroupCommit(rec.flush)
    blocker = asyncio.create_task(group.submit(1))
    await settle()
    leader = asyncio.create_task(group.submit(2))  # will flush [2, 3] after [1]
    other = asyncio.create_task(group.submit(3))
    await settle()
    rec.gates[0].set()
    assert await blocker == 10
    await settle()
    assert rec.batches == [[1], [2, 3]]  # the leader's flush is running
    leader.cancel()  # shutdown while its flush runs
    with pytest.raises(asyncio.CancelledError):
        await leader
    rec.gates[1].set()
    assert await other == 30  # the same flush's result
    assert rec.batches == [[1], [2, 3]]  # nothing flushed twice


async def test_a_caller_cancelled_while_queued_is_not_flushed() -> None:
    rec = Recorder()
    group = GroupCommit(rec.flush)
    first = asyncio.create_task(group.submit(1))
    await settle()
    gone = asyncio.create_task(group.submit(2))
    kept = asyncio.create_task(group.submit(3))
    await settle()
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    rec.release.set()
    assert (await first, await kept) == (10, 30)
    assert rec.batches == [[1], [3]]


async def test_a_flush_with_the_wrong_number_of_results_fails_every_caller() -> None:
    async def short(items: list[int]) -> list[int]:
        return items[:1]

    group = GroupCommit(short)
    results = await asyncio.gather(group.submit(1), group.submit(2), return_exceptions=True)
    assert results[0] == 1  # alone in its flush
    assert await group.submit(3) == 3
    tasks = [asyncio.create_task(group.submit(i)) for i in (4, 5, 6)]
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert outcomes[0] == 4
    assert all(isinstance(o, RuntimeError) for o in outcomes[1:])  # [5, 6] got 1 result


async def test_claims_made_together_go_in_one_statement_and_duplicates_lose(migrated_db: Database) -> None:
    db = migrated_db
    assert await processed_updates.claim(db, 1, T0) is True
    # 1 was claimed before; 2 arrives twice in the same batch (a redelivery racing itself).
    assert await processed_updates.claim_many(db, [(1, T0), (2, T0), (3, T0), (2, T0)]) == [
        False, True, True, False]
    claims = processed_updates.UpdateClaims(db)
    results = await asyncio.gather(*(claims.claim(uid, T0) for uid in (4, 5, 4, 3, 6)))
    assert results == [True, True, False, False, True]


@pytest.mark.postgres
async def test_claims_made_together_on_postgresql(migrated_pg_db: Database) -> None:
    db = migrated_pg_db
    assert await processed_updates.claim_many(db, [(7, T0), (7, T0), (8, T0)]) == [
        True, False, True]
    claims = processed_updates.UpdateClaims(db)
    assert await asyncio.gather(*(claims.claim(uid, T0) for uid in (8, 9, 9))) == [
        False, True, False]
