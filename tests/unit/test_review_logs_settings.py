"""What the commands say about wrong settings (logs and terminals review): one line naming the variable, never a
traceback, never the value (it may be a secret); the documented "empty" values mean the default."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from config.settings import Settings
from streams.cli import app

runner = CliRunner()
SECRET = "S3cretPw9"


def said(r) -> str:  # type: ignore[no-untyped-def]
    """The command's output as one line (the terminal wraps at 80 columns)."""
    return " ".join(r.output.split())


@pytest.mark.parametrize("command", [["db", "status"], ["db", "upgrade"], ["doctor"], ["alerts"], ["report"],
                                     ["users", "list"]])
@pytest.mark.parametrize("url", [f"not a url {SECRET}", f"nosuchdialect://router:{SECRET}@db/hotline",
                                 f"mysql://router:{SECRET}@db/hotline"])  # the last: its driver is not installed
def test_an_unusable_database_url_is_one_line_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str], url: str
) -> None:
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HOTLINE_DATABASE_URL", url)
    r = runner.invoke(app, command)
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), repr(r.exception)
    assert "configuration error: HOTLINE_DATABASE_URL:" in said(r) and SECRET not in said(r)
    assert "Traceback" not in r.output


def test_an_unknown_log_level_is_refused_with_the_levels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_LOG_LEVEL", "verbose")  # logging.basicConfig raised ValueError in `hotline worker`
    r = runner.invoke(app, ["worker"])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), repr(r.exception)
    assert "HOTLINE_LOG_LEVEL: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL" in said(r)


def test_a_settings_error_never_repeats_the_values(monkeypatch: pytest.MonkeyPatch) -> None:
    # A model-level error carried every value given, the database URL's password among them (str(exc) printed it
    # wherever the error was logged without the CLI's formatting, e.g. a traceback in a container's log).
    from config.settings import describe_errors

    monkeypatch.delenv("HOTLINE_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("HOTLINE_DATABASE_URL", f"postgresql+psycopg://router:{SECRET}@db:5432/hotline")
    monkeypatch.setenv("HOTLINE_WEB_SECRET", "cookie-key-" + SECRET)
    with pytest.raises(ValidationError) as caught:
        Settings(processing_guarantee="exactly_once")
    assert SECRET not in str(caught.value)
    assert describe_errors(caught.value).startswith("settings: HOTLINE_PROCESSING_GUARANTEE=exactly_once needs")
    monkeypatch.setenv("HOTLINE_WEB_PORT", "eighty")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert describe_errors(caught.value) == ("HOTLINE_WEB_PORT: Input should be a valid integer, unable to parse "
                                             "string as an integer")


def test_empty_clock_origin_and_model_dir_are_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # README: HOTLINE_CLOCK_ORIGIN "empty = real now at first use"; it was a configuration error, and an empty
    # HOTLINE_MODEL_DIR was the working directory instead of <data dir>/models
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HOTLINE_CLOCK_ORIGIN", "")
    monkeypatch.setenv("HOTLINE_MODEL_DIR", "")
    s = Settings()
    assert s.clock_origin is None and s.resolved_model_dir == tmp_path / "models"
