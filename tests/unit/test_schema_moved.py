"""A worker whose ledger's schema moved under it (``streams.wiring.Services.schema_moved``): the batches in flight
are held unacknowledged, the worker is stopped once, a timer's round just ends. The real run is
tests/integration/test_rolling_upgrade.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types.tuples import ConsumerMessage

from streams import wiring
from streams.db import SchemaMoved
from streams.wiring import Services, handling, hold_batches


class Consumer:
    """What faust's consumer is told: the messages acknowledged (their offsets then become committable)."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, message: Any) -> bool:
        message.acked = True
        self.acked.append(message.offset)
        return True


def batch(topic: str, partition: int, *offsets: int) -> list[Any]:
    return [SimpleNamespace(message=ConsumerMessage(topic, partition, o, 0.0, 0, None, b"k", b"v", None))
            for o in offsets]


@pytest.fixture
def svc(monkeypatch: pytest.MonkeyPatch) -> Services:
    monkeypatch.setattr(wiring, "_in_flight", {})
    monkeypatch.setattr(wiring, "_holding", False)
    stops: list[int] = []
    s = Services(settings=None, ledger=None, router=None, catalogue=None, classifier=object(),  # type: ignore[arg-type]
                 stop=lambda: stops.append(1))
    s.stops = stops  # type: ignore[attr-defined]
    return s


def moved() -> None:
    raise SchemaMoved("9999_newer", "0011")


def test_every_batch_in_flight_is_held_and_faust_s_acknowledgement_then_commits_nothing(svc: Services) -> None:
    routing, lifecycle, later = batch("tickets.received", 2, 40, 41), batch("tickets.events", 0, 7), \
        batch("tickets.received", 2, 42)

    async def agent(events: list[Any], gate: asyncio.Event) -> None:
        with handling(events):
            await gate.wait()
            await svc.db(moved)

    async def run() -> None:
        go, wait = asyncio.Event(), asyncio.Event()
        held = asyncio.ensure_future(agent(routing, go))
        busy = asyncio.ensure_future(agent(lifecycle, wait))  # in its batch, not at a write yet
        await asyncio.sleep(0)
        go.set()
        await asyncio.sleep(0.05)
        assert not held.done()  # the agent waits for the stop: it neither writes nor moves on
        with handling(later):  # a batch that starts while the worker stops
            pass
        held.cancel()
        busy.cancel()
        await asyncio.gather(held, busy, return_exceptions=True)

    asyncio.run(run())
    assert svc.stops == [1] and isinstance(svc.moved, SchemaMoved)  # type: ignore[attr-defined]
    # faust's take_events acknowledges its batch when the agent's loop ends, cancelled or not: nothing reaches the
    # consumer, so no offset of these batches becomes committable
    consumer = Consumer()
    for ev in routing + lifecycle + later:
        assert ev.message.ack(consumer) is False
    assert consumer.acked == []


def test_a_timer_s_round_ends_with_the_error_and_the_worker_stops_once(svc: Services) -> None:
    async def run() -> None:
        for _ in range(2):
            with pytest.raises(SchemaMoved):
                await svc.db(moved)

    asyncio.run(run())
    assert svc.stops == [1]  # type: ignore[attr-defined]


def test_without_holding_faust_would_acknowledge_the_batch() -> None:
    """The premise: a message whose ``acked`` flag faust sets itself is passed to the consumer (committable)."""
    consumer = Consumer()
    (ev,) = batch("tickets.received", 0, 5)
    assert ev.message.ack(consumer) is True and consumer.acked == [5]
    (other,) = batch("tickets.received", 0, 6)
    assert hold_batches([[other]]) == "tickets.received[0]@6"
    assert other.message.ack(consumer) is False and consumer.acked == [5]


def test_partitions_assigned_while_the_schema_moved_are_left_without_a_traceback(
        svc: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # Given a worker whose reconciler adopts new partitions at assignment, and a ledger migrated under it
    from streams import reconcile

    svc.settings = SimpleNamespace(reconcile_seconds=2)  # type: ignore[assignment]
    monkeypatch.setattr(wiring, "_services", svc)
    monkeypatch.setattr(reconcile, "broker_reader", lambda: None)

    async def adopt(reader: Any, partitions: set[int]) -> dict[int, int]:
        return await svc.db(moved)

    monkeypatch.setattr(reconcile, "adopt", adopt)
    # When partitions are assigned
    from faust.types import TP

    assigned = {TP("tickets.received", 0)}
    asyncio.run(reconcile.adopt_assigned(None, assigned))
    # Then the worker stops once, said by Services.schema_moved alone: no "could not adopt" traceback
    assert svc.stops == [1]  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.exc_info], caplog.text
