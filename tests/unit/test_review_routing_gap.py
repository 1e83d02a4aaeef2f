"""Review of the moment right after a routing is published: the ledger tells the lifecycle which published
routing it has not applied yet (so a clerk's 签收 that overtakes the routing's announcement is not refused), and
the console's 第N次派发 counts dispatches to agencies, not routing attempts (which include the manual queue)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from models import ledger as t
from models.tickets import TicketIn
from streams.console import queries
from streams.db import Ledger, make_engine, upgrade
from tests.unit.test_console_views import Site, _site
from tests.unit.test_review_routing_intake import batch, ticket, world  # noqa: F401  (world: the fixture)

NOW = datetime.now(UTC)


def routed(ledger: Ledger, ticket_id: str, *routings: str | None, published: bool = True) -> None:
    """A ticket routed once per item of ``routings`` (an agency code, or None for the manual queue), each
    routing published (and mirrored on the ticket's row) unless ``published`` is false for the last one."""
    ledger.record_tickets([(TicketIn(id=ticket_id, text="饭店油烟扰民，晚上十点还在排烟", received_at=NOW),
                            None, None, None)])
    for attempt, agency in enumerate(routings, start=1):
        key = f"{ticket_id}#{attempt}"
        message = {"routing_id": key, "ticket_id": ticket_id, "attempt": attempt,
                   "decision": "auto" if agency else "manual", "agency": agency,
                   "routed_at": (NOW + timedelta(minutes=attempt)).isoformat()}
        ledger.record_decisions([{"decision_key": key, "ticket_id": ticket_id, "attempt": attempt,
                                  "decision": message["decision"], "agency": agency, "message": message,
                                  "decided_at": NOW + timedelta(minutes=attempt)}])
        if published or attempt < len(routings):
            ledger.mark_published([key])


def returned(ledger: Ledger, ticket_id: str, agency: str, n: int) -> None:
    """An accepted 退单 by ``agency`` (the ticket's row is left as its re-routing set it)."""
    with ledger.session() as s:
        s.add(t.TicketEvent(event_id=f"ret{n}:{ticket_id}", ticket_id=ticket_id, type="returned", actor="x",
                            agency=agency, occurred_at=NOW - timedelta(hours=n), accepted=True,
                            payload={"reason_code": "NOT_OUR_DUTY", "basis": "《某法》第十条"}, recorded_at=NOW))


# --- the routing the lifecycle has not applied yet --------------------------------------------------------------


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url)
    ledger = Ledger(make_engine(url))
    yield ledger
    ledger.dispose()


def test_the_ledger_names_the_published_routing_the_lifecycle_has_not_recorded(ledger: Ledger) -> None:
    # Given a ticket routed to the manual queue, then dispatched to BH-SCJG (both published)
    routed(ledger, "G1", None, "BH-SCJG")
    # Then a lifecycle that knows nothing of it is told of the first routing, one that applied it of the second
    assert ledger.unrecorded_routing("G1", 0)["routing_id"] == "G1#1"  # type: ignore[index]
    assert ledger.unrecorded_routing("G1", 1)["routing_id"] == "G1#2"  # type: ignore[index]
    assert ledger.unrecorded_routing("G1", 2) is None
    # And once the lifecycle recorded the first routing's event, a state without it does not bring it back
    ledger.record_events([{"event_id": "routed:G1#1", "ticket_id": "G1", "type": "routed", "actor": "router",
                           "agency": None, "occurred_at": NOW, "accepted": True, "reason": None, "payload": {}}])
    assert ledger.unrecorded_routing("G1", 0)["routing_id"] == "G1#2"  # type: ignore[index]


def test_a_decision_not_yet_published_is_not_named(ledger: Ledger) -> None:
    routed(ledger, "G2", "BH-SCJG", published=False)
    assert ledger.unrecorded_routing("G2", 0) is None and ledger.unrecorded_routing("NONE", 0) is None


# --- 第N次派发 --------------------------------------------------------------------------------------------------


def test_dispatches_count_the_routings_to_an_agency_up_to_the_current_attempt() -> None:
    def decision(attempt: int, agency: str | None) -> t.RoutingDecision:
        return t.RoutingDecision(decision_key=f"T#{attempt}", attempt=attempt, agency=agency)

    manual_then_dispatched = [decision(1, None), decision(2, "BH-SCJG")]
    assert queries.dispatch_count(manual_then_dispatched, 2) == 1  # its first dispatch, at attempt 2
    returned_twice = [decision(1, "BH-CGW"), decision(2, None), decision(3, "BH-SCJG"), decision(4, "BH-STHJ")]
    assert queries.dispatch_count(returned_twice, 3) == 2  # attempt 4 is decided, not landed yet


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from _site(tmp_path)


def badge(page: str, anchor: str) -> str | None:
    card = re.search(rf'<article class="card" id="{anchor}".*?</article>', page, re.S)
    assert card is not None, anchor
    found = re.search(r"第 (\d+) 次派发", card.group(0))
    return found.group(1) if found else None


def test_the_console_says_which_dispatch_to_an_agency_it_is(site: Site) -> None:
    # Given a ticket the router sent to the manual queue and a dispatcher then dispatched to BH-SCJG, and one
    # BH-CGW returned and the router re-routed to BH-SCJG
    routed(site.ledger, "FIRST001", None, "BH-SCJG")
    routed(site.ledger, "AGAIN001", "BH-CGW", "BH-SCJG")
    returned(site.ledger, "AGAIN001", "BH-CGW", 1)
    # And one returned by BH-CGW, re-routed to the manual queue, then dispatched to BH-SCJG by a dispatcher
    routed(site.ledger, "THIRD001", "BH-CGW", None, "BH-SCJG")
    returned(site.ledger, "THIRD001", "BH-CGW", 2)
    # When BH-SCJG opens its inbox
    site.login("scjg")
    inbox = site.client.get("/agency").text
    # Then the first is no "第 2 次派发": it is the first time an agency has it; the others are the second
    assert badge(inbox, "t-FIRST001") is None
    assert badge(inbox, "t-AGAIN001") == "2" and badge(inbox, "t-THIRD001") == "2"
    # And the ticket page counts dispatches, saying how many routings there were in all
    page = site.client.get("/tickets/FIRST001").text
    assert re.search(r'<dd id="dispatches">1<span class="muted">（共分拨 2 次，含转人工派单）</span></dd>', page)
    assert "第 2 次分拨" in page and "第 1 次分拨" in page
    # And the dispatchers' list of re-routed returns says the same as the agency's inbox
    site.login("disp")
    desk = site.client.get("/dispatcher").text
    assert badge(desk, "r-AGAIN001") == "2" and badge(desk, "r-THIRD001") == "2"


# --- an announcement lost between publication and announcing ----------------------------------------------------


def test_a_redelivered_ticket_whose_routing_was_never_announced_is_announced_again(
        world: SimpleNamespace) -> None:  # noqa: F811
    # Given T1 routed and published, and its announcement lost (the worker died before sending it, so its
    # offset was not committed either)
    batch(world, ticket("T1", "饭店油烟"))
    world.sent.clear()
    # When it is delivered again
    batch(world, ticket("T1", "饭店油烟"))
    # Then its routing is announced again (not published again: its queue has it)
    assert world.sent == [("tickets.events", b"T1")]
    # And once the lifecycle has recorded the routing, a redelivery announces nothing
    world.svc.ledger.record_events([{"event_id": "routed:T1#1", "ticket_id": "T1", "type": "routed",
                                     "actor": "router", "agency": "BH-STHJ", "occurred_at": NOW, "accepted": True,
                                     "reason": None, "payload": {}}])
    world.sent.clear()
    batch(world, ticket("T1", "饭店油烟"))
    assert world.sent == []
