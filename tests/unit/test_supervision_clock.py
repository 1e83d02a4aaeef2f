"""Clocks: real, simulated (HOTLINE_CLOCK_SPEED) and manual time, all aware in Asia/Shanghai."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest

from models.clock import Clock, ManualClock, SimulatedClock, SystemClock, clock_for
from models.workcalendar import TZ


def test_system_clock_is_aware_shanghai_time() -> None:
    now = SystemClock().now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(hours=8)
    assert isinstance(SystemClock(), Clock)


def test_simulated_clock_runs_speed_times_faster_from_its_origin() -> None:
    origin = datetime(2025, 9, 30, 17, 0, tzinfo=TZ)
    clock = SimulatedClock(speed=600, origin=origin)
    assert clock.now() - origin < timedelta(minutes=1)
    time.sleep(0.05)
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
