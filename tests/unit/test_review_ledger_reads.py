"""The ledger's read paths at a district's scale (review): migration 0010's indexes, on SQLite and PostgreSQL
(when it answers), and the same pages as before where a query changed shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, inspect

from models import ledger as t
from streams.console import queries
from streams.db import Ledger, downgrade, make_engine, upgrade
from tests.unit.test_review_upgrade_migrations import blank_url  # noqa: F401  (the two-backend fixture)

AT = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
NEW = {"tickets": {"ix_tickets_received_id", "ix_tickets_agency_received_id", "ix_tickets_agency_status_received"},
       "ticket_events": {"ix_ticket_events_agency_type_time", "ix_ticket_events_occurred_at"},
       "alerts": {"ix_alerts_raised_at"}}


def _indexes(url: str) -> dict[str, set[str]]:
    engine = make_engine(url)
    try:
        found = inspect(engine)
        return {table: {ix["name"] for ix in found.get_indexes(table)} for table in NEW}
    finally:
        engine.dispose()


def test_0010_adds_the_read_indexes_and_takes_them_back(blank_url: str) -> None:  # noqa: F811
    upgrade(blank_url)
    after = _indexes(blank_url)
    for table, names in NEW.items():
        assert names <= after[table], table
    assert "ix_tickets_current_agency" not in after["tickets"]  # both agency indexes begin with its column
    downgrade(blank_url, "0009")
    before = _indexes(blank_url)
    assert not any(names & before[table] for table, names in NEW.items())
    assert "ix_tickets_current_agency" in before["tickets"]
    upgrade(blank_url)  # and forward again
    assert NEW["tickets"] <= _indexes(blank_url)["tickets"]


def _ledger_with_ties(url: str) -> Ledger:
    """Twelve tickets, received three at a time at the same instant, some dispatched to one agency."""
    upgrade(url)
    engine = make_engine(url)
    rows = [{"id": f"T{i:03d}", "received_at": AT + timedelta(minutes=i // 3), "text": "油烟扰民",
             "status": "dispatched" if i % 2 else "manual", "current_agency": "BH-CGW" if i % 2 else None,
             "attempt": 1, "first_seen_at": AT, "updated_at": AT} for i in range(12)]
    with engine.begin() as conn:
        conn.execute(insert(t.Ticket), rows)
    return Ledger(engine)


@pytest.mark.parametrize("agency", [None, "BH-CGW"])
def test_the_ticket_list_pages_through_ties_in_the_same_order(blank_url: str, agency: str | None) -> None:  # noqa: F811
    # the cursor is a row value now (received_at, id) < (...): every ticket once, newest first, ties by id
    ledger = _ledger_with_ties(blank_url)
    try:
        expected = sorted((tk for tk in queries.list_tickets(ledger, agency=agency, limit=100)),
                          key=lambda tk: (tk.received_at, tk.id), reverse=True)
        assert len(expected) == (6 if agency else 12)
        seen, before = [], None
        while True:
            page = queries.list_tickets(ledger, agency=agency, limit=2, before=before)
            if not page:
                break
            seen.extend(page)
            before = (page[-1].received_at, page[-1].id)
        assert [tk.id for tk in seen] == [tk.id for tk in expected]
    finally:
        ledger.dispose()


def _plan(url: str, statement: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return " ".join(str(r[-1]) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement))
    finally:
        engine.dispose()


def test_sqlite_reads_a_page_of_the_list_and_the_latest_alerts_off_an_index(tmp_path: Path) -> None:
    # SQLite sorted the whole ledger for each page of GET /api/tickets (seconds at 500,000 tickets) and the whole
    # alerts table for the supervisor's panel, polled every few seconds
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    _ledger_with_ties(url).dispose()
    page = _plan(url, "SELECT id FROM tickets WHERE (received_at, id) < ('2026-05-01 02:03:00', 'T010') "
                      "ORDER BY received_at DESC, id DESC LIMIT 51")
    assert "ix_tickets_received_id" in page and "TEMP B-TREE" not in page
    alerts = _plan(url, "SELECT alert_key FROM alerts ORDER BY raised_at DESC LIMIT 30")
    assert "ix_alerts_raised_at" in alerts and "TEMP B-TREE" not in alerts
    returned = _plan(url, "SELECT ticket_id FROM ticket_events WHERE type = 'returned' AND accepted = 1 "
                          "AND agency = 'BH-CGW' ORDER BY occurred_at DESC LIMIT 20")
    assert "ix_ticket_events_agency_type_time" in returned and "SCAN ticket_events" not in returned
    # a few tickets' routings stay on the ticket index (an index led by type read every routed event)
    routings = _plan(url, "SELECT ticket_id FROM ticket_events WHERE ticket_id IN ('T001', 'T003') AND accepted = 1 "
                          "AND type = 'routed'")
    assert "ticket_id" in routings and "SCAN ticket_events" not in routings
