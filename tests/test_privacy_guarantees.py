"""The tests issue #6 names: every staff command and forged staff button refused and audited;
patient A never reaches patient B's appointment or intake through any callback; /mydata holds
exactly the patient's data; /forget leaves no personal data in any table; staff reads audited."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from telegram.ext import CommandHandler

from bot.clock import FixedClock
from tests.conftest import sql, sql_write
from tests.harness import BotRunner, TgUser
from tests.intake_support import complete

PATIENT_COMMANDS = {"start", "menu", "help", "mydata", "forget", "settings", "cancel"}
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
HYPO = settings(max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
async def rr(fake, settings):  # noqa: F811 - the pytest fixture, not hypothesis' settings
    # No periodic dispatch: a booking confirmation landing after a screen would take the
    # buttons the next press looks for.
    runner = BotRunner(fake, settings, clock=FixedClock(NOW), periodic_dispatch=False)
    await runner.start()
    yield runner
    await runner.stop()



def _denied(db_url: str) -> int:
    return sql(db_url, "select count(*) from audit_events where action='staff_denied'")[0][0]


async def _book(rr, user: TgUser, when: str, area: str) -> int:
    shown = await TgUser(rr, "Staff", user_id=42).send(f"/book {user.id} {when} 60 {area}")
    return int(re.search(r"#(\d+)", shown[-1].text).group(1))


def staff_commands(app) -> set[str]:
    commands = {c for handlers in app.handlers.values() for h in handlers
                if isinstance(h, CommandHandler) for c in h.commands}
    return commands - PATIENT_COMMANDS


async def test_every_registered_staff_command_refuses_non_staff_and_is_audited(fake, rr, db_url):
    commands = staff_commands(rr.app)
    assert {"staff", "stats", "book", "broadcast", "today", "noshow", "retry_dead", "reply",
            "upcoming", "push", "reschedule", "cancel_appt"} <= commands
    mallory = TgUser(rr, first_name="Mallory")
    await mallory.send("/start")
    anna = TgUser(rr, first_name="Anna")
    await anna.send("/start")
    appt = await _book(rr, anna, "2026-03-05 12:00", "face")
    for command in sorted(commands):
        before = _denied(db_url)
        shown = await mallory.send(f"/{command} {appt} tomorrow 10:00")
        assert _denied(db_url) == before + 1, command
        for message in shown:
            assert "Anna" not in message.text and "face" not in message.text, command
            assert "Booked" not in message.text and "Staff console" not in message.text, command
    status = sql(db_url, "select status from appointments where id=?", appt)
    assert status == [("booked",)]  # nothing was cancelled, moved or pushed


STAFF_CALLBACKS = st.one_of(
    st.from_regex(r"staff:(menu|stats|today|failed|broadcast|intakes|questions)", fullmatch=True),
    st.just("ap:staff:upcoming"),
    st.from_regex(r"(iks|rt|ps):[0-9]{1,12}", fullmatch=True),
    st.from_regex(r"qa:reply:[0-9]{1,12}", fullmatch=True),
    st.from_regex(r"bc:(g|send|no):(tomorrow|upcoming|[0-9]{1,6})", fullmatch=True),
)


@HYPO
@given(data=STAFF_CALLBACKS)
@example(data="iks:0000000000").via("longer than a 32-bit id: still refused, not a stale menu")
@example(data="ps:999999999999")
@example(data="staff:intake:99999999999")
async def test_forged_staff_callbacks_are_refused_and_audited(fake, rr, db_url, data):
    mallory = TgUser(rr, first_name="Mallory", user_id=6667)
    await mallory.send("/start")
    before, answers = _denied(db_url), len(fake.calls_to("answerCallbackQuery"))
    shown = await mallory.press_data(data)
    assert shown == []
    assert _denied(db_url) == before + 1
    answer = fake.calls_to("answerCallbackQuery")[answers:][-1]
    assert answer.params.get("text") == "Sorry, this is only for clinic staff."


@pytest.fixture
async def two_patients(fake, rr, db_url):
    """Anna (A) and Bea (B), each with an intake in progress and an appointment."""
    anna, bea = TgUser(rr, first_name="Anna"), TgUser(rr, first_name="Bea")
    await complete(anna, phone="+447911000001")
    await complete(bea, phone="+447911000002")
    b_appt = await _book(rr, bea, "2026-03-06 12:00", "bea-area")
    a_appt = await _book(rr, anna, "2026-03-05 12:00", "anna-area")
    b_intake = sql(db_url, "select i.id from intakes i join patients p on p.id=i.patient_id "
                            "where p.telegram_user_id=?", bea.id)[0][0]
    return anna, bea, a_appt, b_appt, b_intake


@HYPO
@given(template=st.sampled_from([
    "ap:c:{a}", "ap:r:{a}", "ap:x:{a}", "ap:xx:{a}", "ap:k:{a}", "ap:i:{a}", "ck:ok:{a}",
    "ck:cn:{a}", "nx:{a}", "ik:{i}:b", "ik:{i}:e:allergies", "ik:{i}:s:notes", "ik:{i}:d:availability",
    "ik:{i}:a:pregnant:0", "ik:{i}:t:availability:0", "ik:{i}:submit", "ik:{i}:x", "qa:ask:{i}"]))
async def test_patient_a_never_reaches_patient_bs_appointment_or_intake(
        fake, rr, db_url, two_patients, template):
    anna, bea, a_appt, b_appt, b_intake = two_patients
    before_b = sql(db_url, "select status, starts_at from appointments where id=?", b_appt)
    before_i = sql(db_url, "select status, stage, data, updated_at from intakes where id=?",
                    b_intake)
    staff_before = len(fake.calls_to("sendMessage", chat_id=42))
    shown = await anna.press_data(template.format(a=b_appt, i=b_intake))
    for message in shown:
        assert "bea-area" not in message.text and "Bea" not in message.text
        assert "000002" not in message.text
        assert not (message.document and f"appointment-{b_appt}" in message.document["file_name"])
    assert sql(db_url, "select status, starts_at from appointments where id=?", b_appt) == before_b
    assert sql(db_url, "select status, stage, data, updated_at from intakes where id=?",
                b_intake) == before_i
    for call in fake.calls_to("sendMessage", chat_id=42)[staff_before:]:
        assert f"#{b_appt}" not in call.params["text"]


async def test_export_contains_exactly_the_patients_data(fake, rr, db_url, two_patients):
    anna, bea, a_appt, b_appt, _ = two_patients
    # Pressed on the settings screen itself: a reminder may arrive after it (periodic dispatch).
    shown = await anna.send("/settings")
    await anna.press("✅ Aftercare message", shown[-1])
    shown = await bea.send("/settings")
    await bea.press("✅ Same-day reminder", shown[-1])
    shown = await anna.send("/mydata")
    data = json.loads(fake.files[TgUser.document_in(shown).document["file_id"]])
    flat = json.dumps(data, ensure_ascii=False)
    assert data["profile"]["telegram_user_id"] == anna.id
    assert [a["id"] for a in data["appointments"]["appointments"]] == [a_appt]
    assert {r["appointment_id"] for r in data["appointments"]["reminders"]} == {a_appt}
    assert data["preferences"]["reminders_turned_off"] == ["aftercare"]
    assert "7911 000001" in flat  # her own answers, decrypted
    for foreign in ("Bea", "bea-area", "000002", str(bea.id)):
        assert foreign not in flat, foreign
    assert set(data) >= {"profile", "appointments", "preferences", "questions", "consultation_intake"}


async def test_erasure_leaves_no_personal_data_in_any_table(fake, rr, db_url, two_patients):
    anna, bea, a_appt, _, _ = two_patients
    await anna.send("Does it hurt much? code-word quokka")
    await anna.send("/settings")
    await anna.press("20-09")
    pid = sql(db_url, "select id from patients where telegram_user_id=?", anna.id)[0][0]
    await anna.send("/mydata")  # audited: the actor must not name her after the erasure
    await anna.send("/staff")  # refused and audited under her Telegram id
    await sql_write(db_url, "insert into audit_events (at, actor_user_id, action, patient_id) "
                    "values ('2026-01-01 00:00:00', ?, 'export', ?)", anna.id, pid)  # an older row
    await anna.send("/forget")
    await anna.press("🗑 Yes")
    with sqlite3.connect(Path(db_url.split("///", 1)[1])) as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            columns = [r[1] for r in conn.execute(f'pragma table_info("{table}")')]
            if "patient_id" in columns and table != "audit_events":
                count = conn.execute(f'select count(*) from "{table}" where patient_id=?',  # noqa: S608
                                     (pid,)).fetchone()[0]
                assert count == 0, table
            for row in conn.execute(f'select * from "{table}"'):  # noqa: S608 - own schema
                flat = " ".join(str(v) for v in row)
                for needle in ("Anna", str(anna.id), "000001", "anna-area", "quokka"):
                    assert needle not in flat, (table, needle)
        # Bea's data is untouched.
        assert conn.execute("select count(*) from intakes i join patients p on p.id=i.patient_id "
                            "where p.telegram_user_id=?", (bea.id,)).fetchone() == (1,)
    actions = sql(db_url, "select action, actor_user_id from audit_events where patient_id=?", pid)
    assert ("erasure", None) in actions


async def test_each_staff_read_is_audited(fake, rr, db_url, two_patients):
    anna, bea, a_appt, b_appt, b_intake = two_patients
    await bea.press("📨 Submit")
    await _book(rr, bea, "2026-03-03 09:00", "bea-area")  # tomorrow
    b_pid = sql(db_url, "select id from patients where telegram_user_id=?", bea.id)[0][0]
    staff = TgUser(rr, "Staff", user_id=42)

    def reads() -> list[tuple]:
        return sql(db_url, "select action, patient_id, subject from audit_events "
                            "where actor_user_id=42 and action!='staff_denied' order by id")

    console = (await staff.send("/staff"))[-1]  # this screen: a staff alert may come after it
    await staff.press("🗓 Today and tomorrow", console)
    assert reads()[-1] == ("appointments_read", b_pid, "tomorrow")
    n = len(reads())
    await staff.press_data(f"iks:{b_intake}")
    assert [r[:2] for r in reads()[n:]] == [("intake_contact_viewed", b_pid)]
    for row in sql(db_url, "select * from audit_events"):  # ids and kinds only, never content
        assert not any(s in str(row) for s in ("Bea", "Anna", "7911", "bea-area"))


async def test_a_staff_members_forget_keeps_their_name_on_reads_of_other_patients(
        fake, rr, db_url, two_patients):
    """Staff who opened the bot have a patient row too. Their /forget un-names what they did
    as a patient, never who read whose data: that would launder the audit trail."""
    _, bea, _, _, b_intake = two_patients
    await bea.press("📨 Submit")
    b_pid = sql(db_url, "select id from patients where telegram_user_id=?", bea.id)[0][0]
    staff = TgUser(rr, "Staff", user_id=42)
    await staff.send("/start")  # a patient row of her own
    await staff.press_data(f"iks:{b_intake}")
    await staff.send("/mydata")  # her own export, as a patient
    own = sql(db_url, "select id from patients where telegram_user_id=42")[0][0]
    await sql_write(db_url, "insert into audit_events (at, actor_user_id, action, patient_id) "
                    "values ('2026-01-01 00:00:00', 42, 'export', ?)", own)  # an older row
    await staff.send("/forget")
    await staff.press("🗑 Yes")
    rows = sql(db_url, "select action, actor_user_id, patient_id from audit_events "
                       "where action in ('intake_contact_viewed', 'export') order by id")
    assert rows == [("intake_contact_viewed", 42, b_pid), ("export", 0, own), ("export", 0, own)]
