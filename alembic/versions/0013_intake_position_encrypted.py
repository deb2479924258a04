"""Intakes: the open question is kept with the encrypted answers, no longer in clear.

`intakes.current` held the id of the question a questionnaire waits for, beside the patient id:
"allergies_detail", "medications_detail" or "chronic_detail" is asked only after a Yes, so the
column said in clear that the patient has allergies, takes medicines or has a chronic
condition. The flow now keeps it inside the encrypted `data` (bot.intake.flow). A migration has
no encryption key, so the positions stored before are dropped with the column. A questionnaire
open at this upgrade does not guess which question the patient sees: a button pressed names
its question; a typed reply shows the first unanswered question, to be answered again.

The values are set to NULL before the drop: PostgreSQL's DROP COLUMN only hides a column, and
rows not written since would keep their value on disk. The old row versions go with the next
VACUUM (autovacuum, or `VACUUM intakes` after upgrading); backups taken before keep them.

Revision ID: 0013_intake_position_encrypted
Revises: 0012_red_flag_marker
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_intake_position_encrypted"
down_revision: str | None = "0012_red_flag_marker"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("UPDATE intakes SET current = NULL WHERE current IS NOT NULL")
    # A plain DROP COLUMN (SQLite 3.35+ and PostgreSQL), no batch rebuild (0009 says why).
    op.drop_column("intakes", "current")


def downgrade() -> None:
    # Empty: the earlier code then goes on at the first unanswered question, as above.
    op.add_column("intakes", sa.Column("current", sa.String(length=32), nullable=True))
