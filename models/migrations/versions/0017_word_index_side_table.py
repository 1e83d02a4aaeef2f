"""word index in a side table on PostgreSQL: a ticket's update no longer re-inserts its bigrams

The word index was a GIN expression index on ``tickets`` (migration 0014). PostgreSQL gives an updated row new
entries in every index of its table when an indexed column changes, and a ticket's status, agency and matter are
indexed: each update of a ticket (its routing's mirror, every lifecycle step) inserted all of its bigrams into the
GIN index again, 0.46 ms per update instead of 0.05, and as much again for the merge. The bigrams now live in
``ticket_grams`` (filled here from the stored tickets, then indexed in one build), written once per ticket by the
console from ``ticket_grams_queue``, to which the router adds each ticket it records. SQLite is unchanged (its
index was a separate FTS5 table already).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 14:00:00.000000
"""
from __future__ import annotations

from alembic import op

from models import word_index

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    word_index.create_side_table(op.get_bind())


def downgrade() -> None:
    word_index.drop_side_table(op.get_bind())
