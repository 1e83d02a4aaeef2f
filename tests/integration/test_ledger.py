"""Ledger writes are idempotent and say whether they wrote, on SQLite and on PostgreSQL alike.

(psycopg reports rowcount -1 for INSERT ... ON CONFLICT DO NOTHING; the ledger must not rely on it.)
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models import ledger as t
from models.tickets import parse_ticket
from streams.db import Ledger, make_engine

pytestmark = pytest.mark.integration


def test_idempotent_writes_report_what_they_did(database_url):
    ledger = Ledger(make_engine(database_url))
    ticket = parse_ticket({"id": "L-1", "text": "路灯不亮", "received_at": "2025-10-01T08:00:00"})
    assert ledger.record_ticket(ticket) is True
    assert ledger.record_ticket(ticket) is False
    event = {"event_id": "e-1", "ticket_id": "L-1", "type": "signed", "actor": "a", "agency": "BH-CGW",
             "occurred_at": datetime.now(UTC), "accepted": True, "reason": None, "payload": {}}
    assert ledger.record_event(**event, status="signed", current_agency="BH-CGW") is True
    assert ledger.get_ticket("L-1").status == "signed"  # the mirror follows the accepted event
    assert ledger.record_event(**event, status="resolved", current_agency="BH-CGW") is False
    assert ledger.get_ticket("L-1").status == "signed"  # a redelivery changes nothing
    rej = {"dedup_key": "topic:x/0/1", "key": "k", "source": "topic", "reason": "not JSON", "payload": "{"}
    assert ledger.record_rejection(**rej) is True and ledger.record_rejection(**rej) is False
    assert ledger.count(t.RejectedInput) == 1 and ledger.count(t.TicketEvent) == 1
    assert ledger.get_ticket("L-1").received_at.isoformat() == "2025-10-01T00:00:00+00:00"
    ledger.dispose()


def test_intake_facts_are_the_ticket_fields_supervision_reads(database_url):
    ledger = Ledger(make_engine(database_url))
    ticket = parse_ticket({"id": "L-2", "text": "楼下饭店油烟扰民" * 50, "received_at": "2025-10-01T08:00:00",
                           "address": "泰达街道某小区", "caller_phone": "13812345678", "urgency": "紧急"})
    ledger.record_ticket(ticket)
    facts = ledger.intake_facts(["L-2", "L-404"])
    assert set(facts) == {"L-2"} and ledger.intake_facts([]) == {}
    row = facts["L-2"]
    assert (row.address, row.caller_phone, row.urgency) == ("泰达街道某小区", "13812345678", "紧急")
    assert row.received_at == ledger.get_ticket("L-2").received_at  # timezone-aware, as through the ORM
    assert row.received_at.tzinfo is not None
    ledger.dispose()
