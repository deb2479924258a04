"""Questions: the chat message they came from.

A patient who edits a message that raised a red flag (a typo fixed) alerted staff a second
time, URGENT, with a second open question: an edit is now urgent only if its message was not
already. Questions from before this revision have none (an edit of one of those alerts).

Revision ID: 0017_question_message_id
Revises: 0016_appointment_time_version
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_question_message_id"
down_revision: str | None = "0016_appointment_time_version"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, no batch rebuild (0009 says why).
    op.add_column("questions", sa.Column("message_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("questions", "message_id")
