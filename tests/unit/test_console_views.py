"""The console's pages and API on a SQLite ledger with a recording publisher (no broker): what a dispatcher or
supervisor sees of the caller's number, the counts above capped lists, the supervisor's drill-down of a busy
agency, intake on the deployment's clock, the ticket list's status filter and its pages, another agency's
ticket answered like a missing one, sessions and tokens ended by a new password or disabling, and the
throttle on failed log-ins."""

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
from sqlalchemy import select

from config.catalogue import load_catalogue
from config.settings import Settings
from models import ledger as t
from models.workcalendar import TZ
from streams.console import create_app, queries
from streams.console.accounts import LoginThrottle, add_user, issue_token, set_active, set_password
from streams.console.api import encode_cursor
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


def _site(tmp_path: Path, url: str | None = None, **settings: Any) -> Iterator[Site]:
    """The console on a new SQLite ledger, or on ``url`` (a migrated, empty one: the ``database_url`` fixture)."""
    url = url or f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
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


def test_http_intake_refuses_a_ticket_received_later_than_the_deployments_now(tmp_path: Path) -> None:
    # Given the deployment's clock at 2025-06-02 09:00 (60x: 5 real minutes of allowed skew are 5 simulated hours)
    origin = datetime(2025, 6, 2, 9, 0, tzinfo=TZ)
    for site in _site(tmp_path, clock_origin=origin, clock_speed=60.0):
        # When the platform sends a ticket received a year later ("2026" for "2025"), then one an hour ahead
        r = site.api("POST", "/api/tickets", "disp",
                     json={"id": "F1", "text": "路灯不亮好几天了", "received_at": "2026-06-02T08:55:00+08:00"})
        ok = site.api("POST", "/api/tickets", "disp",
                      json={"id": "F2", "text": "路灯不亮好几天了", "received_at": "2025-06-02T10:00:00+08:00"})
        # Then the first is a 400 saying why, recorded in the ledger and dead-lettered; the second is accepted
        assert r.status_code == 400 and "受理时间晚于当前时间" in r.json()["message"], r.text
        assert [(x.key, x.source) for x in site.ledger.rejections(10)] == [("F1", "http")]
        assert [(topic, key) for topic, key, _ in site.publisher.sent] == [("tickets.invalid", "F1"),
                                                                          ("tickets.received", "F2")]
        assert ok.status_code == 202, ok.text


def test_a_complex_case_is_marked_on_the_agencys_card_the_ticket_page_and_in_the_api(site: Site) -> None:
    tickets(site.ledger, 2, prefix="X", status="dispatched", agency="BH-SCJG")
    with site.ledger.session() as s:
        s.get(t.Ticket, "X000001").complex_case = True  # type: ignore[union-attr]
    site.login("scjg")
    inbox = site.client.get("/agency").text
    assert inbox.count("复杂件") == 1
    assert "时限按复杂件计" in site.client.get("/tickets/X000001").text
    assert "复杂件" not in site.client.get("/tickets/X000000").text
    assert site.api("GET", "/api/tickets/X000001", "scjg").json()["complex_case"] is True


def test_a_designated_ticket_gets_the_routers_earlier_suggestions(site: Site) -> None:
    # Given a ticket the router sent to BH-STHJ (油烟), returned three times and now waiting for designation
    tickets(site.ledger, 1, prefix="D", status="manual", agency=None)
    with site.ledger.session() as s:
        tk = s.get(t.Ticket, "D000000")
        assert tk is not None
        tk.attempt = 4
        first = {"routing_id": "D000000#1", "decision": "auto", "matter": "HB-001", "agency": "BH-STHJ",
                 "confidence": 0.81, "alternatives": [{"matter": "HB-001", "agency": "BH-CGW", "confidence": 0.1}]}
        designation = {"routing_id": "D000000#4", "decision": "designated", "matter": None, "agency": None,
                       "alternatives": []}
        for attempt, message in ((1, first), (4, designation)):
            s.add(t.RoutingDecision(decision_key=f"D000000#{attempt}", ticket_id="D000000", attempt=attempt,
                                    decision=message["decision"], matter=message["matter"],
                                    agency=message["agency"], message=message))
    # When a dispatcher opens the queue
    site.login("disp")
    page = site.client.get("/dispatcher").text
    # Then the designation is shown with the router's earlier candidates to choose from, not an empty list
    assert 'data-dispatch="BH-STHJ"' in page and "分类器没有可用的建议" not in page


def test_the_ticket_list_refuses_a_status_it_does_not_know(site: Site) -> None:
    tickets(site.ledger, 1, prefix="D", status="dispatched", agency="BH-SCJG")
    assert [tk["id"] for tk in site.api("GET", "/api/tickets?status=dispatched", "boss").json()] == ["D000000"]
    r = site.api("GET", "/api/tickets?status=pending", "boss")
    assert r.status_code == 400 and "dispatched" in r.json()["message"]


def next_link(response: Any) -> str | None:
    link = response.headers.get("link")
    if link is None:
        return None
    m = re.fullmatch(r'<([^>]+)>; rel="next"', link)
    assert m, link
    return m.group(1)


def all_pages(site: Site, user: str, path: str) -> tuple[list[str], int]:
    """Every ticket id the list gives ``user``, following the Link headers; and how many pages it took."""
    ids: list[str] = []
    pages = 0
    url: str | None = path
    while url is not None:
        r = site.api("GET", url, user)
        assert r.status_code == 200, r.text
        ids += [tk["id"] for tk in r.json()]
        pages += 1
        url = next_link(r)
        assert pages < 100
    return ids, pages


def test_the_ticket_list_pages_through_everything_once_and_an_agency_only_its_own(site: Site) -> None:
    same = BASE + timedelta(hours=1)
    rows = [{"id": f"S{i:02d}", "received_at": same, "text": "x", "status": "dispatched",
             "current_agency": "BH-SCJG" if i % 3 else "BH-STHJ", "attempt": 1, "first_seen_at": BASE,
             "updated_at": BASE} for i in range(20)]  # twenty received in the same instant, two agencies
    with site.ledger.session() as s:
        s.execute(t.Ticket.__table__.insert(), rows)
    tickets(site.ledger, 7, prefix="A", status="dispatched", agency="BH-SCJG")  # older ones
    tickets(site.ledger, 5, prefix="B", status="signed", agency="BH-SCJG")
    tickets(site.ledger, 6, prefix="C", status="dispatched", agency="BH-STHJ")
    with site.ledger.session() as s:
        everything = [(tk.received_at, tk.id, tk.current_agency, tk.status) for tk in s.scalars(select(t.Ticket))]
    newest_first = [tid for _, tid, _, _ in sorted(everything, reverse=True)]
    ours = [tid for at, tid, agency, _ in sorted(everything, reverse=True) if agency == "BH-SCJG"]

    # An agency: every one of its tickets, newest first, none twice, none of another agency's, page after page
    ids, pages = all_pages(site, "scjg", "/api/tickets?limit=4")
    assert ids == ours and pages == -(-len(ours) // 4)
    # The supervisor: everything; a page size that cuts inside the tickets sharing a received_at
    ids, _ = all_pages(site, "boss", "/api/tickets?limit=3")
    assert ids == newest_first
    # The status filter stays on the next pages
    ids, _ = all_pages(site, "scjg", "/api/tickets?status=dispatched&limit=2")
    assert ids == [tid for at, tid, agency, status in sorted(everything, reverse=True)
                   if agency == "BH-SCJG" and status == "dispatched"]
    # Within the limit: one page, no Link; the old shape, a plain list with the same fields
    r = site.api("GET", "/api/tickets", "scjg")
    assert "link" not in r.headers and [tk["id"] for tk in r.json()] == ours
    assert set(r.json()[0]) >= {"id", "status", "current_agency", "received_at", "text", "caller_phone"}
    # A cursor positioned on another agency's ticket shows still only the agency's own
    theirs = next(tk for tk in sorted(everything, reverse=True) if tk[2] == "BH-STHJ")
    r = site.api("GET", f"/api/tickets?before={encode_cursor(theirs[0], theirs[1])}", "scjg")
    assert r.status_code == 200 and r.json() and {tk["current_agency"] for tk in r.json()} == {"BH-SCJG"}


@pytest.mark.parametrize("cursor", ["!!!", "e25vcGU", "WzEsMl0", "x" * 201])
def test_a_malformed_cursor_is_a_400_with_the_reason(site: Site, cursor: str) -> None:
    r = site.api("GET", "/api/tickets", "scjg", params={"before": cursor})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["error"] in ("invalid_cursor", "invalid_request") and "before" in body["message"]
    assert body["reasons"]


def test_another_agencys_ticket_is_answered_like_a_missing_one(site: Site) -> None:
    tickets(site.ledger, 1, prefix="OTHER", status="dispatched", agency="BH-STHJ")
    tickets(site.ledger, 1, prefix="MINE", status="dispatched", agency="BH-SCJG")
    foreign, missing = site.api("GET", "/api/tickets/OTHER000000", "scjg"), site.api("GET", "/api/tickets/NONE1", "scjg")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["error"] == missing.json()["error"] == "not_found"
    assert foreign.json()["message"].replace("OTHER000000", "<id>") == missing.json()["message"].replace("NONE1", "<id>")
    r = site.api("POST", "/api/tickets/OTHER000000/actions", "scjg", json={"action": "sign"})
    assert r.status_code == 404 and r.json()["message"] == foreign.json()["message"]
    assert site.api("GET", "/api/tickets/OTHER000000", "disp").status_code == 200  # dispatchers see every ticket
    assert site.api("GET", "/api/tickets/MINE000000", "scjg").status_code == 200
    # The pages alike: a 404 page, and a form post on it is not turned into a flash and a redirect
    site.login("scjg")
    page = site.client.get("/tickets/OTHER000000")
    assert page.status_code == 404 and "未派给本单位" in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', site.client.get("/agency").text).group(1)  # type: ignore[union-attr]
    r = site.client.post("/tickets/OTHER000000/actions", data={"csrf": csrf, "action": "sign"}, follow_redirects=False)
    assert r.status_code == 404 and site.publisher.sent == []


def test_a_new_password_or_disabling_ends_sessions_and_revokes_tokens(site: Site) -> None:
    site.login("scjg")
    assert site.client.get("/agency").status_code == 200
    stolen = dict(site.client.cookies)
    assert site.api("GET", "/api/me", "scjg").status_code == 200

    assert set_password(site.ledger, "scjg", "new-pass-123") == 1  # its one token
    assert site.client.get("/agency", follow_redirects=False).status_code == 303  # the session is over
    site.client.cookies.clear()
    site.client.cookies.update(stolen)
    assert site.client.get("/agency", follow_redirects=False).headers["location"].startswith("/login")
    assert site.api("GET", "/api/me", "scjg").status_code == 401

    # Logging in again with the new password works, and a new token does
    site.client.cookies.clear()
    csrf = re.search(r'name="csrf" value="([^"]+)"', site.client.get("/login").text).group(1)  # type: ignore[union-attr]
    r = site.client.post("/login", data={"username": "scjg", "password": "new-pass-123", "csrf": csrf},
                         follow_redirects=False)
    assert r.status_code == 303 and site.client.get("/agency").status_code == 200
    site.tokens["scjg"] = issue_token(site.ledger, "scjg")
    assert site.api("GET", "/api/me", "scjg").status_code == 200

    # Disabling ends that session and revokes the token for good: enabling again revives neither
    before = dict(site.client.cookies)
    assert set_active(site.ledger, "scjg", False) == 1
    set_active(site.ledger, "scjg", True)
    site.client.cookies.clear()
    site.client.cookies.update(before)
    assert site.client.get("/agency", follow_redirects=False).status_code == 303
    assert site.api("GET", "/api/me", "scjg").status_code == 401
    # other users' sessions are untouched
    site.login("boss")
    set_password(site.ledger, "scjg", "another-pass-1")
    assert site.client.get("/supervisor").status_code == 200


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_repeated_failed_logins_are_refused_for_a_while(site: Site) -> None:
    clock = Clock()
    site.client.app.state.console.login_throttle = LoginThrottle(max_failures=3, window_s=600, lockout_s=900,  # type: ignore[attr-defined]
                                                                 clock=clock)

    def attempt(username: str, password: str) -> Any:
        site.client.cookies.clear()
        csrf = re.search(r'name="csrf" value="([^"]+)"', site.client.get("/login").text).group(1)  # type: ignore[union-attr]
        return site.client.post("/login", data={"username": username, "password": password, "csrf": csrf},
                                follow_redirects=False)

    assert attempt("scjg", "wrong-1").status_code == 401 and attempt("SCJG", "wrong-2").status_code == 401
    r = attempt("scjg", "wrong-3")
    assert r.status_code == 429 and "15 分钟后再试" in r.text and r.headers["retry-after"] == "900"
    r = attempt("scjg", PASSWORD)  # the right password too, while locked
    assert r.status_code == 429 and "登录失败次数过多" in r.text
    assert attempt("disp", PASSWORD).status_code == 303  # other names are not affected
    assert site.api("GET", "/api/me", "scjg").status_code == 200  # nor the user's API tokens
    clock.t += 900
    assert attempt("scjg", PASSWORD).status_code == 303
    # a success forgets the earlier failures
    assert attempt("scjg", "wrong-1").status_code == 401 and attempt("scjg", "wrong-2").status_code == 401
    assert attempt("scjg", PASSWORD).status_code == 303
    assert attempt("scjg", "wrong-3").status_code == 401


def test_the_users_cli_says_what_a_password_change_or_disabling_ended(site: Site, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from streams.cli import app as cli

    env = {"HOTLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite3'}", "HOTLINE_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    r = runner.invoke(cli, ["users", "password", "scjg", "--password-stdin"], input="new-pass-123\n", env=env)
    assert r.exit_code == 0 and "sessions ended, 1 API token(s) revoked" in r.output, r.output
    assert site.api("GET", "/api/me", "scjg").status_code == 401
    r = runner.invoke(cli, ["users", "disable", "disp"], env=env)
    assert r.exit_code == 0 and "disabled: console sessions ended, 1 API token(s) revoked" in r.output, r.output
    r = runner.invoke(cli, ["users", "disable", "disp", "--enable"], env=env)
    assert r.exit_code == 0 and site.api("GET", "/api/me", "disp").status_code == 401  # still revoked


def test_a_console_left_running_after_a_newer_versions_upgrade_stops_serving(site: Site, monkeypatch) -> None:
    from sqlalchemy import text

    from streams.console import service

    monkeypatch.setattr(service, "SCHEMA_CHECK_SECONDS", 0.0)  # look at every request
    site.login("boss")
    assert site.client.get("/supervisor").status_code == 200
    # Given a newer version's `hotline db upgrade` while this console runs
    with site.ledger.session() as s:
        head = s.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        s.execute(text("UPDATE alembic_version SET version_num = 'ffff_newer'"))
    # Then pages, the API and the health probe say so, and nothing is served the old way
    page = site.client.get("/supervisor")
    assert page.status_code == 503 and "请管理员以新版本重启控制台" in page.text
    r = site.api("GET", "/api/tickets", "boss")
    assert r.status_code == 503 and r.json()["error"] == "schema_moved" and "ffff_newer" in r.json()["message"]
    assert site.client.get("/healthz").status_code == 503
    # and when the ledger is back at this code's revision (the upgrade taken back), it serves again
    with site.ledger.session() as s:
        s.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    assert site.client.get("/supervisor").status_code == 200


def test_a_write_right_after_a_newer_versions_upgrade_is_refused_without_waiting_for_the_next_look(
        site: Site) -> None:
    from sqlalchemy import text

    # Given a console that looked at the revision a moment ago (it looks every SCHEMA_CHECK_SECONDS, 10 s)
    site.login("boss")
    assert site.client.get("/supervisor").status_code == 200
    # When a newer version's `hotline db upgrade` lands within those seconds
    with site.ledger.session() as s:
        s.execute(text("UPDATE alembic_version SET version_num = 'ffff_newer'"))
    # Then a request that writes (here a ticket over the API: a refused one is recorded in the ledger) is refused
    # at once; before, it was served the old way until the next look
    r = site.api("POST", "/api/tickets", "boss", json={"id": "T-NEW", "text": "路灯坏了"})
    assert r.status_code == 503 and r.json()["error"] == "schema_moved"
    # and so is every page once it has looked
    assert site.client.get("/supervisor").status_code == 503
