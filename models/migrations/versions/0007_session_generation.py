"""session generation: a counter in every console session's stamp, bumped when a user is disabled

A session is valid only for the credentials it was issued for: a new password ends it (its stamp is a digest
of the stored hash), and disabling a user bumps this counter, so enabling the user again revives no session.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 19:30:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_generation', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_generation')
