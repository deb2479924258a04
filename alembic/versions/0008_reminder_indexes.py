"""Reminder indexes for scale: (status, expires_at) for the dispatcher's expiry sweep.

The claim already uses ix_reminders_status_due_at (0003). The sweep that expires pending rows
(`status = 'pending' AND expires_at <= now`, every dispatcher run) could only use the status
prefix of that index, i.e. read every pending row: with millions of future reminders stored,
each run grew with the table. This index makes it a range scan of the rows actually expiring.

Revision ID: 0008_reminder_indexes
Revises: 0007_preferences
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008_reminder_indexes"
down_revision: str | None = "0007_preferences"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_reminders_status_expires_at", "reminders", ["status", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_reminders_status_expires_at", table_name="reminders")
