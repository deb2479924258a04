"""Appointments: the start before the last reschedule.

A rescheduled appointment's new confirmation told the patient "Appointment booked", as for a
new one: after two moves a patient held three "booked" messages and could think they had three
appointments. The confirmation of a moved appointment now says it moved, from when to when.
Appointments rescheduled before this revision have none (their next confirmation, if any, says
"booked" as before).

Revision ID: 0014_appointment_previous_start
Revises: 0013_intake_position_encrypted
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision: str = "0014_appointment_previous_start"
down_revision: str | None = "0013_intake_position_encrypted"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, no batch rebuild (0009 says why).
    op.add_column("appointments", sa.Column("previous_starts_at", bot.db.types.UTCDateTime(),
                                                     nullable=True))


def downgrade() -> None:
    op.drop_column("appointments", "previous_starts_at")
