"""The ledger under concurrent writers, as in production: several workers in one consumer group (two of them
briefly handling the same partition across a rebalance), the reconciler beside the routing agent, on PostgreSQL.

Each race is made reproducible by running the other writer, on a connection of its own, at the moment the
first one is about to write (a cursor hook). They run on SQLite and on PostgreSQL (``database_url``); the
deadlock test needs PostgreSQL's row locks and skips without it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, select

from models import ledger as t
from models.tickets import parse_ticket
from streams.db import Ledger, make_engine

NOW = datetime(2025, 10, 1, 1, tzinfo=UTC)


def _ticket(ticket_id: str) -> Any:
    return parse_ticket({"id": ticket_id, "text": "路灯不亮", "received_at": "2025-10-01T08:00:00"})


def _decision(ticket_id: str, attempt: int, agency: str) -> dict[str, Any]:
    key = f"{ticket_id}#{attempt}"
    return {
        "decision_key": key,
        "ticket_id": ticket_id,
        "attempt": attempt,
        "decision": "auto",
        "matter": "M",
        "domain": "D",
        "agency": agency,
        "agency_kind": "urban_management",
        "jurisdiction": "BH",
        "confidence": 0.9,
        "basis": None,
        "reason": "r",
        "alternatives": [],
        "model_version": "v",
        "decided_by": "router",
        "decided_at": NOW,
        "topic": f"tickets.routed.{agency}",
        "message": {"routing_id": key},
    }


def _event(event_id: str, ticket_id: str, type_: str, status: str, agency: str | None) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "ticket_id": ticket_id,
        "type": type_,
        "actor": "a",
        "agency": agency,
        "occurred_at": NOW,
        "accepted": True,
        "reason": None,
        "payload": {},
        "status": status,
        "current_agency": agency,
    }


def _routed(ledger: Ledger, ticket_id: str, agency: str = "BH-CGW") -> None:
    ledger.record_ticket(_ticket(ticket_id))
    ledger.record_decisions([_decision(ticket_id, 1, agency)])
    ledger.mark_published([f"{ticket_id}#1"])


def _meanwhile(ledger: Ledger, statement_start: str, other: Callable[[], Any]) -> None:
    """Run ``other`` (another writer: its own connection, its own thread) once, just before ``ledger`` sends a
    statement starting with ``statement_start``, and let it commit before that statement runs."""
    fired: list[bool] = []

    @event.listens_for(ledger.engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not fired and statement.lstrip().startswith(statement_start):
            fired.append(True)
            thread = threading.Thread(target=other)
            thread.start()
            thread.join(30)


def test_a_decision_published_again_by_the_loser_of_a_race_leaves_a_signed_ticket_signed(database_url):
    ledger = Ledger(make_engine(database_url))
    # Given T1 stored by a worker, the reconciler losing the race to store its own (it publishes the stored one)
    ledger.record_ticket(_ticket("T1"))
    assert ledger.record_decisions([_decision("T1", 1, "BH-CGW")]) == {"T1#1"}
    assert ledger.record_decisions([_decision("T1", 1, "BH-CGW")]) == set()
    # and the worker's publication landing first, the agency signing at once
    ledger.mark_published(["T1#1"])
    ledger.record_events(
        [
            _event("routed:T1#1", "T1", "routed", "dispatched", "BH-CGW"),
            _event("s1", "T1", "signed", "signed", "BH-CGW"),
        ]
    )
    # When the reconciler's copy of the publication lands
    ledger.mark_published(["T1#1"])
    # Then the ticket is still signed (it was set back to dispatched: the console offered 签收 again)
    tk = ledger.get_ticket("T1")
    assert (tk.status, tk.current_agency, tk.attempt) == ("signed", "BH-CGW", 1)
    ledger.dispose()


def test_an_event_stored_by_another_worker_meanwhile_is_not_mirrored_over_what_followed(database_url):
    ledger, other = Ledger(make_engine(database_url)), Ledger(make_engine(database_url))
    _routed(ledger, "T2")

    def other_worker() -> None:  # the partition's new owner: the return stored, the re-routing published
        other.record_events([_event("ret-1", "T2", "returned", "returned", None)])
        other.record_decisions([_decision("T2", 2, "BH-SCJG")])
        other.mark_published(["T2#2"])

    # Given the old owner about to store the same return while the new owner stores it and re-routes T2
    _meanwhile(ledger, "INSERT INTO ticket_events", other_worker)
    # When the old owner's write goes through
    stored = ledger.record_events([_event("ret-1", "T2", "returned", "returned", None)])
    # Then it stored nothing and changed nothing: T2 stays with the agency it was re-routed to (it was mirrored
    # back to "returned" with no agency, out of BH-SCJG's inbox)
    tk = ledger.get_ticket("T2")
    assert stored == 0
    assert (tk.status, tk.current_agency, tk.attempt) == ("dispatched", "BH-SCJG", 2)
    ledger.dispose()
    other.dispose()


def test_two_workers_creating_a_partitions_audit_mark_at_once_both_count(database_url):
    ledger, other = Ledger(make_engine(database_url)), Ledger(make_engine(database_url))
    # Given another worker creating partition 0's audit mark just as this one does (both recovered tickets)
    _meanwhile(
        ledger,
        "INSERT INTO offset_audits",
        lambda: other.advance_audit("tickets.received", 0, 10, recovered=2),
    )
    ledger.advance_audit("tickets.received", 0, 12, recovered=3)
    # Then the mark is the furthest of the two and every recovered ticket is counted (this one's were lost)
    with ledger.session() as s:
        row = s.scalars(select(t.OffsetAudit)).one()
    assert (row.audited_to, row.recovered) == (12, 5)
    ledger.dispose()
    other.dispose()


def test_a_ticket_at_an_offset_beyond_32_bits_is_recorded_and_accounted(database_url):
    # Kafka offsets are 64-bit; PostgreSQL's INTEGER stopped at 2**31 - 1 ("integer out of range": every
    # routing batch of the partition dead-lettered as an internal error)
    ledger = Ledger(make_engine(database_url))
    far = 2**31 + 7
    assert ledger.record_tickets([(_ticket("T3"), "tickets.received", 0, far)]) == {"T3"}
    ledger.record_decisions([_decision("T3", 1, "BH-CGW")])
    ledger.mark_published(["T3#1"])
    assert ledger.accounted_offsets("tickets.received", 0, far - 1, far + 1) == {far}
    ledger.dispose()


def test_concurrent_batches_over_the_same_tickets_in_other_orders_do_not_deadlock(database_url):
    # Two workers across a rebalance (or the reconciler beside the agent) write overlapping tickets and events in
    # whatever order their batches hold them: PostgreSQL found deadlocks (each waiting for a row the other had
    # written), which the worker retried as "ledger unavailable" after a back-off
    if not database_url.startswith("postgresql"):
        pytest.skip(
            "row-level lock waits (and so deadlocks) are PostgreSQL's; SQLite has one writer at a time"
        )
    ledger = Ledger(make_engine(database_url))
    ids = [f"D{i:02d}" for i in range(40)]
    failures: list[BaseException] = []

    def writer(reverse: bool) -> None:
        order = ids[::-1] if reverse else ids
        try:
            for round_ in range(15):
                ledger.record_tickets([(_ticket(i), "tickets.received", 0, n) for n, i in enumerate(order)])
                ledger.record_events(
                    [_event(f"e{round_}-{i}", i, "signed", "signed", "BH-CGW") for i in order]
                )
        except Exception as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n % 2 == 1,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    assert ledger.count(t.TicketEvent) == 15 * len(ids)
    ledger.dispose()
