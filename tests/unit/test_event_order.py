"""A ticket's events are read back in the order the lifecycle accepted them, not by their senders' clocks.

One lifecycle batch stores its events with one ``recorded_at``; ``occurred_at`` is whatever clock the sender
had. The console (timeline, the 延期 buttons) and the reports must follow the lifecycle's order."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models import ledger as t
from models.tickets import SHANGHAI, TicketIn
from streams.console.queries import ticket_detail
from streams.db import Ledger, make_engine, upgrade


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url)
    ledger = Ledger(make_engine(url))
    yield ledger
    ledger.dispose()


def _row(ticket_id: str, event_id: str, type_: str, at: datetime, status: str) -> dict[str, Any]:
    payload = {"event_id": event_id, "ticket_id": ticket_id, "type": type_, "actor": "a", "role": "agency",
               "occurred_at": at.isoformat(), "agency": "BH-STHJ"}
    return {"event_id": event_id, "ticket_id": ticket_id, "type": type_, "actor": "a", "agency": "BH-STHJ",
            "occurred_at": at, "accepted": True, "reason": None, "payload": payload, "status": status,
            "current_agency": "BH-STHJ"}


def test_an_extension_decided_by_a_clock_behind_the_request_is_not_pending(ledger: Ledger) -> None:
    # Given a ticket signed, then in one lifecycle batch an extension request and its approval, stamped by a
    # supervisor whose clock runs 3 s behind the agency's
    now = datetime.now(SHANGHAI)
    ledger.record_tickets([(TicketIn(id="T-9", text="油烟扰民" * 5, received_at=now - timedelta(hours=2)),
                            None, None, None)])
    ledger.record_events([_row("T-9", "s-1", "signed", now - timedelta(hours=1), "signed")])
    ledger.record_events([_row("T-9", "x-1", "extension_requested", now, "signed"),
                          _row("T-9", "x-2", "extension_approved", now - timedelta(seconds=3), "signed")])
    # When the console reads the ticket
    detail = ticket_detail(ledger, "T-9")
    # Then the timeline is in the lifecycle's order and no extension is waiting for a decision
    assert [e.type for e in detail.events] == ["signed", "extension_requested", "extension_approved"]
    assert detail.extension_pending is False


def test_a_batch_keeps_each_events_place_and_a_redelivered_event_keeps_its_first(ledger: Ledger) -> None:
    now = datetime.now(SHANGHAI)
    ledger.record_tickets([(TicketIn(id="T-8", text="路灯不亮" * 5, received_at=now), None, None, None)])
    first = _row("T-8", "s-1", "signed", now, "signed")
    assert ledger.record_events([first, _row("T-8", "r-1", "resolved", now - timedelta(seconds=1), "resolved")]) == 2
    assert ledger.record_events([first]) == 0  # redelivered: stored once, where it was first
    with ledger.session() as s:
        rows = s.execute(select(t.TicketEvent.event_id, t.TicketEvent.batch_position)
                         .order_by(*t.ACCEPTED_ORDER)).all()
    assert [tuple(r) for r in rows] == [("s-1", 0), ("r-1", 1)]
