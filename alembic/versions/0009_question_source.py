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
    with op.batch_alter_table("questions") as batch:
        batch.add_column(sa.Column("source", sa.String(length=16), nullable=False,
                                   server_default="typed"))
        batch.add_column(sa.Column("appointment_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_questions_appointment_id_appointments"), "appointments",
                                 ["appointment_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    with op.batch_alter_table("questions") as batch:
        batch.drop_constraint(op.f("fk_questions_appointment_id_appointments"), type_="foreignkey")
        batch.drop_column("appointment_id")
        batch.drop_column("source")
