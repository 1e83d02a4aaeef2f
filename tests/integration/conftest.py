"""Fixtures shared by the integration tests (the session-wide ones are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.console_world import World, make_world


@pytest.fixture
def world(database_url: str, kafka_bootstrap: str, tmp_path: Path) -> Iterator[World]:
    """The console's test world on a fresh ledger (SQLite, and PostgreSQL when it answers)."""
    yield from make_world(database_url, kafka_bootstrap, tmp_path)
