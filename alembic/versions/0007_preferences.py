"""Patients' reminder preferences (/settings) and staff broadcasts.

Revision ID: 0007_preferences
Revises: 0006_privacy
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision: str = "0007_preferences"
down_revision: str | None = "0006_privacy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "patient_preferences",
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("disabled_kinds", sa.String(length=200), server_default="", nullable=False),
        sa.Column("quiet_start", sa.String(length=5), nullable=True),
        sa.Column("quiet_end", sa.String(length=5), nullable=True),
        sa.Column("updated_at", bot.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE",
                                name=op.f("fk_patient_preferences_patient_id_patients")),
        sa.PrimaryKeyConstraint("patient_id", name=op.f("pk_patient_preferences")),
    )
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("audience", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="draft", nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("recipients", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", bot.db.types.UTCDateTime(), nullable=False),
        sa.Column("queued_at", bot.db.types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcasts")),
    )
    op.create_index(op.f("ix_broadcasts_created_by"), "broadcasts", ["created_by"])


def downgrade() -> None:
    op.drop_index(op.f("ix_broadcasts_created_by"), table_name="broadcasts")
    op.drop_table("broadcasts")
    op.drop_table("patient_preferences")
