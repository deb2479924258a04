"""Questions: whether a message raised a red flag, no longer which.

`questions.red_flag` held the red flag's category in clear ("allergic_reaction", "infection",
"severe_pain", ...) beside the patient id, while the message itself is encrypted: medical detail
the bot does not need to keep. The column now holds only the marker 'flagged' (bot.questions.
FLAGGED), so the weekly figures still count red flags (also once a staff reply has turned the
status into 'replied'); the category is found again in the decrypted message when staff are
alerted again. This revision replaces the categories already stored with the marker.

Revision ID: 0012_red_flag_marker
Revises: 0011_appointment_import_key
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012_red_flag_marker"
down_revision: str | None = "0011_appointment_import_key"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain UPDATE, the same on SQLite and PostgreSQL; the column keeps its type.
    op.execute("UPDATE questions SET red_flag = 'flagged' WHERE red_flag IS NOT NULL")


def downgrade() -> None:
    # Nothing to undo: the categories cannot be restored (they were replaced, not kept
    # anywhere), and the marker is a valid value for the column under the earlier code too
    # (counted as a red flag; a re-alert then names "flagged" instead of the category).
    pass
