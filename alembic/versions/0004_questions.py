"""Questions in the patient's own words: questions, staff reply targets.

Revision ID: 0004_questions
Revises: 0003_appointments
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision: str = "0004_questions"
down_revision: str | None = "0003_appointments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "questions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("node_id", sa.String(length=16), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("red_flag", sa.String(length=32), nullable=True),
        sa.Column("created_at", bot.db.types.UTCDateTime(), nullable=False),
        sa.Column("handed_off_at", bot.db.types.UTCDateTime(), nullable=True),
        sa.Column("reply_text", sa.LargeBinary(), nullable=True),
        sa.Column("replied_by", sa.BigInteger(), nullable=True),
        sa.Column("replied_at", bot.db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE",
                                name=op.f("fk_questions_patient_id_patients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_questions")),
    )
    op.create_index(op.f("ix_questions_patient_id"), "questions", ["patient_id"])
    op.create_table(
        "staff_reply_targets",
        sa.Column("staff_user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("started_at", bot.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["question_id"], ["questions.id"], ondelete="CASCADE",
                                name=op.f("fk_staff_reply_targets_question_id_questions")),
        sa.PrimaryKeyConstraint("staff_user_id", name=op.f("pk_staff_reply_targets")),
    )
    op.create_index(op.f("ix_staff_reply_targets_question_id"), "staff_reply_targets",
                    ["question_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_staff_reply_targets_question_id"), table_name="staff_reply_targets")
    op.drop_table("staff_reply_targets")
    op.drop_index(op.f("ix_questions_patient_id"), table_name="questions")
    op.drop_table("questions")
