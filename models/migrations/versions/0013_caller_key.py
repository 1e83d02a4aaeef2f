"""caller key: a ticket found by its caller's number, however the platform wrote it

The console's ticket search (工单查询) answers the commonest question at a hotline: a caller rings again and asks
what became of their complaint. ``caller_phone`` keeps the number as the platform sent it (138-0000-1234,
+86 13800001234, full-width digits ...); ``caller_key`` holds its digits as the supervision linker compares them
(``models.supervision.linking.phone_key``: country code dropped, full-width folded; None for a masked, short
or overlong number), indexed with the receipt time so that a caller's tickets come newest first from the index.

Existing tickets get their key here, in batches.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 09:00:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from models.supervision.linking import phone_key

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

BATCH = 5000


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('caller_key', sa.String(length=20), nullable=True))
    tickets = sa.table('tickets', sa.column('id', sa.String), sa.column('caller_phone', sa.String),
                       sa.column('caller_key', sa.String))
    conn = op.get_bind()
    after = ''
    while True:  # keyset batches by id: a district's year of tickets is not read into memory at once
        rows = conn.execute(sa.select(tickets.c.id, tickets.c.caller_phone)
                            .where(tickets.c.id > after, tickets.c.caller_phone.is_not(None))
                            .order_by(tickets.c.id).limit(BATCH)).all()
        if not rows:
            break
        keyed = [{'b_id': r.id, 'b_key': key} for r in rows if (key := phone_key(r.caller_phone))]
        if keyed:
            conn.execute(tickets.update().where(tickets.c.id == sa.bindparam('b_id'))
                         .values(caller_key=sa.bindparam('b_key')), keyed)
        after = rows[-1].id
    op.create_index('ix_tickets_caller_key_received', 'tickets', ['caller_key', 'received_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_tickets_caller_key_received', table_name='tickets')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('caller_key')
