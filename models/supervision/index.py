"""A deadline index: which ticket checkpoints fall due by ``now``, at a cost proportional to what is due.

A binary heap of ``(at, ticket_id, stage, level, version)`` ordered by time. A ticket's schedule is
replaced as a whole when its state changes: instead of searching the heap, the ticket gets a new version
and the old entries become *stale*; they are skipped when they surface (lazy invalidation). When stale
entries exceed a share of the heap, the heap is rebuilt without them (compaction), so memory stays
proportional to the live checkpoints and the rebuild cost is amortised over the invalidations that
caused it. A tick (:meth:`DeadlineIndex.pop_due`) only touches entries whose time has come.

Each live entry is emitted exactly once: popping removes it, and a replaced schedule's entries can never
become valid again (versions come from one increasing counter, also across :meth:`cancel`).
"""

from __future__ import annotations

import heapq
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from models.workcalendar import TZ, as_local


class Timed(Protocol):
    at: datetime
    stage: str
    level: str


@dataclass(frozen=True, slots=True)
class Due:
    ticket_id: str
    stage: str
    level: str
    at: datetime


@dataclass(slots=True)
class IndexStats:
    scheduled: int = 0
    popped: int = 0  # live entries emitted
    stale_skipped: int = 0  # invalidated entries discarded on the way
    compactions: int = 0
    compacted_away: int = 0


_Entry = tuple[float, str, str, str, int]
_COUNT_BITS = 16  # a ticket's live state is one int, version << 16 | pending: no tuple per ticket
_COUNT_MASK = (1 << _COUNT_BITS) - 1


class DeadlineIndex:
    """Pending checkpoints of many tickets; replace, cancel, and pop what is due."""

    def __init__(self, *, compact_share: float = 0.5, min_compact_size: int = 1024) -> None:
        self._heap: list[_Entry] = []
        self._live: dict[str, int] = {}  # ticket -> version << 16 | pending live entries
        self._live_entries = 0
        self._version = 0
        self.compact_share = compact_share
        self.min_compact_size = min_compact_size
        self.stats = IndexStats()

    # --- writing ---------------------------------------------------------------------------
    def schedule(self, ticket_id: str, checkpoints: Iterable[Timed]) -> int:
        """Replace the ticket's pending checkpoints; returns how many are now pending for it."""
        entries = {(as_local(c.at).timestamp(), sys.intern(c.stage), sys.intern(c.level)) for c in checkpoints}
        self._invalidate(ticket_id)
        if not entries:
            return 0
        if len(entries) > _COUNT_MASK:
            raise ValueError(f"at most {_COUNT_MASK} checkpoints per ticket")
        self._version += 1
        version = self._version
        for ts, stage, level in entries:
            heapq.heappush(self._heap, (ts, ticket_id, stage, level, version))
        self._live[ticket_id] = version << _COUNT_BITS | len(entries)
        self._live_entries += len(entries)
        self.stats.scheduled += len(entries)
        self._maybe_compact()
        return len(entries)

    def cancel(self, ticket_id: str) -> bool:
        """Forget a ticket's pending checkpoints (closed, resolved, ...); True if it had any."""
        had = self._invalidate(ticket_id)
        self._maybe_compact()
        return had

    def _invalidate(self, ticket_id: str) -> bool:
        old = self._live.pop(ticket_id, None)
        if old is None:
            return False
        self._live_entries -= old & _COUNT_MASK
        return True

    # --- reading ---------------------------------------------------------------------------
    def pop_due(self, now: datetime, limit: int | None = None) -> list[Due]:
        """Remove and return the live checkpoints with ``at <= now``, oldest first (at most ``limit``)."""
        cutoff = as_local(now).timestamp()
        heap, live, out = self._heap, self._live, []
        while heap and heap[0][0] <= cutoff and (limit is None or len(out) < limit):
            ts, ticket_id, stage, level, version = heapq.heappop(heap)
            state = live.get(ticket_id)
            if state is None or state >> _COUNT_BITS != version:
                self.stats.stale_skipped += 1
                continue
            if state & _COUNT_MASK > 1:
                live[ticket_id] = state - 1
            else:
                del live[ticket_id]
            self._live_entries -= 1
            out.append(Due(ticket_id, stage, level, datetime.fromtimestamp(ts, TZ)))
        self.stats.popped += len(out)
        return out

    def next_at(self) -> datetime | None:
        """When the earliest live checkpoint is due (timers may sleep until then)."""
        heap, live = self._heap, self._live
        while heap:
            ts, ticket_id, _s, _l, version = heap[0]
            state = live.get(ticket_id)
            if state is not None and state >> _COUNT_BITS == version:
                return datetime.fromtimestamp(ts, TZ)
            heapq.heappop(heap)  # stale at the top: drop it now rather than later
            self.stats.stale_skipped += 1
        return None

    def pending(self, ticket_id: str) -> int:
        state = self._live.get(ticket_id)
        return state & _COUNT_MASK if state else 0

    def __contains__(self, ticket_id: object) -> bool:
        return ticket_id in self._live

    def __len__(self) -> int:
        """Live (pending) checkpoints."""
        return self._live_entries

    @property
    def tickets(self) -> int:
        return len(self._live)

    @property
    def heap_size(self) -> int:
        """Entries in the heap, stale ones included."""
        return len(self._heap)

    @property
    def stale(self) -> int:
        return len(self._heap) - self._live_entries

    # --- housekeeping ----------------------------------------------------------------------
    def _maybe_compact(self) -> None:
        size = len(self._heap)
        if size >= self.min_compact_size and self.stale > self.compact_share * size:
            self.compact()

    def compact(self) -> int:
        """Drop stale entries now; returns how many were dropped. O(heap) — amortised by the trigger."""
        live = self._live
        kept = [e for e in self._heap if (s := live.get(e[1])) is not None and s >> _COUNT_BITS == e[4]]
        dropped = len(self._heap) - len(kept)
        heapq.heapify(kept)
        self._heap = kept
        self.stats.compactions += 1
        self.stats.compacted_away += dropped
        return dropped

    def memory_estimate(self) -> int:
        """Approximate bytes held: heap list, entries with their floats, the ticket map with its packed ints,
        one version int and one id string per ticket (stage and level names are interned, shared)."""
        entry = sys.getsizeof((0.0, "", "", "", 0)) + sys.getsizeof(0.0)
        sample_id = next(iter(self._live), "")
        per_ticket = 2 * sys.getsizeof(1 << 40) + sys.getsizeof(sample_id)
        return (sys.getsizeof(self._heap) + len(self._heap) * entry
                + sys.getsizeof(self._live) + len(self._live) * per_ticket)
