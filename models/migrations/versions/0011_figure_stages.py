"""figure stages: the supervisors' figures kept per final ticket instead of replayed on every request

The figures (supervisor page, ``/api/figures``, ``hotline report``) replayed every ticket of the period through
the lifecycle on each request, about 0.35 ms a ticket: 8 s for a 30-day overview at 300,000 tickets a year.
A ticket with no stage open (resolved, closed) contributes the same whatever the day: its contributions
(``figure_stages``, one row per agency and dispatch) are stored with the events that made it final, and a
period's figures add them up, replaying only the live tickets (``tickets.figures_live``: open, or changed
since their stages were stored).

Every existing ticket starts live, which gives the same figures as before; ``hotline db upgrade`` then stores
the stages of the final ones (``hotline db restage`` does it again, e.g. after the time limits changed).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 10:00:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from models.ledger import UTCDateTime

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

COUNTS = ('dispatched', 'signed_on_time', 'signed_late', 'resolved_on_time', 'resolved_late', 'returns',
          'first_dispatched', 'first_time_right')


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('figures_live', sa.Boolean(), server_default=sa.true(), nullable=False))
    op.create_index('ix_tickets_figures_live', 'tickets', ['id'], unique=False,
                    sqlite_where=sa.text('figures_live'), postgresql_where=sa.text('figures_live'))
    op.create_table(
        'figure_stages',
        sa.Column('ticket_id', sa.String(length=64), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('agency', sa.String(length=32), nullable=False),
        sa.Column('anchor_at', UTCDateTime(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS),
        sa.Column('late', sa.Boolean(), nullable=False),
        sa.Column('handled', sa.Integer(), nullable=False),
        sa.Column('handling_centidays', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name=op.f('fk_figure_stages_ticket_id_tickets'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('ticket_id', 'position', name=op.f('pk_figure_stages')),
    )
    op.create_index(op.f('ix_figure_stages_anchor_at'), 'figure_stages', ['anchor_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_figure_stages_anchor_at'), table_name='figure_stages')
    op.drop_table('figure_stages')
    op.drop_index('ix_tickets_figures_live', table_name='tickets')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('figures_live')
