"""Staff console additions end to end: today and tomorrow with confirmation and reminder status,
reminders needing attention retried through the outbox, /noshow, /stats lines, broadcast."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from bot.clock import FixedClock
from tests.conftest import sql, sql_write
from tests.reminder_support import (
    appointment,
    book,
    cancel_appt,
    dispatch,
    new_patient,
    noshow,
    reminders,
    sent_texts,
)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))  # Monday, 10:00 in London (GMT)



async def test_today_and_tomorrow_show_confirmation_and_reminder_status_and_are_audited(
        fake, rr, clock, staff, db_url):
    anna, ben, carl = (await new_patient(rr, "Anna"), await new_patient(rr, "Ben"),
                       await new_patient(rr, "Carl"))
    today = await book(staff, f"{anna.id} 2026-03-02 15:00 60 face")
    tomorrow = await book(staff, f"{ben.id} 2026-03-03 11:30 30 scalp")
    later = await book(staff, f"{carl.id} 2026-03-10 09:00 30 neck")
    await dispatch(rr, clock)  # the three booking confirmations go out
    clock.advance(minutes=1)
    await anna.press_data(f"ap:c:{today}", fake.last_message(anna.id))
    await staff.send("/staff")
    shown = await staff.press("🗓 Today and tomorrow")
    text = shown[-1].text
    assert "Today, Mon 2 Mar" in text and "Tomorrow, Tue 3 Mar" in text
    today_part, tomorrow_part = text.split("Tomorrow")
    assert f"#{today} 15:00" in today_part and "Anna" in today_part and "✅ confirmed" in today_part
    assert "✅ confirmation" in today_part  # the confirmation message was sent
    assert "⏳ same-day Mon 2 Mar 13:00" in today_part  # the same-day reminder waits, with its time
    assert f"#{tomorrow} 11:30" in tomorrow_part and "⏳ not confirmed" in tomorrow_part
    assert "⏳ preparation Mon 2 Mar 11:30" in tomorrow_part  # due today, the day before
    assert f"#{later}" not in text
    rows = sql(db_url, "select action, actor_user_id, patient_id, subject from audit_events "
                        "where action='appointments_read' order by id")
    pids = {r[2] for r in rows}
    assert len(rows) == 2 and all(r[1] == 42 for r in rows)
    assert {s for *_, s in rows} == {"today", "tomorrow"} and len(pids) == 2


async def test_dead_letter_is_listed_and_retried_through_the_outbox(fake, rr, clock, staff, db_url):
    anna = await new_patient(rr, "Anna")
    appt = await book(staff, f"{anna.id} 2026-03-05 12:00 60 face")
    fake.fail_next("sendMessage", 400, "Bad Request: can't parse entities", chat_id=anna.id)
    stats = await dispatch(rr, clock)
    assert stats.dead == 1
    dead = [r for r in await reminders(rr, appointment_id=appt) if r.status == "dead"]
    assert len(dead) == 1
    clock.advance(minutes=5)
    await staff.send("/staff")
    shown = await staff.press("❗ Reminders needing attention")
    assert f"R{dead[0].id} confirmation for #" in shown[-1].text and "dead" in shown[-1].text
    shown = await staff.press(f"↻ Retry R{dead[0].id}")
    assert "queued again" in shown[-1].text
    await dispatch(rr, clock)
    row = [r for r in await reminders(rr, appointment_id=appt) if r.id == dead[0].id][0]
    assert row.status == "sent"
    assert any("Appointment booked" in t for t in sent_texts(fake, anna.id))
    # Sent now: a second press of the same (stale) button queues nothing.
    shown = await staff.press_data(f"rt:{dead[0].id}")
    assert "cannot be retried" in shown[-1].text
    assert ("reminder_retry", 42) in sql(db_url, "select action, actor_user_id from audit_events")
    clock.advance(minutes=5)
    shown = await staff.press_data("staff:failed", shown[-1])
    assert "No failed or dead-lettered reminders" in shown[-1].text


async def _dead_confirmation(fake, rr, clock, staff, user, when: str) -> tuple[int, int]:
    appt = await book(staff, f"{user.id} {when} 60 face")
    fake.fail_next("sendMessage", 400, "Bad Request: can't parse entities", chat_id=user.id)
    await dispatch(rr, clock)
    [dead] = await reminders(rr, appointment_id=appt, status="dead")
    return appt, dead.id


async def test_rescheduling_or_cancelling_takes_old_dead_letters_off_the_retry_list(
        fake, rr, clock, staff):
    anna, ben = await new_patient(rr, "Anna"), await new_patient(rr, "Ben")
    moved, dead = await _dead_confirmation(fake, rr, clock, staff, anna, "2026-03-05 12:00")
    dropped, ben_dead = await _dead_confirmation(fake, rr, clock, staff, ben, "2026-03-06 12:00")
    await staff.send(f"/reschedule {moved} 2026-03-07 12:00")
    await cancel_appt(staff, dropped)
    clock.advance(minutes=1)
    await dispatch(rr, clock)  # the new time's confirmation, the cancellation notice
    rows = {r.id: r for r in await reminders(rr)}
    assert (rows[dead].status, rows[dead].last_error) == ("cancelled", "rescheduled")
    assert (rows[ben_dead].status, rows[ben_dead].last_error) == ("cancelled",
                                                                  "appointment cancelled")
    await staff.send("/staff")
    shown = await staff.press("❗ Reminders needing attention")
    assert "No failed or dead-lettered reminders" in shown[-1].text
    shown = await staff.send(f"/retry_dead {moved}")
    assert "0 dead-lettered reminder(s)" in shown[-1].text
    await dispatch(rr, clock)
    assert sum("Appointment booked" in t for t in sent_texts(fake, anna.id)) == 1


async def test_an_older_plans_dead_letter_is_not_retried(fake, rr, clock, staff, db_url):
    anna = await new_patient(rr, "Anna")
    appt, dead = await _dead_confirmation(fake, rr, clock, staff, anna, "2026-03-05 12:00")
    await staff.send(f"/reschedule {appt} 2026-03-07 12:00")
    clock.advance(minutes=1)
    await dispatch(rr, clock)  # the new time's confirmation
    # As a reschedule before this fix left it: the old plan's dead letter still dead.
    await sql_write(db_url, f"update reminders set status='dead' where id={dead}")
    shown = await staff.send(f"/retry_dead {appt}")
    assert "0 dead-lettered reminder(s)" in shown[-1].text
    await staff.send("/staff")
    await staff.press("❗ Reminders needing attention")
    shown = await staff.press(f"↻ Retry R{dead}")
    assert "cannot be retried" in shown[-1].text
    clock.advance(minutes=1)
    await dispatch(rr, clock)
    assert sum("Appointment booked" in t for t in sent_texts(fake, anna.id)) == 1
    assert (await reminders(rr, id=dead))[0].status == "dead"


async def test_blocked_patients_reminders_are_listed_without_a_retry_button(fake, rr, clock, staff):
    anna = await new_patient(rr, "Anna")
    await book(staff, f"{anna.id} 2026-03-05 12:00 60 face")
    fake.block(anna.id)
    await dispatch(rr, clock)
    await staff.send("/staff")
    shown = await staff.press("❗ Reminders needing attention")
    assert "blocked the bot" in shown[-1].text
    assert not [label for label in staff.labels(shown[-1]) if label.startswith("↻")]


async def test_stats_show_confirmation_rate_no_shows_and_reminders_sent_and_failed(
        fake, rr, clock, staff):
    anna, ben = await new_patient(rr, "Anna"), await new_patient(rr, "Ben")
    a1 = await book(staff, f"{anna.id} 2026-03-02 12:00 60 face")
    await book(staff, f"{ben.id} 2026-03-04 12:00 60 face")
    fake.block(ben.id)
    await dispatch(rr, clock)  # Anna's confirmation sent, Ben's failed (blocked)
    clock.advance(minutes=1)
    await anna.press_data(f"ap:c:{a1}", fake.last_message(anna.id))
    shown = await staff.send("/noshow 999")
    assert "There is no appointment #999." in shown[-1].text
    shown = await staff.send(f"/noshow {a1}")
    assert f"#{a1} has not started yet" in shown[-1].text
    clock.set(datetime(2026, 3, 2, 13, 30, tzinfo=UTC))
    question = (await staff.send(f"/noshow {a1}"))[-1]
    assert f"Mark appointment #{a1} as a no-show: Anna" in question.text
    assert "Mon 2 Mar 2026 12:00" in question.text and "cannot be undone" in question.text
    shown = await staff.press("No, leave it", question)
    assert "left as it was" in shown[-1].text
    assert (await appointment(rr, a1)).status == "confirmed"
    shown = await noshow(staff, a1)
    assert "marked as a no-show" in shown[-1].text
    shown = await staff.send(f"/noshow {a1}")
    assert "cannot be marked as a no-show: it is no-show" in shown[-1].text
    shown = await staff.send("/stats")
    text = shown[-1].text
    assert "Confirmed appointments (past 7 and next 7 days): <b>0% (0 of 2)</b>" in text
    assert "No-shows in the last 30 days: <b>1</b>" in text
    assert "Reminders due in the last 7 days: sent: <b>1</b>" in text
    assert "Reminders due in the last 7 days: failed or dead: <b>1</b>" in text
    # The no-show's remaining reminders are cancelled, never sent.
    assert {r.status for r in await reminders(rr, appointment_id=a1) if r.kind != "confirmation"} \
        <= {"cancelled"}


async def test_broadcast_to_tomorrow_goes_through_the_outbox_escaped(fake, rr, clock, staff, db_url):
    anna, ben, carl = (await new_patient(rr, "Anna"), await new_patient(rr, "Ben"),
                       await new_patient(rr, "Carl"))
    await book(staff, f"{anna.id} 2026-03-03 11:00 60 face")
    await book(staff, f"{ben.id} 2026-03-03 16:00 60 face")
    await book(staff, f"{carl.id} 2026-03-09 16:00 60 face")  # not tomorrow
    shown = await staff.send('/book "Dora Phone" 2026-03-03 12:00 60 face')  # not on the bot
    dora = int(re.search(r"\(#(\d+)\)", shown[-1].text).group(1))
    await dispatch(rr, clock)
    clock.advance(minutes=1)
    await staff.send("/staff")
    shown = await staff.press("📣 Broadcast")
    shown = await staff.press("Everyone with an appointment tomorrow")
    assert "(2 patient(s) now)" in shown[-1].text
    shown = await staff.send("Parking is closed <b>tomorrow</b> & use the side door")
    assert "Send this message to 2 patient(s)" in shown[-1].text
    assert "1 patient(s) of this group are not on the bot, or blocked it" in shown[-1].text
    assert shown[-1].text.endswith(f"Phone them: #{dora}")
    assert "&lt;b&gt;tomorrow&lt;/b&gt; &amp; use" in fake.calls_to("sendMessage", chat_id=42)[-1].params["text"]
    shown = await staff.press("📣 Send to 2")
    assert "queued for 2 patient(s)" in shown[-1].text
    await dispatch(rr, clock)
    for user in (anna, ben):
        text = sent_texts(fake, user.id)[-1]
        assert text.startswith("<b>A message from ")
        assert text.endswith("Parking is closed &lt;b&gt;tomorrow&lt;/b&gt; &amp; use the side door")
    assert not any("Parking" in t for t in sent_texts(fake, carl.id))
    rows = await reminders(rr, kind="broadcast")
    assert len(rows) == 2 and {r.status for r in rows} == {"sent"}
    assert all(r.expires_at > r.due_at for r in rows)
    assert ("broadcast", 42) in sql(db_url, "select action, actor_user_id from audit_events")
    # The confirmation button cannot be used twice.
    shown = await staff.press_data("bc:send:1", shown[-1])
    assert "no longer open" in shown[-1].text
    assert len(await reminders(rr, kind="broadcast")) == 2


async def test_broadcast_waits_for_quiet_hours_and_skips_blocked_and_opted_out(
        fake, rr, clock, staff):
    anna, ben, carl = (await new_patient(rr, "Anna"), await new_patient(rr, "Ben"),
                       await new_patient(rr, "Carl"))
    for user in (anna, ben, carl):
        await book(staff, f"{user.id} 2026-03-12 11:00 60 face")
    await dispatch(rr, clock)
    await carl.send("/settings")
    await carl.press("✅ Clinic announcements")  # Carl turns announcements off
    fake.block(ben.id)
    clock.set(datetime(2026, 3, 2, 22, 0, tzinfo=UTC))  # 22:00 in London: quiet hours
    await staff.send("/broadcast")
    await staff.press("Everyone with an upcoming appointment")
    await staff.send("The clinic opens at 9 tomorrow.")
    await staff.press("📣 Send to 3")
    await dispatch(rr, clock)  # (the send button also wakes the dispatcher at once)
    rows = sorted((r.status, r.last_error, r.due_at) for r in await reminders(rr, kind="broadcast"))
    morning = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
    assert rows == [("cancelled", "patient opted out", clock.now()),
                    ("pending", None, morning), ("pending", None, morning)]
    clock.set(datetime(2026, 3, 3, 8, 0, tzinfo=UTC))  # morning
    await dispatch(rr, clock)
    assert any("opens at 9" in t for t in sent_texts(fake, anna.id))
    assert not any("opens at 9" in t for t in sent_texts(fake, carl.id))
    statuses = sorted(r.status for r in await reminders(rr, kind="broadcast"))
    assert statuses == ["cancelled", "failed", "sent"]


async def test_broadcast_can_be_cancelled_and_an_empty_group_sends_nothing(fake, rr, clock, staff):
    await staff.send("/broadcast")
    shown = await staff.press("Everyone with an appointment tomorrow")
    assert "(0 patient(s) now)" in shown[-1].text
    shown = await staff.send("Hello")
    assert "Nobody is in that group" in shown[-1].text
    anna = await new_patient(rr, "Anna")
    await book(staff, f"{anna.id} 2026-03-03 11:00 60 face")
    await staff.send("/broadcast")
    await staff.press("Everyone with an appointment tomorrow")
    await staff.send("Hello")
    shown = await staff.press("✖️ Cancel")
    assert "cancelled" in shown[-1].text
    await staff.send("/broadcast")
    await staff.press("Everyone with an upcoming appointment")
    shown = await staff.send("/cancel_broadcast")
    assert "cancelled" in shown[-1].text
    # With no draft open, staff text is not taken as a broadcast.
    await staff.send("Just a note")
    assert await reminders(rr, kind="broadcast") == []
