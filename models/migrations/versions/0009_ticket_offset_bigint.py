"""ticket offset as a 64-bit integer: ``tickets.source_offset`` holds a Kafka offset

Kafka offsets are 64-bit. The column was INTEGER, 32 bits on PostgreSQL (SQLite's integers are 64 bits either
way): past offset 2,147,483,647 of a partition every routing batch failed with "integer out of range" and each
ticket was dead-lettered as an internal error, as was the reconciler's attempt. ``rejected_inputs`` has held
its offsets as BIGINT since 0005.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.alter_column(
            "source_offset", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=True
        )


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.alter_column(
            "source_offset", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=True
        )
