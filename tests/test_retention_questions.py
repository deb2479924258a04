"""Retention of patients' free-text questions (bot/retention.py): the daily purge removes
questions whose last activity is older than INTAKE_RETENTION_MONTHS, of patients with no
appointment since, never one staff still owe an answer; audited per patient, without content."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from bot.clock import FixedClock
from bot.db.appointment_models import Appointment
from bot.db.intake_models import Intake, IntakeConsent
from bot.db.models import Patient
from bot.db.privacy_models import AuditEvent
from bot.db.qa_models import (
    ANSWERED,
    CLOSED,
    HANDED_OFF,
    RED_FLAG,
    REPLIED,
    RESCHEDULE,
    UNANSWERED,
    Question,
    StaffReplyTarget,
)
from bot.retention import months_before, purge, retention_job
from tests.conftest import sql
from tests.intake_support import NOW
from tests.scale_helpers import until_one_waits_on_a_lock

MONTHS = 24
CUTOFF = months_before(NOW, MONTHS)   # 2024-11-24
OLD = NOW - timedelta(days=3 * 365)   # well before the cutoff
RECENT = NOW - timedelta(days=30)     # well after it
SECRET = b"sauna after filler? ref-code 5521"  # stands for the ciphertext: never audited/logged


async def add_patients(db, *ids: int) -> None:
    async with db.session() as session:
        session.add_all(Patient(id=i, telegram_user_id=70_000 + i, chat_id=70_000 + i,
                                created_at=OLD, last_seen_at=OLD) for i in ids)


def question(qid: int, patient_id: int, status: str, created_at: datetime = OLD, *,
             handed_off_at: datetime | None = None, alerted_at: datetime | None = None,
             replied_at: datetime | None = None, **kw: object) -> Question:
    return Question(id=qid, patient_id=patient_id, text_enc=SECRET, status=status,
                    created_at=created_at, handed_off_at=handed_off_at, alerted_at=alerted_at,
                    replied_at=replied_at,
                    reply_enc=b"reply-ciphertext" if replied_at else None,
                    replied_by=42 if replied_at else None, **kw)


def appointment(patient_id: int, starts_at: datetime) -> Appointment:
    return Appointment(patient_id=patient_id, starts_at=starts_at, duration_min=60, area="face",
                       created_at=OLD, updated_at=OLD)


async def run_purge(db, now: datetime = NOW):
    async with db.session() as session:
        return await purge(session, now, MONTHS)


def question_ids(db_url: str) -> set[int]:
    return {i for (i,) in sql(db_url, "select id from questions")}


def retention_audit(db_url: str) -> list[tuple]:
    return sql(db_url, "select action, actor_user_id, patient_id, subject from audit_events "
                       "where action='retention_purge' order by patient_id, subject")


async def test_old_questions_of_a_patient_without_appointments_are_purged_with_reply_targets(
        migrated_db, db_url):
    db = migrated_db
    await add_patients(db, 1)
    async with db.session() as session:
        session.add_all([
            question(1, 1, REPLIED, handed_off_at=OLD, alerted_at=OLD,
                     replied_at=OLD + timedelta(hours=2)),
            question(2, 1, ANSWERED, node_id="aftercare", confidence=0.9),
            question(3, 1, CLOSED, handed_off_at=OLD, alerted_at=OLD, source=RESCHEDULE,
                     appointment_id=77),
        ])
        await session.flush()
        # A staff member pressed Reply on the first one long ago and never sent the answer.
        session.add(StaffReplyTarget(staff_user_id=42, question_id=1, chat_id=42, started_at=OLD))

    purged = await run_purge(db)

    assert question_ids(db_url) == set()
    assert sql(db_url, "select * from staff_reply_targets") == []
    assert sql(db_url, "select id from patients") == [(1,)]  # the patient record stays
    assert purged.questions == {1: 3}
    assert purged == {}  # no questionnaires: the intakes' figures are unchanged


async def test_a_question_with_activity_since_the_cutoff_is_kept(migrated_db, db_url):
    db = migrated_db
    await add_patients(db, 1)
    async with db.session() as session:
        session.add_all([
            question(1, 1, UNANSWERED),  # nothing since it was asked: purged
            question(2, 1, REPLIED, handed_off_at=OLD, replied_at=RECENT),  # answered lately
            question(3, 1, CLOSED, handed_off_at=OLD, alerted_at=RECENT),   # alerted lately
            question(4, 1, ANSWERED, created_at=RECENT),                    # asked lately
            question(5, 1, ANSWERED, created_at=CUTOFF),                    # asked at the cutoff
        ])

    purged = await run_purge(db)

    assert question_ids(db_url) == {2, 3, 4, 5}
    assert purged.questions == {1: 1}


async def test_old_questions_of_a_patient_with_an_appointment_since_the_cutoff_are_kept(
        migrated_db, db_url):
    db = migrated_db
    await add_patients(db, 1, 2, 3, 4)
    async with db.session() as session:
        session.add_all([
            appointment(1, RECENT),                     # seen lately
            appointment(2, NOW + timedelta(days=10)),   # booked for next week
            appointment(3, OLD),                        # last seen three years ago
            appointment(4, CUTOFF),                     # on the cutoff itself: still "since"
        ])
        session.add_all(question(i, i, REPLIED, handed_off_at=OLD, replied_at=OLD)
                        for i in (1, 2, 3, 4))

    purged = await run_purge(db)

    assert {p for (p,) in sql(db_url, "select patient_id from questions")} == {1, 2, 4}
    assert purged.questions == {3: 1}


async def test_an_old_question_still_waiting_for_staff_is_kept_until_answered(migrated_db, db_url):
    db = migrated_db
    await add_patients(db, 1)
    async with db.session() as session:
        session.add_all([
            question(1, 1, HANDED_OFF, handed_off_at=OLD, alerted_at=OLD),  # never answered
            question(2, 1, RED_FLAG, handed_off_at=OLD, red_flag="flagged"),  # never alerted
            question(3, 1, UNANSWERED),  # handoff offered, not taken: nobody waits on it
            question(4, 1, REPLIED, handed_off_at=OLD, replied_at=OLD, red_flag="flagged"),
        ])
        await session.flush()
        session.add(StaffReplyTarget(staff_user_id=43, question_id=1, chat_id=43, started_at=OLD))

    purged = await run_purge(db)

    assert question_ids(db_url) == {1, 2}
    assert sql(db_url, "select staff_user_id, question_id from staff_reply_targets") == [(43, 1)]
    assert purged.questions == {1: 2}

    # Staff answer both now: the questions then age from the reply, a full period again.
    async with db.session() as session:
        for q in (await session.scalars(select(Question))).all():
            q.status, q.replied_at, q.reply_enc = REPLIED, NOW, b"reply-ciphertext"
        await session.execute(StaffReplyTarget.__table__.delete())
    await run_purge(db, NOW + timedelta(days=365))
    assert question_ids(db_url) == {1, 2}
    await run_purge(db, months_before(NOW, -MONTHS) + timedelta(days=1))
    assert question_ids(db_url) == set()


async def test_question_purges_are_audited_per_patient_without_content(migrated_db, db_url):
    db = migrated_db
    await add_patients(db, 1, 2, 3)
    async with db.session() as session:
        session.add(IntakeConsent(id=1, patient_id=1, version="v1", text_sha256="0" * 64,
                                  agreed_at=OLD))
        await session.flush()
        session.add(Intake(id=1, patient_id=1, consent_id=1, status="submitted", stage="review",
                           data=b"x", created_at=OLD, updated_at=OLD))
        session.add_all([question(1, 1, ANSWERED), question(2, 1, UNANSWERED),
                         question(3, 2, CLOSED, handed_off_at=OLD),
                         question(4, 3, HANDED_OFF, handed_off_at=OLD)])  # kept: not audited

    purged = await run_purge(db)

    assert retention_audit(db_url) == [("retention_purge", None, 1, "intakes:1"),
                                       ("retention_purge", None, 1, "questions:2"),
                                       ("retention_purge", None, 2, "questions:1")]
    assert question_ids(db_url) == {4}
    assert purged == {1: 1}
    assert purged.questions == {1: 2, 2: 1}
    # The next day's run finds nothing more, and audits nothing.
    again = await run_purge(db, NOW + timedelta(days=1))
    assert again == {} and again.questions == {}
    assert len(retention_audit(db_url)) == 3


async def test_daily_job_logs_counts_of_questions_only(migrated_db, db_url, caplog):
    db = migrated_db
    await add_patients(db, 1, 2)
    async with db.session() as session:
        session.add_all([question(1, 1, ANSWERED), question(2, 2, ANSWERED),
                         question(3, 2, REPLIED, replied_at=OLD)])
    svc = SimpleNamespace(db=db, clock=FixedClock(NOW),
                          settings=SimpleNamespace(intake_retention_months=MONTHS))
    context = SimpleNamespace(application=SimpleNamespace(bot_data={"services": svc}))

    with caplog.at_level(logging.INFO, logger="bot.retention"):
        await retention_job(context)

    assert question_ids(db_url) == set()
    assert [r.getMessage() for r in caplog.records if r.name == "bot.retention"] == [
        "retention: purged 0 questionnaire(s) and 3 question(s) of 2 patient(s)"]
    assert "5521" not in caplog.text and "sauna" not in caplog.text


@pytest.mark.postgres
async def test_two_instances_purging_at_once_audit_each_question_once(migrated_pg_db):
    """Both instances' daily jobs fire at 03:30: the second selects the same questions, waits on
    the first's DELETE, then deletes nothing, and must not audit a purge it did not do."""
    import asyncio

    db = migrated_pg_db
    await add_patients(db, 1, 2, 3)
    async with db.session() as session:
        # No staff Reply in progress: the second instance then waits on the questions' DELETE
        # itself, not on the reply targets' before it.
        session.add_all(question(i, i, REPLIED, handed_off_at=OLD, replied_at=OLD)
                        for i in (1, 2, 3))

    async def second_instance():
        async with db.session() as session:
            return await purge(session, NOW, MONTHS)

    async with db.session() as session:
        first = await purge(session, NOW, MONTHS)
        second = asyncio.create_task(second_instance())
        await until_one_waits_on_a_lock(db, "the second purge")  # on the first's rows
    assert first.questions == {1: 1, 2: 1, 3: 1}
    assert (await second).questions == {}
    async with db.session() as session:
        audited = await session.scalar(select(func.count()).select_from(AuditEvent)
                                       .where(AuditEvent.action == "retention_purge"))
        assert audited == 3
        assert await session.scalar(select(func.count()).select_from(Question)) == 0
