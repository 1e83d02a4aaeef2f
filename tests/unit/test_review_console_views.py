"""Review findings on the console's pages and API: a forged non-ASCII CSRF token is refused (403, not a 500),
a log-in after an expired session returns to the same filtered view, and an agency member whose user names no
agency sees no alerts or figures rather than every agency's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from config.catalogue import load_catalogue
from config.settings import Settings
from models import ledger as t
from streams.console import create_app
from streams.console.accounts import add_user, issue_token
from streams.db import Ledger, make_engine, upgrade
from tests.unit.test_console_views import RecordingPublisher

PASSWORD = "s3cret-pass"
NOW = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass
class Site:
    client: TestClient
    ledger: Ledger

    def csrf(self, path: str = "/login") -> str:
        return re.search(r'name="csrf" value="([^"]+)"', self.client.get(path).text).group(1)  # type: ignore[union-attr]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url)
    ledger = Ledger(make_engine(url))
    catalogue = load_catalogue()
    for name, role, agency in [("scjg", "agency", "BH-SCJG"), ("boss", "supervisor", None)]:
        add_user(ledger, name, role, PASSWORD, agency=agency, catalogue=catalogue)
    with ledger.session() as s:
        s.add(t.Ticket(id="T1", received_at=NOW, text="x", status="dispatched", current_agency="BH-STHJ", attempt=1,
                       first_seen_at=NOW, updated_at=NOW))
        s.add(t.Alert(alert_key="a1", rule="sign_deadline", level="overdue", severity="critical", ticket_id="T1",
                      agency="BH-STHJ", message="逾期未签收", raised_at=NOW))
    app = create_app(Settings(data_dir=tmp_path / "data", database_url=url), ledger=ledger, catalogue=catalogue,
                     publisher=RecordingPublisher())  # type: ignore[arg-type]
    with TestClient(app) as client:
        yield Site(client, ledger)
    ledger.dispose()


def test_a_non_ascii_csrf_token_is_refused_like_any_wrong_one(site: Site) -> None:
    site.csrf()
    r = site.client.post("/login", data={"username": "boss", "password": PASSWORD, "csrf": "令牌"},
                         follow_redirects=False)
    assert r.status_code == 403 and "安全校验未通过" in r.text
    token = site.csrf()
    site.client.post("/login", data={"username": "boss", "password": PASSWORD, "csrf": token}, follow_redirects=False)
    for path, data in (("/tickets/T1/actions", {"action": "reopen"}), ("/logout", {})):
        assert site.client.post(path, data={**data, "csrf": "é"}, follow_redirects=False).status_code == 403, path


def test_logging_in_again_returns_to_the_same_filtered_page(site: Site) -> None:
    r = site.client.get("/supervisor?period=7", follow_redirects=False)
    assert r.status_code == 303
    login_page = site.client.get(r.headers["location"]).text
    next_url = re.search(r'name="next" value="([^"]*)"', login_page).group(1)  # type: ignore[union-attr]
    r = site.client.post("/login", data={"username": "boss", "password": PASSWORD, "csrf": site.csrf(),
                                         "next": next_url}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/supervisor?period=7"


def test_an_agency_member_without_an_agency_sees_no_agencys_alerts_or_figures(site: Site) -> None:
    add_user(site.ledger, "orphan", "agency", PASSWORD, agency="BH-SCJG")
    with site.ledger.session() as s:  # as a hand-edited users table could leave it
        user = s.scalar(select(t.User).where(t.User.username == "orphan"))
        assert user is not None
        user.agency = None
    headers = {"Authorization": f"Bearer {issue_token(site.ledger, 'orphan')}"}
    get: Any = lambda path: site.client.get(path, headers=headers)  # noqa: E731
    assert get("/api/tickets").json() == []
    assert get("/api/alerts").json() == []
    assert get("/api/figures").json()["agencies"] == []
    boss = {"Authorization": f"Bearer {issue_token(site.ledger, 'boss')}"}
    assert len(site.client.get("/api/alerts", headers=boss).json()) == 1
