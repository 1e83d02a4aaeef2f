"""The reconciler's parts that need no broker: which offsets of a range the ledger does not account for,
and when a partition's consumer counts as stopped (the broker and the routing stage are fakes)."""

from __future__ import annotations

import time

from streams.reconcile import Redelivery, missing_ranges
from streams.routing import activity
from tests.conftest import catch_up_rounds


def test_nothing_missing_when_every_offset_is_accounted_for() -> None:
    assert missing_ranges(5, 10, {5, 6, 7, 8, 9}) == []


def test_an_empty_range_has_nothing_missing() -> None:
    assert missing_ranges(7, 7, set()) == []


def test_runs_of_missing_offsets_come_back_as_half_open_ranges() -> None:
    assert missing_ranges(0, 10, {3, 4, 8}) == [(0, 3), (5, 8), (9, 10)]


def test_offsets_outside_the_range_do_not_count() -> None:
    assert missing_ranges(10, 13, {9, 13, 11}) == [(10, 11), (12, 13)]


# --- the catch-up: a partition whose consumer stopped delivering ------------------------------------------

class FakeReader:
    """The broker as the catch-up sees it: end offsets, and the messages at given offsets."""

    def __init__(self, ends: dict[int, int]) -> None:
        self.ends = ends
        self.reads: list[tuple[int, list[tuple[int, int]]]] = []

    async def call(self, fn, *args):  # type: ignore[no-untyped-def]
        return fn(*args)

    async def end_offsets(self, topic: str, starts: dict[int, int]) -> dict[int, int]:
        return {p: self.ends[p] for p in starts}

    def beginning_offsets(self, topic: str, partitions: set[int]) -> dict[int, int]:
        return {p: 0 for p in partitions}

    def read(self, topic: str, partition: int, ranges: list[tuple[int, int]]) -> list[Redelivery]:
        self.reads.append((partition, ranges))
        return [Redelivery(topic, partition, o, b"k", b"{}") for a, b in ranges for o in range(a, b)]


def rounds(reader: FakeReader, committed: dict[int, int], n: int) -> int:
    return catch_up_rounds(reader, committed, n)


def offsets(world) -> list[int]:  # type: ignore[no-untyped-def]
    return [m.offset for m in world.routed]


def test_a_partition_stopped_below_waiting_messages_is_routed_from_the_broker_once(catch_up_world) -> None:
    # Given partition 1 committed at 179 with messages up to 219, and partition 0 caught up
    reader = FakeReader({0: 50, 1: 220})
    # When the first round sees it, nothing happens yet (one look is not a stall)
    assert rounds(reader, {0: 50, 1: 179}, 1) == 0 and not catch_up_world.routed
    # Then the next round, the offset unmoved and nothing of the partition handled, routes 179-219
    assert rounds(reader, {0: 50, 1: 179}, 1) == 41
    assert offsets(catch_up_world) == list(range(179, 220)) and reader.reads == [(1, [(179, 220)])]
    assert catch_up_world.nudged == [(1, 179)]  # and the consumer is sent back to its committed offset
    # and later rounds do not route them again while the consumer stays where it is
    assert rounds(reader, {0: 50, 1: 179}, 3) == 0


def test_a_partition_never_committed_is_routed_from_the_log_s_beginning(catch_up_world) -> None:
    # Given partition 2 with 30 messages, owned, and never committed (its last worker was killed before
    # its first commit), and partition 0 committed at its end
    reader = FakeReader({0: 50, 2: 30})
    # When two rounds see it delivering nothing
    assert catch_up_rounds(reader, {0: 50}, 2, owned={0, 2}) == 30
    # Then its 30 messages are routed from offset 0, and the consumer is sent back there
    assert offsets(catch_up_world) == list(range(30)) and reader.reads == [(2, [(0, 30)])]
    assert catch_up_world.nudged == [(2, 0)]


def test_a_moving_partition_a_busy_agent_or_a_recently_handled_partition_is_left_to_the_consumer(
        catch_up_world) -> None:
    reader = FakeReader({1: 220})
    # the committed offset moves each round: the consumer is working
    for at in (100, 120, 140, 160):
        assert rounds(reader, {1: at}, 1) == 0
    # the agent is inside a batch (say, waiting for the database)
    activity.busy = True
    assert rounds(reader, {1: 160}, 3) == 0
    activity.busy = False
    # a message of the partition was handled a moment ago
    activity.handled[1] = time.monotonic() + 60
    assert rounds(reader, {1: 160}, 3) == 0
    assert not catch_up_world.routed and not catch_up_world.nudged


def test_a_catch_up_reads_at_most_a_thousand_messages_a_round(catch_up_world) -> None:
    reader = FakeReader({2: 2600})
    assert rounds(reader, {2: 100}, 3) == 2000
    assert [r for _, r in reader.reads] == [[(100, 1100)], [(1100, 2100)]]
