"""Appointments: the CSV row that booked them.

`run_bot.py import-appointments` stores a digest of the row's patient reference and local
start on the appointment it books, and skips a row whose digest is already stored: re-importing
a file books nothing twice, also after the patient opened their link (the appointment moved to
their own record), cancelled, or was rescheduled (the start is no longer the row's). A unique
index, so two imports running at once cannot both book the row. Appointments booked before
this revision have none.

Revision ID: 0011_appointment_import_key
Revises: 0010_question_alerted
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_appointment_import_key"
down_revision: str | None = "0010_question_alerted"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain ADD COLUMN, no batch rebuild (0009 says why).
    op.add_column("appointments", sa.Column("import_key", sa.String(length=64), nullable=True))
    op.create_index("ix_appointments_import_key", "appointments", ["import_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_appointments_import_key", table_name="appointments")
    op.drop_column("appointments", "import_key")
