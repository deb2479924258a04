"""Patients' free-text questions, their handoff to staff, and staff replies in progress."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.models import Base
from bot.db.types import UTCDateTime

# Question.status
ANSWERED = "answered"        # quoted a section of the document
UNANSWERED = "unanswered"    # below the confidence threshold; handoff offered
HANDED_OFF = "handed_off"    # the patient asked for staff; staff were told
RED_FLAG = "red_flag"        # told to get help now; staff alerted at once
REPLIED = "replied"          # a staff reply was relayed to the patient
CLOSED = "closed"            # a request staff settled by acting (rescheduled, cancelled, booked)
STATUSES = (ANSWERED, UNANSWERED, HANDED_OFF, RED_FLAG, REPLIED, CLOSED)

# Question.source: typed by the patient, or a request pressed about an appointment
TYPED = "typed"
CONCERN = "concern"            # "I have a concern" on the check-in after a session
RESCHEDULE = "reschedule"      # "Ask to reschedule"
NEXT_SESSION = "next_session"  # "Book my next session" of a course


class Question(Base):
    """One message a patient typed outside any questionnaire (health data: never logged)."""

    __tablename__ = "questions"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    # Encrypted (bot.crypto): what the patient asked and what staff replied are health data.
    text_enc: Mapped[bytes] = mapped_column("text", LargeBinary)
    status: Mapped[str] = mapped_column(String(16))
    node_id: Mapped[str | None] = mapped_column(String(16))  # the section quoted, if any
    confidence: Mapped[float | None] = mapped_column(Float)
    # bot.questions.FLAGGED if the message raised a red flag; never which (migration 0012).
    red_flag: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    handed_off_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reply_enc: Mapped[bytes | None] = mapped_column("reply_text", LargeBinary)
    replied_by: Mapped[int | None] = mapped_column(BigInteger)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(16), default=TYPED, server_default=TYPED)
    # What a pressed request is about. No foreign key (migration 0009 says why).
    appointment_id: Mapped[int | None] = mapped_column(Integer)
    # When a staff chat got the alert; None while none has (handed off: alerted again).
    alerted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The patient's chat message it came from (typed ones): an edit of it is not a new alert.
    message_id: Mapped[int | None] = mapped_column(BigInteger)


class StaffReplyTarget(Base):
    """A staff member pressed Reply: their next message (within a window) answers this question."""

    __tablename__ = "staff_reply_targets"

    staff_user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    question_id: Mapped[int] = mapped_column(
        ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)  # where the Reply button was pressed
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # In a group, the prompt the answer must reply to: other replies to the bot are not it.
    prompt_message_id: Mapped[int | None] = mapped_column(BigInteger)
