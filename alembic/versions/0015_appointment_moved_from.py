"""Appointments: the record they were booked on, when they moved to another at a link.

A link opened by someone already on the bot moves the placeholder's appointments to that
person's record. When it was the wrong person, /unlink now moves those appointments back (their
reminders then wait for the right person's link); before, staff had to cancel and book again,
and the cancellation went to the wrong person. Appointments that moved before this revision
have none, and stay where they are.

Revision ID: 0015_appointment_moved_from
Revises: 0014_appointment_previous_start
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_appointment_moved_from"
down_revision: str | None = "0014_appointment_previous_start"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, no batch rebuild (0009 says why); no foreign key, as for 0009's
    # questions.appointment_id (a patient's erasure deletes their appointments anyway).
    op.add_column("appointments", sa.Column("moved_from", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("appointments", "moved_from")
