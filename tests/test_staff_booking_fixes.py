"""Staff booking and /upcoming fixes: an erased #N is no patient, a phone whose link was opened
books onto the patient who opened it, /upcoming is audited and dates its reminders, and
/retry_dead and /upcoming N say what they did."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.clock import FixedClock
from bot.db.appointment_models import Appointment
from bot.db.models import Patient
from bot.db.privacy_models import AuditEvent
from bot.reminders import service
from bot.reminders.render import KIND_LABELS, local_date
from tests.reminder_support import (
    LONDON,
    appointment,
    book,
    cancel_appt,
    db,
    dispatch,
    new_patient,
    patient_row,
    reminders,
    sent_texts,
)

PHONE = "+447700900123"
LINK = re.compile(r"https://t\.me/clinic_test_bot\?start=(lk_[\w-]+)")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))  # a Monday, GMT


async def _appointments(rr) -> list[Appointment]:
    async with db(rr).session() as session:
        return list(await session.scalars(select(Appointment).order_by(Appointment.id)))


async def _upcoming_audit(rr) -> list[tuple]:
    async with db(rr).session() as session:
        rows = await session.scalars(select(AuditEvent).where(
            AuditEvent.action == "appointments_read").order_by(AuditEvent.id))
        return [(e.actor_user_id, e.patient_id, e.subject) for e in rows]


# ------------------------------------------------------------------ 1: an erased #N
async def test_book_by_number_refuses_a_patient_who_erased_their_data(fake, rr, clock, staff):
    anna = await new_patient(rr, "Anna")
    number = (await patient_row(rr, anna.id)).id
    await anna.send("/forget")
    shown = await anna.press("🗑 Yes")
    assert "has been erased" in shown[0].text
    shown = await staff.send(f"/book #{number} 2026-03-05 10:00 30 face")
    text = shown[-1].text
    assert f"there is no patient #{number}" in text and "Booked" not in text
    assert not LINK.search(text)  # no link that would attach whoever opens it to the shell
    assert await _appointments(rr) == [] and await reminders(rr) == []


# ------------------------------------------------------------------ 2: a phone already linked
async def test_book_by_phone_reaches_the_patient_who_opened_that_phones_link(
        fake, rr, clock, staff):
    anna = await new_patient(rr, "Anna")  # on the bot already: opening the link merges
    shown = await staff.send(f"/book {PHONE} 2026-03-05 10:00 30 face")
    token = LINK.search(shown[-1].text).group(1)
    shown = await anna.send(f"/start {token}")
    assert "now linked" in shown[0].text
    anna_id = (await patient_row(rr, anna.id)).id
    shown = await staff.send(f"/book {PHONE} 2026-03-12 10:00 30 neck")
    assert "Booked appointment" in shown[-1].text and not LINK.search(shown[-1].text)
    assert [a.patient_id for a in await _appointments(rr)] == [anna_id, anna_id]
    assert {r.patient_id for r in await reminders(rr)} == {anna_id}  # her reminders, her chat


async def test_book_by_phone_follows_an_opened_link_when_a_later_one_is_unopened(
        fake, rr, clock, staff):
    anna = await new_patient(rr, "Anna")
    first = LINK.search((await staff.send(f"/book {PHONE} 2026-03-05 10:00 30 face"))[-1].text)
    second = LINK.search((await staff.send(f"/book {PHONE} 2026-03-06 10:00 30 face"))[-1].text)
    assert first and second  # the newest invite for this phone stays unopened
    await anna.send(f"/start {first.group(1)}")
    anna_id = (await patient_row(rr, anna.id)).id
    shown = await staff.send(f"/book {PHONE} 2026-03-12 10:00 30 neck")
    assert not LINK.search(shown[-1].text)
    assert [a.patient_id for a in await _appointments(rr)] == [anna_id] * 3


# ------------------------------------------------------------------ 3: /upcoming is audited
async def test_upcoming_command_and_button_audit_each_patient_shown(fake, rr, clock, staff):
    anna, ben = await new_patient(rr, "Anna"), await new_patient(rr, "Ben")
    await book(staff, f"{anna.id} 2026-03-03 12:00 60 face")
    await book(staff, f"{anna.id} 2026-03-04 12:00 60 neck")
    await book(staff, f"{ben.id} 2026-03-05 12:00 60 lips")
    ids = sorted([(await patient_row(rr, anna.id)).id, (await patient_row(rr, ben.id)).id])
    shown = await staff.send("/upcoming")
    assert "Anna" in shown[-1].text and "Ben" in shown[-1].text
    assert await _upcoming_audit(rr) == [(42, pid, "upcoming") for pid in ids]  # one per patient
    await staff.send("/staff")
    shown = await staff.press("📅 Upcoming appointments")
    assert "Anna" in shown[-1].text
    assert await _upcoming_audit(rr) == [(42, pid, "upcoming") for pid in ids] * 2


async def _long_named_patients_booked(rr, clock, starts: list[datetime]) -> None:
    """A patient per start, with a long name (so that a staff list fills its message), each
    booked for 30 minutes of face."""
    content = rr.app.bot_data["reminder_content"]
    settings = rr.app.bot_data["services"].settings
    async with db(rr).session() as session:
        for i, starts_at in enumerate(starts):
            patient = Patient(telegram_user_id=900_000 + i, chat_id=900_000 + i,
                              first_name=f"Patient{i:02d} " + "x" * 80,
                              created_at=clock.now(), last_seen_at=clock.now())
            session.add(patient)
            await session.flush()
            await service.book(session, patient_id=patient.id, starts_at=starts_at,
                               duration_min=30, area="face", now=clock.now(), content=content,
                               settings=settings)


async def test_a_busy_day_is_listed_whole_over_several_messages(fake, rr, clock, staff):
    """Long names: one message is full well before the 45th; the day went on in no message
    (a single day has no "from" to continue at), so /upcoming sends several."""
    await _long_named_patients_booked(
        rr, clock, [datetime(2026, 3, 3, 8, i, tzinfo=UTC) for i in range(45)])
    pages = [m.text for m in await staff.send("/upcoming")]
    assert len(pages) > 1 and all(len(page) <= 4096 for page in pages)
    listed = [pid for page in pages for pid in re.findall(r"Patient\d\d x+ \(#(\d+)\)", page)]
    assert len(listed) == len(set(listed)) == 45
    assert {str(pid) for _, pid, _ in await _upcoming_audit(rr)} == set(listed)


# ------------------------------------------------------------------ 4: reminder dates
async def test_upcoming_shows_the_date_of_a_pending_reminder(fake, rr, clock, staff):
    anna = await new_patient(rr, "Anna")
    appt = await book(staff, f"{anna.id} 2026-03-27 12:00 60 face")  # over three weeks ahead
    text = (await staff.send("/upcoming 30"))[-1].text
    pending = [r for r in await reminders(rr, appointment_id=appt) if r.status == "pending"]
    assert pending
    for r in pending:
        due = r.due_at.astimezone(LONDON)
        label = KIND_LABELS.get(r.kind, r.kind)
        assert f"⏳ {label} {local_date(due, LONDON, clock.now())} {due:%H:%M}" in text
    assert not re.search(r"⏳ [\w-]+ [A-Z][a-z]{2} \d\d:\d\d", text)  # never a bare weekday
    assert "same_day" not in text and "checkin" not in text  # words, not the code's names


# ------------------------------------------------------------------ 5: what staff are told
async def test_retry_dead_of_an_unknown_or_cancelled_appointment_says_so(fake, rr, clock, staff):
    anna = await new_patient(rr, "Anna")
    appt = await book(staff, f"{anna.id} 2026-03-05 12:00 60 face")
    text = (await staff.send("/retry_dead 999"))[-1].text
    assert "no active appointment #999" in text and "dead-lettered" not in text
    await cancel_appt(staff, appt)
    await dispatch(rr, clock)  # the cancellation notice goes out
    text = (await staff.send(f"/retry_dead {appt}"))[-1].text
    assert f"no active appointment #{appt}" in text and "dead-lettered" not in text
    assert not [r for r in await reminders(rr, appointment_id=appt) if r.status == "pending"]


async def test_retry_dead_still_resends_a_cancelled_appointments_dead_notice(
        fake, rr, clock, staff):
    anna = await new_patient(rr, "Anna")
    appt = await book(staff, f"{anna.id} 2026-03-05 12:00 60 face")
    await dispatch(rr, clock)  # the booking confirmation
    clock.advance(minutes=1)
    await cancel_appt(staff, appt)
    fake.fail_next("sendMessage", 400, "Bad Request: can't parse entities", chat_id=anna.id)
    await dispatch(rr, clock)
    assert [r.status for r in await reminders(rr, appointment_id=appt)
            if r.kind == "cancelled"] == ["dead"]
    text = (await staff.send(f"/retry_dead {appt}"))[-1].text
    assert "1 dead-lettered reminder(s)" in text
    clock.advance(minutes=1)
    await dispatch(rr, clock)
    assert [r.status for r in await reminders(rr, appointment_id=appt)
            if r.kind == "cancelled"] == ["sent"]


async def test_retry_dead_does_not_count_what_a_completed_visit_would_drop(fake, rr, clock, staff):
    anna = await new_patient(rr, "Anna")
    appt = await book(staff, f"{anna.id} 2026-03-05 12:00 60 face")
    fake.fail_next("sendMessage", 400, "Bad Request: can't parse entities", chat_id=anna.id)
    await dispatch(rr, clock)  # the confirmation: dead
    async with db(rr).session() as session:
        (await session.get(Appointment, appt)).status = "completed"
    text = (await staff.send(f"/retry_dead {appt}"))[-1].text
    assert "0 dead-lettered reminder(s)" in text  # a confirmation after the visit is not sent
    assert [r.status for r in await reminders(rr, appointment_id=appt)
            if r.kind == "confirmation"] == ["dead"]


async def test_upcoming_beyond_the_cap_shows_the_cap_and_says_so(fake, rr, clock, staff):
    anna = await new_patient(rr, "Anna")
    appt = await book(staff, f"{anna.id} 2026-04-11 12:00 60 face")  # 40 days ahead
    text = (await staff.send("/upcoming 365"))[-1].text
    assert f"next {service.UPCOMING_MAX_DAYS} days" in text and f"#{appt}" in text
    assert (await appointment(rr, appt)).status == "booked"


async def test_forget_erases_the_placeholder_a_merged_link_left_behind(fake, rr, clock, staff):
    """Anna was on the bot when she opened the link staff made with the name they typed: the
    booking moved to her row, the placeholder stayed behind with that name, its invite with her
    Telegram id. Her erasure takes it and the name."""
    import json

    from bot.db.appointment_models import PatientInvite

    anna = await new_patient(rr, "Anna")
    shown = await staff.send('/book "Anna Smith-Jones" 2026-03-05 10:00 30 face')
    await anna.send(f"/start {LINK.search(shown[-1].text).group(1)}")
    async with db(rr).session() as session:
        assert "Anna Smith-Jones" in set(await session.scalars(select(Patient.first_name)))
    shown = await anna.send("/mydata")
    export = json.loads(fake.files[shown[0].document["file_id"]])
    # Not exported: had the link been forwarded, the name and phone would be someone else's.
    assert "Anna Smith-Jones" not in json.dumps(export)
    await anna.send("/forget")
    await anna.press("🗑 Yes")
    async with db(rr).session() as session:
        assert (await session.scalars(select(PatientInvite))).all() == []
        names = set(await session.scalars(select(Patient.first_name)))
    assert names == {None}  # neither her name nor the one staff typed is left


async def test_retry_dead_for_a_patient_who_never_opened_the_bot_says_so(fake, rr, clock, staff):
    appt = await book(staff, f"{PHONE} 2026-03-05 10:00 30 face")
    shown = await staff.send(f"/retry_dead {appt}")
    assert "has not opened the bot yet" in shown[-1].text and "blocked" not in shown[-1].text


async def test_a_merged_placeholder_is_its_openers_and_goes_with_her_forget(
        fake, rr, clock, staff):
    """Two links to one placeholder: Anna (already on the bot) opens the first, so its bookings
    move to her and the placeholder is hers. The second link opens for nobody else, and her
    /forget takes the placeholder whole (its unused link holds her phone), never Maria's own."""
    from bot.db.appointment_models import PatientInvite
    from tests.harness import TgUser

    anna = await new_patient(rr, "Anna")
    first = LINK.search((await staff.send(f"/book {PHONE} 2026-03-05 10:00 30 face"))[-1].text)
    second = LINK.search((await staff.send(f"/book {PHONE} 2026-03-06 10:00 30 face"))[-1].text)
    await anna.send(f"/start {first.group(1)}")
    maria = TgUser(rr, first_name="Maria", user_id=777)
    assert "not valid" in (await maria.send(f"/start {second.group(1)}"))[0].text
    own = await book(staff, "777 2026-03-10 10:00 30 neck")
    maria_id = (await patient_row(rr, 777)).id
    await anna.send("/forget")
    await anna.press("🗑 Yes")
    assert [(a.id, a.patient_id) for a in await _appointments(rr)] == [(own, maria_id)]
    assert {r.patient_id for r in await reminders(rr)} == {maria_id}
    async with db(rr).session() as session:
        assert list(await session.scalars(select(PatientInvite.contact_phone))) == []


async def test_book_and_link_by_number_of_a_merged_placeholder_reach_who_opened_it(
        fake, rr, clock, staff):
    """Anna opened the link of a placeholder staff made for her while she was on the bot
    already: #placeholder is Anna now. /book #X books for her, /link #X says she is on the bot
    (a fresh link to the empty placeholder would reach nobody, or a stranger)."""
    from bot.db.appointment_models import PatientInvite

    anna = await new_patient(rr, "Anna")
    anna_id = (await patient_row(rr, anna.id)).id
    shown = await staff.send(f"/book {PHONE} 2026-03-05 10:00 30 face")
    await anna.send(f"/start {LINK.search(shown[-1].text).group(1)}")
    async with db(rr).session() as session:
        shell = await session.scalar(select(PatientInvite.patient_id).where(
            PatientInvite.contact_phone == PHONE))
    shown = await staff.send(f"/book #{shell} 2026-03-10 10:00 30 neck")
    assert f"Anna (#{anna_id})" in shown[-1].text and not LINK.search(shown[-1].text)
    assert [a.patient_id for a in await _appointments(rr)] == [anna_id, anna_id]
    assert "on the bot already" in (await staff.send(f"/link #{shell}"))[-1].text


async def test_booking_the_next_session_takes_a_dead_book_your_next_session_off_retry(
        fake, rr, clock, staff, db_url):
    from tests.conftest import sql_write

    anna = await new_patient(rr, "Anna")
    first = await book(staff, f"{anna.id} 2026-03-03 12:00 60 face 1/3")
    [ask] = await reminders(rr, appointment_id=first, kind="next_session")
    await sql_write(db_url, f"update reminders set status='dead' where id={ask.id}")  # failed
    await book(staff, f"{anna.id} 2026-03-20 12:00 60 face 2/3")
    shown = await staff.send(f"/retry_dead {first}")
    assert shown[-1].text.startswith("0 dead-lettered reminder(s)")  # nothing to resend
    [row] = await reminders(rr, id=ask.id)
    assert row.status == "cancelled"


@pytest.mark.parametrize("anna_on_the_bot", [False, True])
@pytest.mark.parametrize("mallory_on_the_bot", [False, True])
async def test_a_second_link_never_hands_over_a_record_someone_already_opened(
        fake, rr, clock, staff, mallory_on_the_bot, anna_on_the_bot):
    """Two bookings before Anna opens the bot leave two links to her record. She opens one; the
    other, forwarded or sent to the wrong person, must not hand her appointments and health
    data to whoever opens it. Anna herself may still open it."""
    from tests.harness import TgUser

    first = LINK.search((await staff.send(f"/book {PHONE} 2026-03-05 10:00 30 face"))[-1].text)
    second = LINK.search((await staff.send(f"/book {PHONE} 2026-03-06 10:00 30 face"))[-1].text)
    anna = TgUser(rr, first_name="Anna", user_id=777)
    if anna_on_the_bot:  # opening the link moves the bookings to her own record
        await anna.send("/start")
    assert "now linked" in (await anna.send(f"/start {first.group(1)}"))[0].text
    anna_id = (await patient_row(rr, 777)).id
    mallory = await new_patient(rr, "Mallory") if mallory_on_the_bot else \
        TgUser(rr, first_name="Mallory", user_id=888)
    shown = await mallory.send(f"/start {second.group(1)}")
    assert "not valid" in shown[0].text
    assert (await patient_row(rr, 777)).id == anna_id  # still hers
    assert [a.patient_id for a in await _appointments(rr)] == [anna_id, anna_id]
    assert {r.patient_id for r in await reminders(rr)} == {anna_id}
    staff_told = len(sent_texts(fake, 42))
    assert "now linked" in (await anna.send(f"/start {second.group(1)}"))[0].text
    assert len(sent_texts(fake, 42)) == staff_told  # she was linked already: nothing new for staff
    shown = await staff.send(f"/book {PHONE} 2026-03-12 10:00 30 face")  # the phone is still hers
    assert f"(#{anna_id})" in shown[-1].text and "Mallory" not in shown[-1].text


async def test_link_gives_a_new_link_when_the_first_expired(fake, rr, clock, staff):
    """Links expire after 30 days; a booking months ahead may be opened later. /link gives a
    new one without booking again (a second /book would send every reminder twice)."""
    from datetime import timedelta

    from tests.harness import TgUser

    shown = await staff.send(f"/book {PHONE} 2026-05-20 10:00 30 face")
    old = LINK.search(shown[-1].text).group(1)
    clock.set(clock.now() + timedelta(days=35))
    maria = TgUser(rr, first_name="Maria", user_id=777)
    assert "not valid" in (await maria.send(f"/start {old}"))[0].text
    shown = await staff.send("/link +44 7700 900123")
    assert "not on Telegram yet" in shown[-1].text
    assert "now linked" in (await maria.send(f"/start {LINK.search(shown[-1].text).group(1)}"))[0].text
    maria_id = (await patient_row(rr, 777)).id
    assert [a.patient_id for a in await _appointments(rr)] == [maria_id]
    assert "on the bot already" in (await staff.send(f"/link #{maria_id}"))[-1].text
    assert "on the bot already" in (await staff.send(f"/link {PHONE}"))[-1].text
    shown = await staff.send("/link +447700900999")
    assert "nobody was booked with that phone number" in shown[-1].text
    for unclear in ("/link", '/link "Maria Lopez"', "/link 777", "/link #1 #2"):
        assert "Usage: /link" in (await staff.send(unclear))[-1].text, unclear
    assert "only for clinic staff" in (await maria.send(f"/link #{maria_id}"))[-1].text


async def test_forget_keeps_what_was_booked_onto_a_placeholder_after_its_merge(
        fake, rr, clock, staff):
    """Before bookings followed merges, /book #placeholder booked onto the placeholder itself,
    for whoever staff meant. The opener's /forget takes their own invite, never those bookings."""
    from bot.db.appointment_models import PatientInvite

    bob = await new_patient(rr, "Bob")
    shown = await staff.send(f"/book {PHONE} 2026-03-05 10:00 30 face")
    await bob.send(f"/start {LINK.search(shown[-1].text).group(1)}")
    async with db(rr).session() as session:
        shell = await session.scalar(select(PatientInvite.patient_id).where(
            PatientInvite.contact_phone == PHONE))
        content = rr.app.bot_data["reminder_content"]
        settings = rr.app.bot_data["services"].settings
        kate = await service.book(session, patient_id=shell, now=clock.now(), content=content,
                                  settings=settings, starts_at=datetime(2026, 3, 9, 10, tzinfo=UTC),
                                  duration_min=30, area="neck")
        kate_id = kate.id
    await bob.send("/forget")
    await bob.press("🗑 Yes")
    assert [(a.id, a.patient_id) for a in await _appointments(rr)] == [(kate_id, shell)]
    assert {r.patient_id for r in await reminders(rr)} == {shell}


async def test_unlink_undoes_a_link_opened_by_the_wrong_person(fake, rr, clock, staff):
    """The link meant for Kate went to Bob, who was on the bot: the placeholder became his, and
    so did Kate's phone. /unlink frees it; /link gives Kate a new link; the phone is hers."""
    from tests.harness import TgUser

    bob = await new_patient(rr, "Bob")
    bob_id = (await patient_row(rr, bob.id)).id
    shown = await staff.send(f"/book {PHONE} 2026-03-05 10:00 30 face")
    assert "nobody has opened" in (await staff.send(f"/unlink {PHONE}"))[-1].text
    booked = int(re.search(r"Booked appointment #(\d+)", shown[-1].text).group(1))
    placeholder = (await _appointments(rr))[0].patient_id
    await bob.send(f"/start {LINK.search(shown[-1].text).group(1)}")  # misdirected
    # Staff are told it was someone already on the bot, what moved to them, and the way back.
    told = sent_texts(fake, 42)[-1]
    assert (f"The link for patient #{placeholder} was opened by Bob (#{bob_id}), who was on "
            f"the bot already: the appointments booked for #{placeholder} (#{booked}) moved"
            ) in told and f"/unlink #{placeholder}" in told
    # Booked again with Kate's phone before anyone noticed: it follows the link to Bob, and
    # goes back with the rest.
    later = await book(staff, f"{PHONE} 2026-03-06 10:00 30 face 2/2")
    assert (await appointment(rr, later)).patient_id == bob_id
    shown = await staff.send(f"/unlink {PHONE}")
    assert f"no longer linked to Bob (#{bob_id})" in shown[-1].text
    assert f"back with #{placeholder} (#{booked}, #{later})" in shown[-1].text
    # Back with the placeholder: Bob gets none of Kate's reminders from now on.
    assert {(a.id, a.patient_id) for a in await _appointments(rr)} == {
        (booked, placeholder), (later, placeholder)}
    assert {r.patient_id for r in await reminders(rr, appointment_id=booked)} == {placeholder}
    assert {r.patient_id for r in await reminders(rr, appointment_id=later)} == {placeholder}
    before = len(sent_texts(fake, bob.id))
    clock.set(datetime(2026, 3, 5, 9, 0, tzinfo=UTC))  # the morning of the appointment
    await dispatch(rr, clock)
    assert len(sent_texts(fake, bob.id)) == before
    shown = await staff.send(f"/link {PHONE}")
    kate = TgUser(rr, first_name="Kate", user_id=777)
    assert "now linked" in (await kate.send(f"/start {LINK.search(shown[-1].text).group(1)}"))[0].text
    kate_id = (await patient_row(rr, 777)).id
    shown = await staff.send(f"/book {PHONE} 2026-03-12 10:00 30 neck")
    assert "Kate" in shown[-1].text
    owners = {a.id: a.patient_id for a in await _appointments(rr)}
    assert set(owners.values()) == {kate_id}  # all hers, with the record
    # Kate was new to the bot: the placeholder is her own record now, not a link to undo.
    assert "cannot be unlinked" in (await staff.send(f"/unlink #{kate_id}"))[-1].text
    for unclear in ("/unlink", '/unlink "Kate"'):
        assert "Usage: /unlink" in (await staff.send(unclear))[-1].text


# ------------------------------------------------------------------ an early hour typed in haste
async def test_book_and_reschedule_refuse_an_early_hour_without_am_or_pm(fake, rr, clock, staff):
    """"3:00" for 3 pm would put the visit, and every reminder, twelve hours early."""
    await new_patient(rr, "Anna")
    shown = await staff.send(f"/book {PHONE} 2026-03-04 3:00 60 face")
    text = shown[-1].text
    assert "could be morning or afternoon" in text and "15:00" in text and "Booked" not in text
    assert await _appointments(rr) == [] and await reminders(rr) == []
    appt = await book(staff, f"{PHONE} 2026-03-04 3pm 60 face")
    shown = await staff.send(f"/reschedule {appt} 2026-03-05 4.30")
    assert "could be morning or afternoon" in shown[-1].text and "16:30" in shown[-1].text
    [booked] = await _appointments(rr)
    assert booked.starts_at == datetime(2026, 3, 4, 15, 0, tzinfo=UTC)  # GMT: as it was


# ------------------------------------------------------------------ /cancel_appt asks first
async def test_cancel_appt_names_the_visit_and_cancels_only_when_confirmed(fake, rr, clock, staff):
    """A mistyped number would cancel another patient's visit and message them at once: the
    command names whose visit and when, and waits for the button."""
    anna = await new_patient(rr, "Anna <b>")
    appt = await book(staff, f"{anna.id} 2026-03-04 15:00 60 face 1/4")
    shown = await staff.send(f"/cancel_appt {appt} {appt + 1}")
    assert "unexpected" in shown[-1].text and "Usage: /cancel_appt" in shown[-1].text
    shown = await staff.send(f"/cancel_appt {appt}")
    question = shown[-1]
    assert f"Cancel appointment #{appt}: Anna &lt;b&gt;" in question.text
    assert "Wed 4 Mar 2026 15:00" in question.text and "face" in question.text
    assert (await appointment(rr, appt)).status == "booked"  # nothing yet
    shown = await staff.press("No, keep it", question)
    assert f"Appointment #{appt} is kept" in shown[-1].text
    assert (await appointment(rr, appt)).status == "booked"
    question = (await staff.send(f"/cancel_appt {appt}"))[-1]
    shown = await staff.press(f"🗑 Yes, cancel #{appt}", question)
    assert f"Appointment #{appt}" in shown[-1].text and "is cancelled" in shown[-1].text
    assert (await appointment(rr, appt)).status == "cancelled"
    await dispatch(rr, clock)
    assert sum("Appointment cancelled" in t for t in sent_texts(fake, anna.id)) == 1
    shown = await staff.press_data(f"sc:y:{appt}:1", question)  # a second tap: said, not redone
    assert f"no active appointment #{appt}" in shown[-1].text
    await dispatch(rr, clock)
    assert sum("Appointment cancelled" in t for t in sent_texts(fake, anna.id)) == 1
    async with db(rr).session() as session:
        reads = (await session.scalars(select(AuditEvent).where(
            AuditEvent.action == "appointments_read", AuditEvent.subject == "cancel_appt"))).all()
    assert len(reads) == 2 and {r.actor_user_id for r in reads} == {42}


# ------------------------------------------------------------------ overlapping bookings
async def test_an_overlapping_booking_of_the_same_patient_is_refused(fake, rr, clock, staff):
    """14:30 for 60 min and 14:45: a typo, or one visit booked twice; either way a patient
    cannot be in two treatments at once. Back to back is fine, and another patient too."""
    anna, ben = await new_patient(rr, "Anna"), await new_patient(rr, "Ben")
    first = await book(staff, f"{anna.id} 2026-03-04 14:30 60 face 1/4")
    shown = await staff.send(f"/book {anna.id} 2026-03-04 14:45 30 neck")
    assert shown[-1].text == (f"Not done: this patient's appointment #{first} (60 min) "
                              "overlaps that time")
    shown = await staff.send(f"/book {anna.id} 2026-03-04 14:00 45 neck")  # ends at 14:45
    assert "overlaps" in shown[-1].text
    after = await book(staff, f"{anna.id} 2026-03-04 15:30 30 neck")  # back to back
    await book(staff, f"{ben.id} 2026-03-04 14:45 30 neck")  # someone else
    shown = await staff.send(f"/reschedule {after} 2026-03-04 15:00")
    assert "overlaps" in shown[-1].text and f"#{first}" in shown[-1].text
    shown = await staff.send(f"/reschedule {first} 2026-03-04 14:45 45")  # its own time: fine
    assert "moved from" in shown[-1].text
    assert len(await _appointments(rr)) == 3


# ------------------------------------------------------------------ booking by name, again
async def test_booking_a_name_again_points_to_the_records_with_that_name(fake, rr, clock, staff):
    """Each booking by name makes a new record (names are not unique): booking "Jane Doe" a
    second time says which records already have that name, and how to book onto one."""
    shown = await staff.send('/book "Jane Doe" 2026-03-04 15:00 60 face 1/4')
    assert "Booked" in shown[-1].text and "⚠️" not in shown[-1].text  # nobody else has it
    first = int(re.search(r"Booked appointment #(\d+)", shown[-1].text).group(1))
    shown = await staff.send('/book "Jane Doe" 2026-03-04 16:00 60 face')
    assert "Booked" in shown[-1].text
    [a, b] = await _appointments(rr)
    assert a.id == first and a.patient_id != b.patient_id
    assert f"⚠️ Booking by name made a new patient record, #{b.patient_id}, but #{a.patient_id} " \
           "already had that name" in shown[-1].text
    assert f"/cancel_appt {b.id}" in shown[-1].text
    shown = await staff.send('/book "jane doe" 2026-03-05 16:00 60 face')
    assert f"#{a.patient_id}, #{b.patient_id} already had that name" in shown[-1].text
    shown = await staff.send('/book "Joan Doe" 2026-03-06 16:00 60 face')
    assert "⚠️" not in shown[-1].text


async def test_booking_a_name_again_finds_it_in_other_letter_cases_beyond_ascii(
        fake, rr, clock, staff):
    """SQLite's lower() folds ASCII only: "ÉLODIE ÇELIK" must still find "Élodie Çelik"."""
    await staff.send('/book "Élodie Çelik" 2026-03-04 15:00 60 face')
    shown = await staff.send('/book "ÉLODIE ÇELIK" 2026-03-04 17:00 60 face')
    [a, b] = await _appointments(rr)
    assert f"new patient record, #{b.patient_id}, but #{a.patient_id} already had that name" \
        in shown[-1].text


async def test_staff_typing_cancel_with_a_number_are_pointed_to_cancel_appt(fake, rr, clock, staff):
    shown = await staff.send("/cancel 21")
    assert "To cancel appointment #21: /cancel_appt 21" in shown[-1].text
    anna = await new_patient(rr, "Anna")
    shown = await anna.send("/cancel 21")  # a patient: nothing about staff commands
    assert "cancel_appt" not in shown[-1].text and "nothing to cancel" in shown[-1].text


async def test_upcoming_lists_each_reminder_kind_once_after_a_reschedule(fake, rr, clock, staff):
    anna = await new_patient(rr, "Anna")
    appt = await book(staff, f"{anna.id} 2026-03-27 12:00 60 face")
    await dispatch(rr, clock)  # the confirmation of the first time goes out
    await staff.send(f"/reschedule {appt} 2026-03-28 12:00")
    text = (await staff.send("/upcoming 30"))[-1].text
    lines = text.splitlines()
    line = lines[next(i for i, line in enumerate(lines) if line.startswith(f"#{appt} ")) + 1]
    assert line.count("confirmation") == 1 and line.count("preparation") == 1
    assert "⏳ confirmation" in line  # the new time's, still to go; not the old one's ✅


async def test_a_misspelt_consultation_is_refused_not_booked_as_a_treatment(fake, rr, clock, staff):
    """"consultaton" would get a procedure's preparation and aftercare messages."""
    anna = await new_patient(rr, "Anna")
    shown = await staff.send(f"/book {anna.id} 2026-03-04 15:00 30 scalp consultaton")
    assert shown[-1].text.startswith("Not done: 'consultaton' looks like a misspelt consult/consultation")
    assert await _appointments(rr) == []
    await book(staff, f"{anna.id} 2026-03-04 15:00 30 scalp consultation")
    await book(staff, f"{anna.id} 2026-03-05 15:00 30 face")  # no near word: a treatment
    assert len(await _appointments(rr)) == 2


async def test_moved_twice_before_the_patient_heard_names_the_time_they_knew(fake, rr, clock, staff):
    anna = await new_patient(rr, "Anna")
    appt = await book(staff, f"{anna.id} 2026-03-05 10:00 60 face")  # Thu
    await dispatch(rr, clock)  # "Appointment booked", Thu 10:00
    await staff.send(f"/reschedule {appt} 2026-03-06 11:00")  # Fri: not yet told...
    await staff.send(f"/reschedule {appt} 2026-03-07 12:00")  # ...moved again, to Sat
    clock.advance(seconds=2)
    await dispatch(rr, clock)
    [moved] = [t for t in sent_texts(fake, anna.id) if "Appointment moved" in t]
    assert "on Thu 5 Mar at 10:00 has moved. It is now on Sat 7 Mar at 12:00" in moved


async def test_a_confirmation_pressed_after_the_appointment_moved_does_nothing(fake, rr, clock, staff):
    """Yes under /cancel_appt or /noshow acts on the appointment as the question showed it."""
    anna = await new_patient(rr, "Anna")
    appt = await book(staff, f"{anna.id} 2026-03-04 15:00 60 face")
    question = (await staff.send(f"/cancel_appt {appt}"))[-1]
    await staff.send(f"/reschedule {appt} 2026-03-05 15:00")
    shown = await staff.press(f"🗑 Yes, cancel #{appt}", question)
    assert f"#{appt} was moved since this question: nothing was cancelled" in shown[-1].text
    assert (await appointment(rr, appt)).status == "booked"
    clock.set(datetime(2026, 3, 5, 16, 30, tzinfo=UTC))
    question = (await staff.send(f"/noshow {appt}"))[-1]
    async with db(rr).session() as session:  # moved meanwhile (a reschedule by another desk)
        (await session.get(Appointment, appt)).plan_version += 1
    shown = await staff.press(f"Yes, #{appt} was a no-show", question)
    assert f"#{appt} was moved since this question: nothing was recorded" in shown[-1].text
    assert (await appointment(rr, appt)).status == "booked"


async def test_upcoming_from_a_date_and_the_rest_of_a_long_list(fake, rr, clock, staff):
    """A list longer than one /upcoming lists says how to see the rest (/upcoming DAYS from
    DATE), and that command lists what the first could not."""
    # Ten a day, eighty: more than the sixty one /upcoming lists.
    await _long_named_patients_booked(
        rr, clock, [datetime(2026, 3, 3 + i // 10, 9, i % 10, tzinfo=UTC) for i in range(80)])
    pages = [m.text for m in await staff.send("/upcoming 14")]
    command = re.search(r"The rest: (/upcoming 14 from \d+\.\d+\.\d{4})", pages[-1]).group(1)
    first = {n for page in pages for n in re.findall(r"Patient(\d\d) x+", page)}
    pages = [m.text for m in await staff.send(command)]
    assert "<b>Appointments in the 14 days from " in pages[0]
    assert {n for page in pages for n in re.findall(r"Patient(\d\d) x+", page)} - first
    shown = await staff.send("/upcoming 3 from 30 Feb")
    assert "Could not read that" in shown[-1].text
    shown = await staff.send("/upcoming 2 from 1.4.2026")
    assert shown[-1].text == "No appointments in the 2 days from Wed 1 Apr 2026."



async def _namesakes_found_case_blind(database) -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    async with database.session() as session:
        people = [Patient(first_name=name, created_at=now, last_seen_at=now)
                  for name in ("Élodie Çelik", "élodie çelik", "Elodie Celik", "Zoë", "Νίκος")]
        session.add_all(people)
        await session.flush()
        found = await service.same_name(session, "ÉLODIE ÇELIK", besides=people[3].id)
        assert found == [people[0].id, people[1].id]
        assert await service.same_name(session, "ZOË", besides=people[0].id) == [people[3].id]
        # A final sigma: PostgreSQL's lower() keeps "ς", casefold() makes it "σ".
        assert await service.same_name(session, "ΝΊΚΟΣ", besides=people[0].id) == [people[4].id]


async def test_namesakes_are_found_case_blind_on_sqlite(migrated_db):
    await _namesakes_found_case_blind(migrated_db)


@pytest.mark.postgres
async def test_namesakes_are_found_case_blind_on_postgresql(migrated_pg_db):
    await _namesakes_found_case_blind(migrated_pg_db)
