"""Questions: when a staff chat got the alert; in a staff group, the Reply prompt.

A question handed to staff (typed and passed on, a red flag, a request by button) whose alert
reached no staff chat (the group unreachable, Telegram failing) is alerted again by a job until
one does. Rows already handed off count as alerted: they were, or staff have long seen them in
the console.

A staff member's pending Reply in a group keeps the id of the prompt the answer must reply to:
any other reply to the bot there (an answer to another alert) is not sent to this patient.

Revision ID: 0010_question_alerted
Revises: 0009_question_source
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision: str = "0010_question_alerted"
down_revision: str | None = "0009_question_source"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, no batch rebuild (0009 says why).
    op.add_column("questions", sa.Column("alerted_at", bot.db.types.UTCDateTime(), nullable=True))
    op.execute("UPDATE questions SET alerted_at = handed_off_at WHERE handed_off_at IS NOT NULL")
    op.add_column("staff_reply_targets",
                  sa.Column("prompt_message_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    op.drop_column("staff_reply_targets", "prompt_message_id")
    op.drop_column("questions", "alerted_at")
