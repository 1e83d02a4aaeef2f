"""Alembic migrations of the ledger schema (run with ``hotline db upgrade``)."""
