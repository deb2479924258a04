"""Appointments, the reminder outbox, and patient invitations (deep links).

Revision ID: 0003_appointments
Revises: 0002_intake
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db.types

revision: str = "0003_appointments"
down_revision: str | None = "0002_intake"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "appointments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", bot.db.types.UTCDateTime(), nullable=False),
        sa.Column("duration_min", sa.Integer(), nullable=False),
        sa.Column("area", sa.String(length=64), nullable=False),
        sa.Column("session_no", sa.Integer(), server_default="1", nullable=False),
        sa.Column("course_size", sa.Integer(), server_default="1", nullable=False),
        sa.Column("status", sa.String(length=16), server_default="booked", nullable=False),
        sa.Column("plan_version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", bot.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", bot.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE",
                                name=op.f("fk_appointments_patient_id_patients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appointments")),
    )
    op.create_index(op.f("ix_appointments_patient_id"), "appointments", ["patient_id"])
    op.create_index(op.f("ix_appointments_starts_at"), "appointments", ["starts_at"])

    op.create_table(
        "reminders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=96), nullable=False),
        sa.Column("appointment_id", sa.Integer(), nullable=True),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("due_at", bot.db.types.UTCDateTime(), nullable=False),
        sa.Column("expires_at", bot.db.types.UTCDateTime(), nullable=False),
        sa.Column("quiet_ok", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("outcome_unknown", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("claimed_at", bot.db.types.UTCDateTime(), nullable=True),
        sa.Column("sent_at", bot.db.types.UTCDateTime(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", bot.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["appointment_id"], ["appointments.id"], ondelete="CASCADE",
                                name=op.f("fk_reminders_appointment_id_appointments")),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE",
                                name=op.f("fk_reminders_patient_id_patients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminders")),
        sa.UniqueConstraint("key", name=op.f("uq_reminders_key")),
    )
    op.create_index(op.f("ix_reminders_appointment_id"), "reminders", ["appointment_id"])
    op.create_index(op.f("ix_reminders_patient_id"), "reminders", ["patient_id"])
    op.create_index("ix_reminders_status_due_at", "reminders", ["status", "due_at"])

    op.create_table(
        "patient_invites",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("contact_name", sa.String(length=255), nullable=True),
        sa.Column("contact_phone", sa.String(length=32), nullable=True),
        sa.Column("created_at", bot.db.types.UTCDateTime(), nullable=False),
        sa.Column("expires_at", bot.db.types.UTCDateTime(), nullable=False),
        sa.Column("used_at", bot.db.types.UTCDateTime(), nullable=True),
        sa.Column("used_by", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"], ondelete="CASCADE",
                                name=op.f("fk_patient_invites_patient_id_patients")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_invites")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_patient_invites_token_hash")),
    )
    op.create_index(op.f("ix_patient_invites_patient_id"), "patient_invites", ["patient_id"])
    op.create_index(op.f("ix_patient_invites_contact_phone"), "patient_invites", ["contact_phone"])


def downgrade() -> None:
    op.drop_table("patient_invites")
    op.drop_index("ix_reminders_status_due_at", table_name="reminders")
    op.drop_table("reminders")
    op.drop_table("appointments")
