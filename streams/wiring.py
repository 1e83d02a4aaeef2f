"""The stages' dependencies, wired in one place so tests can swap in fakes.

Agents reach the ledger (blocking SQLAlchemy) only through :meth:`Services.db`, which runs the call
on a single background thread: the event loop stays free and writes to SQLite stay serialised.
"Now" comes from :attr:`Services.clock` (or :func:`clock_for_settings` where no services are wired: the
CLI, the web console, the demo's ticket player), one shared clock per deployment (``models.clock``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from classifier.decision import Decision
from classifier.pool import RouterPool
from classifier.router import Router, RouteRequest
from config.settings import Settings
from models.clock import Clock, shared_clock
from models.directory import Catalogue
from streams.db import Ledger, SchemaMoved
from streams.reports import restager

log = logging.getLogger(__name__)
T = TypeVar("T")

CLOCK_STATE_FILE = "clock.json"

# The batches of faust events the agents are handling now (:func:`handling`), and the one of the running task (each
# agent runs as its own task): held, never acknowledged, once the ledger's schema moved (:func:`hold_batches`).
_batch: ContextVar[Sequence[Any]] = ContextVar("batch", default=())
_in_flight: dict[int, Sequence[Any]] = {}
_holding = False


@contextmanager
def handling(events: Sequence[Any]) -> Iterator[None]:
    """Run an agent's batch: the ledger calls made inside are this batch's (:meth:`Services.schema_moved`)."""
    if _holding:  # a batch that starts while the worker stops for an upgraded schema: held like the others
        log.warning("stopping for the ledger's new schema: batch %s held unacknowledged too", hold_batches([events]))
    token = _batch.set(events)
    _in_flight[id(events)] = events
    try:
        yield
    finally:
        _batch.reset(token)
        _in_flight.pop(id(events), None)


def hold_batches(batches: Sequence[Sequence[Any]] | None = None) -> str:
    """Keep faust from ever committing these batches' offsets (default: every batch in flight, and any that starts
    from now on); returns where they are, for the log.

    faust's ``take_events`` acknowledges the batch it handed out when the agent's loop ends, raising or cancelled
    (its ``finally``), and a stopping worker commits what was acknowledged: a batch cut off by the stop would be
    committed unwritten. A message counts towards the committed offset only when ``Consumer.ack`` flips its
    ``acked`` flag; set beforehand, that acknowledgement does nothing, and the stop does not wait for the message
    either (faust's ``wait_empty`` drops acked messages from those it waits for)."""
    from streams.intake import positions

    global _holding
    if batches is None:
        _holding = True
        batches = list(_in_flight.values())
    messages = [ev.message for events in batches for ev in events]
    for m in messages:
        m.acked = True
    return positions(messages) or "none"


def _terminate() -> None:
    """Stop this worker as SIGTERM does (faust's handler on the loop: agents and timers stop, the offsets of what
    was acknowledged are committed, the consumer leaves its group), without waiting for the agents' buffered
    messages, which the held agents would never take (faust's ``stream_wait_empty``)."""
    from streams.app import app

    app.conf.stream_wait_empty = False
    os.kill(os.getpid(), signal.SIGTERM)


def clock_for_settings(settings: Settings) -> Clock:
    """The deployment's clock: real time, or simulated time (``HOTLINE_CLOCK_SPEED`` /
    ``HOTLINE_CLOCK_ORIGIN``) shared through ``<data_dir>/clock.json`` by every process on that data dir."""
    return shared_clock(settings.clock_speed, settings.clock_origin, settings.data_dir / CLOCK_STATE_FILE)


def clock_skew(settings: Settings, clock: Clock) -> timedelta:
    """How far a time stamped elsewhere (a ticket's ``received_at``, an event's ``occurred_at``) may be ahead of
    ``clock``, or an event behind its ticket's previous step: ``HOTLINE_MAX_CLOCK_SKEW`` real seconds, times
    the clock's speed. What it covers passes in real time: clocks apart, and a message in flight (at the demo's
    3600x, an announcement 0.1 s behind a sign-for is 6 simulated minutes)."""
    return timedelta(seconds=settings.max_clock_skew * clock.speed)


@dataclass
class Services:
    settings: Settings
    ledger: Ledger
    router: Router
    catalogue: Catalogue
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger"))
    cpu_executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="cpu"))
    max_backoff: float = 30.0
    bootstrap: str = ""  # the Kafka cluster the worker runs on (the reconciler reads it back directly)
    classifier: RouterPool | None = None  # default: a pool of settings.classify_processes around ``router``
    stop: Callable[[], None] = _terminate  # how the worker stops itself when the ledger's schema moved
    moved: SchemaMoved | None = None  # why it did
    _clock: Clock | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.classifier is None:
            self.classifier = RouterPool(self.router, self.settings.classify_processes)

    @property
    def clock(self) -> Clock:
        """The shared clock (built on first use: that is when ``clock.json`` is read or written)."""
        if self._clock is None:
            self._clock = clock_for_settings(self.settings)
        return self._clock

    @functools.cached_property
    def restage(self) -> Callable[[Any, list[str]], int]:
        """Stores the figure stages of the tickets a lifecycle batch stepped on (``Ledger.record_events``)."""
        return restager(self.catalogue)

    async def route_many(self, requests: Sequence[RouteRequest]) -> list[Decision]:
        """Classify and decide, in the classifier's child processes (or its thread)."""
        assert self.classifier is not None
        return await self.classifier.route_many(requests)

    async def cpu(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU-bound work (a supervision tick) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.cpu_executor, functools.partial(fn, *args))

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a ledger call off the loop; retry while the database is unreachable (nothing is dropped)."""
        loop = asyncio.get_running_loop()
        delay, attempt = 0.2, 0
        while True:
            try:
                return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))
            except OperationalError as exc:  # unreachable, restarting, or locked: wait, don't drop
                await self._stop_if_moved()  # (SQLite: also a read of a table a newer migration renamed)
                attempt += 1
                log.warning("ledger unavailable (attempt %d, retry in %.1fs): %s", attempt, delay,
                            str(exc).splitlines()[0])
                await asyncio.sleep(delay)
                delay = min(self.max_backoff, delay * 2) * (0.8 + 0.4 * random.random())
            except SchemaMoved as exc:
                await self.schema_moved(exc)
            except DBAPIError:  # refused by the database: a defect, or (PostgreSQL) a read of a schema since migrated
                await self._stop_if_moved()
                raise

    async def _stop_if_moved(self) -> None:
        """After a ledger call failed: when the schema moved, stop as for a refused write (:meth:`schema_moved`).
        A read comes before its batch's writes and fails on what a newer version's migration renamed or dropped;
        retried as "unavailable", it kept the worker from ever stopping."""
        moved = await asyncio.get_running_loop().run_in_executor(self.executor, self.ledger.schema_moved)
        if moved is not None:
            await self.schema_moved(moved)

    async def schema_moved(self, exc: SchemaMoved) -> None:
        """The ledger was migrated to another revision under this worker (``hotline db upgrade`` by a newer
        version): its code would write the old way. Nothing was written (the check comes first in the write's
        transaction). The worker stops; every batch in flight is held unacknowledged (:func:`hold_batches`) and
        its partitions' next owner, an upgraded worker, handles it again from the committed offset (at least once;
        every ledger write is idempotent). Inside an agent's batch this never returns: the agent waits for the
        stop to cancel it. Outside one (a timer's round) the error is raised: a round is done again by whoever
        runs it next."""
        if self.moved is None:
            self.moved = exc
            held = hold_batches()
            log.error("%s (%s): not writing; stopping this worker, its batches held unacknowledged for the next "
                      "owners of its partitions: %s", exc, exc.advice, held)
            self.stop()
        if not _batch.get():
            raise exc
        await asyncio.Future()  # until the stop cancels the agent

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.cpu_executor.shutdown(wait=True)
        if self.classifier is not None:
            self.classifier.close()
        self.ledger.dispose()


_services: Services | None = None


def wire(services: Services) -> Services:
    global _services
    _services = services
    return services


def services() -> Services:
    if _services is None:
        raise RuntimeError("streams.wiring.wire() was not called before the agents started")
    return _services
