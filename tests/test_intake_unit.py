"""bot/ logic of the intake without Telegram: spec loading, answer parsers, crypto, the flow."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from bot.config import ROOT, ConfigError, load_settings
from bot.content import ContentError
from bot.crypto import CryptoBox, CryptoError, new_key
from bot.db.engine import Database
from bot.db.intake_models import Intake, IntakeConsent
from bot.db.migrate import upgrade
from bot.intake import answers
from bot.intake.flow import IntakeFlow
from bot.intake.spec import load_intake
from bot.patients import refresh, upsert_from_telegram

SPEC = load_intake(ROOT / "content" / "intake.yaml")
TODAY = date(2026, 11, 24)
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


# ----------------------------------------------------------------------------- spec
def test_shipped_spec_has_the_issue_questions():
    ids = [q.id for q in SPEC.questions]
    for needed in ("goal", "areas", "previous", "allergies", "medications", "pregnancy", "skin",
                   "chronic", "phone", "days", "notes"):
        assert needed in ids
    assert {q.kind for q in SPEC.questions} == {"choice", "multi_choice", "yes_no", "text",
                                                 "phone", "date"}
    goal = SPEC.by_id["goal"]
    # The document's uses, in its words.
    assert [o.label for o in goal.options][:5] == [
        "Facial rejuvenation", "Fat reduction", "Cellulite", "Hair restoration", "Stretch marks"]
    assert SPEC.by_id["medications"].flag == {"blood_thinners"}
    assert SPEC.by_id["pregnancy"].flag == {"yes"}


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    source = (ROOT / "content" / "intake.yaml").read_text(encoding="utf-8")
    assert old in source
    path = tmp_path / "intake.yaml"
    path.write_text(source.replace(old, new, 1), encoding="utf-8")
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


@pytest.mark.parametrize(("old", "new", "problem", "at"), [
    ("kind: yes_no", "kind: maybe", "kind must be one of", "- id: allergies"),
    ('flag: "yes"', "flag: sometimes", "flag ['sometimes']", "- id: allergies"),
    ("  - id: areas", "  - id: goal", "duplicate question id", "- id: goal\n"),
    ("ask_if: {question: allergies", "ask_if: {question: notes", "ask_if needs an earlier", "- id: allergies_detail"),
    ('text: "<b>Which conditions?</b>"', 'text: "<b>Which conditions?"', "unclosed <b>", "- id: chronic_detail"),
    ("validation: {region: GB}", "validation: {region: XX}", "unknown phone region", "- id: phone"),
    ('button_submit: "📨 Submit"', 'button_submit: "<i>Submit"', "texts: button_submit", "button_submit"),
    ('  version: "2026-11-25"', '  version: "bad version!"', "consent version", 'version: "bad'),
])
def test_broken_spec_fails_with_file_and_line(tmp_path, old, new, problem, at):
    path = _broken(tmp_path, old, new)
    with pytest.raises(ContentError) as info:
        load_intake(path)
    assert problem in str(info.value)
    assert info.value.path == str(path)
    expected = _line_of(path, at.rstrip("\n")) if at != "- id: goal\n" else \
        [i for i, line in enumerate(path.read_text().splitlines(), 1) if "- id: goal" in line][1]
    assert info.value.line == expected, str(info.value)


def test_yaml_syntax_error_has_a_line(tmp_path):
    path = _broken(tmp_path, "questions:", "questions: [")
    with pytest.raises(ContentError) as info:
        load_intake(path)
    assert info.value.line > 1


def test_broken_intake_file_stops_the_bot_at_start(tmp_path, fake, db_url):
    from bot.app import build_services
    from tests.conftest import make_settings

    content = tmp_path / "content"
    shutil.copytree(ROOT / "content", content)
    (content / "intake.yaml").write_text("consent: {version: x}\n", encoding="utf-8")
    with pytest.raises(ContentError, match="intake.yaml:1"):
        build_services(make_settings(fake, db_url, content_dir=content))


# ----------------------------------------------------------------------------- parsers
@given(st.text(max_size=60))
@settings(max_examples=300)
def test_parse_phone_never_raises_and_valid_means_valid(raw):
    result = answers.parse_phone(raw, "GB")
    if isinstance(result, answers.Valid):
        number = phonenumbers.parse(result.value, None)
        assert phonenumbers.is_valid_number(number)
        assert result.value == phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    else:
        assert result.key in SPEC.texts


@given(st.lists(st.sampled_from(["", "", " ", "-", ".", " "]), min_size=11, max_size=11),
       st.sampled_from(["+44", "0044", "0"]))
def test_parse_phone_accepts_a_number_in_any_spacing(separators, prefix):
    digits = "7911123456"
    raw = prefix + "".join(d + sep for d, sep in zip(digits, separators, strict=False))
    assert answers.parse_phone(raw, "GB") == answers.Valid("+447911123456"), raw


@given(st.text(max_size=40))
@settings(max_examples=300)
def test_parse_date_never_raises(raw):
    result = answers.parse_date(SPEC.by_id["earliest"], raw, TODAY)
    if isinstance(result, answers.Valid):
        value = date.fromisoformat(result.value)
        assert TODAY <= value <= date(2027, 11, 24)
    else:
        assert result.key in SPEC.texts


@given(st.dates(min_value=TODAY, max_value=date(2027, 11, 24)), st.sampled_from(
    ["%d/%m/%Y", "%d.%m.%Y", "%Y-%m-%d", "%d %B %Y", "%d %b %Y", "%B %d, %Y", "%d-%m-%y"]))
def test_parse_date_round_trips(value, fmt):
    assert answers.parse_date(SPEC.by_id["earliest"], value.strftime(fmt), TODAY) == \
        answers.Valid(value.isoformat())


def test_parse_date_without_year_rolls_forward():
    assert answers.parse_date(SPEC.by_id["earliest"], "15 Jan", TODAY).value == "2027-01-15"
    assert answers.parse_date(SPEC.by_id["earliest"], "tomorrow", TODAY).value == "2026-11-25"


@given(st.text(max_size=1200))
@settings(max_examples=300)
def test_parse_text_invariants(raw):
    question = SPEC.by_id["notes"]
    result = answers.parse_text(question, raw)
    if isinstance(result, answers.Valid):
        assert 1 <= len(result.value) <= 1000 and result.value == result.value.strip()
        assert any(ch.isalnum() for ch in result.value)


def test_choice_and_multi_typed():
    assert answers.parse_typed(SPEC.by_id["previous"], " no, NEVER ", TODAY).value == "none"
    assert answers.parse_typed(SPEC.by_id["previous"], "2", TODAY).value == "meso"
    assert answers.parse_typed(SPEC.by_id["areas"], "thighs and Face, 7", TODAY).value == \
        ["face", "thighs", "arms"]
    assert answers.parse_typed(SPEC.by_id["allergies"], "Yes!", TODAY).value == "yes"


# ----------------------------------------------------------------------------- crypto
def test_crypto_round_trip_context_and_rotation():
    old, new = new_key(), new_key()
    box_old = CryptoBox([old])
    token = box_old.encrypt_json({"a": "Warfarin"}, context="intake:1")
    assert b"Warfarin" not in token
    with pytest.raises(CryptoError):
        box_old.decrypt_json(token, context="intake:2")  # copied onto another patient's row
    rotating = CryptoBox([new, old])
    assert rotating.decrypt_json(token, context="intake:1") == {"a": "Warfarin"}
    assert rotating.needs_rotation(token)
    rotated = rotating.rotate(token)
    assert not rotating.needs_rotation(rotated)
    assert CryptoBox([new]).decrypt_json(rotated, context="intake:1") == {"a": "Warfarin"}
    with pytest.raises(CryptoError):
        CryptoBox([new_key()]).decrypt_json(token, context="intake:1")


def test_encryption_keys_setting():
    key = new_key()
    settings_ = load_settings(_env_file=None, encryption_keys=f" {key} , {new_key()} ")
    assert settings_.encryption_key_list()[0] == key
    with pytest.raises(ConfigError) as info:
        load_settings(_env_file=None, encryption_keys="not-a-key-secret-value")
    assert "ENCRYPTION_KEYS key 1 is not a Fernet key" in str(info.value)
    assert "secret-value" not in str(info.value)  # never echo a key
    with pytest.raises(ConfigError, match="ENCRYPTION_KEYS is not set"):
        load_settings(_env_file=None).encryption_key_list()


def test_run_mode_without_keys_is_a_clear_config_error(monkeypatch, capsys, tmp_path):
    import run_bot

    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setenv("BOT_TOKEN", "123456:" + "A" * 35)
    monkeypatch.delenv("ENCRYPTION_KEYS", raising=False)
    assert run_bot.main(["run"]) == 2
    assert "ENCRYPTION_KEYS is not set" in capsys.readouterr().err


def test_sandbox_key_file_is_created_once_and_private(tmp_path):
    import run_bot

    url = f"sqlite+aiosqlite:///{tmp_path / 'sandbox.db'}"
    key = run_bot._sandbox_key(url)
    path = tmp_path / "sandbox.db.key"
    assert path.stat().st_mode & 0o077 == 0
    assert run_bot._sandbox_key(url) == key
    CryptoBox([key])


# ----------------------------------------------------------------------------- flow over a DB
async def _flow_db(url: str, **engine_kwargs) -> tuple[Database, IntakeFlow, CryptoBox]:
    db = Database(url, **engine_kwargs)
    await upgrade(db)
    box = CryptoBox([new_key()])
    return db, IntakeFlow(SPEC, box, ZoneInfoLondon), box


ZoneInfoLondon = ZoneInfo("Europe/London")


async def _run_through(db: Database, flow: IntakeFlow, *, submit: bool = True) -> int:
    async with db.session() as session:
        patient = await upsert_from_telegram(session, user_id=77, chat_id=77, first_name="P",
                                             language_code="en", now=NOW)
        await flow.consent(session, patient, SPEC.consent_version, True, NOW)
        row = await session.scalar(select(Intake))
        iid = row.id
        for data in (f"ik:{iid}:t:goal:hair", f"ik:{iid}:d:goal", f"ik:{iid}:t:areas:scalp",
                     f"ik:{iid}:d:areas", f"ik:{iid}:a:previous:none",
                     f"ik:{iid}:a:allergies:no", f"ik:{iid}:a:medications:none",
                     f"ik:{iid}:a:pregnancy:yes", f"ik:{iid}:a:skin:no", f"ik:{iid}:a:chronic:no"):
            await flow.press(session, patient, data, NOW)
        await flow.typed(session, patient, "07911 123456", NOW)
        await flow.press(session, patient, f"ik:{iid}:t:days:any", NOW)
        await flow.press(session, patient, f"ik:{iid}:d:days", NOW)
        await flow.press(session, patient, f"ik:{iid}:s:earliest", NOW)
        reply = await flow.press(session, patient, f"ik:{iid}:s:notes", NOW)
        assert "Please check your answers" in reply.messages[-1].text
        if not submit:
            return iid
        reply = await flow.press(session, patient, f"ik:{iid}:sub", NOW)
        assert reply.staff is not None
        assert "Pregnant" in reply.staff.text_parts[1]  # flags right after the title
        return iid


async def test_flow_on_sqlite_stores_ciphertext_only(tmp_path):
    db, flow, box = await _flow_db(f"sqlite+aiosqlite:///{tmp_path / 'f.db'}")
    try:
        iid = await _run_through(db, flow)
        async with db.session() as session:
            row = await session.get(Intake, iid)
        assert row.status == "submitted" and b"447911123456" not in row.data
        data = box.decrypt_json(row.data, context=f"intake:{row.patient_id}")
        assert data["answers"]["phone"] == "+447911123456"
        assert "allergies_detail" not in data["answers"] and data["answers"]["earliest"] is None
    finally:
        await db.dispose()


async def test_rotate_keys_reencrypts_every_row(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    old = new_key()
    db = Database(url)
    await upgrade(db)
    flow = IntakeFlow(SPEC, CryptoBox([old]), ZoneInfoLondon)
    try:
        await _run_through(db, flow)
        new = new_key()
        flow2 = IntakeFlow(SPEC, CryptoBox([new, old]), ZoneInfoLondon)
        async with db.session() as session:
            assert await flow2.rotate_keys(session) == 1
        async with db.session() as session:
            assert await flow2.rotate_keys(session) == 0
        flow3 = IntakeFlow(SPEC, CryptoBox([new]), ZoneInfoLondon)  # the old key is gone
        async with db.session() as session:
            assert "+44 7911 123456" in await flow3.staff_contact(session, 1, 42, NOW)
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_migration_and_flow_on_postgresql(migrated_pg_db):
    db = migrated_pg_db
    flow = IntakeFlow(SPEC, CryptoBox([new_key()]), ZoneInfoLondon)
    await _run_through(db, flow)
    async with db.session() as session:
        kinds = await session.scalar(text(
            "select count(*) from pg_indexes where indexname = 'uq_intakes_active_patient'"
            " and schemaname = current_schema()"))
    assert kinds == 1
    from bot.db.migrate import downgrade

    await downgrade(db, "0001")


def test_without_keys_or_file_the_intake_is_disabled_not_unencrypted(tmp_path, fake, db_url):
    from bot.app import build_services
    from tests.conftest import make_settings

    assert build_services(make_settings(fake, db_url, encryption_keys="")).intake is None
    content = tmp_path / "content"
    shutil.copytree(ROOT / "content", content)
    (content / "intake.yaml").unlink()
    assert build_services(make_settings(fake, db_url, content_dir=content)).intake is None


async def test_a_step_reads_patient_and_questionnaire_in_one_query(migrated_db):
    """The hot path of every answer: one SELECT (patient joined with the open questionnaire),
    then only the questionnaire's UPDATE. The preloaded row serves one lookup only, so a second
    lookup in the same transaction sees what the step changed."""
    from sqlalchemy import event

    flow = IntakeFlow(SPEC, CryptoBox([new_key()]), ZoneInfoLondon)
    async with migrated_db.session() as session:
        patient = await upsert_from_telegram(session, user_id=5, chat_id=5, first_name="P",
                                             language_code="en", now=NOW)
        await flow.consent(session, patient, SPEC.consent_version, True, NOW)
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:  # noqa: ANN001
        words = statement.split()
        statements.append(" ".join(words[:2]) if words[0].upper() == "UPDATE" else words[0])

    event.listen(migrated_db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with migrated_db.session() as session:
            loaded, row = await flow.with_patient(session, 5)
            assert flow.waiting(row) == ("multi_choice", False)  # the goal question
            # Telegram says what we know: the patient row is not written.
            refresh(loaded, chat_id=5, first_name="P", language_code="en", now=NOW)
            reply = await flow.press(session, loaded, f"ik:{row.id}:t:goal:hair", NOW)
            assert "✅ Hair restoration" in str(reply.messages[0].rows)
        assert statements == ["SELECT", "UPDATE intakes"]
        statements.clear()
        async with migrated_db.session() as session:
            loaded, row = await flow.with_patient(session, 5)
            await flow.press(session, loaded, f"ik:{row.id}:xy", NOW)  # cancel: the row ends
            assert await flow.cancel(session, loaded) is None  # queried again: nothing open
        # The press's own lookup, the cancel's look for answers sent before, the second lookup.
        assert statements.count("SELECT") == 3
        async with migrated_db.session() as session:
            assert await flow.with_patient(session, 6) == (None, None)  # not a patient yet
    finally:
        event.remove(migrated_db.engine.sync_engine, "before_cursor_execute", seen)


async def test_update_after_a_new_consent_version_starts_from_the_submitted_answers(
        tmp_path, migrated_db):
    """A returning patient updating their answers after the consent text changed agrees to the
    new text, then finds their answers at the review, not an empty questionnaire; the submit
    replaces the old request."""
    box = CryptoBox([new_key()])
    first = await _run_through(migrated_db, IntakeFlow(SPEC, box, ZoneInfoLondon))
    async with migrated_db.session() as session:  # an answer to a question since removed
        old = await session.get(Intake, first)
        data = box.decrypt_json(old.data, context=f"intake:{old.patient_id}")
        data["answers"]["retired_question"] = "kept too long"
        old.data = box.encrypt_json(data, context=f"intake:{old.patient_id}")
    new_spec = load_intake(_broken(tmp_path, '  version: "2026-11-25"', '  version: "2027-01-05"'))
    flow = IntakeFlow(new_spec, box, ZoneInfoLondon)
    async with migrated_db.session() as session:
        patient, _ = await flow.with_patient(session, 77)
        reply = await flow.press(session, patient, "ik:upd", NOW)
        assert "consent text has changed" in reply.messages[0].text
        assert reply.messages[0].rows[0][0][1] == "ik:cy:2027-01-05"
        reply = await flow.press(session, patient, "ik:cy:2027-01-05", NOW)
        review = reply.messages[-1].text
        assert "Please check your answers" in review and "Hair restoration" in review
        assert "+44 7911 123456" in review
        row = await session.scalar(select(Intake).where(Intake.status == "active"))
        assert row.replaces_id == first
        carried = box.decrypt_json(row.data, context=f"intake:{row.patient_id}")["answers"]
        assert carried["phone"] == "+447911123456" and "retired_question" not in carried
        reply = await flow.press(session, patient, f"ik:{row.id}:sub", NOW)
        assert reply.staff is not None and "updated" in reply.staff.text_parts[0].lower()
        statuses = dict((await session.execute(select(Intake.id, Intake.status))).all())
    assert statuses == {first: "superseded", row.id: "submitted"}


async def test_update_whose_earlier_answers_cannot_be_read_starts_afresh(tmp_path, migrated_db,
                                                                         caplog):
    """The key of the submitted answers was removed before rotation: agreeing to the new
    consent text opens an empty questionnaire instead of failing on every press."""
    first = await _run_through(migrated_db, IntakeFlow(SPEC, CryptoBox([new_key()]), ZoneInfoLondon))
    new_spec = load_intake(_broken(tmp_path, '  version: "2026-11-25"', '  version: "2027-01-05"'))
    flow = IntakeFlow(new_spec, CryptoBox([new_key()]), ZoneInfoLondon)  # the old key is gone
    async with migrated_db.session() as session:
        patient, _ = await flow.with_patient(session, 77)
        await flow.press(session, patient, "ik:upd", NOW)
        reply = await flow.press(session, patient, "ik:cy:2027-01-05", NOW)
        assert "Question 1 of" in reply.messages[-1].text
        row = await session.scalar(select(Intake).where(Intake.status == "active"))
        assert row.replaces_id == first
    assert "not readable" in caplog.text and "7911" not in caplog.text


def test_refresh_writes_what_telegram_changed():
    from datetime import timedelta

    from bot.db.models import Patient

    seen = NOW - timedelta(minutes=1)
    patient = Patient(telegram_user_id=1, chat_id=1, first_name="A", language_code="en",
                      unreachable=True, last_seen_at=seen)
    refresh(patient, chat_id=1, first_name="A", language_code="en", now=NOW)
    assert patient.unreachable is False  # they wrote to us: they unblocked the bot
    assert patient.last_seen_at == seen  # within the 5-minute resolution: not rewritten
    refresh(patient, chat_id=2, first_name="Ann" * 100, language_code=None,
            now=NOW + timedelta(minutes=5))
    assert (patient.chat_id, patient.first_name, patient.language_code) == (2, ("Ann" * 100)[:255], None)
    assert patient.last_seen_at == NOW + timedelta(minutes=5)


async def test_a_consent_text_changed_mid_questionnaire_is_agreed_to_before_submit(
        tmp_path, migrated_db):
    """Opened under one consent text, finished after the clinic changed it: the patient is
    shown the new text on return and at Submit, and nothing reaches staff until they agree."""
    box = CryptoBox([new_key()])
    iid = await _run_through(migrated_db, IntakeFlow(SPEC, box, ZoneInfoLondon), submit=False)
    new_spec = load_intake(_broken(tmp_path, '  version: "2026-11-25"', '  version: "2027-01-05"'))
    flow = IntakeFlow(new_spec, box, ZoneInfoLondon)
    async with migrated_db.session() as session:
        patient, _ = await flow.with_patient(session, 77)
        for data in ("ik:go", f"ik:{iid}:sub"):
            reply = await flow.press(session, patient, data, NOW)
            assert "consent text has changed" in reply.messages[0].text and reply.staff is None
            assert reply.messages[0].rows[0][0][1] == "ik:cy:2027-01-05"
        reply = await flow.press(session, patient, "ik:cy:2027-01-05", NOW)
        assert "Please check your answers" in reply.messages[-1].text
        reply = await flow.press(session, patient, f"ik:{iid}:sub", NOW)
        assert reply.staff is not None
        row = await session.get(Intake, iid)
        consent = await session.get(IntakeConsent, row.consent_id)
        assert row.status == "submitted" and consent.version == "2027-01-05"
        assert await session.scalar(select(func.count()).select_from(IntakeConsent)) == 2


async def test_declining_consent_with_a_questionnaire_open_deletes_it(migrated_db):
    """"No, thanks" (an older consent message) while answers are open withdraws consent: the
    answers go, and the patient is told so (not "nothing was saved")."""
    flow = IntakeFlow(SPEC, CryptoBox([new_key()]), ZoneInfoLondon)
    await _run_through(migrated_db, flow, submit=False)
    async with migrated_db.session() as session:
        patient, _ = await flow.with_patient(session, 77)
        reply = await flow.press(session, patient, f"ik:cn:{SPEC.consent_version}", NOW)
        assert "answers you gave in this questionnaire were deleted" in reply.messages[0].text
    async with migrated_db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Intake)) == 0


async def test_edit_button_labels_are_plain_text(tmp_path, migrated_db):
    """A short label with "&" shows as written on its Edit button (labels are not HTML)."""
    spec = load_intake(_broken(tmp_path, 'short: "Areas"', 'short: "Areas & zones"'))
    flow = IntakeFlow(spec, CryptoBox([new_key()]), ZoneInfoLondon)
    await _run_through(migrated_db, flow, submit=False)
    async with migrated_db.session() as session:
        patient, _ = await flow.with_patient(session, 77)
        reply = await flow.press(session, patient, "ik:go", NOW)
    labels = [label for row in reply.messages[-1].rows for label, _ in row]
    assert "✏️ Areas & zones" in labels
    assert "Areas &amp; zones" in reply.messages[-1].text  # the review text itself is HTML
