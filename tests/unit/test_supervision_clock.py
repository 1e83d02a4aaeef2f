"""Clocks: real, simulated (HOTLINE_CLOCK_SPEED) and manual time, all aware in Asia/Shanghai."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import models.clock as clock_module
from models.clock import Clock, ManualClock, SimulatedClock, SystemClock, clock_for, shared_clock
from models.workcalendar import TZ


class Wall:
    """The real clocks ``models.clock`` reads, moving only when a test sleeps: at 3600x one real millisecond
    is 3.6 simulated seconds, so on a busy machine the real clocks made these tests' tolerances flaky."""

    def __init__(self) -> None:
        self._now, self._mono = float(int(time.time())), 1000.0  # whole seconds: sums stay exact

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds


@pytest.fixture(autouse=True)
def wall(monkeypatch: pytest.MonkeyPatch) -> Wall:
    w = Wall()
    monkeypatch.setattr(clock_module, "time", w)
    return w


def test_system_clock_is_aware_shanghai_time() -> None:
    now = SystemClock().now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(hours=8)
    assert isinstance(SystemClock(), Clock)


def test_simulated_clock_runs_speed_times_faster_from_its_origin(wall: Wall) -> None:
    origin = datetime(2025, 9, 30, 17, 0, tzinfo=TZ)
    clock = SimulatedClock(speed=600, origin=origin)
    assert clock.now() - origin < timedelta(minutes=1)
    wall.sleep(0.05)
    elapsed = clock.now() - origin
    # 0.05 s real at 600x is 30 s simulated (sleep may overshoot, never undershoot)
    assert timedelta(seconds=29) <= elapsed < timedelta(minutes=10)
    assert clock.real_seconds(timedelta(minutes=10)) == pytest.approx(1.0)


def test_simulated_clock_rejects_a_non_positive_speed() -> None:
    with pytest.raises(ValueError):
        SimulatedClock(speed=0)


def test_manual_clock_moves_only_when_told_and_never_backwards() -> None:
    clock = ManualClock(datetime(2025, 1, 27, 9, 0))  # naive = Shanghai wall-clock time
    assert clock.now() == datetime(2025, 1, 27, 9, 0, tzinfo=TZ)
    assert clock.advance(timedelta(hours=2)) == datetime(2025, 1, 27, 11, 0, tzinfo=TZ)
    assert clock.now() == datetime(2025, 1, 27, 11, 0, tzinfo=TZ)
    with pytest.raises(ValueError):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError):
        clock.set(datetime(2025, 1, 27, 10, 0, tzinfo=TZ))


def test_clock_for_a_configured_speed() -> None:
    assert isinstance(clock_for(1.0), SystemClock)
    fast = clock_for(600, datetime(2025, 1, 1, tzinfo=TZ))
    assert isinstance(fast, SimulatedClock) and fast.speed == 600


# --- the shared clock (clock.json): one "now" for every process of a deployment ----------------------------
def test_shared_clock_is_real_time_at_speed_one_without_an_origin(tmp_path: Path) -> None:
    assert isinstance(shared_clock(1.0, None, tmp_path / "clock.json"), SystemClock)
    assert not (tmp_path / "clock.json").exists()  # nothing to share: no file


def test_two_clocks_built_from_the_same_file_agree(wall: Wall, tmp_path: Path) -> None:
    state = tmp_path / "var" / "clock.json"
    origin = datetime(2025, 9, 30, 17, 0, tzinfo=TZ)
    first = shared_clock(600, origin, state)
    wall.sleep(0.05)  # the second process starts later: it must not restart simulated time
    second = shared_clock(600, origin, state)
    a, b = first.now(), second.now()
    # both read time.time() a few microseconds apart: at 600x that is well under a simulated second
    assert abs(b - a) < timedelta(seconds=1)
    assert a - origin >= timedelta(seconds=29)  # 0.05 s real at 600x has passed since the first use
    saved = json.loads(state.read_text())
    assert saved["speed"] == 600 and datetime.fromisoformat(saved["origin"]) == origin
    assert not list(state.parent.glob(".clock.*.tmp"))  # the atomic write left no temporary file


def test_without_an_origin_the_first_use_fixes_it_and_others_follow(wall: Wall, tmp_path: Path) -> None:
    state = tmp_path / "clock.json"
    before = SystemClock().now()
    first = shared_clock(3600, None, state)
    assert before - timedelta(seconds=1) <= first.now() <= before + timedelta(minutes=5)
    wall.sleep(0.02)
    # a process started later (worker, console, ticket player) with the same settings joins the same time
    assert abs(shared_clock(3600, None, state).now() - first.now()) < timedelta(seconds=2)


def test_a_restarted_process_continues_the_simulated_time(wall: Wall, tmp_path: Path) -> None:
    state = tmp_path / "clock.json"
    origin = datetime(2025, 1, 27, 9, 0, tzinfo=TZ)
    before_restart = shared_clock(3600, origin, state).now()
    wall.sleep(0.125)  # the worker is down: simulated time goes on (7.5 simulated minutes at 3600x)
    after_restart = shared_clock(3600, origin, state).now()
    assert after_restart - before_restart == timedelta(minutes=7.5)
    assert after_restart - origin == timedelta(minutes=7.5)  # not back at the origin


def test_an_origin_change_restarts_the_clock_there(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "clock.json"
    origin = datetime(2025, 1, 27, 9, 0, tzinfo=TZ)
    shared_clock(3600, origin, state)
    other = datetime(2025, 2, 1, 9, 0, tzinfo=TZ)
    with caplog.at_level(logging.WARNING, logger="models.clock"):
        assert shared_clock(3600, other, state).now() - other < timedelta(seconds=30)
    assert "was written for speed 3600" in caplog.text
    # no configured origin keeps whatever origin the file has
    assert shared_clock(3600, None, state).now() - other < timedelta(minutes=5)


@pytest.mark.parametrize("configured", [datetime(2025, 1, 27, 9, 0, tzinfo=TZ), None])
def test_a_speed_change_goes_on_from_the_simulated_now(wall: Wall, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                       configured: datetime | None) -> None:
    state = tmp_path / "clock.json"
    shared_clock(3600, configured, state)
    wall.sleep(0.05)
    anchor = json.loads(state.read_text())["anchor"]
    before = shared_clock(3600, configured, state).now()  # 3 simulated minutes (or more) in
    with caplog.at_level(logging.WARNING, logger="models.clock"):
        slower = shared_clock(60, configured, state)  # restarted with another speed
    assert "was written for speed 3600" in caplog.text
    saved = json.loads(state.read_text())
    assert saved["speed"] == 60 and saved["anchor"] > anchor
    after = slower.now()
    assert before <= after < before + timedelta(seconds=30)  # never behind what the ledger may already hold
    assert shared_clock(60, configured, state).now() >= after  # and the new state is kept


def test_a_corrupt_state_file_is_replaced(tmp_path: Path) -> None:
    state = tmp_path / "clock.json"
    state.write_text("{not json")
    origin = datetime(2025, 1, 27, 9, 0, tzinfo=TZ)
    assert shared_clock(600, origin, state).now() - origin < timedelta(minutes=1)
    assert json.loads(state.read_text())["speed"] == 600


def test_without_a_state_file_the_clock_is_private(tmp_path: Path) -> None:
    clock = shared_clock(600, datetime(2025, 1, 27, 9, 0, tzinfo=TZ), None)
    assert isinstance(clock, SimulatedClock) and clock.speed == 600
    assert list(tmp_path.iterdir()) == []
