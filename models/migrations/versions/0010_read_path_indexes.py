"""read path indexes: the console's lists, the inbox's returns, the alerts panel and the period reports

A district's line takes tens of thousands of tickets a day, and these reads scanned and sorted whole tables
(measured on 500,000 tickets and 1.9 million events, on SQLite and PostgreSQL):

* the ticket list (console and ``GET /api/tickets``), newest first by (received_at, id), and its pages:
  ``ix_tickets_received_id``; an agency's list: ``ix_tickets_agency_received_id``; its inbox by status and
  its counts: ``ix_tickets_agency_status_received``. Both begin with ``current_agency``, so the index on that
  column alone goes (one index fewer to write on every status change);
* the tickets an agency returned (its inbox): ``ix_ticket_events_agency_type_time``; the events of a period,
  newest first (the dispatcher's recent returns, ``hotline report``, the supervisor's figures):
  ``ix_ticket_events_occurred_at``. No index leads with ``type``: SQLite took one for a ticket's routings
  (``type = 'routed' AND ticket_id IN (...)``) and read every routed event of the ledger;
* the latest alerts (the supervisor's panel, polled every few seconds; ``GET /api/alerts``):
  ``ix_alerts_raised_at``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 10:00:00.000000
"""
from __future__ import annotations

from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

INDEXES = (
    ('ix_tickets_received_id', 'tickets', ['received_at', 'id']),
    ('ix_tickets_agency_received_id', 'tickets', ['current_agency', 'received_at', 'id']),
    ('ix_tickets_agency_status_received', 'tickets', ['current_agency', 'status', 'received_at']),
    ('ix_ticket_events_agency_type_time', 'ticket_events', ['agency', 'type', 'occurred_at']),
    ('ix_ticket_events_occurred_at', 'ticket_events', ['occurred_at']),
    ('ix_alerts_raised_at', 'alerts', ['raised_at']),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)
    op.drop_index('ix_tickets_current_agency', table_name='tickets')


def downgrade() -> None:
    op.create_index('ix_tickets_current_agency', 'tickets', ['current_agency'], unique=False)
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
