"""The demo's hint for client commands: they must share the demo's simulated clock, not restart it."""

from __future__ import annotations

import json
import shlex
from datetime import datetime
from pathlib import Path

import pytest

from config.settings import get_settings
from models.workcalendar import as_local
from streams.demo.run import client_env, demo_settings
from streams.wiring import clock_for_settings


@pytest.mark.parametrize("speed", [3600.0, 1234.5678901])
def test_the_printed_environment_joins_the_demo_s_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        speed: float) -> None:
    """With HOTLINE_DATA_DIR alone (the old hint and README) `hotline report --digest` against the demo ran on
    real time: a digest dated weeks away from the demo's simulated week."""
    for name in ("HOTLINE_CLOCK_SPEED", "HOTLINE_CLOCK_ORIGIN", "HOTLINE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    demo = demo_settings(get_settings(), demo_dir=tmp_path / "a dir" / "demo", bootstrap="127.0.0.1:1",
                         model_dir=tmp_path, speed=speed, origin=as_local(datetime(2026, 11, 23, 8, 30)))
    demo.data_dir.mkdir(parents=True)
    demo_now = clock_for_settings(demo).now()
    state = json.loads((demo.data_dir / "clock.json").read_text(encoding="utf-8"))
    for pair in shlex.split(client_env(demo)):
        name, _, value = pair.partition("=")
        monkeypatch.setenv(name, value)
    client = get_settings()
    assert client.data_dir == demo.data_dir
    client_now = clock_for_settings(client).now()
    assert json.loads((demo.data_dir / "clock.json").read_text(encoding="utf-8")) == state  # not restarted
    assert abs((client_now - demo_now).total_seconds()) < speed * 5
