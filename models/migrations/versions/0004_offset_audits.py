"""offset audits: the reconciler's progress per input partition, and an index on each ticket's position

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 13:00:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.ledger

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('offset_audits',
    sa.Column('topic', sa.String(length=120), nullable=False),
    sa.Column('partition', sa.Integer(), nullable=False),
    sa.Column('audited_to', sa.BigInteger(), nullable=False),
    sa.Column('recovered', sa.Integer(), nullable=False),
    sa.Column('updated_at', models.ledger.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('topic', 'partition', name=op.f('pk_offset_audits'))
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index('ix_tickets_source_position', ['source_topic', 'source_partition', 'source_offset'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_source_position')
    op.drop_table('offset_audits')
