"""Review of the console as its users meet it: the agency inbox offers no 退单 the console then refuses (after the
return window, like the ticket page), and the dispatcher's free-text field of a dispatch has a label."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from models.workcalendar import TZ
from tests.unit.test_console_return_window import dispatched
from tests.unit.test_console_views import Site, _site, tickets


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from _site(tmp_path)


def card_actions(page: str, ticket_id: str) -> set[str]:
    card = re.search(rf'<article class="card" id="t-{ticket_id}".*?</article>', page, re.S)
    assert card is not None, ticket_id
    return set(re.findall(r'name="action" value="([a-z-]+)"', card.group(0)))


def test_the_inbox_offers_no_return_after_the_window_like_the_ticket_page(site: Site) -> None:
    # Given a ticket dispatched to BH-SCJG (and signed) two weeks ago, and one a minute ago
    now = datetime.now(TZ)
    dispatched(site, "LATE0003", now - timedelta(days=14))
    dispatched(site, "NEW00003", now - timedelta(minutes=1))
    # When the agency opens its inbox
    site.login("scjg")
    page = site.client.get("/agency").text
    # Then the late one offers resolve but no return (which would only be refused), the new one still both
    assert "return" not in card_actions(page, "LATE0003") and "resolve" in card_actions(page, "LATE0003")
    assert {"return", "resolve"} <= card_actions(page, "NEW00003")
    # And the console does refuse the late return, so the button would have led to a refusal
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    r = site.client.post("/tickets/LATE0003/actions", data={
        "csrf": csrf, "action": "return", "reason_code": "NOT_OUR_DUTY", "basis": "《食品安全法》第六条",
        "next": "/agency"})
    assert "已超过退单时限" in r.text and site.publisher.sent == []


def test_every_field_of_a_dispatch_form_has_a_label(site: Site) -> None:
    tickets(site.ledger, 1, prefix="M", status="manual", agency=None)
    site.login("disp")
    page = site.client.get("/dispatcher").text
    form = re.search(r'<form[^>]*class="inline other".*?</form>', page, re.S)
    assert form is not None
    body = form.group(0)
    for field in re.findall(r'<(?:input|select|textarea)(?![^>]*type="hidden")[^>]*>', body):
        name = re.search(r'name="([^"]+)"', field).group(1)  # type: ignore[union-attr]
        assert re.search(rf'<label>[^<]*<(?:input|select)[^>]*name="{name}"', body) or "aria-label" in field, field
