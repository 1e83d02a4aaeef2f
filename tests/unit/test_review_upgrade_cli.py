"""``hotline`` commands on a ledger that cannot be reached, or is behind the code: a message, never a traceback;
``hotline db upgrade`` says the revision the ledger is at, not the one it was asked for."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from streams.broker import free_port
from streams.cli import app
from streams.db import alembic_config, make_engine, migration_status, upgrade

runner = CliRunner()


def _env(tmp_path: Path, url: str) -> dict[str, str]:
    return {"HOTLINE_DATABASE_URL": url, "HOTLINE_DATA_DIR": str(tmp_path / "var"), "HOTLINE_KAFKA_BOOTSTRAP": ""}


def _said(result) -> str:  # type: ignore[no-untyped-def]
    return " ".join(result.output.split())  # rich wraps lines at the terminal's width


def _revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        return migration_status(engine)[0]
    finally:
        engine.dispose()


@pytest.mark.parametrize("command", [["alerts"], ["report"]])
def test_supervisors_commands_say_when_the_database_cannot_be_reached(tmp_path: Path, command: list[str]) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port('127.0.0.1')}/test"  # nothing listens there
    result = runner.invoke(app, command, env=_env(tmp_path, url))
    assert result.exit_code == 1, result.output
    assert "cannot reach the ledger" in _said(result)
    assert isinstance(result.exception, SystemExit)  # not the OperationalError's traceback


def test_supervisors_commands_name_the_revision_of_a_ledger_behind_the_code(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url, "0005")
    result = runner.invoke(app, ["report"], env=_env(tmp_path, url))
    assert result.exit_code == 2 and "revision 0005" in _said(result) and "hotline db upgrade" in _said(result)


def test_db_upgrade_reports_the_revision_reached(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    env = _env(tmp_path, url)
    result = runner.invoke(app, ["db", "upgrade", "0004"], env=env)
    assert result.exit_code == 0 and "revision 0004" in _said(result)
    # an earlier revision: nothing is taken back, and the command does not claim it was
    result = runner.invoke(app, ["db", "upgrade", "0002"], env=env)
    assert result.exit_code == 2, result.output
    assert "0004" in _said(result) and "never takes a ledger back" in _said(result)
    assert _revision(url) == "0004"
    # a revision the code does not know: a message, not Alembic's traceback
    result = runner.invoke(app, ["db", "upgrade", "bogus"], env=env)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "bogus" in _said(result) and _revision(url) == "0004"
    result = runner.invoke(app, ["db", "upgrade"], env=env)
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    assert result.exit_code == 0 and f"revision {head}" in _said(result)
    assert "revision head" not in _said(result)
