"""A question whose staff alert reached no staff chat (red flag, passed on, request by button)
is kept and alerted again by a job once a staff chat can be reached, then never again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from bot.clock import FixedClock
from bot.db.engine import Database
from bot.db.migrate import upgrade
from tests.harness import BotRunner, TgUser

STAFF_ID = 42


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 5, 4, 10, 0, tzinfo=UTC))


@pytest.fixture
async def runner(fake, settings, clock) -> AsyncIterator[BotRunner]:
    bot_runner = BotRunner(fake, settings, clock=clock, periodic_dispatch=False)
    await bot_runner.start()
    yield bot_runner
    await bot_runner.stop()


def staff_texts(fake) -> list[str]:
    return [c.params["text"] for c in fake.calls_to("sendMessage", STAFF_ID)]


async def run_job(runner: BotRunner) -> None:
    [job] = runner.app.job_queue.get_jobs_by_name("question-alerts")
    await job.run(runner.app)


async def test_a_red_flag_no_staff_chat_got_is_alerted_again_once(fake, runner, clock):
    patient = TgUser(runner, first_name="Anna")
    fake.block(STAFF_ID)  # the staff chat cannot be reached
    shown = await patient.send("My lips are swelling up")
    assert "Please get help now" in shown[0].text and staff_texts(fake) == []
    fake.blocked.discard(STAFF_ID)
    clock.advance(minutes=1)
    await run_job(runner)
    assert staff_texts(fake) == []  # within the grace: the first alert may be on its way
    clock.advance(minutes=3)
    await run_job(runner)
    [alert] = staff_texts(fake)
    assert "URGENT #1" in alert and "My lips are swelling up" in alert
    assert "allergic reaction" in alert
    await run_job(runner)
    assert len(staff_texts(fake)) == 1


async def test_a_question_passed_on_while_staff_are_unreachable_is_kept(fake, runner, clock):
    patient = TgUser(runner, first_name="Anna")
    await patient.send("How much does it cost?")
    fake.block(STAFF_ID)
    shown = await patient.press("💬 Yes, send it to the clinic")
    assert "Your question is kept" in shown[-1].text
    fake.blocked.discard(STAFF_ID)
    staff = TgUser(runner, "Staff", user_id=STAFF_ID)
    await staff.send("/staff")
    shown = await staff.press("❓ Open questions")
    assert "How much does it cost?" in shown[0].text  # in the console at once
    clock.advance(minutes=5)
    await run_job(runner)
    alert = next(t for t in staff_texts(fake) if "Question #1" in t)
    assert "How much does it cost?" in alert
    await run_job(runner)
    assert sum("Question #1" in t for t in staff_texts(fake)) == 1


async def test_alerts_that_reached_staff_are_not_sent_again(fake, runner, clock):
    patient = TgUser(runner, first_name="Anna")
    await patient.send("My lips are swelling up")
    await patient.send("How much does it cost?")
    await patient.press("💬 Yes, send it to the clinic")
    before = len(staff_texts(fake))
    assert before == 2
    clock.advance(minutes=10)
    await run_job(runner)
    assert len(staff_texts(fake)) == before


async def test_migration_counts_questions_already_handed_off_as_alerted(db_url):
    """Open questions of a database from before 0010 were alerted then (or are long in the
    console): the job must not alert them all again on the first start."""
    db = Database(db_url)
    await upgrade(db, "0009_question_source")
    now = datetime(2026, 5, 1, 9, tzinfo=UTC)
    async with db.session() as session:
        await session.execute(text(
            "INSERT INTO patients (id, telegram_user_id, chat_id, created_at, last_seen_at) "
            "VALUES (1, 7, 7, :now, :now)"), {"now": now})
        await session.execute(text(
            "INSERT INTO questions (id, patient_id, text, status, created_at, handed_off_at) "
            "VALUES (1, 1, x'00', 'red_flag', :now, :now), "
            "(2, 1, x'00', 'unanswered', :now, NULL)"), {"now": now})
    await upgrade(db)
    async with db.session() as session:
        found = (await session.execute(text(
            "SELECT id, alerted_at IS NOT NULL FROM questions ORDER BY id"))).all()
    assert [tuple(r) for r in found] == [(1, True), (2, False)]
    await db.dispose()


async def test_a_job_run_never_raises_and_says_what_failed(migrated_db, caplog):
    """run_alone, shared by the alert and summary resend jobs: the next run tries again."""
    from types import SimpleNamespace

    from handlers.common import run_alone

    svc = SimpleNamespace(db=migrated_db)
    ran: list[str] = []

    async def work() -> None:
        ran.append("ran")

    async def database_away() -> None:
        raise ConnectionRefusedError("connection refused")

    async def bug() -> None:
        raise KeyError("oops")

    with caplog.at_level("WARNING"):
        await run_alone(svc, "some-job", work)
        await run_alone(svc, "some-job", database_away)
        await run_alone(svc, "some-job", bug)
    assert ran == ["ran"]
    assert "some-job: database unavailable (ConnectionRefusedError)" in caplog.text
    assert "some-job failed" in caplog.text and "KeyError" in caplog.text
