"""``hotline doctor``'s domain-data check, ``classify`` and ``worker`` on broken domain data: messages, no
tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from config.settings import get_settings
from streams.cli import app
from streams.cli.platform import _domain_checks
from tests.unit import domain_fixtures as fx

runner = CliRunner()


def domain_check(**overrides: object):  # type: ignore[no-untyped-def]
    return next(c for c in _domain_checks(get_settings(**overrides)) if c.name == "domain data")


def test_doctor_passes_data_with_warnings_only(tmp_path: Path) -> None:
    data = fx.build(tmp_path)
    (data / "calendar" / "2026.yaml").unlink()  # a missing year is a warning, as `catalogue check` says
    check = domain_check(domain_data_dir=data, data_dir=tmp_path / "var")
    assert check.ok, check
    assert "warning" in check.detail


def test_doctor_fails_on_errors(tmp_path: Path) -> None:
    data = fx.build(tmp_path)
    (data / "agencies.yaml").unlink()
    check = domain_check(domain_data_dir=data, data_dir=tmp_path / "var")
    assert not check.ok and "agencies.yaml" in check.detail


@pytest.mark.parametrize("default", ["bh", "TJ", "XX"])
def test_doctor_fails_on_a_default_jurisdiction_without_a_list(tmp_path: Path, default: str) -> None:
    # every ticket whose address does not resolve would find no owner there
    check = domain_check(default_jurisdiction=default, data_dir=tmp_path / "var")
    assert not check.ok and "HOTLINE_DEFAULT_JURISDICTION" in check.detail


@pytest.mark.parametrize("args", [["classify", "楼下饭店油烟扰民"], ["worker"]])
def test_broken_domain_data_is_a_message_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("HOTLINE_DOMAIN_DATA_DIR", str(tmp_path / "nowhere"))
    r = runner.invoke(app, args)
    assert r.exit_code in (1, 2), r.output
    assert isinstance(r.exception, SystemExit), repr(r.exception)
    assert "hotline catalogue check" in r.output


def test_doctor_fails_a_model_not_signed_with_the_deployments_key(tmp_path: Path) -> None:
    import json

    from classifier import model as mm

    # Given a model's metadata (doctor reads nothing else) signed with key A
    folder = tmp_path / "models" / "20260101T000000Z-00000000"
    folder.mkdir(parents=True)
    meta = {"format": mm.FORMAT, "version": folder.name, "model_sha256": "0" * 64}
    meta[mm.SIGNATURE] = mm._signature(meta, b"key-A")
    (folder / mm.META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    (tmp_path / "models" / mm.CURRENT).symlink_to(folder.name)

    def classifier_check(key: str | None):  # type: ignore[no-untyped-def]
        checks = _domain_checks(get_settings(model_dir=tmp_path / "models", data_dir=tmp_path / "var",
                                             model_signing_key=key))
        return next(c for c in checks if c.name == "classifier")

    # Then doctor passes it with key A (and with none), and fails it with key B, never showing a key
    assert classifier_check("key-A").ok and "signed" in classifier_check("key-A").detail
    assert classifier_check(None).ok
    other = classifier_check("key-B")
    assert not other.ok and "HOTLINE_MODEL_SIGNING_KEY" in other.detail and "key-" not in other.detail


@pytest.mark.parametrize("url, said, code", [
    ("postgresql+psycopg://hotline:s3cret@127.0.0.1:1/hotline", "cannot reach the ledger", 1),
    ("not a url", "HOTLINE_DATABASE_URL", 2),  # a configuration error, like any other wrong HOTLINE_* value
])
def test_worker_with_an_unreachable_ledger_is_a_message_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, said: str, code: int
) -> None:
    from classifier.router import Router

    monkeypatch.setattr(Router, "load", classmethod(lambda cls, settings: object()))  # no model needed here
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("HOTLINE_DATABASE_URL", url)
    r = runner.invoke(app, ["worker"])
    assert r.exit_code == code and isinstance(r.exception, SystemExit), repr(r.exception)
    assert said in r.output and "s3cret" not in r.output


def test_a_database_that_stops_answering_between_doctor_s_checks_is_a_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from sqlalchemy.exc import OperationalError

    import streams.db
    from streams.cli.platform import run_checks

    # Given a PostgreSQL ledger that answered the migration check, then went away
    disposed: list[bool] = []

    def gone() -> bool:
        raise OperationalError("SELECT pg_has_role(...)", {}, Exception("server closed the connection"))

    ledger = SimpleNamespace(engine=SimpleNamespace(dialect=SimpleNamespace(name="postgresql")),
                             may_merge_word_index=gone, dispose=lambda: disposed.append(True))
    monkeypatch.setattr(streams.db, "open_migrated", lambda settings: ledger)
    # When doctor runs its checks, then the word-index check fails with a line and the ledger is still disposed
    checks = {c.name: c for c in run_checks(get_settings(data_dir=tmp_path / "var"))}
    assert checks["database"].ok
    assert not checks["word index"].ok and "stopped answering" in checks["word index"].detail
    assert disposed == [True]
