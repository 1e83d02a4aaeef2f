"""The ticket table: each ticket's lifecycle state and supervision facts, in one faust table value.

Both stages change a ticket on the same event: the lifecycle moves its state, supervision its facts. Kept in
two tables, each event cost two changelog writes; kept here, one (session 14: a changelog write is about 5%
of a worker's CPU per ticket). The table is keyed by ticket id and written with the partition of the
ticket's ``tickets.events`` messages, so it is co-partitioned with the lifecycle's input and recovers on
the worker that owns the ticket.

A value is ``{"schema": 2, "partition": P, "state": TicketState.to_dict(), "facts": FACTS}``, where FACTS
is supervision's ``TicketFacts.to_dict()`` plus ``_events`` (the ids of the events observed), or ``None``
where an earlier version forgot a long-closed ticket's facts and kept its state. The partition is kept once,
beside them (facts of earlier versions carried their own ``_partition``). A ticket closed longer ago than any
rule looks back is dropped whole (:func:`forget`), so the table holds the tickets of a bounded period, not
every ticket ever handled.

Upgrading: the table keeps the lifecycle's old name, ``ticket-state``, whose values were the bare state,
and the facts of earlier versions stay readable in their own table, ``supervision-facts``, which is
declared and recovered but never written again. A ticket's facts move here the first time it is written.

Every read-modify-write of a value happens under :data:`lock`: the lifecycle's batch (state and facts of
one event, written together), supervision's tick and its housekeeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from models.lifecycle import Status
from streams.app import app

SCHEMA = 2  # values with no "schema" are the bare TicketState dicts of earlier versions

# No value_type: recovery from the changelog then yields plain dicts (a dict value_type breaks it).
table = app.Table("ticket-state", key_type=str, default=None)
legacy_facts = app.Table("supervision-facts", key_type=str, default=None)  # read only: see the docstring
lock = asyncio.Lock()


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()
"""Passed to :func:`write` for the part of a value that stays as it is."""


def _parts(ticket_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None, int | None]:
    value = table.data.get(ticket_id)
    if value and value.get("schema") == SCHEMA:
        return value.get("state"), value.get("facts"), value.get("partition")
    facts = legacy_facts.data.get(ticket_id) or None
    partition = facts.get("_partition") if facts else None
    return value or None, facts, partition


def _keys() -> set[str]:
    return set(table.data) | set(legacy_facts.data)


def state(ticket_id: str) -> dict[str, Any] | None:
    """The ticket's lifecycle state (``TicketState.to_dict()``), or None for a ticket with no event yet."""
    return _parts(ticket_id)[0]


def facts(ticket_id: str) -> dict[str, Any] | None:
    """The ticket's supervision facts, or None when it has none (never observed, or forgotten)."""
    return _parts(ticket_id)[1]


def partition(ticket_id: str) -> int | None:
    """The ``tickets.events`` partition the ticket's value is written with."""
    return _parts(ticket_id)[2]


def write(ticket_id: str, partition: int, *, state: Any = KEEP, facts: Any = KEEP) -> asyncio.Future[Any]:
    """Store a ticket's value, changing the parts given; returns the changelog write's future, for
    :func:`streams.app.changelog_written`.

    Written explicitly with ``partition``, as faust does for ``table[key] = value`` with the partition of the
    current event: the lifecycle handles a batch of events of several partitions, and supervision's timer
    runs outside any stream, so the current event would be the wrong one or none.
    """
    old_state, old_facts, _ = _parts(ticket_id)
    value = {"schema": SCHEMA, "partition": partition, "state": old_state if state is KEEP else state,
             "facts": old_facts if facts is KEEP else facts}
    written = table.send_changelog(partition, ticket_id, value)
    table.data[ticket_id] = value
    return written


def forget(ticket_id: str, partition: int) -> asyncio.Future[Any]:
    """Drop a ticket for good: a tombstone on the changelog (a recovery deletes the key, Kafka's compaction
    removes it), and its value here; facts an earlier version left in ``supervision-facts`` go the same way,
    or a recovery would bring them back. Returns the changelog write's future."""
    if legacy_facts.data.get(ticket_id):
        legacy_facts.send_changelog(partition, ticket_id, None, value_serializer="raw")
    written = table.send_changelog(partition, ticket_id, None, value_serializer="raw")
    _drop(ticket_id)
    return written


def _drop(ticket_id: str) -> None:
    for t in (table, legacy_facts):
        t.data.pop(ticket_id, None)
        # faust's memory store remembers the partition of each key it recovered, apart from the data
        getattr(t.data, "_key_partition", {}).pop(ticket_id, None)


def closed_before(cutoff: datetime) -> list[tuple[str, int]]:
    """(ticket id, partition) of this worker's tickets closed before ``cutoff`` (ticket time), facts or not."""
    out = []
    for ticket_id in _keys():
        found, _, where = _parts(ticket_id)
        if where is None:  # a bare state of an earlier version: the partition faust recovered it from
            where = getattr(table.data, "_key_partition", {}).get(ticket_id)
        if (found and found.get("status") == Status.CLOSED and (closed := found.get("closed_at"))
                and datetime.fromisoformat(closed) < cutoff and where is not None):
            out.append((ticket_id, where))
    return out


def pending_states() -> list[dict[str, Any]]:
    """The states of this worker's tickets whose follow-up dispatch has not landed (``pending`` set)."""
    return [found for ticket_id in _keys() if (found := state(ticket_id)) and found.get("pending")]


def all_facts() -> Iterator[dict[str, Any]]:
    """Every ticket's facts this worker holds."""
    for ticket_id in _keys():
        found = facts(ticket_id)
        if found:
            yield found


def forget_except(partitions: set[int]) -> int:
    """Drop the values of partitions this worker no longer holds; returns how many tickets were dropped.

    faust's memory store forgets revoked partitions only for keys it recovered from the changelog, not for
    keys this worker wrote itself: their new owner recovered them, and a stale copy here would be read if the
    partition came back (recovery overwrites only the keys it reads). A bare state of an earlier version does
    not say its partition; it was recovered, so faust's store drops it itself."""
    gone = [k for k in _keys() if partition(k) not in (None, *partitions)]
    for key in gone:
        _drop(key)
    return len(gone)
