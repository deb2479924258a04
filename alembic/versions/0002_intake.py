"""Consultation intake: consent records and questionnaires (answers encrypted).

Revision ID: 0002_intake
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision: str = "0002_intake"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "intake_consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("text_sha256", sa.String(length=64), nullable=False),
        sa.Column("agreed_at", bot.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE",
                                name=op.f("fk_intake_consents_patient_id_patients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intake_consents")),
    )
    op.create_index(op.f("ix_intake_consents_patient_id"), "intake_consents", ["patient_id"])
    op.create_table(
        "intakes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("consent_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("current", sa.String(length=32), nullable=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("replaces_id", sa.Integer(), nullable=True),
        sa.Column("created_at", bot.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", bot.db.types.UTCDateTime(), nullable=False),
        sa.Column("submitted_at", bot.db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE",
                                name=op.f("fk_intakes_patient_id_patients")),
        sa.ForeignKeyConstraint(["consent_id"], ["intake_consents.id"], ondelete="CASCADE",
                                name=op.f("fk_intakes_consent_id_intake_consents")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_intakes")),
    )
    op.create_index(op.f("ix_intakes_patient_id"), "intakes", ["patient_id"])
    op.create_index("uq_intakes_active_patient", "intakes", ["patient_id"], unique=True,
                    sqlite_where=sa.text("status = 'active'"),
                    postgresql_where=sa.text("status = 'active'"))


def downgrade() -> None:
    op.drop_index("uq_intakes_active_patient", table_name="intakes")
    op.drop_index(op.f("ix_intakes_patient_id"), table_name="intakes")
    op.drop_table("intakes")
    op.drop_index(op.f("ix_intake_consents_patient_id"), table_name="intake_consents")
    op.drop_table("intake_consents")
