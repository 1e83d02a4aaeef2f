"""initial ledger schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 02:05:34.452299
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.ledger

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('alerts',
    sa.Column('alert_key', sa.String(length=160), nullable=False),
    sa.Column('rule', sa.String(length=40), nullable=False),
    sa.Column('level', sa.String(length=24), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('ticket_id', sa.String(length=64), nullable=True),
    sa.Column('agency', sa.String(length=32), nullable=True),
    sa.Column('deadline', models.ledger.UTCDateTime(timezone=True), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('raised_at', models.ledger.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('alert_key', name=op.f('pk_alerts'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerts_agency'), ['agency'], unique=False)
        batch_op.create_index(batch_op.f('ix_alerts_rule'), ['rule'], unique=False)
        batch_op.create_index(batch_op.f('ix_alerts_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('rejected_inputs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('dedup_key', sa.String(length=200), nullable=False),
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('rejected_at', models.ledger.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rejected_inputs')),
    sa.UniqueConstraint('dedup_key', name=op.f('uq_rejected_inputs_dedup_key'))
    )
    with op.batch_alter_table('rejected_inputs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rejected_inputs_key'), ['key'], unique=False)

    op.create_table('ticket_events',
    sa.Column('event_id', sa.String(length=80), nullable=False),
    sa.Column('ticket_id', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('agency', sa.String(length=32), nullable=True),
    sa.Column('occurred_at', models.ledger.UTCDateTime(timezone=True), nullable=False),
    sa.Column('accepted', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('recorded_at', models.ledger.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_ticket_events'))
    )
    with op.batch_alter_table('ticket_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_events_ticket_id'), ['ticket_id'], unique=False)
        batch_op.create_index('ix_ticket_events_ticket_time', ['ticket_id', 'occurred_at'], unique=False)

    op.create_table('tickets',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('received_at', models.ledger.UTCDateTime(timezone=True), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=True),
    sa.Column('address', sa.String(length=500), nullable=True),
    sa.Column('channel', sa.String(length=40), nullable=True),
    sa.Column('request_type', sa.String(length=8), nullable=True),
    sa.Column('urgency', sa.String(length=8), nullable=True),
    sa.Column('caller_phone', sa.String(length=40), nullable=True),
    sa.Column('jurisdiction', sa.String(length=16), nullable=True),
    sa.Column('street', sa.String(length=64), nullable=True),
    sa.Column('matter', sa.String(length=16), nullable=True),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('current_agency', sa.String(length=32), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('source_topic', sa.String(length=120), nullable=True),
    sa.Column('source_partition', sa.Integer(), nullable=True),
    sa.Column('source_offset', sa.Integer(), nullable=True),
    sa.Column('first_seen_at', models.ledger.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', models.ledger.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets'))
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tickets_current_agency'), ['current_agency'], unique=False)
        batch_op.create_index('ix_tickets_status_received', ['status', 'received_at'], unique=False)

    op.create_table('routing_decisions',
    sa.Column('decision_key', sa.String(length=80), nullable=False),
    sa.Column('ticket_id', sa.String(length=64), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('matter', sa.String(length=16), nullable=True),
    sa.Column('domain', sa.String(length=16), nullable=True),
    sa.Column('agency', sa.String(length=32), nullable=True),
    sa.Column('agency_kind', sa.String(length=32), nullable=True),
    sa.Column('jurisdiction', sa.String(length=16), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('basis', sa.Text(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('alternatives', sa.JSON(), nullable=False),
    sa.Column('model_version', sa.String(length=64), nullable=True),
    sa.Column('decided_by', sa.String(length=64), nullable=False),
    sa.Column('decided_at', models.ledger.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_routing_decisions_ticket_id_tickets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('decision_key', name=op.f('pk_routing_decisions'))
    )
    with op.batch_alter_table('routing_decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_routing_decisions_agency'), ['agency'], unique=False)
        batch_op.create_index(batch_op.f('ix_routing_decisions_ticket_id'), ['ticket_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('routing_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_routing_decisions_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_routing_decisions_agency'))

    op.drop_table('routing_decisions')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_status_received')
        batch_op.drop_index(batch_op.f('ix_tickets_current_agency'))

    op.drop_table('tickets')
    with op.batch_alter_table('ticket_events', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_events_ticket_time')
        batch_op.drop_index(batch_op.f('ix_ticket_events_ticket_id'))

    op.drop_table('ticket_events')
    with op.batch_alter_table('rejected_inputs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rejected_inputs_key'))

    op.drop_table('rejected_inputs')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alerts_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_alerts_rule'))
        batch_op.drop_index(batch_op.f('ix_alerts_agency'))

    op.drop_table('alerts')

