"""Reconciler: proof, kept up as the worker runs, that every message on ``tickets.received`` reached the ledger.

The consumer group's committed offset says "everything below this was handled". The reconciler checks
that claim against the ledger for each partition this worker owns: every offset below the committed one
must hold a ticket with a published decision or a rejection (``Ledger.accounted_offsets``). An offset
that holds neither was skipped (a broker or client fault around a rebalance: docs/guarantees.md records 6
of 600 tickets lost that way once, on the embedded broker). It is read again from the broker and routed like
any delivery, idempotently, so a ticket that was in fact known (the same ticket sent twice) changes nothing
and is not counted as recovered. Progress is kept per
partition in the ledger (``offset_audits``), so each offset is checked once.

A partition seen for the first time is adopted at its committed offset: what was handled before this
ledger watched (another deployment, an earlier ledger) is not its business.

Each round also proves the next step for the same tickets: a published routing has its 'routed' event in the
ledger (the lifecycle watches its ticket from then on). One still without it some minutes after its publication
is announced again (:func:`announce_lost`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from streams.app import TICKETS_RECEIVED, app, every, owned_partitions
from streams.broker import BrokerReader, Redelivery
from streams.db import SchemaMoved
from streams.routing import activity, announce, route_batch
from streams.wiring import services

log = logging.getLogger(__name__)


async def adopt(reader: BrokerReader, partitions: set[int], topic: str = TICKETS_RECEIVED) -> dict[int, int]:
    """Give each partition this ledger has never audited its mark: where the group's consumption starts.
    Returns the marks set. Done when partitions are assigned, a fraction of a second before or after the
    first messages are handled but before the first commit (every ``broker_commit_interval``), so the
    committed offset read is where this worker started; a fault in its first seconds (a commit ahead of
    what was handled, then kill -9) is audited too. Adopting on the first round, 10 s in, took a committed
    offset that could already be past it."""
    svc = services()
    marks = await svc.db(svc.ledger.audit_marks, topic)
    new = partitions - marks.keys()
    if not new:
        return {}
    starts = await reader.call(reader.start_offsets, topic, new)
    for partition, offset in sorted(starts.items()):
        await svc.db(svc.ledger.advance_audit, topic, partition, offset)
    return starts


def missing_ranges(lo: int, hi: int, accounted: set[int]) -> list[tuple[int, int]]:
    """The runs of offsets in [lo, hi) that are not in ``accounted``, as half-open (start, end) pairs."""
    out: list[tuple[int, int]] = []
    start: int | None = None
    for off in range(lo, hi):
        if off in accounted:
            if start is not None:
                out.append((start, off))
                start = None
        elif start is None:
            start = off
    if start is not None:
        out.append((start, hi))
    return out


@dataclass
class Stall:
    """A partition whose committed offset has not moved while it had messages waiting."""

    committed: int
    since: float
    ahead: int  # the catch-up has routed everything below this offset


stalls: dict[tuple[str, int], Stall] = {}
CATCH_UP_MAX = 1000  # messages routed per partition and round by the catch-up


async def catch_up(reader: BrokerReader, topic: str, committed: dict[int, int], owned: set[int],
                   interval: float) -> int:
    """Route what a stopped consumer does not deliver. A partition counts as stopped when messages wait
    above its committed offset, that offset has not moved for a whole round, and the routing agent has
    handled none of its messages in that time while it is free (an agent inside a batch, say waiting for
    the database, is slow, not stopped). Its waiting messages are then read from the
    broker and routed like any delivery: idempotently, so should the consumer start again it finds them
    routed. Seen after a kill -9 on the embedded broker: the new worker stopped, for good, at the first
    offset of the killed worker's unfinished batch in two of four partitions (docs/guarantees.md). A
    partition the group never committed counts from the log's beginning, where its consumer starts: a
    worker killed before its first commit left a successor that consumed nothing (session 10)."""
    now = time.monotonic()
    waiting = {p: committed[p] for p in owned if p in committed}
    if never := owned - waiting.keys():
        waiting.update(await reader.call(reader.beginning_offsets, topic, never))  # committed is known
    ends = await reader.end_offsets(topic, waiting) if waiting else {}
    routed = 0
    for partition, at in sorted(waiting.items()):
        key, end = (topic, partition), ends.get(partition, at)
        stall = stalls.get(key)
        if end <= at or stall is None or stall.committed != at:
            stalls[key] = Stall(at, now, at)
            continue
        start = max(at, stall.ahead)
        if now - stall.since < interval or activity.quiet_for(partition) < interval or start >= end:
            continue
        stop = min(end, start + CATCH_UP_MAX)
        found = await reader.call(reader.read, topic, partition, [(start, stop)])
        log.warning("reconcile %s[%d]: the consumer has not moved past offset %d for %.0fs while %d message(s) "
                    "wait; routing offsets %d-%d from the broker", topic, partition, at, now - stall.since,
                    end - at, start, stop - 1)
        if found:
            await route_batch(found)
        stall.ahead = stop
        routed += len(found)
        await nudge(topic, partition, at)
    for key in [k for k in stalls if k[0] == topic and k[1] not in waiting]:
        del stalls[key]  # no longer ours
    return routed


async def nudge(topic: str, partition: int, offset: int) -> None:
    """Seek this worker's consumer back to the committed offset of a stopped partition: a seek resets the
    client's fetch state for it, so it may deliver again (what the catch-up routed is then skipped as
    routed, and the committed offset moves on). Never raises: the catch-up goes on either way."""
    from faust.types import TP

    try:
        await app.consumer.seek(TP(topic, partition), offset)
    except Exception:
        log.exception("reconcile %s[%d]: could not seek the consumer back to %d", topic, partition, offset)


async def reconcile_once(reader: BrokerReader, topic: str = TICKETS_RECEIVED) -> int:
    """Audit this worker's partitions of ``topic`` up to the committed offsets; returns tickets recovered."""
    svc = services()
    owned = owned_partitions(topic)
    if not owned:
        return 0
    committed = await reader.call(reader.committed, topic)
    marks = await svc.db(svc.ledger.audit_marks, topic)
    recovered = 0
    for partition in sorted(owned):
        hi = committed.get(partition)
        if hi is None:
            continue
        lo = marks.get(partition)
        if lo is None:  # not adopted at assignment (that failed, or the reconciler was off): adopt it now
            await svc.db(svc.ledger.advance_audit, topic, partition, hi)
            continue
        if hi <= lo:
            continue
        try:  # one partition's failure (a read, the ledger, the routing) must not stop the others' audit
            routed = await _audit(reader, topic, partition, lo, hi)
        except SchemaMoved:
            raise  # the worker is stopping (streams.wiring.Services.schema_moved): no round, no traceback
        except Exception:
            log.exception("reconcile %s[%d]: auditing offsets %d-%d failed; the next round tries again", topic,
                          partition, lo, hi - 1)
            continue
        recovered += routed
    interval = svc.settings.reconcile_seconds
    if interval:
        recovered += await catch_up(reader, topic, committed, owned, interval)
    await announce_lost(owned)
    return recovered


LOST_LOOKBACK = timedelta(hours=1)  # how long after the grace a lost announcement is still looked for
# routing id -> when (monotonic) this worker announced it again: not again before another grace has passed. A
# lifecycle far behind would otherwise get the same oldest 200 every round, and one that fails on an announcement
# (dead-lettered, no row) would keep those 200 places from newer lost ones for the hour
_reannounced: dict[str, float] = {}


async def announce_lost(owned: set[int]) -> int:
    """Announce again the routings of this worker's tickets (their tickets.received partitions) published more than
    ``reannounce_after_seconds`` ago whose 'routed' event the lifecycle never recorded; returns how many.

    The announcement goes out after the publication and its mark; a ticket whose announcement is lost sits on its
    agency's queue with no state in the lifecycle, so supervision never watches its time limits. A redelivered
    ticket is announced again (routing), but one whose tickets.received offset was committed is never redelivered:
    a worker stopped between marking and announcing, or a handover that never read the announcements the stopped
    worker held (the rolling-upgrade test, session 23). The event id is the routing's: the lifecycle applies it
    once, and an announcement that was only late is a duplicate it records nothing more for."""
    svc = services()
    after = svc.settings.reannounce_after_seconds
    if not after or not owned:
        return 0
    before = datetime.now(UTC) - timedelta(seconds=after)  # published_at is real time, as decided_at
    clock = time.monotonic()
    for key in [k for k, at in _reannounced.items() if clock - at >= after]:
        del _reannounced[key]
    lost = await svc.db(svc.ledger.lost_announcements, before - LOST_LOOKBACK, before, owned,
                        skip=list(_reannounced))
    _reannounced.update((m["routing_id"], clock) for m in lost)
    if lost:
        log.warning("reconcile: %d published routing(s) without a 'routed' event in the ledger %gs after their "
                    "publication (announcement lost, or the lifecycle far behind); announcing them again: %s",
                    len(lost), after, ", ".join(m["routing_id"] for m in lost[:10]))
        await announce(lost, again=True)
    return len(lost)


async def _audit(reader: BrokerReader, topic: str, partition: int, lo: int, hi: int) -> int:
    """Route the offsets in [lo, hi) the ledger does not account for, then move the mark; returns how many
    tickets that recovered. An offset holding a copy of a ticket handled at another offset (a re-send, which
    routing ignores) stays unaccounted: it is told apart after routing, not counted as recovered."""
    svc = services()
    accounted = await svc.db(svc.ledger.accounted_offsets, topic, partition, lo, hi)
    ranges = missing_ranges(lo, hi, accounted)
    found: list[Redelivery] = await reader.call(reader.read, topic, partition, ranges) if ranges else []
    copies = 0
    if found:
        await route_batch(found)
        after = await svc.db(svc.ledger.accounted_offsets, topic, partition, lo, hi)
        recovered = {r.message.offset for r in found if r.message.offset in after}
        copies = len(found) - len(recovered)
        # Said after routing: a re-send of a handled ticket (at-least-once producers make them) is no alarm.
        if recovered:
            log.warning("reconcile %s[%d]: %d offset(s) below the committed %d had no routed ticket or rejection "
                        "of their own (%s); handled them now", topic, partition, len(recovered), hi,
                        ", ".join(f"{a}-{b - 1}" if b - a > 1 else str(a) for a, b in
                                  missing_ranges(lo, hi, set(range(lo, hi)) - recovered)))
        if copies:
            log.info("reconcile %s[%d]: %d offset(s) below the committed %d repeat tickets handled at other "
                     "offsets; nothing to route", topic, partition, copies, hi)
    await svc.db(svc.ledger.advance_audit, topic, partition, hi, len(found) - copies)
    return len(found) - copies


_reader: BrokerReader | None = None


def broker_reader() -> BrokerReader:
    """The worker's one reader, shared by the timer and the assignment hook (created on first use)."""
    global _reader
    if _reader is None:
        svc = services()
        _reader = BrokerReader(svc.bootstrap, app.conf.id)
    return _reader


@app.on_partitions_assigned.connect
async def adopt_assigned(sender: Any, assigned: set[Any], **_: Any) -> None:
    """Set the audit marks of newly seen partitions of the input topic as they are assigned. A failure is
    logged, not raised: faust would crash the worker, and the first round adopts the partition instead."""
    partitions = {tp.partition for tp in assigned if tp.topic == TICKETS_RECEIVED}
    if not partitions or not services().settings.reconcile_seconds:
        return
    try:
        if marks := await adopt(broker_reader(), partitions):
            log.info("reconcile: auditing %s from offsets %s", TICKETS_RECEIVED,
                     ", ".join(f"[{p}]@{o}" for p, o in sorted(marks.items())))
    except SchemaMoved:
        pass  # said by Services.schema_moved; the worker is stopping
    except Exception:
        log.exception("reconcile: could not adopt partitions %s at assignment", sorted(partitions))


@app.task
async def reconcile() -> None:
    """The reconciler's timer (a task: the interval is a setting). Quiet while the group rebalances;
    nothing is marked audited by a round that failed, the next one tries again."""
    global _reader
    interval = services().settings.reconcile_seconds
    if not interval:
        return
    reader = broker_reader()
    try:
        await every(interval, lambda: reconcile_once(reader), name="reconcile round",
                    skip=lambda: app.rebalancing)
    finally:
        reader.close()
        _reader = None
