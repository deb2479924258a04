"""Exactly-once update handling across instances: a claim row per Telegram update_id.

Telegram redelivers an update when a webhook answer is lost or late, and with several instances
behind a balancer the second delivery can reach another process. Before any handler runs, the
update is claimed with an insert-or-ignore keyed by update_id; only the instance whose insert
took effect processes it. Rows are pruned after RETENTION: Telegram keeps an undelivered update
for at most 24 hours, and update ids may restart at random after a week without updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, bindparam, delete
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.engine import Database, upsert_insert
from bot.db.group_commit import GroupCommit
from bot.db.models import Base
from bot.db.types import UTCDateTime

RETENTION = timedelta(hours=48)


class ProcessedUpdate(Base):
    __tablename__ = "processed_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


def _claim_statement(dialect: str) -> Any:
    insert = upsert_insert(dialect)
    return (insert(ProcessedUpdate)
            .values(update_id=bindparam("update_id"), processed_at=bindparam("processed_at"))
            .on_conflict_do_nothing(index_elements=["update_id"])
            .returning(ProcessedUpdate.update_id))


_CLAIM = {name: _claim_statement(name) for name in ("postgresql", "sqlite")}


async def claim_many(db: Database, claims: Sequence[tuple[int, datetime]]) -> list[bool]:
    """For each (update_id, now): True if this call claimed it (first delivery), False for a
    duplicate (already claimed, or earlier in `claims`). One transaction for all of them.

    On the hot path of every update: one statement built once per dialect (its compiled form
    is cached by SQLAlchemy) on a bare connection, no ORM session; several rows go as one
    multi-row INSERT (SQLAlchemy's insertmanyvalues), RETURNING the ids it inserted.
    """
    first: dict[int, datetime] = {}
    for update_id, now in claims:
        first.setdefault(update_id, now)
    stmt = _CLAIM["postgresql" if db.dialect == "postgresql" else "sqlite"]
    async with db.engine.begin() as conn:
        # In key order: two instances inserting overlapping batches (redeliveries) in opposite
        # orders could each wait for the other's key on PostgreSQL, a deadlock.
        result = await conn.execute(stmt, [{"update_id": uid, "processed_at": at}
                                           for uid, at in sorted(first.items())])
        inserted = set(result.scalars().all())
    answers = []
    for update_id, _ in claims:
        answers.append(update_id in inserted)
        inserted.discard(update_id)  # a repeat later in the batch is a duplicate
    return answers


async def claim(db: Database, update_id: int, now: datetime) -> bool:
    """True if this call claimed `update_id` (first delivery), False for a duplicate."""
    return (await claim_many(db, [(update_id, now)]))[0]


class UpdateClaims:
    """Claims of updates handled concurrently, committed together (bot/db/group_commit.py):
    a transaction per update cost about as much CPU as handling the update itself."""

    def __init__(self, db: Database) -> None:
        self._group = GroupCommit(lambda batch: claim_many(db, batch))

    async def claim(self, update_id: int, now: datetime) -> bool:
        return await self._group.submit((update_id, now))


async def prune(db: Database, now: datetime, retention: timedelta = RETENTION) -> int:
    """Delete claims older than `retention`; returns how many went."""
    async with db.session() as session:
        result = await session.execute(
            delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < now - retention))
    return result.rowcount  # type: ignore[attr-defined]
