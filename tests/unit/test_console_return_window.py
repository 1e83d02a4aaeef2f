"""An agency cannot return (退单) a ticket after the return window: the console says so before sending anything,
and does not offer the button (``late_returns: refuse`` in sla.yaml, the lifecycle refuses it too)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from models import ledger as t
from models.tickets import TicketIn
from models.workcalendar import TZ
from tests.unit.test_console_views import Site, _site


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from _site(tmp_path)


def dispatched(site: Site, ticket_id: str, at: datetime) -> None:
    """A 投诉 dispatched to BH-SCJG at ``at`` and signed right after (the window runs from the dispatch)."""
    site.ledger.record_tickets([(TicketIn(id=ticket_id, text="超市卖过期食品" * 3, received_at=at,
                                          request_type="投诉"), None, None, None)])
    rows = [{"event_id": f"{kind}:{ticket_id}", "ticket_id": ticket_id, "type": kind, "actor": "x",
             "agency": "BH-SCJG", "occurred_at": at + timedelta(minutes=n), "accepted": True, "reason": None,
             "payload": {"type": kind}, "status": status, "current_agency": "BH-SCJG"}
            for n, (kind, status) in enumerate((("routed", "dispatched"), ("signed", "signed")))]
    site.ledger.record_events(rows)
    with site.ledger.session() as s:
        s.get(t.Ticket, ticket_id).attempt = 1


RETURN = {"action": "return", "reason_code": "NOT_OUR_DUTY", "basis": "《食品安全法》第六条"}


def test_a_return_after_the_window_is_refused_before_anything_is_sent(site: Site) -> None:
    # Given a ticket dispatched to BH-SCJG two weeks ago, and one dispatched a minute ago
    now = datetime.now(TZ)
    dispatched(site, "LATE0001", now - timedelta(days=14))
    dispatched(site, "NEW00001", now - timedelta(minutes=1))
    # When the agency returns the old one, it is told it must handle it, and nothing is sent
    r = site.api("POST", "/api/tickets/LATE0001/actions", "scjg", json=RETURN)
    assert r.status_code == 409 and "已超过退单时限" in r.text and "改派" in r.text
    assert site.publisher.sent == []
    # And the new one can still be returned
    assert site.api("POST", "/api/tickets/NEW00001/actions", "scjg", json=RETURN).status_code == 202
    assert len(site.publisher.sent) == 1


def test_the_ticket_page_offers_no_return_after_the_window(site: Site) -> None:
    now = datetime.now(TZ)
    dispatched(site, "LATE0002", now - timedelta(days=14))
    dispatched(site, "NEW00002", now - timedelta(minutes=1))
    site.login("scjg")
    buttons = {tid: set(re.findall(r'name="action" value="([a-z-]+)"', site.client.get(f"/tickets/{tid}").text))
               for tid in ("LATE0002", "NEW00002")}
    assert "return" in buttons["NEW00002"] and "return" not in buttons["LATE0002"]
    assert "resolve" in buttons["LATE0002"]
