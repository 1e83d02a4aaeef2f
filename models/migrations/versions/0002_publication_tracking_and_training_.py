"""publication tracking and training examples

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:19:12.089730
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.ledger

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('training_examples',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('ticket_id', sa.String(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('label', sa.String(length=32), nullable=False),
    sa.Column('label_kind', sa.String(length=16), nullable=False),
    sa.Column('predicted', sa.String(length=32), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', models.ledger.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_training_examples')),
    sa.UniqueConstraint('ticket_id', name=op.f('uq_training_examples_ticket_id'))
    )
    with op.batch_alter_table('routing_decisions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('topic', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('published_at', models.ledger.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('message', sa.JSON(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('routing_decisions', schema=None) as batch_op:
        batch_op.drop_column('message')
        batch_op.drop_column('published_at')
        batch_op.drop_column('topic')

    op.drop_table('training_examples')
