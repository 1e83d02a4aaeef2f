"""What a process logs at HOTLINE_LOG_LEVEL=DEBUG (logs and terminals review): faust's per-message DEBUG line,
value and all, carried callers' full numbers and citizens' text into the worker's log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.runner import QUIET_LOGGERS, setup_logging

PHONE = "13812345678"
SENT = b'{"routing_id":"T1#1","caller_phone":"13812345678","text":"\xe6\x88\x91\xe7\x9a\x84\xe7\x94\xb5\xe8\xaf\x9d13812345678"}'


@pytest.fixture
def levels() -> Iterator[None]:
    """setup_logging changes process-wide levels: put them back for the other tests."""
    names = ["", "kafka", "aiokafka", *QUIET_LOGGERS]
    before = {n: logging.getLogger(n).level for n in names}
    yield
    for n, level in before.items():
        logging.getLogger(n).setLevel(level)


def faust_sends() -> None:
    """What faust does for each message it sends (faust.topics and its aiokafka driver, mode's loggers)."""
    for name in ("faust.topics", "faust.transport.drivers.aiokafka"):
        logging.getLogger(name).debug("send: topic=%r k=%r v=%r timestamp=%r partition=%r",
                                      "tickets.routed.BH-SCJG", b"T1", SENT, None, None)


def test_a_debug_log_holds_no_message_values(levels: None, caplog: pytest.LogCaptureFixture) -> None:
    setup_logging("DEBUG")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("streams.routing").debug("our own debug line")
        faust_sends()
        logging.getLogger("faust.transport.drivers.aiokafka").info("[^--Producer]: Creating topic 'x'")
    assert "our own debug line" in caplog.text  # DEBUG is on ...
    assert PHONE not in caplog.text and "send: topic=" not in caplog.text  # ... but not for message values
    assert "Creating topic" in caplog.text  # faust's INFO lines stay


def test_alembic_plugin_chatter_stays_out_of_an_info_log(levels: None, caplog: pytest.LogCaptureFixture) -> None:
    setup_logging("INFO")
    with caplog.at_level(logging.INFO):
        logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.autogenerate.schemas")
        logging.getLogger("alembic.runtime.migration").info("Running upgrade 0007 -> 0008")
    assert "setup plugin" not in caplog.text and "Running upgrade" in caplog.text


def test_the_demo_log_keeps_them_out_too(levels: None, tmp_path: Path) -> None:
    from streams.demo.run import _setup_file_logging

    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        _setup_file_logging(tmp_path / "demo.log", "DEBUG")
        logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.autogenerate.schemas")
        logging.getLogger("streams.demo.player").debug("our own debug line")
        for h in root.handlers:
            h.flush()
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
            if h not in handlers:
                h.close()
        for h in handlers:
            root.addHandler(h)
    text = (tmp_path / "demo.log").read_text(encoding="utf-8")
    assert "our own debug line" in text and "setup plugin" not in text
