"""Appointments: the plan version that set their current start.

Whether the patient was told an appointment's time (so that a reschedule's confirmation says
"moved from" it) was judged by the reminders of its current plan version only. A replan after
the patient unblocked the bot raises the version without changing the time, so a later move
said "Appointment booked" although the patient had been told the time; and a change of the
duration alone said "booked" again, or repeated an older move. It is now judged by the messages
naming the time of every plan version since the time was set (a staff /push's too). Appointments from before this revision have none:
the old judgement stays for them.

Revision ID: 0016_appointment_time_version
Revises: 0015_appointment_moved_from
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_appointment_time_version"
down_revision: str | None = "0015_appointment_moved_from"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, no batch rebuild (0009 says why).
    op.add_column("appointments", sa.Column("time_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("appointments", "time_version")
