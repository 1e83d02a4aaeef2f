"""A closed ticket is held by the workers for CLOSED_HELD, then forgotten (the long-run stability fix): the
console stops offering 回访评价 and 重新办理 after that, and says why, instead of sending an event the worker
would refuse as unknown while the user was told 已提交."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from models import ledger as t
from models.lifecycle import CLOSED_HELD
from models.supervision.linking import LinkRules
from models.tickets import TicketIn
from tests.unit.test_console_views import Site, _site


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from _site(tmp_path)


def _closed(site: Site, ticket_id: str, closed_ago: timedelta) -> None:
    """A ticket dispatched, signed, resolved and closed ``closed_ago`` before now."""
    closed = datetime.now(UTC) - closed_ago
    steps = [("routed", "system", "BH-SCJG"), ("signed", "agency", "BH-SCJG"), ("resolved", "agency", "BH-SCJG"),
             ("closed", "callcenter", None)]
    site.ledger.record_tickets([(TicketIn(id=ticket_id, text="路灯不亮好几天了", received_at=closed - timedelta(days=3)),
                                 None, None, None)])
    for n, (kind, role, agency) in enumerate(steps):
        at = closed - timedelta(hours=len(steps) - 1 - n)
        site.ledger.record_event(event_id=f"{kind}:{ticket_id}", ticket_id=ticket_id, type=kind, actor=role,
                                 agency=agency, occurred_at=at, accepted=True, reason=None,
                                 payload={"type": kind, "role": role, "attempt": 1, "reply": "已修复"})
    with site.ledger.session() as s:
        tk = s.get(t.Ticket, ticket_id)
        assert tk is not None
        tk.status, tk.current_agency, tk.attempt = "closed", "BH-SCJG", 1


def test_the_hold_covers_the_longest_window_a_rule_looks_back() -> None:
    assert CLOSED_HELD >= LinkRules().repeat_window


def test_no_reopening_or_rating_once_the_workers_have_forgotten_the_ticket(site: Site) -> None:
    # Given one ticket closed two days ago and one closed a day past the hold
    _closed(site, "RECENT", timedelta(days=2))
    _closed(site, "OLD", CLOSED_HELD + timedelta(days=1))
    # When a dispatcher reopens each through the API
    recent = site.api("POST", "/api/tickets/RECENT/actions", "disp", json={"action": "reopen",
                                                                         "explanation": "来电人反映未修好"})
    old = site.api("POST", "/api/tickets/OLD/actions", "disp", json={"action": "reopen",
                                                                   "explanation": "来电人反映未修好"})
    # Then the recent one is sent, the old one refused with the reason and what to do instead, and nothing sent
    assert recent.status_code == 202, recent.text
    assert old.status_code == 409 and "已关闭超过30天" in old.json()["message"] and "新工单" in old.json()["message"]
    assert [key for _, key, _ in site.publisher.sent] == ["RECENT"]
    rated = site.api("POST", "/api/tickets/OLD/actions", "disp", json={"action": "rate", "rating": "satisfied"})
    assert rated.status_code == 409
    # And the old ticket's page offers neither button
    site.login("disp")
    assert 'value="reopen"' in site.client.get("/tickets/RECENT").text
    page = site.client.get("/tickets/OLD").text
    assert 'value="reopen"' not in page and 'value="rate"' not in page
