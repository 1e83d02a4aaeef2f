"""event batch position: the order in which one lifecycle batch applied its events

A batch stores its events with one ``recorded_at``, and ``occurred_at`` is the sender's clock: an agency whose
clock runs behind put its sign-for before the routing it answers, and a decision on an extension before the
request. ``(recorded_at, batch_position)`` is the order the lifecycle accepted them in. Rows stored before this
revision keep NULL and are read by ``occurred_at`` within their batch, as before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 20:40:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ticket_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('batch_position', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ticket_events', schema=None) as batch_op:
        batch_op.drop_column('batch_position')
