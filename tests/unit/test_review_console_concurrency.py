"""People acting at the same time and on stale pages: a double click, a resubmitted form or a retried request is
one event (its id is the intent's), an action on a ticket that changed since the page was shown is refused with
what changed, and the person whose submitted action the lifecycle refused is told so on their next page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from models import ledger as t
from models.events import EVENT_CLASSES
from models.lifecycle import Refusal, Status, TicketState, apply
from models.tickets import TicketIn
from streams.console.accounts import add_user
from tests.unit.test_console_views import PASSWORD, Site, _site

AT = datetime(2025, 6, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from _site(tmp_path)


def ticket(site: Site, tid: str, status: str, agency: str | None) -> None:
    """A ticket as the worker leaves it: routed (attempt 1) to ``agency``, or to the manual queue."""
    site.ledger.record_tickets([(TicketIn(id=tid, text="超市卖过期食品，请查处。", received_at=AT), None, None, None)])
    site.ledger.record_events([{
        "event_id": f"routed:{tid}#1", "ticket_id": tid, "type": "routed", "actor": "router", "agency": agency,
        "occurred_at": AT, "accepted": True, "reason": None, "payload": {"type": "routed"}, "status": status,
        "current_agency": agency}])
    with site.ledger.session() as s:
        tk = s.get(t.Ticket, tid)
        tk.status, tk.current_agency, tk.attempt = status, agency, 1


def worker_records(site: Site, event: dict[str, Any], *, accepted: bool = True, reason: str | None = None,
                   status: str | None = None, agency: str | None = None) -> None:
    """What the lifecycle stage writes for an event it took off tickets.events."""
    site.ledger.record_events([{
        "event_id": event["event_id"], "ticket_id": event["ticket_id"], "type": event["type"],
        "actor": event["actor"], "agency": event.get("agency"), "occurred_at": AT + timedelta(minutes=5),
        "accepted": accepted, "reason": reason, "payload": event, "status": status, "current_agency": agency}])


def sent(site: Site) -> list[dict[str, Any]]:
    return [json.loads(value) for _, _, value in site.publisher.sent]


def form_of(site: Site, page: str, action: str, **fields: str) -> dict[str, str]:
    """The hidden fields of ``action``'s form as ``page`` renders it now, plus ``fields``."""
    html = site.client.get(page).text
    start = html.index(f'name="action" value="{action}"')
    chunk = html[html.rindex("<form", 0, start):html.index("</form>", start)]
    hidden = dict(re.findall(r'<input type="hidden" name="([a-z]+)" value="([^"]*)"', chunk))
    return {**hidden, **fields}


def flashes(site: Site, page: str) -> list[str]:
    return re.findall(r'class="flash flash-\w+"[^>]*>([^<]*)<', site.client.get(page).text)


def test_a_double_click_sends_one_event_and_a_later_resubmission_is_not_sent_again(site: Site) -> None:
    # Given a ticket dispatched to the agency, whose ticket page has a 签收 button
    ticket(site, "DBL00001", "dispatched", "BH-SCJG")
    site.login("scjg")
    sign = form_of(site, "/tickets/DBL00001", "sign")
    # When the button is clicked twice before the worker has recorded anything
    for _ in range(2):
        assert site.client.post("/tickets/DBL00001/actions", data=sign, follow_redirects=False).status_code == 303
    # Then both submissions are the same event (the lifecycle keeps it once; the ledger has one row)
    first, second = sent(site)
    assert first["event_id"] == second["event_id"]
    # And once the worker has recorded it, the same form submitted again (back button, a slow response) is
    # answered from the ledger: nothing is sent, and the user is told it was done
    worker_records(site, first, status="signed", agency="BH-SCJG")
    site.client.post("/tickets/DBL00001/actions", data=sign, follow_redirects=False)
    assert len(site.publisher.sent) == 2
    assert any("此前已提交并记录" in f for f in flashes(site, "/tickets/DBL00001"))


def test_the_api_answers_a_retried_request_with_the_recorded_event(site: Site) -> None:
    ticket(site, "DBL00002", "dispatched", "BH-SCJG")
    version = site.api("GET", "/api/tickets/DBL00002", "scjg").json()["updated_at"]
    body = {"action": "sign", "version": version}
    r1 = site.api("POST", "/api/tickets/DBL00002/actions", "scjg", json=body)
    assert r1.status_code == 202 and r1.json()["duplicate"] is False
    worker_records(site, sent(site)[0], status="signed", agency="BH-SCJG")
    r2 = site.api("POST", "/api/tickets/DBL00002/actions", "scjg", json=body)  # the client timed out and retried
    assert r2.status_code == 202 and r2.json() == {**r1.json(), "duplicate": True}
    assert len(site.publisher.sent) == 1


def test_a_new_intent_is_a_new_event(site: Site) -> None:
    # Two dispatchers, two choices, the same user's other choice: each its own event
    ticket(site, "NEW00001", "manual", None)
    add_user(site.ledger, "disp2", "dispatcher", PASSWORD)
    site.login("disp")
    to_scjg = form_of(site, "/tickets/NEW00001", "reassign", to="BH-SCJG")
    site.client.post("/tickets/NEW00001/actions", data=to_scjg, follow_redirects=False)
    site.client.post("/tickets/NEW00001/actions", data={**to_scjg, "to": "BH-STHJ"}, follow_redirects=False)
    site.login("disp2")
    site.client.post("/tickets/NEW00001/actions", data=form_of(site, "/tickets/NEW00001", "reassign", to="BH-SCJG"),
                     follow_redirects=False)
    assert len({e["event_id"] for e in sent(site)}) == 3


def test_a_dispatch_from_a_stale_page_is_refused_not_applied_to_the_new_handler(site: Site) -> None:
    # Given dispatcher 2's page of a manual ticket, open while dispatcher 1 dispatches it to BH-SCJG
    ticket(site, "STL00001", "manual", None)
    add_user(site.ledger, "disp2", "dispatcher", PASSWORD)
    site.login("disp2")
    stale = form_of(site, "/tickets/STL00001", "reassign", to="BH-STHJ")
    with site.ledger.session() as s:  # dispatcher 1's dispatch landed: the ledger mirrors attempt 2
        tk = s.get(t.Ticket, "STL00001")
        tk.status, tk.current_agency, tk.attempt = "dispatched", "BH-SCJG", 2
    # When dispatcher 2 submits the old page's dispatch
    r = site.client.post("/tickets/STL00001/actions", data=stale, follow_redirects=False)
    # Then nothing is sent (it would have moved the ticket away from BH-SCJG), and they are told why
    assert r.status_code == 303 and site.publisher.sent == []
    (message,) = flashes(site, "/tickets/STL00001")
    assert "已有新的办理记录" in message and "BH-SCJG" in message and "刷新" in message
    # And the API says the same with a 409 for a version that is not the ticket's any more
    r = site.api("POST", "/api/tickets/STL00001/actions", "disp",
                 json={"action": "reassign", "to": "BH-STHJ", "version": stale["version"]})
    assert r.status_code == 409 and r.json()["error"] == "stale"
    assert site.publisher.sent == []


def test_an_extension_decision_from_a_stale_page_does_not_decide_a_newer_request(site: Site) -> None:
    # Given a supervisor's page showing an extension request, since denied and asked again by the agency
    ticket(site, "EXT00001", "signed", "BH-SCJG")
    ask = {"event_id": "ask-1", "ticket_id": "EXT00001", "type": "extension_requested", "actor": "scjg",
           "agency": "BH-SCJG", "days": 3, "explanation": "需现场核查"}
    worker_records(site, ask, status="signed", agency="BH-SCJG")
    site.login("boss")
    approve = form_of(site, "/tickets/EXT00001", "approve-extension")
    worker_records(site, {**ask, "event_id": "deny-1", "type": "extension_denied", "actor": "disp"},
                   status="signed", agency="BH-SCJG")
    worker_records(site, {**ask, "event_id": "ask-2", "days": 30}, status="signed", agency="BH-SCJG")
    # When the supervisor approves from the old page
    site.client.post("/tickets/EXT00001/actions", data=approve, follow_redirects=False)
    # Then the 30-day request they never saw is not approved
    assert site.publisher.sent == []


def test_the_actor_is_told_when_the_lifecycle_refused_what_the_console_accepted(site: Site) -> None:
    # Given two dispatchers dispatching the same manual ticket at the same moment: both were told "已提交"
    ticket(site, "RAC00001", "manual", None)
    site.login("disp")
    r = site.client.post("/tickets/RAC00001/actions", follow_redirects=False,
                         data=form_of(site, "/tickets/RAC00001", "reassign", to="BH-STHJ", next="/dispatcher"))
    assert r.headers["location"] == "/dispatcher"
    assert any("已提交" in f for f in flashes(site, "/dispatcher"))
    # When the lifecycle refuses this one (the other dispatcher's dispatch was first)
    worker_records(site, sent(site)[0], accepted=False,
                   reason="dispatch attempt 2 of RAC00001 (to BH-SCJG) has not landed yet; reassign once it has")
    # Then the next page this dispatcher opens says so, once
    (message,) = flashes(site, "/dispatcher")
    assert "RAC00001" in message and "未被系统受理" in message and "BH-SCJG" in message
    assert flashes(site, "/dispatcher") == []


def test_the_actor_is_told_the_refusal_in_chinese_and_the_timeline_keeps_both(site: Site) -> None:
    # Given a dispatcher's dispatch the lifecycle refused, with its reason as the lifecycle words it
    ticket(site, "RAC00002", "manual", None)
    site.login("disp")
    form = form_of(site, "/tickets/RAC00002", "reassign", to="BH-STHJ", next="/dispatcher")
    site.client.post("/tickets/RAC00002/actions", data=form, follow_redirects=False)
    flashes(site, "/dispatcher")  # 已提交
    event = sent(site)[0]
    pending = TicketState("RAC00002", status=Status.MANUAL, attempt=1, pending="dispatch", pending_agency="BH-SCJG")
    refusal = apply(pending, EVENT_CLASSES["reassigned"](**{**event, "occurred_at": AT}), known_agencies=())
    assert isinstance(refusal, Refusal)
    worker_records(site, event, accepted=False, reason=refusal.reason)
    # Then the message to the dispatcher says it in Chinese, without the English for the logs
    (message,) = flashes(site, "/dispatcher")
    # (on the manual queue since its first routing: the pending dispatch is its first to an agency)
    assert "工单的第 1 次派发（派往 BH-SCJG）尚未完成" in message and "has not landed" not in message
    # And the same action sent again (same page version) is answered so too; the timeline shows the whole reason
    r = site.api("POST", "/api/tickets/RAC00002/actions", "disp",
                 json={"action": "reassign", "to": "BH-STHJ", "version": form["version"]})
    assert r.status_code == 409 and r.json()["error"] == "refused"
    assert "尚未完成" in r.json()["message"] and "has not landed" not in r.json()["message"]
    page = site.client.get("/tickets/RAC00002").text
    assert "尚未完成" in page and "has not landed yet" in page


def test_a_second_message_before_the_page_is_shown_is_not_lost(site: Site) -> None:
    # A double click: the first response's "已提交" is not shown yet when the second one's answer comes
    ticket(site, "MSG00001", "dispatched", "BH-SCJG")
    site.login("scjg")
    sign = form_of(site, "/tickets/MSG00001", "sign")
    site.client.post("/tickets/MSG00001/actions", data=sign, follow_redirects=False)
    site.client.post("/tickets/MSG00001/actions", data={**sign, "action": "resolve"}, follow_redirects=False)
    shown = flashes(site, "/tickets/MSG00001")
    assert len(shown) == 2 and "已提交" in shown[0] and "不能办结" in shown[1]
