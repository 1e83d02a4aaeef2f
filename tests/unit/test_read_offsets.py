"""faust's delivery loop (its real ``Consumer._drain_messages``, fed by a scripted fetch) must not skip messages
whose hand-over it abandoned because the flow stopped: the restarted worker of session 10 dropped 514 messages
that way and left three partitions standing still (``streams.app.ReadOffsets``). Nor may it hand messages over
during the seek at the end of a recovery, which faust follows by emptying the agents' queues (the rolling-upgrade
test's lost announcement; ``HotlineConsumer.perform_seek``)."""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP, Message

from streams.app import ReadOffsets, _install_consumer_class, app
from tests.conftest import run_async

TOPIC = "tickets.received"
PART = TP(TOPIC, 0)


def _message(offset: int) -> Message:
    return Message(topic=TOPIC, partition=0, offset=offset, timestamp=0.0, timestamp_type=0, headers={},
                   key=b"k", value=b"v", checksum=None)


def _drain(guarded: bool) -> list[int]:
    """Offsets handed to the agents when the flow stops in the middle of a fetched batch (a rebalance, a
    start-up seek to the committed offset 2) and the consumer then fetches again from that offset."""
    delivered: list[int] = []

    async def scenario() -> None:
        async def callback(message: Message) -> None:
            await asyncio.sleep(0.01)  # the agents' buffer is full: the hand-over waits for room
            delivered.append(message.offset)

        async def nothing(*_: Any) -> None:
            return None

        _install_consumer_class()
        # the transport's factory, on this test's own loop (create_consumer would bind the app's)
        consumer = app.transport.Consumer(app.transport, callback=callback, loop=asyncio.get_running_loop(),
                                          on_partitions_revoked=nothing, on_partitions_assigned=nothing)
        if not guarded:
            consumer._read_offset = defaultdict(lambda: None)  # faust's own
        fetcher = SimpleNamespace(_stopped=asyncio.Event())
        rounds = 0

        async def getmany(timeout: float) -> AsyncIterator[tuple[TP, Message]]:
            nonlocal rounds
            rounds += 1
            if rounds == 1:
                for offset in (0, 1):
                    yield PART, _message(offset)
                # the group rebalances: flow stops, and faust seeks to the committed offset (2)
                consumer.stop_flow()
                consumer._read_offset.update({PART: 2})
                for offset in (2, 3, 4):  # the rest of the batch fetched before the seek: abandoned
                    yield PART, _message(offset)
            elif rounds == 2:
                consumer.resume_flow()
                for offset in (2, 3, 4, 5):  # fetched again from the committed offset
                    yield PART, _message(offset)
            else:
                fetcher._stopped.set()

        consumer.getmany = getmany  # type: ignore[method-assign]
        await asyncio.wait_for(consumer._drain_messages(fetcher), timeout=10)

    run_async(scenario())
    return delivered


def test_messages_abandoned_while_the_flow_stopped_are_delivered_when_fetched_again() -> None:
    assert _drain(guarded=True) == [0, 1, 2, 3, 4, 5]


def test_faust_s_own_read_offsets_skip_them() -> None:
    """The fault itself, so that the test above is known to exercise it."""
    assert _drain(guarded=False) == [0, 1, 4, 5]


@pytest.mark.parametrize(("stopped", "start", "offset", "after"), [
    (False, None, 7, 7), (False, 5, 9, 9),       # flowing: every hand-over moves the read offset
    (True, 5, 9, 5), (True, None, 9, None),      # stopped: an abandoned hand-over does not
    (True, 5, 2, 2), (True, 5, None, None),      # stopped: seeks back (or to "nothing read") still apply
])
def test_read_offsets(stopped: bool, start: int | None, offset: int | None, after: int | None) -> None:
    offsets = ReadOffsets(lambda: stopped)
    if start is not None:
        offsets.update({PART: start})
    offsets[PART] = offset
    assert offsets[PART] == after
    assert offsets[TP(TOPIC, 3)] is None  # never read


def test_the_start_up_seek_rewinds_the_stream_partitions_with_no_committed_offset(monkeypatch) -> None:
    """aiokafka's ``seek_to_committed`` moves only partitions with a committed offset above 0; one with none stayed
    where the fetcher was, past messages fetched during the recovery and never handed to the agents (the rolling
    upgrade test's new worker began tickets.events at 3/3/3/4, the log's end, and never read the held batch)."""
    from aiokafka import TopicPartition

    events = [TopicPartition("tickets.events", p) for p in range(2)]
    received, changelog = TopicPartition(TOPIC, 0), TopicPartition("hotline-router-ticket-state-changelog", 0)
    rewound: list[Any] = []

    class Thread:
        async def seek_to_committed(self) -> dict[Any, int | None]:
            return {events[0]: None, events[1]: 0, received: 5, changelog: None}

        async def seek_to_beginning(self, *partitions: Any) -> None:
            rewound.extend(partitions)

    async def scenario() -> dict[Any, int | None]:
        async def nothing(*_: Any) -> None:
            return None

        _install_consumer_class()
        consumer = app.transport.Consumer(app.transport, callback=nothing, loop=asyncio.get_running_loop(),
                                          on_partitions_revoked=nothing, on_partitions_assigned=nothing)
        consumer._thread = Thread()
        return await consumer.seek_to_committed()

    monkeypatch.setattr(app.topics, "_acking_topics", {"tickets.events", TOPIC})
    committed = run_async(scenario())
    assert committed[received] == 5  # what faust records as committed is unchanged
    assert sorted(rewound) == events  # not the partition with an offset, nor a table's changelog


def _recovery_end(fixed: bool, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Offsets an agent takes when a recovery ends as faust ends it (``Recovery.on_recovery_completed``): the
    stream partitions resumed with the flow running, the seek to the committed offsets, then faust's flow control
    resumed, which empties the agents' queues, and the flow. The partition has no committed offset and the fetcher
    was at the log's end (5); the consumer thread answers the seek back to the start after the fetcher has read from
    there, and the agent is busy with a batch until the recovery ended, so what is handed over waits in its queue."""
    from faust.transport.consumer import Consumer
    from mode.utils.queues import FlowControlEvent, FlowControlQueue

    events = TP("tickets.events", 0)
    monkeypatch.setattr(app.topics, "_acking_topics", {"tickets.events"})
    taken: list[int] = []

    async def scenario() -> None:
        flow_control = FlowControlEvent(initially_suspended=False)
        queue: FlowControlQueue[Message] = FlowControlQueue(flow_control=flow_control, clear_on_resume=True)
        handed_from_start, recovered = asyncio.Event(), asyncio.Event()
        position = 5

        async def callback(message: Message) -> None:  # faust's conductor: into the agent's queue
            queue.put_nowait(message)
            if message.offset == 4:
                handed_from_start.set()

        async def nothing(*_: Any) -> None:
            return None

        class Thread:
            async def seek_to_committed(self) -> dict[TP, int | None]:
                return {events: None}

            async def seek_to_beginning(self, *partitions: TP) -> None:
                nonlocal position
                position = 0
                try:  # the fetcher reads from the start before the thread answers (if the flow lets it)
                    await asyncio.wait_for(handed_from_start.wait(), 0.2)
                except TimeoutError:
                    pass

            def assignment(self) -> set[TP]:
                return {events}

            def highwater(self, tp: TP) -> int:
                return 5

        async def fetch(active_partitions: set[TP], timeout: float) -> dict[TP, list[Any]]:
            nonlocal position
            await asyncio.sleep(0.001)
            if not consumer.flow_active or events not in active_partitions or position >= 5:  # as faust's driver
                return {}
            records = [SimpleNamespace(topic=events.topic, partition=0, offset=o, timestamp=None, timestamp_type=0,
                                       headers=[], key=b"k", value=b"v", checksum=None, serialized_key_size=1,
                                       serialized_value_size=1) for o in range(position, 5)]
            position = 5
            return {events: records}

        async def agent() -> None:
            await recovered.wait()
            while True:
                taken.append((await queue.get()).offset)

        _install_consumer_class()
        consumer = app.transport.Consumer(app.transport, callback=callback, loop=asyncio.get_running_loop(),
                                          on_partitions_revoked=nothing, on_partitions_assigned=nothing)
        consumer._thread = Thread()
        consumer._getmany = fetch  # type: ignore[method-assign]
        if not fixed:  # faust's own seek
            consumer.perform_seek = functools.partial(Consumer.perform_seek, consumer)  # type: ignore[method-assign]
        consumer.resume_flow()  # the recovery resumed the flow to read the tables' changelogs
        fetcher = SimpleNamespace(_stopped=asyncio.Event())
        drain = asyncio.ensure_future(consumer._drain_messages(fetcher))
        taking = asyncio.ensure_future(agent())
        consumer.resume_partitions({events})  # on_recovery_completed, in its order
        await consumer.perform_seek()
        flow_control.resume()
        recovered.set()
        consumer.resume_flow()
        for _ in range(50):
            if len(taken) >= 5:
                break
            await asyncio.sleep(0.01)
        fetcher._stopped.set()
        taking.cancel()
        await asyncio.wait_for(drain, timeout=5)

    run_async(scenario())
    return taken


def test_no_message_is_handed_over_between_the_seek_and_faust_emptying_the_agents_queues(monkeypatch) -> None:
    assert _recovery_end(fixed=True, monkeypatch=monkeypatch) == [0, 1, 2, 3, 4]


def test_faust_s_own_seek_loses_them(monkeypatch) -> None:
    """The fault itself (the rolling-upgrade test's lost announcement), so that the test above exercises it."""
    assert _recovery_end(fixed=False, monkeypatch=monkeypatch) == []
