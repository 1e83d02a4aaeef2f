"""The console's pages and API on a SQLite ledger with a recording publisher (no broker): what a dispatcher or
supervisor sees of the caller's number, the counts above capped lists, the supervisor's drill-down of a busy
agency, intake on the deployment's clock, and the ticket list's status filter."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from config.catalogue import load_catalogue
from config.settings import Settings
from models import ledger as t
from models.workcalendar import TZ
from streams.console import create_app, queries
from streams.console.accounts import add_user, issue_token
from streams.db import Ledger, make_engine, upgrade

PHONE = "13812345678"
PASSWORD = "s3cret-pass"
BASE = datetime(2025, 1, 1, tzinfo=UTC)


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, bytes]] = []

    def send(self, topic: str, key: str, value: bytes) -> None:
        self.sent.append((topic, key, value))

    def close(self) -> None:
        pass


@dataclass
class Site:
    client: TestClient
    ledger: Ledger
    publisher: RecordingPublisher
    tokens: dict[str, str]

    def api(self, method: str, path: str, user: str, **kwargs: Any) -> Any:
        return self.client.request(method, path, headers={"Authorization": f"Bearer {self.tokens[user]}"}, **kwargs)

    def login(self, username: str) -> None:
        self.client.cookies.clear()
        csrf = re.search(r'name="csrf" value="([^"]+)"', self.client.get("/login").text).group(1)  # type: ignore[union-attr]
        r = self.client.post("/login", data={"username": username, "password": PASSWORD, "csrf": csrf},
                             follow_redirects=False)
        assert r.status_code == 303


def _site(tmp_path: Path, **settings: Any) -> Iterator[Site]:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url)
    ledger = Ledger(make_engine(url))
    catalogue = load_catalogue()
    for name, role, agency in [("scjg", "agency", "BH-SCJG"), ("disp", "dispatcher", None),
                               ("boss", "supervisor", None)]:
        add_user(ledger, name, role, PASSWORD, agency=agency, catalogue=catalogue)
    publisher = RecordingPublisher()
    app = create_app(Settings(data_dir=tmp_path / "data", database_url=url, **settings), ledger=ledger,
                     catalogue=catalogue, publisher=publisher)  # type: ignore[arg-type]
    with TestClient(app) as client:
        yield Site(client, ledger, publisher, {n: issue_token(ledger, n) for n in ("scjg", "disp", "boss")})
    ledger.dispose()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from _site(tmp_path)


def tickets(ledger: Ledger, n: int, *, prefix: str, status: str, agency: str | None, text: str = "x") -> None:
    """``n`` tickets as the worker leaves them (ids and received times growing together)."""
    rows = [{"id": f"{prefix}{i:06d}", "received_at": BASE + timedelta(minutes=i), "text": text, "status": status,
             "current_agency": agency, "attempt": 1, "first_seen_at": BASE, "updated_at": BASE} for i in range(n)]
    with ledger.session() as s:
        s.execute(t.Ticket.__table__.insert(), rows)


def test_dispatchers_and_supervisors_see_a_return_without_the_callers_number(site: Site) -> None:
    tickets(site.ledger, 1, prefix="M", status="returned", agency=None)
    site.ledger.record_event(
        event_id="ret-1", ticket_id="M000000", type="returned", actor="scjg", agency="BH-SCJG",
        occurred_at=datetime.now(UTC), accepted=True, reason=None,
        payload={"reason_code": "NOT_OUR_DUTY", "basis": f"经联系来电人{PHONE}核实，依据某法第一条",
                 "explanation": f"已电话联系{PHONE}，属环保职责"})
    with site.ledger.session() as s:  # re-routed to another agency since
        tk = s.get(t.Ticket, "M000000")
        assert tk is not None
        tk.status, tk.current_agency, tk.attempt = "dispatched", "BH-STHJ", 2
    for user in ("disp", "boss"):
        site.login(user)
        dispatcher_page, ticket_page = site.client.get("/dispatcher").text, site.client.get("/tickets/M000000").text
        assert "138****5678" in dispatcher_page and PHONE not in dispatcher_page
        assert "138****5678" in ticket_page and PHONE not in ticket_page


def test_queue_counts_are_not_capped_by_the_cards_listed(site: Site) -> None:
    tickets(site.ledger, 150, prefix="P", status="dispatched", agency="BH-SCJG")
    tickets(site.ledger, 130, prefix="Q", status="manual", agency=None)
    site.login("scjg")
    assert re.search(r'id="count-pending">150<', site.client.get("/agency").text)
    site.login("disp")
    assert re.search(r'id="count-manual">130<', site.client.get("/dispatcher").text)


def test_the_drill_down_of_a_busy_agency_starts_with_its_newest_tickets(site: Site) -> None:
    tickets(site.ledger, 5100, prefix="2025", status="dispatched", agency="BH-CGW")
    cards = queries.agency_tickets(site.ledger, "BH-CGW", limit=3)
    assert [c.ticket.id for c in cards] == ["2025005099", "2025005098", "2025005097"]


def test_http_intake_stamps_a_missing_received_at_on_the_deployments_clock(tmp_path: Path) -> None:
    origin = datetime(2025, 6, 2, 9, 0, tzinfo=TZ)
    for site in _site(tmp_path, clock_origin=origin, clock_speed=60.0):
        r = site.api("POST", "/api/tickets", "disp", json={"id": "C1", "text": "路灯不亮好几天了"})
        assert r.status_code == 202, r.text
        received_at = datetime.fromisoformat(json.loads(site.publisher.sent[-1][2])["received_at"])
        assert abs(received_at - origin) < timedelta(hours=1)  # the simulated "now", not the wall clock


def test_the_ticket_list_refuses_a_status_it_does_not_know(site: Site) -> None:
    tickets(site.ledger, 1, prefix="D", status="dispatched", agency="BH-SCJG")
    assert [tk["id"] for tk in site.api("GET", "/api/tickets?status=dispatched", "boss").json()] == ["D000000"]
    r = site.api("GET", "/api/tickets?status=pending", "boss")
    assert r.status_code == 400 and "dispatched" in r.json()["message"]
