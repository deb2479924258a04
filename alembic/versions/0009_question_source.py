"""Questions: where they came from, and the appointment a request is about.

`source` is 'typed' (a message the patient typed) or a button the patient pressed about an
appointment: 'concern' ("I have a concern" on the check-in after a session), 'reschedule',
'next_session'. Those are kept as handed-off questions, so staff see them among the open
questions and reply from the console, and a second press while one is open alerts nobody.
The weekly figures count typed questions only.

Revision ID: 0009_question_source
Revises: 0008_reminder_indexes
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_question_source"
down_revision: str | None = "0008_reminder_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs, no batch rebuild: on SQLite a rebuild drops and re-creates `questions`,
    # and with foreign keys on, the drop deletes every pending staff Reply (ON DELETE CASCADE
    # from staff_reply_targets). No foreign key on appointment_id for the same reason; an
    # appointment is only ever deleted with its patient, whose questions go too.
    op.add_column("questions", sa.Column("source", sa.String(length=16), nullable=False,
                                         server_default="typed"))
    op.add_column("questions", sa.Column("appointment_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("questions", "appointment_id")
    op.drop_column("questions", "source")
