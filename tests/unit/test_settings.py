"""The one settings object: prefix, defaults, secrets, and faust's own env vars kept out."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings
from streams.app import contract_topics, faust_options, routed_topic_name


def test_env_prefix_and_embedded_default(monkeypatch, tmp_path):
    monkeypatch.setenv("HOTLINE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HOTLINE_TOPIC_PARTITIONS", "8")
    s = Settings()
    assert s.embedded and s.topic_partitions == 8
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    monkeypatch.setenv("HOTLINE_KAFKA_BOOTSTRAP", "kafka:9092")
    assert not Settings().embedded


def test_database_password_is_secret_and_hidden(monkeypatch):
    monkeypatch.setenv("HOTLINE_DATABASE_URL", "postgresql+psycopg://router@db:5432/hotline")
    monkeypatch.setenv("HOTLINE_DATABASE_PASSWORD", "s3cr3t-pw")
    s = Settings()
    assert "s3cr3t-pw" not in repr(s) and "s3cr3t-pw" not in str(s.model_dump())
    assert "s3cr3t-pw" in s.resolved_database_url
    assert "s3cr3t-pw" not in s.safe_database_url and "***" in s.safe_database_url


def test_model_signing_key_is_secret_and_empty_means_unsigned(monkeypatch):
    monkeypatch.setenv("HOTLINE_MODEL_SIGNING_KEY", "")
    assert Settings().signing_key is None
    monkeypatch.setenv("HOTLINE_MODEL_SIGNING_KEY", "k3y-of-the-district")
    s = Settings()
    assert s.signing_key == b"k3y-of-the-district"
    assert "k3y-of-the-district" not in repr(s) and "k3y-of-the-district" not in str(s.model_dump())


@pytest.mark.parametrize("var,value,field,expected", [
    ("HOTLINE_LOG_LEVEL", "debug", "log_level", "DEBUG"), ("HOTLINE_LOG_LEVEL", "Warning", "log_level", "WARNING"),
    ("HOTLINE_TOPIC_PARTITIONS", "4", "topic_partitions", 4), ("HOTLINE_TOPIC_PARTITIONS", "12", "topic_partitions", 12),
])
def test_values_are_normalised(monkeypatch, var, value, field, expected):
    monkeypatch.setenv(var, value)
    s = Settings()
    assert s.log_level in {"DEBUG", "INFO", "WARNING"} and s.topic_partitions >= 1
    # the value given, normalised: not the default in its place (INFO and 4 are the defaults)
    assert getattr(s, field) == expected and type(getattr(s, field)) is type(expected)


def test_bad_values_are_refused(monkeypatch):
    monkeypatch.setenv("HOTLINE_PROCESSING_GUARANTEE", "maybe_once")
    with pytest.raises(ValueError, match="exactly_once"):
        Settings()


def test_faust_options_come_from_our_settings_only(monkeypatch):
    # faust would otherwise let BROKER_URL / WEB_PORT from the environment override our values
    monkeypatch.setenv("BROKER_URL", "kafka://elsewhere:1")
    monkeypatch.setenv("WEB_PORT", "1")
    opts = faust_options(Settings(worker_web_port=7001), "127.0.0.1:9999,127.0.0.2:9999")
    assert opts["env"] == {}
    assert opts["broker"] == "kafka://127.0.0.1:9999;kafka://127.0.0.2:9999"
    assert opts["web_port"] == 7001
    assert opts["broker_session_timeout"] < 10  # tuned for the embedded broker


def test_faust_app_ignores_faust_env(monkeypatch):
    import faust

    monkeypatch.setenv("BROKER_URL", "kafka://elsewhere:1")
    probe = faust.App("probe-app", autodiscover=False)
    probe.config_from_object(faust_options(Settings(), "127.0.0.1:9"), force=True)
    assert [str(u) for u in probe.conf.broker] == ["kafka://127.0.0.1:9"]


def test_topics_of_the_contract():
    names = contract_topics(["BH-SCJG"])
    assert names[:5] == ["tickets.received", "tickets.invalid", "tickets.manual", "tickets.events",
                         "supervision.alerts"]
    assert names[-1] == routed_topic_name("BH-SCJG") == "tickets.routed.BH-SCJG"


def test_no_localhost_literals_outside_settings():
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for pkg in ("streams", "models", "classifier", "config"):
        for path in (root / pkg).rglob("*.py"):
            if path.name == "settings.py":
                continue
            text = path.read_text(encoding="utf-8")
            if "localhost" in text or "127.0.0.1" in text:
                offenders.append(str(path.relative_to(root)))
    assert offenders == []


def test_exactly_once_is_refused_on_the_embedded_broker(monkeypatch):
    import pytest
    from pydantic import ValidationError

    from config.settings import Settings

    monkeypatch.delenv("HOTLINE_KAFKA_BOOTSTRAP", raising=False)
    with pytest.raises(ValidationError, match="embedded broker runs at_least_once"):
        Settings(processing_guarantee="exactly_once", kafka_bootstrap="")
    assert Settings(processing_guarantee="exactly_once", kafka_bootstrap="kafka:9092").processing_guarantee \
        == "exactly_once"
