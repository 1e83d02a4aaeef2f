"""throttles in the ledger: failed log-ins and number searches that found no one, counted for every console process

The console's throttles counted in each process's memory: a restart forgot a lock-out, and two consoles behind one
address (``docker compose up --scale web=2``) each allowed the full count. They count in these two tables now.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 13:30:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from models.ledger import UTCDateTime

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'throttle_failures',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('counter', sa.String(length=32), nullable=False),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_throttle_failures')),
    )
    op.create_index('ix_throttle_failures_counter_key_at', 'throttle_failures', ['counter', 'key', 'at'])
    op.create_index('ix_throttle_failures_counter_at', 'throttle_failures', ['counter', 'at'])
    op.create_table(
        'throttle_lockouts',
        sa.Column('counter', sa.String(length=32), nullable=False),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('until', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('counter', 'key', name=op.f('pk_throttle_lockouts')),
    )
    op.create_index(op.f('ix_throttle_lockouts_until'), 'throttle_lockouts', ['until'])


def downgrade() -> None:
    op.drop_table('throttle_lockouts')
    op.drop_table('throttle_failures')
