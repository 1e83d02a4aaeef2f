"""A failed routing batch names where its messages are (logs and terminals review): the repository's rule for
every error about a message; the log said only "routing batch of 3 failed" while it dead-lettered all three."""

from __future__ import annotations

import asyncio
import logging
import re
from types import SimpleNamespace
from typing import Any

import pytest

from streams import intake, routing


class Stream:
    def __init__(self, *batches: list[Any]) -> None:
        self.batches = batches

    async def take_events(self, n: int, within: float) -> Any:
        for batch in self.batches:
            yield batch


def event(partition: int, offset: int) -> SimpleNamespace:
    return SimpleNamespace(value=b'{"id": "T1"}', message=SimpleNamespace(topic="tickets.received",
                                                                          partition=partition, offset=offset))


def test_a_failed_routing_batch_names_its_messages_positions(monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    dead: list[Any] = []

    async def broken(events: Any) -> None:
        raise RuntimeError("a bug")

    async def last_resort(rejection: Any, *, source: str, message: Any) -> None:
        dead.append((message.partition, message.offset))

    monkeypatch.setattr(routing, "services", lambda: SimpleNamespace(settings=SimpleNamespace(stream_batch_wait_ms=1)))
    monkeypatch.setattr(routing, "route_batch", broken)
    monkeypatch.setattr(intake, "last_resort", last_resort)
    with caplog.at_level(logging.ERROR, logger="streams.intake"):
        asyncio.run(routing.route.fun(Stream([event(1, 64), event(1, 65), event(3, 7)])))
    assert dead == [(1, 64), (1, 65), (3, 7)]  # each failed alone too
    assert "routing batch of 3 failed (tickets.received[1]@64-65, tickets.received[3]@7)" in caplog.text
    assert "routing failed on tickets.received[3]@7" in caplog.text


def test_one_ticket_that_breaks_routing_does_not_take_its_batch_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a batch of three where the ticket at offset 65 hits a bug whenever it is routed
    routed: list[int] = []
    dead: list[int] = []

    async def route_batch(events: Any) -> None:
        if any(ev.message.offset == 65 for ev in events):
            raise RuntimeError("a bug")
        routed.extend(ev.message.offset for ev in events)

    async def last_resort(rejection: Any, *, source: str, message: Any) -> None:
        dead.append(message.offset)

    monkeypatch.setattr(routing, "services", lambda: SimpleNamespace(settings=SimpleNamespace(stream_batch_wait_ms=1)))
    monkeypatch.setattr(routing, "route_batch", route_batch)
    monkeypatch.setattr(intake, "last_resort", last_resort)
    # When the routing agent takes the batch
    asyncio.run(routing.route.fun(Stream([event(1, 64), event(1, 65), event(1, 66)])))
    # Then the other two are routed, and only the broken one is dead-lettered
    assert routed == [64, 66] and dead == [65]


def test_a_broker_that_never_answers_is_not_promised_a_retry_past_the_deadline(
        caplog: pytest.LogCaptureFixture) -> None:
    import socket

    from streams.broker import BrokerUnavailable, wait_for_metadata

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with caplog.at_level(logging.WARNING, logger="streams.broker"), pytest.raises(BrokerUnavailable):
        wait_for_metadata(f"127.0.0.1:{port}", timeout=2.0, patient=True)
    said = [r.getMessage() for r in caplog.records]
    # it said "retrying in 2.0s, giving up in 1s" (then gave up): a retry announced comes before the end
    waits = [tuple(float(x) for x in re.findall(r"retrying in ([\d.]+)s, giving up in ([\d.]+)s", line)[0])
             for line in said if "retrying" in line]
    assert said and all(retry <= end for retry, end in waits), said
    assert "giving up in" in said[-1], said
