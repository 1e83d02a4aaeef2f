"""The deadline index: only due checkpoints pop, replaced or cancelled schedules stay silent, nothing pops
twice, stale entries are compacted away, and the work per tick follows what is due, not the index size."""

from __future__ import annotations

from datetime import datetime, timedelta

from models.supervision import Checkpoint, DeadlineIndex
from models.workcalendar import TZ

T0 = datetime(2025, 9, 30, 9, 0, tzinfo=TZ)


def cp(minutes: float, level: str = "overdue", stage: str = "sign") -> Checkpoint:
    return Checkpoint(stage, level, T0 + timedelta(minutes=minutes), 0)


def test_only_due_checkpoints_pop_in_time_order() -> None:
    index = DeadlineIndex()
    index.schedule("B", [cp(20, "warn_50"), cp(40)])
    index.schedule("A", [cp(10, "warn_50"), cp(30, "warn_75")])
    assert len(index) == 4 and index.tickets == 2
    assert index.pop_due(T0 + timedelta(minutes=5)) == []
    due = index.pop_due(T0 + timedelta(minutes=30))  # inclusive bound
    assert [(d.ticket_id, d.level, d.at) for d in due] == [
        ("A", "warn_50", T0 + timedelta(minutes=10)),
        ("B", "warn_50", T0 + timedelta(minutes=20)),
        ("A", "warn_75", T0 + timedelta(minutes=30)),
    ]
    assert len(index) == 1 and "A" not in index and index.pending("B") == 1
    assert index.next_at() == T0 + timedelta(minutes=40)


def test_a_replaced_schedule_never_fires_its_old_checkpoints() -> None:
    # Given a ticket with checkpoints at 10 and 20 minutes
    index = DeadlineIndex()
    index.schedule("A", [cp(10, "warn_50"), cp(20)])
    # When its state changes and the schedule is replaced by one at 60 minutes
    index.schedule("A", [cp(60, "warn_50", "handle")])
    # Then nothing pops at 30 minutes, and at 60 only the new checkpoint does
    assert index.pop_due(T0 + timedelta(minutes=30)) == []
    assert [(d.stage, d.level) for d in index.pop_due(T0 + timedelta(minutes=60))] == [("handle", "warn_50")]
    assert index.stats.stale_skipped == 2 and len(index) == 0


def test_cancel_silences_a_ticket_and_a_later_schedule_starts_fresh() -> None:
    index = DeadlineIndex()
    index.schedule("A", [cp(10)])
    assert index.cancel("A") is True and index.cancel("A") is False
    assert index.pop_due(T0 + timedelta(hours=1)) == []
    # versions never repeat, so entries from before the cancel cannot come back to life
    index.schedule("A", [cp(10)])
    index.cancel("A")
    index.schedule("A", [cp(90)])
    assert [d.at for d in index.pop_due(T0 + timedelta(hours=2))] == [T0 + timedelta(minutes=90)]


def test_no_checkpoint_is_emitted_twice() -> None:
    index = DeadlineIndex()
    index.schedule("A", [cp(10), cp(10)])  # the same checkpoint twice in one schedule
    assert index.pending("A") == 1
    assert len(index.pop_due(T0 + timedelta(minutes=10))) == 1
    assert index.pop_due(T0 + timedelta(minutes=10)) == []
    assert index.pop_due(T0 + timedelta(days=365)) == []


def test_an_empty_schedule_forgets_the_ticket() -> None:
    index = DeadlineIndex()
    index.schedule("A", [cp(10)])
    assert index.schedule("A", []) == 0
    assert "A" not in index and index.pop_due(T0 + timedelta(hours=1)) == []


def test_limit_leaves_the_rest_for_the_next_tick() -> None:
    index = DeadlineIndex()
    for n in range(10):
        index.schedule(f"T{n}", [cp(n)])
    assert len(index.pop_due(T0 + timedelta(hours=1), limit=4)) == 4
    assert len(index.pop_due(T0 + timedelta(hours=1))) == 6


def test_stale_entries_are_compacted_so_memory_follows_live_checkpoints() -> None:
    index = DeadlineIndex(min_compact_size=100)
    for n in range(1000):
        index.schedule(f"T{n}", [cp(60 * 24 * 7), cp(60 * 24 * 8)])
    for rounds in range(20):  # every ticket changes state 20 times
        for n in range(1000):
            index.schedule(f"T{n}", [cp(60 * 24 * 7 + rounds), cp(60 * 24 * 8 + rounds)])
    assert len(index) == 2000
    assert index.heap_size <= 2 * 2000 + 2  # never more than about half stale
    assert index.stats.compactions > 0
    for n in range(1000):
        index.cancel(f"T{n}")
    assert len(index) == 0 and index.heap_size < 100


def test_work_per_tick_follows_what_is_due_not_the_index_size() -> None:
    # Given 200,000 tickets due in a week and 5 due within the minute
    index = DeadlineIndex()
    for n in range(200_000):
        index.schedule(f"T{n}", [cp(60 * 24 * 7 + n % 1000)])
    for n in range(5):
        index.schedule(f"U{n}", [cp(n * 0.1)])
    before = index.stats.popped + index.stats.stale_skipped
    # When the clock ticks one minute
    due = index.pop_due(T0 + timedelta(minutes=1))
    # Then exactly the 5 are returned and only 5 heap entries were touched
    assert sorted(d.ticket_id for d in due) == [f"U{n}" for n in range(5)]
    assert index.stats.popped + index.stats.stale_skipped - before == 5
    assert len(index) == 200_000


def test_memory_estimate_grows_with_entries() -> None:
    small, large = DeadlineIndex(), DeadlineIndex()
    small.schedule("A", [cp(1)])
    for n in range(1000):
        large.schedule(f"T{n}", [cp(n)])
    assert 0 < small.memory_estimate() < large.memory_estimate()
    assert large.memory_estimate() / 1000 < 400  # bytes per pending checkpoint, roughly
