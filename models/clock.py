"""Clocks: where "now" comes from, so that supervision can run on real, accelerated or manual time.

Every clock answers :meth:`Clock.now` with an aware datetime in Asia/Shanghai. Production uses
:class:`SystemClock`; the demo and scenario tests use :class:`SimulatedClock` (``HOTLINE_CLOCK_SPEED``
= 600 makes one real second ten simulated minutes, so a simulated week takes ~17 real minutes and a
working day ~2.4 minutes); unit tests use :class:`ManualClock`, which moves only when told to.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from models.workcalendar import TZ, as_local


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """The current moment, timezone-aware (Asia/Shanghai)."""
        ...


class SystemClock:
    """Real time."""

    speed = 1.0

    def now(self) -> datetime:
        return datetime.now(UTC).astimezone(TZ)

    def real_seconds(self, simulated: timedelta) -> float:
        return simulated.total_seconds()


class SimulatedClock:
    """Time that runs ``speed`` times faster than real time, starting at ``origin`` (default: now).

    Based on the monotonic clock, so a wall-clock adjustment on the host does not make it jump.
    """

    def __init__(self, speed: float = 1.0, origin: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self.speed = float(speed)
        self.origin = as_local(origin) if origin is not None else SystemClock().now()
        self._started = time.monotonic()

    def now(self) -> datetime:
        elapsed = time.monotonic() - self._started
        return self.origin + timedelta(seconds=elapsed * self.speed)

    def real_seconds(self, simulated: timedelta) -> float:
        """How long to sleep in real time for ``simulated`` to pass (timer loops pace themselves with it)."""
        return simulated.total_seconds() / self.speed


class ManualClock:
    """A clock for tests: stands still until :meth:`advance` or :meth:`set` moves it."""

    speed = 1.0

    def __init__(self, start: datetime) -> None:
        self._now = as_local(start)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("a clock does not run backwards")
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> datetime:
        moment = as_local(moment)
        if moment < self._now:
            raise ValueError("a clock does not run backwards")
        self._now = moment
        return self._now

    def real_seconds(self, simulated: timedelta) -> float:
        return 0.0


FixedClock = ManualClock  # the name some callers expect


def clock_for(speed: float = 1.0, origin: datetime | None = None) -> SystemClock | SimulatedClock:
    """The clock for a configured speed (``Settings.clock_speed``): real time at 1, simulated otherwise."""
    if speed == 1.0 and origin is None:
        return SystemClock()
    return SimulatedClock(speed, origin)


__all__ = ["Clock", "FixedClock", "ManualClock", "SimulatedClock", "SystemClock", "clock_for"]
