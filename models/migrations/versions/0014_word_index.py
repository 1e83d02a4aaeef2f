"""word index: the ticket search finds a rare word without reading every ticket

The search's LIKE read every ticket for a word found in few or none (0.93 s on SQLite, 0.42 s on PostgreSQL at
300,000 tickets). Each ticket's bigrams are now indexed (``models.word_index``): an FTS5 table on SQLite, filled
here from the stored tickets and then by the ledger's ticket writes; on PostgreSQL a GIN index on an immutable
function of the searched columns, which PostgreSQL keeps itself.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 11:00:00.000000
"""
from __future__ import annotations

from alembic import op

from models import word_index

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    word_index.create(op.get_bind())


def downgrade() -> None:
    word_index.drop(op.get_bind())
