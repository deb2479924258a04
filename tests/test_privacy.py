"""/mydata export, /forget erasure, the append-only audit, and the recorded staff check."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select
from telegram.ext import CommandHandler

from bot.db.privacy_models import AuditEvent, AuditIsAppendOnly
from handlers.common_staff import require_staff
from tests.harness import TgUser


def _audit(db_path: Path) -> list[tuple]:
    with sqlite3.connect(db_path) as conn:
        return conn.execute("select action, actor_user_id, patient_id, subject from audit_events").fetchall()


@pytest.fixture
def db_path(db_url: str) -> Path:
    return Path(db_url.split("///", 1)[1])


async def test_mydata_sends_the_patients_data_as_json_and_is_audited(fake, runner, db_path):
    anna = TgUser(runner, first_name='Anna <"&>')
    await anna.send("/start")
    shown = await anna.send("/mydata")
    assert len(shown) == 1 and shown[0].document["file_name"] == "my-data.json"
    data = json.loads(fake.files[shown[0].document["file_id"]])
    assert data["profile"]["first_name"] == 'Anna <"&>'
    assert data["profile"]["telegram_user_id"] == anna.id
    actions = _audit(db_path)
    assert [a[0] for a in actions] == ["export"]


async def test_mydata_before_any_contact_says_nothing_is_stored(fake, runner):
    # /mydata is the first thing this person ever sends: no record exists.
    bob = TgUser(runner, first_name="Bob")
    shown = await bob.send("/mydata")
    assert "don't store any data" in shown[0].text


async def test_forget_erases_personal_data_after_confirmation(fake, runner, db_path):
    zoe = TgUser(runner, first_name="Zoe Uniquename")
    await zoe.send("/start")
    shown = await zoe.send("/forget")
    assert "Erase your data?" in shown[0].text
    # Honest about what it cannot reach: what staff received in their own chat.
    assert "What the clinic's staff already received in their own chat" in shown[0].text
    shown = await zoe.press("🗑 Yes")
    assert "has been erased" in shown[0].text
    with sqlite3.connect(db_path) as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            for row in conn.execute(f'select * from "{table}"'):  # noqa: S608 - test, own schema
                flat = " ".join(str(v) for v in row)
                assert "Uniquename" not in flat, table
                assert str(zoe.id) not in flat, table
    actions = _audit(db_path)
    assert ("erasure", None) == actions[-1][:2]
    # Writing again starts afresh: a new, separate record.
    shown = await zoe.send("/start")
    assert "Hello, Zoe Uniquename!" in shown[0].text


async def test_forget_can_be_declined(fake, runner, db_path):
    kim = TgUser(runner, first_name="Kim")
    await kim.send("/start")
    await kim.send("/forget")
    shown = await kim.press("Keep my data")
    assert "Nothing was erased" in shown[0].text
    assert kim.labels(shown[0]) == ["🏠 Main menu"]  # not a dead end
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("select first_name from patients").fetchone() == ("Kim",)
    assert _audit(db_path) == []


async def test_audit_rows_cannot_be_changed(runner):
    svc = runner.app.bot_data["services"]
    async with svc.db.session() as session:
        session.add(AuditEvent(at=svc.clock.now(), action="export", actor_user_id=1))
    with pytest.raises(AuditIsAppendOnly):
        async with svc.db.session() as session:
            row = await session.scalar(select(AuditEvent))
            row.action = "nothing happened"
    with pytest.raises(AuditIsAppendOnly):
        async with svc.db.session() as session:
            await session.delete(await session.scalar(select(AuditEvent)))


async def test_staff_check_refuses_politely_and_records_the_attempt(fake, runner, db_path):
    async def secret(update, context):
        if await require_staff(update, context, "test_secret"):
            await context.bot.send_message(update.effective_chat.id, "staff area")

    runner.app.add_handler(CommandHandler("secret", secret), group=-5)
    mallory = TgUser(runner, first_name="Mallory")
    shown = await mallory.send("/secret")
    assert any("only for clinic staff" in m.text for m in shown)
    assert not any("staff area" in m.text for m in shown)
    assert ("staff_denied", mallory.id, None, "test_secret") in _audit(db_path)
    staff = TgUser(runner, first_name="Nurse", user_id=42)
    shown = await staff.send("/secret")
    assert any("staff area" in m.text for m in shown)


def test_every_table_holding_patient_data_is_covered_by_export_and_erasure(runner):
    """A new feature storing patient rows must register a DataSection, or this fails."""
    from bot.db.models import Base

    svc = runner.app.bot_data["services"]
    covered = svc.privacy.covered_tables()
    # Kept on purpose: the audit holds ids and actions only; it must survive erasure.
    exempt = {"audit_events"}
    holding = {t.name for t in Base.metadata.sorted_tables
               if t.name == "patients" or "patient_id" in t.columns}
    assert holding - exempt <= covered, f"not covered by /mydata and /forget: {holding - exempt - covered}"


async def test_questions_are_exported_and_erased(fake, runner, db_path):
    eve = TgUser(runner, first_name="Eve")
    await eve.send("/start")
    await eve.send("Does it hurt? My zebra-code 7781")
    shown = await eve.send("/mydata")
    data = json.loads(fake.files[shown[0].document["file_id"]])
    assert data["questions"][0]["question"] == "Does it hurt? My zebra-code 7781"
    stored = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    assert b"zebra-code" not in stored  # questions are health data: encrypted at rest
    await eve.send("/forget")
    await eve.press("🗑 Yes")
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("select count(*) from questions").fetchone() == (0,)


async def test_mydata_marks_a_row_under_a_removed_key_and_gives_the_rest(fake, db_url):
    """A key removed before rotation finished: that question is marked not readable, and the
    patient still gets everything else (the whole export failed with "something went wrong")."""
    from bot.crypto import new_key
    from tests.conftest import make_settings
    from tests.harness import BotRunner
    from tests.intake_support import agree

    runner = BotRunner(fake, make_settings(fake, db_url))
    await runner.start()
    try:
        anna = TgUser(runner, first_name="Anna")
        await anna.send("Can I go to the sauna after the session?")
        await agree(anna)  # a questionnaire begun: its answers are encrypted too
    finally:
        await runner.stop()
    runner = BotRunner(fake, make_settings(fake, db_url, encryption_keys=new_key()))
    await runner.start()
    try:
        anna = TgUser(runner, first_name="Anna", user_id=anna.id)
        shown = await anna.send("/mydata")
        data = json.loads(fake.files[TgUser.document_in(shown).document["file_id"]])
    finally:
        await runner.stop()
    [sauna] = data["questions"]
    assert sauna["question"] is None and sauna["readable"] is False
    assert sauna["status"] and data["profile"]["first_name"] == "Anna"  # the rest is there
    [questionnaire] = data["consultation_intake"]["questionnaires"]
    assert questionnaire["answers"] is None and questionnaire["readable"] is False
