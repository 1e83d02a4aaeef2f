"""complex case: whether the hotline judged a ticket a complex case (复杂件) at intake

The time limits have rules for complex cases (sla.yaml: 2 working days to return, 15 to handle), but a
ticket could not say it was one. Existing tickets are not complex cases, as they were treated so far.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 19:00:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('complex_case', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('complex_case')
