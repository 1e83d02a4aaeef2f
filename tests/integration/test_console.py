"""The web console and HTTP API against real ledgers (SQLite and PostgreSQL) and the session's broker:
access control (tokens, sessions, agencies fenced in, phone masking), actions checked and written to
``tickets.events``, intake refusals recorded, the users CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer
from sqlalchemy import select
from typer.testing import CliRunner

from config.settings import Settings
from models import ledger as t
from models.events import parse_event
from models.tickets import Rejection
from streams.app import TICKETS_EVENTS, TICKETS_INVALID
from streams.cli import app as cli
from streams.console.accounts import ensure_demo_users, revoke_tokens, set_active
from streams.db import Ledger, make_engine
from tests.integration.console_world import CATALOGUE, PASSWORD, PHONE, World, csrf_of, login

pytestmark = pytest.mark.integration


def events_on_topic(bootstrap: str, ticket_id: str) -> list[dict[str, Any]]:
    consumer = KafkaConsumer(TICKETS_EVENTS, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        return [json.loads(m.value) for m in consumer if (m.key or b"").decode() == ticket_id]
    finally:
        consumer.close()


def test_api_needs_a_live_token_of_an_active_user(world: World) -> None:
    # Without a token, with a made-up one: 401 with a Chinese explanation and the Bearer challenge
    r = world.api("GET", "/api/me", None)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["error"] == "unauthorized" and "Authorization: Bearer" in r.json()["message"]
    r = world.client.get("/api/me", headers={"Authorization": "Bearer hk_not-a-real-token"})
    assert r.status_code == 401 and "令牌无效" in r.json()["message"]
    r = world.client.get("/api/me", headers={"Authorization": "Basic c2NqZzpwdw=="})
    assert r.status_code == 401

    # A valid token says who it is
    assert world.api("GET", "/api/me", "scjg").json() == {
        "username": "scjg", "role": "agency", "agency": "BH-SCJG", "agency_name": "天津市滨海新区市场监督管理局",
        "display_name": None}

    # Revoked tokens and disabled users stop working at once
    revoke_tokens(world.ledger, "boss")
    assert world.api("GET", "/api/me", "boss").status_code == 401
    set_active(world.ledger, "disp", False)
    assert world.api("GET", "/api/me", "disp").status_code == 401
    with world.ledger.session() as s:
        stored = s.scalars(select(t.ApiToken.token_hash)).all()
    assert all(world.tokens["scjg"].encode() not in h for h in stored)  # only hashes are kept


def test_an_agency_sees_only_its_tickets_and_only_the_handler_sees_the_phone(world: World) -> None:
    # The handling agency gets the full number, in the field and in the text
    mine = world.api("GET", f"/api/tickets/{world.mine}", "scjg").json()
    assert mine["caller_phone"] == PHONE and PHONE in mine["text"]
    assert mine["current_agency"] == "BH-SCJG" and mine["decisions"][0]["basis"] == "《测试依据》第一条"

    # Another agency's ticket: answered like a missing one (404) through the API, by listing, and as a page
    r = world.api("GET", f"/api/tickets/{world.theirs}", "scjg")
    assert r.status_code == 404 and r.json()["error"] == "not_found" and "本单位" in r.json()["message"]
    listed = {tk["id"] for tk in world.api("GET", "/api/tickets", "scjg").json()}
    assert world.mine in listed and world.theirs not in listed and world.manual not in listed
    assert login(world.client, "scjg").headers["location"] == "/agency"
    page = world.client.get(f"/tickets/{world.theirs}")
    assert page.status_code == 404 and "未派给本单位" in page.text
    inbox = world.client.get("/agency")
    assert world.mine in inbox.text and world.theirs not in inbox.text and PHONE in inbox.text

    # Everybody else sees the number masked: dispatcher, supervisor, and the other agency on its own ticket
    for user in ("disp", "boss"):
        view = world.api("GET", f"/api/tickets/{world.mine}", user).json()
        assert view["caller_phone"] == "138****5678" and PHONE not in json.dumps(view, ensure_ascii=False)
    theirs = world.api("GET", f"/api/tickets/{world.theirs}", "sthj").json()
    assert theirs["caller_phone"] == PHONE
    login(world.client, "disp")
    page = world.client.get(f"/tickets/{world.mine}")
    assert page.status_code == 200 and "138****5678" in page.text and PHONE not in page.text

    # Unknown tickets are 404, odd ids too
    assert world.api("GET", f"/api/tickets/nope-{world.run}", "boss").status_code == 404
    assert world.api("GET", "/api/tickets/%2E%2E", "boss").status_code == 404


def test_actions_are_checked_then_written_to_tickets_events(world: World, kafka_bootstrap: str) -> None:
    path = f"/api/tickets/{world.mine}/actions"
    # A return needs a reason code and a legal basis; the message says which
    r = world.api("POST", path, "scjg", json={"action": "return", "reason_code": "NOT_OUR_DUTY"})
    assert r.status_code == 400 and "法律依据" in r.json()["message"]
    r = world.api("POST", path, "scjg", json={"action": "return", "basis": "《x》"})
    assert r.status_code == 400 and "退单理由" in r.json()["message"]
    r = world.api("POST", path, "scjg", json={"action": "fly"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    # Not its ticket, not its role, not in this state
    r = world.api("POST", f"/api/tickets/{world.theirs}/actions", "scjg", json={"action": "sign"})
    assert r.status_code == 404
    r = world.api("POST", path, "scjg", json={"action": "reassign", "to": "BH-CGW"})
    assert r.status_code == 403 and "派单员" in r.json()["message"]
    r = world.api("POST", path, "scjg", json={"action": "resolve", "reply": "已处理"})
    assert r.status_code == 409 and "待签收" in r.json()["message"]
    assert events_on_topic(kafka_bootstrap, world.mine) == []

    # A proper return goes to tickets.events as the worker expects it
    r = world.api("POST", path, "scjg", json={"action": "return", "reason_code": "NOT_OUR_DUTY",
                                              "basis": "《食品安全法》第六条", "explanation": "应由商务部门处理"})
    assert r.status_code == 202 and r.json()["status"] == "submitted"
    sent = events_on_topic(kafka_bootstrap, world.mine)
    assert len(sent) == 1
    event = parse_event(sent[0])
    assert not isinstance(event, Rejection)
    assert (event.type, event.role, event.agency, event.actor) == ("returned", "agency", "BH-SCJG", "scjg")
    assert event.reason_code == "NOT_OUR_DUTY" and event.basis == "《食品安全法》第六条"
    assert event.event_id == r.json()["event_id"]

    # The dispatcher dispatches the manual ticket with one form post from the queue page
    login(world.client, "disp")
    queue = world.client.get("/dispatcher")
    assert world.manual in queue.text and 'data-dispatch="BH-STHJ"' in queue.text  # top suggestion
    r = world.client.post(f"/tickets/{world.manual}/actions", data={
        "csrf": csrf_of(world.client, "/dispatcher"), "action": "reassign", "to": "BH-CGW", "next": "/dispatcher"},
        follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dispatcher"
    assert "已提交" in world.client.get("/dispatcher").text
    (dispatch,) = events_on_topic(kafka_bootstrap, world.manual)
    assert dispatch["type"] == "reassigned" and dispatch["role"] == "dispatcher" and dispatch["target_agency"] == "BH-CGW"

    # A form without the session's CSRF token is refused
    r = world.client.post(f"/tickets/{world.manual}/actions", data={"action": "close", "csrf": "forged"})
    assert r.status_code == 403 and "安全校验" in r.text


def test_intake_over_the_api_refuses_bad_input_and_records_it(world: World, kafka_bootstrap: str) -> None:
    good = {"id": f"I{world.run}", "text": "路灯不亮好几天了", "address": "滨海新区"}
    assert world.api("POST", "/api/tickets", "scjg", json=good).status_code == 403  # agencies do not take in
    r = world.api("POST", "/api/tickets", "disp", json=good)
    assert (r.status_code, r.json()) == (202, {"id": f"I{world.run}", "status": "accepted"})

    r = world.api("POST", "/api/tickets", "disp", content=json.dumps({"id": f"I{world.run}-bad", "text": " "}))
    assert r.status_code == 400 and r.json()["error"] == "invalid_ticket" and "text" in r.json()["reasons"]
    assert world.api("POST", "/api/tickets", "disp", content=b"{nope").json()["reasons"].startswith("not JSON")
    r = world.api("POST", "/api/tickets", "disp", content=json.dumps({"id": "big", "text": "x" * 70_000}))
    assert r.status_code == 413 and r.json()["limit_bytes"] == 64 * 1024
    assert any(rej.key == f"I{world.run}-bad" and rej.source == "http" for rej in world.ledger.rejections(20))
    consumer = KafkaConsumer(TICKETS_INVALID, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        dead = [json.loads(m.value) for m in consumer if world.run in m.value.decode()]
    finally:
        consumer.close()
    assert any(d["key"] == f"I{world.run}-bad" and d["source"] == "http" for d in dead)


def test_pages_by_role_login_and_logout(world: World) -> None:
    c = world.client
    # Not logged in: pages send to the log-in page; a wrong password is a 401 page
    r = c.get("/supervisor", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/supervisor"
    r = login(c, "boss", "wrong-password")
    assert r.status_code == 401 and "用户名或密码错误" in r.text
    # Each role lands on its page and is kept out of the others'
    assert login(c, "boss").headers["location"] == "/supervisor"
    sup = c.get("/supervisor")
    assert sup.status_code == 200 and "天津市滨海新区市场监督管理局" in sup.text and "<svg" in sup.text
    assert "教育培训" in sup.text and "餐饮油烟" in sup.text
    assert c.get("/supervisor/agencies/BH-SCJG").status_code == 200
    assert c.get("/supervisor/agencies/NOPE").status_code == 404
    assert c.get("/agency").status_code == 403
    ref = c.get("/api-reference")
    assert ref.status_code == 200 and "/api/tickets/{ticket_id}/actions" in ref.text and "Bearer" in ref.text
    login(c, "scjg")
    r = c.get("/supervisor")
    assert r.status_code == 403 and "督办人员" in r.text
    # A disabled user's session ends on the next request; logging out ends it too
    set_active(world.ledger, "scjg", False)
    assert c.get("/agency", follow_redirects=False).status_code == 303
    login(c, "sthj")
    r = c.post("/logout", data={"csrf": csrf_of(c, "/agency")}, follow_redirects=False)
    assert r.status_code == 303 and c.get("/agency", follow_redirects=False).status_code == 303


def test_users_cli_and_demo_users(database_url: str, tmp_path: Path) -> None:
    env = {"HOTLINE_DATABASE_URL": database_url, "HOTLINE_DATA_DIR": str(tmp_path)}
    runner = CliRunner()
    r = runner.invoke(cli, ["users", "add", "wang", "--role", "agency", "--agency", "bh-cgw"],
                      input=f"{PASSWORD}\n{PASSWORD}\n", env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["users", "add", "li", "--role", "agency"], input="x\n", env=env)
    assert r.exit_code == 2 and "--agency" in r.output
    r = runner.invoke(cli, ["users", "add", "li", "--role", "boss", "--password-stdin"], input=PASSWORD, env=env)
    assert r.exit_code == 2 and "role" in r.output
    r = runner.invoke(cli, ["users", "add", "wang", "--role", "supervisor", "--password-stdin"],
                      input=f"{PASSWORD}\n", env=env)
    assert r.exit_code == 2 and "exists already" in r.output
    r = runner.invoke(cli, ["users", "add", "zhao", "--role", "dispatcher", "--password-stdin"], input="short\n",
                      env=env)
    assert r.exit_code == 2 and "at least 8" in r.output
    r = runner.invoke(cli, ["users", "token", "wang", "--name", "agency system"], env=env)
    assert r.exit_code == 0 and r.stdout.strip().startswith("hk_")
    r = runner.invoke(cli, ["users", "list", "--json"], env=env)
    (row,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert (row["username"], row["agency"], row["live_tokens"], row["active"]) == ("wang", "BH-CGW", 1, True)

    ledger = Ledger(make_engine(database_url))
    try:
        first = ensure_demo_users(ledger, CATALOGUE)
        again = ensure_demo_users(ledger, CATALOGUE)
        assert first == again and {d.username for d in first} >= {"jiandu", "paidan", "bh-cgw", "teda-cgj", "dl-cgw"}
        assert {d.role for d in first} == {"supervisor", "dispatcher", "agency"}
        assert all(d.agency_name == CATALOGUE.agencies[d.agency].name for d in first if d.agency)
        with ledger.session() as s:
            assert s.query(t.User).count() == len(first) + 1
    finally:
        ledger.dispose()


def test_dispatcher_corrections_feed_the_next_training(world: World) -> None:
    from streams.corrections import load_corrections

    # As the lifecycle stage stores them: the agency each dispatcher chose
    world.ledger.record_training_example(ticket_id=world.manual, label="BH-CGW", predicted=None, created_by="disp")
    world.ledger.record_training_example(ticket_id=world.mine, label="BH-WJW", predicted="BH-SCJG", created_by="disp")
    as_matters = load_corrections(world.ledger, CATALOGUE, "matter", "BH")
    # BH-CGW co-owns the top candidate 餐饮油烟扰民 (before 流动摊贩占路, where the router named it too);
    # 卫健委 owns none of the food ticket's candidates
    assert (as_matters.texts, as_matters.labels, as_matters.skipped) == (["楼下烧烤店油烟直排。"], ["HB-001"], 1)
    as_agencies = load_corrections(world.ledger, CATALOGUE, "agency", "BH")
    assert sorted(as_agencies.labels) == ["BH-CGW", "BH-WJW"] and as_agencies.skipped == 0
    # `hotline train` reads them from the configured ledger (and leaves a fresh install without one alone)
    from streams.cli.classify import _corrections

    found = _corrections(world.settings, CATALOGUE, "matter")
    assert found is not None and found.labels == ["HB-001"] and found.skipped == 1


def test_training_without_a_ledger_does_not_create_one(tmp_path: Path) -> None:
    from streams.cli.classify import _corrections

    assert _corrections(Settings(data_dir=tmp_path), CATALOGUE, "matter") is None
    assert not (tmp_path / "ledger.sqlite3").exists()
