"""The dispatcher's hot statements on SQLite: the plans they get, and that a group of outcomes
written as one executemany lands row by row with its guard."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Update, insert, select, update
from sqlalchemy.dialects import postgresql

from bot.db.appointment_models import Appointment, Reminder
from bot.db.engine import Database
from bot.db.models import Patient
from bot.reminders.dispatcher import claim_statement, outcome_statement

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def _plan(db: Database, statement: Update) -> str:
    compiled = statement.compile(dialect=db.engine.dialect,
                                 compile_kwargs={"render_postcompile": True})
    params = tuple(compiled.params[name] for name in compiled.positiontup)
    params = tuple(v.isoformat() if isinstance(v, datetime) else v for v in params)
    async with db.engine.connect() as conn:
        rows = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", params)).all()
    return " | ".join(row[-1] for row in rows)


async def test_claim_uses_primary_key_not_status_index(migrated_db: Database) -> None:
    # A fresh database has no ANALYZE statistics, as a clinic's own SQLite file never will.
    db = migrated_db
    assert "INTEGER PRIMARY KEY" in await _plan(db, claim_statement([1, 2, 3], NOW, "sqlite"))
    # Without the hint SQLite would walk the status index (every pending row): the case
    # the hint is there for, so this test can tell if it stops working.
    plain = update(Reminder).where(Reminder.id.in_([1, 2, 3]), Reminder.status == "pending")
    assert "ix_reminders_status" in await _plan(db, plain.values(status="sending"))


def test_on_postgresql_the_claim_relies_on_its_row_locks_not_a_status_guard() -> None:
    # The SELECT .. FOR UPDATE SKIP LOCKED before it holds the rows; a status term would let
    # PostgreSQL combine the status index too (0.9 s per claim at 2,000,000 rows unanalyzed).
    sql = str(claim_statement([1, 2], NOW, "postgresql").compile(dialect=postgresql.dialect()))
    where = sql.split("WHERE", 1)[1]
    assert "reminders.id IN" in where and "status" not in where


async def _seed(db: Database, statuses: list[str]) -> list[int]:
    async with db.session() as session:
        await session.execute(insert(Patient), [{"id": 1, "telegram_user_id": 7, "chat_id": 7,
                                                 "created_at": NOW, "last_seen_at": NOW}])
        await session.execute(insert(Appointment), [{
            "id": 1, "patient_id": 1, "starts_at": NOW, "duration_min": 60, "area": "face",
            "session_no": 1, "course_size": 4, "status": "booked", "plan_version": 1,
            "created_at": NOW, "updated_at": NOW}])
        await session.execute(insert(Reminder), [{
            "id": 10 + i, "key": f"k{i}", "appointment_id": 1, "patient_id": 1,
            "kind": "confirmation", "due_at": NOW, "expires_at": NOW, "quiet_ok": True,
            "status": status, "attempts": 0, "outcome_unknown": False, "created_at": NOW}
            for i, status in enumerate(statuses)])
    return [10 + i for i in range(len(statuses))]


async def test_claim_takes_only_rows_still_pending(migrated_db: Database) -> None:
    db = migrated_db
    ids = await _seed(db, ["pending", "cancelled", "pending"])
    async with db.session() as session:
        claimed = (await session.execute(claim_statement(ids, NOW, "sqlite"))).scalars().all()
    async with db.session() as session:
        statuses = dict((await session.execute(
            select(Reminder.id, Reminder.status).where(Reminder.id.in_(ids)))).all())
    assert sorted(claimed) == [ids[0], ids[2]]
    assert [statuses[i] for i in ids] == ["sending", "cancelled", "sending"]


async def test_outcomes_as_one_executemany_respect_each_rows_guard(migrated_db: Database) -> None:
    db = migrated_db
    ids = await _seed(db, ["sending", "pending", "cancelled", "sending"])
    async with db.session() as session:  # the second: recovered after a crash, not resent
        await session.execute(update(Reminder).where(Reminder.id == ids[1])
                              .values(outcome_unknown=True))
    keys = ("last_error", "message_id", "sent_at", "status")
    async with db.session() as session:
        await session.execute(outcome_statement(keys, True), [
            {"b_id": rid, "b_status": "sent", "b_sent_at": NOW, "b_message_id": 100 + rid,
             "b_last_error": None} for rid in ids[:3]])
        await session.execute(outcome_statement(("last_error", "status"), False), [
            {"b_id": ids[3], "b_status": "dead", "b_last_error": "BadRequest"}])
    async with db.session() as session:
        rows = {r.id: r for r in (await session.scalars(select(Reminder))).all()}
    assert [(rows[i].status, rows[i].message_id) for i in ids] == [
        ("sent", 100 + ids[0]), ("sent", 100 + ids[1]), ("cancelled", None), ("dead", None)]
