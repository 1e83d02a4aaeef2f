"""Clocks: where "now" comes from, so that supervision can run on real, accelerated or manual time.

Every clock answers :meth:`Clock.now` with an aware datetime in Asia/Shanghai. Production uses
:class:`SystemClock`; the demo and scenario tests use :class:`SimulatedClock` (``HOTLINE_CLOCK_SPEED``
= 600 makes one real second ten simulated minutes, so a simulated week takes ~17 real minutes and a
working day ~2.4 minutes); unit tests use :class:`ManualClock`, which moves only when told to.

Several processes (workers, the web console, the CLI, the demo's ticket player) must agree on the
simulated "now", and a restarted worker must continue where it was. :func:`shared_clock` therefore makes
simulated time a pure function of three numbers kept in a small state file::

    now = origin + (time.time() - anchor) * speed

written once, atomically, by whichever process needs it first (``<data dir>/clock.json`` in the stack).
It uses the wall clock (``time.time``), the only reference separate processes share; a wall-clock
adjustment on the host therefore moves simulated time too. This module reads no settings: the caller
passes speed, origin and the file (``streams.wiring.clock_for_settings``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from models.workcalendar import TZ, as_local

try:  # POSIX: serialises first-use creation between processes; elsewhere the exclusive link suffices
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
CLOCK_STATE_VERSION = 1


@runtime_checkable
class Clock(Protocol):
    speed: float
    """Simulated seconds per real second (1.0: real time): what passes in real time (clocks apart, a message in
    flight, a person's pause) is that many times longer on this clock."""

    def now(self) -> datetime:
        """The current moment, timezone-aware (Asia/Shanghai)."""
        ...

    def real_seconds(self, simulated: timedelta) -> float:
        """How long to wait in real time for ``simulated`` to pass on this clock."""
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

    Without ``anchor`` it is private to this object and based on the monotonic clock, so a wall-clock
    adjustment on the host does not make it jump. With ``anchor`` (a ``time.time()`` instant: the real
    moment at which simulated time was ``origin``) every object built from the same three numbers, in any
    process, tells the same time: that is what :func:`shared_clock` builds.
    """

    def __init__(self, speed: float = 1.0, origin: datetime | None = None, anchor: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self.speed = float(speed)
        self.anchor = anchor
        if origin is None:
            # at the anchor when there is one, so that now() == origin exactly at that instant
            origin = datetime.fromtimestamp(anchor, UTC) if anchor is not None else SystemClock().now()
        self.origin = as_local(origin)
        self._started = time.monotonic()

    def now(self) -> datetime:
        if self.anchor is not None:
            elapsed = time.time() - self.anchor
        else:
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
    """A clock private to this process: real time at speed 1 without origin, simulated otherwise.

    Processes that must agree on "now" (the worker, console, CLI, demo) use :func:`shared_clock` instead.
    """
    if speed == 1.0 and origin is None:
        return SystemClock()
    return SimulatedClock(speed, origin)


@dataclass(frozen=True, slots=True)
class ClockState:
    """What ``clock.json`` holds: simulated time was ``origin`` at the real instant ``anchor``."""

    speed: float
    origin: datetime  # simulated time at the anchor
    anchor: float  # time.time() at which simulated time was ``origin``
    configured_origin: datetime | None  # the origin asked for (None: "real now at first use")

    def to_json(self) -> dict[str, Any]:
        return {"version": CLOCK_STATE_VERSION, "speed": self.speed, "origin": self.origin.isoformat(),
                "anchor": self.anchor,
                "anchor_iso": datetime.fromtimestamp(self.anchor, UTC).astimezone(TZ).isoformat(),  # for people
                "configured_origin": self.configured_origin.isoformat() if self.configured_origin else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClockState:
        if data.get("version") != CLOCK_STATE_VERSION:
            raise ValueError(f"unknown clock state version {data.get('version')!r}")
        configured = data.get("configured_origin")
        return cls(speed=float(data["speed"]), origin=as_local(datetime.fromisoformat(data["origin"])),
                   anchor=float(data["anchor"]),
                   configured_origin=as_local(datetime.fromisoformat(configured)) if configured else None)

    def matches(self, speed: float, origin: datetime | None) -> bool:
        """Whether this state was written for the configured speed and origin. No configured origin
        means "whatever it was at first use", so any origin is kept then."""
        if self.speed != float(speed):
            return False
        return origin is None or self.configured_origin == as_local(origin)

    def clock(self) -> SimulatedClock:
        return SimulatedClock(self.speed, self.origin, self.anchor)


@contextlib.contextmanager
def _locked(state_file: Path) -> Iterator[None]:
    """An advisory lock next to the state file, so two processes starting together do not both decide
    they came first and write different anchors."""
    if fcntl is None:  # pragma: no cover - Windows: the exclusive link in _write_state still picks one winner
        yield
        return
    state_file.parent.mkdir(parents=True, exist_ok=True)
    with open(state_file.with_name(state_file.name + ".lock"), "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _read_state(state_file: Path, *, quiet: bool = False) -> ClockState | None:
    try:
        return ClockState.from_json(json.loads(state_file.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:  # corrupt or foreign: replaced by the caller
        if not quiet:
            log.warning("clock state %s is unreadable (%s): replacing it", state_file, exc)
        return None


def _write_state(state_file: Path, state: ClockState, *, replace: bool) -> None:
    """Atomic write: a temporary file in the same folder, then rename (replace) or hard link (create only,
    fails if another process created the file first, which ``FileExistsError`` reports)."""
    state_file.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".clock.", suffix=".tmp", dir=state_file.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state.to_json(), fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, state_file)
        else:
            os.link(tmp, state_file)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def load_clock_state(speed: float, origin: datetime | None, state_file: Path) -> ClockState:
    """The shared state for this speed and origin: the file's when it matches, else a new one written
    now (first use; or the configuration changed since the file was written: a new origin restarts the
    clock there, a new speed alone keeps the simulated time where it is and runs on at that speed)."""
    current = _read_state(state_file, quiet=True)
    if current is not None and current.matches(speed, origin):
        return current  # the common case, and the only one for a reader that may not write the folder
    with _locked(state_file):
        existing = _read_state(state_file)
        if existing is not None and existing.matches(speed, origin):
            return existing
        anchor = time.time()
        start = as_local(origin) if origin is not None else datetime.fromtimestamp(anchor, UTC).astimezone(TZ)
        if existing is not None and existing.matches(existing.speed, origin):
            # Only the speed changed: simulated time goes on from where it is. Restarting it (at the origin,
            # or at real now, which a sped-up clock has long passed) put "now" behind every ticket, event
            # and deadline the ledger already held.
            start = existing.clock().now()
        state = ClockState(float(speed), start, anchor, as_local(origin) if origin is not None else None)
        if existing is not None:
            log.warning("clock state %s was written for speed %s, origin %s; configured speed %s, origin %s: "
                        "simulated time goes on from %s", state_file, existing.speed,
                        existing.configured_origin.isoformat() if existing.configured_origin else "first use",
                        speed, origin.isoformat() if origin else "first use", start.isoformat())
        try:
            _write_state(state_file, state, replace=existing is not None or state_file.exists())
        except FileExistsError:  # created by another process between our read and write: theirs wins
            theirs = _read_state(state_file)
            if theirs is not None and theirs.matches(speed, origin):
                return theirs
            _write_state(state_file, state, replace=True)
        if existing is None:
            log.info("clock state %s created: speed %s, simulated time starts at %s", state_file, speed,
                     start.isoformat())
        return state


def shared_clock(speed: float, origin: datetime | None, state_file: Path | None) -> Clock:
    """The clock every process of one deployment agrees on.

    Real time (:class:`SystemClock`) when ``speed == 1`` and no ``origin``. Otherwise simulated time,
    ``origin + (time.time() - anchor) * speed``, with origin and anchor read from ``state_file`` (written
    there atomically the first time it is needed; replaced, with a warning, when it was written for another
    speed or origin). ``origin`` None means "real now at first use". Without a ``state_file`` the clock is
    private to this process (tests, one-off tools).
    """
    if speed <= 0:
        raise ValueError("clock speed must be positive")
    if speed == 1 and origin is None:
        return SystemClock()
    if state_file is None:
        return SimulatedClock(speed, origin, anchor=time.time())
    return load_clock_state(speed, origin, state_file).clock()


__all__ = ["Clock", "ClockState", "FixedClock", "ManualClock", "SimulatedClock", "SystemClock", "clock_for",
           "load_clock_state", "shared_clock"]
