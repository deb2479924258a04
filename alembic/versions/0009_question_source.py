"""Questions: where they came from. 'typed' by the patient, or 'checkin' (the "I have a concern"
button after a session, kept as a handed-off question so staff reply to it from the console).

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


def downgrade() -> None:
    with op.batch_alter_table("questions") as batch:
        batch.drop_column("source")
