"""rotate-keys while a bot is running: an answer a patient saves meanwhile is never overwritten
with the older answers, and what a bot still on the old key list wrote meanwhile is reported
(the old key must stay until a run leaves nothing under it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Update

from bot.crypto import CryptoBox, new_key
from bot.db.intake_models import Intake
from bot.rotation import LEFT, rotate_all
from tests.conftest import TEST_ENCRYPTION_KEY
from tests.intake_support import seed_questionnaire

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
OLD, NEW = TEST_ENCRYPTION_KEY, new_key()


def answers(text: str) -> dict:
    return {"answers": {"allergies": text}, "draft": {}}


async def _rotate_while_the_patient_answers(db, monkeypatch, running_bot: CryptoBox) -> dict:
    await seed_questionnaire(db, CryptoBox([OLD]), NOW, "old")
    real_execute = AsyncSession.execute
    answered = False

    async def execute(self, statement, *args, **kwargs):  # noqa: ANN001, ANN202
        nonlocal answered
        if not answered and isinstance(statement, Update) and statement.table.name == "intakes":
            answered = True  # the patient's answer lands between the read and the write
            async with db.session() as other:
                await other.execute(update(Intake).where(Intake.id == 1).values(
                    data=running_bot.encrypt_json(answers("new: penicillin"), context="intake:1"),
                    updated_at=NOW + timedelta(seconds=1)))
        return await real_execute(self, statement, *args, **kwargs)

    monkeypatch.setattr(AsyncSession, "execute", execute)
    counts = await rotate_all(SimpleNamespace(crypto=CryptoBox([NEW, OLD]), db=db))
    monkeypatch.setattr(AsyncSession, "execute", real_execute)
    assert answered
    async with db.session() as session:
        row = await session.get(Intake, 1)
        kept = CryptoBox([NEW, OLD]).decrypt_json(row.data, context="intake:1")
    assert kept == answers("new: penicillin")  # not the older answers, re-encrypted
    return counts


async def test_an_answer_saved_during_rotation_is_kept_on_sqlite(migrated_db, monkeypatch):
    counts = await _rotate_while_the_patient_answers(migrated_db, monkeypatch,
                                                     CryptoBox([NEW, OLD]))
    assert counts == {"questionnaires": 0, "question fields": 0}  # nothing left: done


@pytest.mark.postgres
async def test_an_answer_saved_during_rotation_is_kept_on_postgresql(migrated_pg_db, monkeypatch):
    counts = await _rotate_while_the_patient_answers(migrated_pg_db, monkeypatch,
                                                     CryptoBox([NEW, OLD]))
    assert counts == {"questionnaires": 0, "question fields": 0}


async def test_what_a_bot_on_the_old_keys_wrote_meanwhile_is_reported(migrated_db, monkeypatch):
    counts = await _rotate_while_the_patient_answers(migrated_db, monkeypatch, CryptoBox([OLD]))
    assert counts[LEFT] == 1


async def test_a_row_no_key_reads_does_not_stop_the_others(migrated_db):
    """One field under a key removed before an earlier rotation finished raised, and rolled
    every other row back: rotation could never finish. It is counted and left as it is."""
    from bot.crypto import CryptoBox as Box
    from bot.db.qa_models import Question

    lost = new_key()
    await seed_questionnaire(migrated_db, CryptoBox([OLD]), NOW, "old")
    async with migrated_db.session() as session:
        session.add(Question(patient_id=1, status="answered", created_at=NOW,
                             text_enc=Box([lost]).encrypt_json("x", context="question:1:text")))
    counts = await rotate_all(SimpleNamespace(crypto=CryptoBox([NEW, OLD]), db=migrated_db))
    assert counts == {"questionnaires": 1, "question fields": 0,
                      "readable with none of the keys": 1}
