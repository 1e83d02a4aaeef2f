"""published_at index: the reconciler's look for routings whose announcement the lifecycle never recorded

Every reconciler round (10 s) a worker looks for decisions published between an hour and five minutes ago (its
tickets.received partitions) without a 'routed' event in the ledger, and announces them again: an announcement
lost on the way (a worker stopped between its publication and the lifecycle's read, the handover of a rolling
upgrade) left its ticket on an agency's queue with no supervision watching it. Without the index that look read
every decision ever made.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 07:00:00.000000
"""
from __future__ import annotations

from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_routing_decisions_published_at', 'routing_decisions', ['published_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_routing_decisions_published_at', table_name='routing_decisions')
