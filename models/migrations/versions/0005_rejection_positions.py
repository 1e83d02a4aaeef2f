"""rejection positions: topic, partition and offset of inputs refused off a topic, indexed

The reconciler asks, every few seconds and for each partition it owns, which offsets the ledger holds as
rejections. Until now it found them with ``dedup_key LIKE '%:<topic>/<partition>/%'``: a scan of every
rejection ever recorded. Existing rows get their position from their dedup key
(``<source>:<topic>/<partition>/<offset>``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 16:30:00.000000
"""
from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

POSITION = re.compile(r"^[^:]+:(?P<topic>.+)/(?P<partition>\d+)/(?P<offset>\d+)$")


def upgrade() -> None:
    with op.batch_alter_table('rejected_inputs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_topic', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('source_partition', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('source_offset', sa.BigInteger(), nullable=True))
        batch_op.create_index('ix_rejected_inputs_source_position',
                              ['source_topic', 'source_partition', 'source_offset'], unique=False)
    table = sa.table('rejected_inputs', sa.column('id', sa.Integer), sa.column('dedup_key', sa.String),
                     sa.column('source_topic', sa.String), sa.column('source_partition', sa.Integer),
                     sa.column('source_offset', sa.BigInteger))
    conn = op.get_bind()
    rows = []
    for row_id, key in conn.execute(sa.select(table.c.id, table.c.dedup_key)):
        m = POSITION.match(key or "")
        if m:
            rows.append({"rid": row_id, "t": m["topic"], "p": int(m["partition"]), "o": int(m["offset"])})
    if rows:
        conn.execute(table.update().where(table.c.id == sa.bindparam("rid")).values(
            source_topic=sa.bindparam("t"), source_partition=sa.bindparam("p"), source_offset=sa.bindparam("o")),
            rows)


def downgrade() -> None:
    with op.batch_alter_table('rejected_inputs', schema=None) as batch_op:
        batch_op.drop_index('ix_rejected_inputs_source_position')
        batch_op.drop_column('source_offset')
        batch_op.drop_column('source_partition')
        batch_op.drop_column('source_topic')
