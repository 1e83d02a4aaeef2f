"""The doors in and the agencies' side, against the session broker and real ledgers:
``hotline ingest`` (CSV and JSONL with bad rows), ``hotline act``, ``POST /api/tickets`` of the web console
routed by a running worker, and ``hotline queue`` reading the routed ticket back."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer
from sqlalchemy import select
from typer.testing import CliRunner

from config.settings import Settings
from models import ledger as t
from models.events import parse_event
from models.tickets import Rejection, parse_ticket
from streams.app import TICKETS_EVENTS, TICKETS_INVALID, TICKETS_RECEIVED
from streams.cli import app
from streams.db import Ledger, make_engine
from tests.conftest import wait_until

pytestmark = pytest.mark.integration
runner = CliRunner()


def cli_env(bootstrap: str, tmp_path: Path, database_url: str | None = None) -> dict[str, str]:
    env = {"HOTLINE_KAFKA_BOOTSTRAP": bootstrap, "HOTLINE_DATA_DIR": str(tmp_path / "cli")}
    if database_url:
        env["HOTLINE_DATABASE_URL"] = database_url
    return env


def read_topic(bootstrap: str, topic: str, timeout_ms: int = 3000) -> list[tuple[str, bytes]]:
    """Every (key, value) on the topic, read from the start without a consumer group."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=timeout_ms)
    try:
        return [((m.key or b"").decode(), m.value) for m in consumer]
    finally:
        consumer.close()


def ingest_rejections(database_url: str, run: str) -> dict[str, str]:
    ledger = Ledger(make_engine(database_url))
    try:
        with ledger.session() as s:
            rows = s.scalars(select(t.RejectedInput).where(t.RejectedInput.source == "ingest")).all()
            return {r.dedup_key: r.reason for r in rows if run in r.payload}
    finally:
        ledger.dispose()


def test_ingest_csv_and_jsonl_with_bad_rows(kafka_bootstrap: str, database_url: str, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    env = cli_env(kafka_bootstrap, tmp_path, database_url)
    csv_file = tmp_path / "export.csv"
    csv_file.write_text(
        "工单号,诉求内容,地址,受理时间,紧急程度\n"
        f"C{run}-1,小区门口烧烤摊油烟很大 {run},滨海新区新港街道,2025/3/1 8:05,一般\n"
        f"C{run}-2,,滨海新区,2025-03-01 09:00,一般\n"
        f"C{run}-3,公司拖欠工资三个月 {run},经开区第三大街,2025-03-01 10:00,很急\n"
        f"C{run}-4,路灯坏了好几天 {run},东丽区,,\n", encoding="utf-8")

    # When a CSV with its own column names is ingested
    r = runner.invoke(app, ["ingest", str(csv_file), "--id-col", "工单号", "--text-col", "诉求内容",
                            "--address-col", "地址", "--received-at-col", "受理时间", "--urgency-col", "紧急程度"],
                      env=env)

    # Then the good rows are sent, the bad ones named with row number and reason, exit code 1
    assert r.exit_code == 1, r.output
    assert "row 3 rejected: text" in r.output and "row 4 rejected: urgency" in r.output
    assert "2 ticket(s)" in r.output and "2 row(s) rejected" in r.output and "Traceback" not in r.output

    # And a JSONL file (no ids on some lines: generated from the content) the same way
    jsonl = tmp_path / "replay.jsonl"
    lines = [json.dumps({"id": f"J{run}-1", "text": f"噪音扰民 {run}", "request_type": "投诉"}, ensure_ascii=False),
             json.dumps({"text": f"没有编号的工单 {run}", "address": "东丽区"}, ensure_ascii=False),
             f"not json {run}",
             json.dumps({"id": f"J{run}-4", "address": f"no text {run}"}, ensure_ascii=False)]
    jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = runner.invoke(app, ["ingest", str(jsonl), "--id-prefix", "R-"], env=env)
    assert r.exit_code == 1, r.output
    assert "row 3 rejected: not JSON" in r.output and "row 4 rejected: text：缺少此字段" in r.output and "text: Field required" in r.output

    # A re-import sends the same (generated) ids again: the router dedupes them by id
    r = runner.invoke(app, ["ingest", str(jsonl), "--id-prefix", "R-"], env=env)
    assert r.exit_code == 1

    received = [(k, parse_ticket(v)) for k, v in read_topic(kafka_bootstrap, TICKETS_RECEIVED)
                if run in v.decode("utf-8", "replace")]
    assert all(not isinstance(tk, Rejection) and tk.id == k for k, tk in received)
    ids = [k for k, _ in received]
    assert ids.count(f"C{run}-1") == 1 and ids.count(f"C{run}-4") == 1 and f"C{run}-2" not in ids
    generated = [i for i in ids if i.startswith("R-h")]
    assert len(generated) == 2 and len(set(generated)) == 1, ids
    assert ids.count(f"R-J{run}-1") == 2
    first = dict(received)[f"C{run}-1"]
    assert first.received_at.isoformat() == "2025-03-01T08:05:00+08:00" and first.address == "滨海新区新港街道"

    # Rejections are in the ledger (once each, despite the re-import) and on tickets.invalid
    recorded = ingest_rejections(database_url, run)
    assert len(recorded) == 4, recorded
    assert any(reason.startswith("row 4: urgency") for reason in recorded.values())
    dead = [json.loads(v) for k, v in read_topic(kafka_bootstrap, TICKETS_INVALID) if run in v.decode()]
    assert {d["key"] for d in dead} >= {f"C{run}-2", f"C{run}-3", f"R-J{run}-4"}
    assert all(d["source"] == "ingest" and d["schema_version"] == 1 for d in dead)


def test_act_produces_a_valid_event_and_refuses_an_incomplete_return(kafka_bootstrap: str, tmp_path: Path) -> None:
    ticket_id = f"A{uuid.uuid4().hex[:10]}"
    env = cli_env(kafka_bootstrap, tmp_path)
    r = runner.invoke(app, ["act", ticket_id, "return", "--agency", "BH-STHJ", "--basis", "《某法》"], env=env)
    assert r.exit_code == 2 and "--reason-code" in r.output

    r = runner.invoke(app, ["act", ticket_id, "extend", "--agency", "BH-STHJ", "--days", "5",
                            "--explanation", "需要现场监测", "--actor", "zhang"], env=env)
    assert r.exit_code == 0, r.output
    event_id = r.stdout.strip()

    mine = [(k, v) for k, v in read_topic(kafka_bootstrap, TICKETS_EVENTS) if ticket_id in v.decode()]
    assert len(mine) == 1, "the refused return must not have been sent"
    key, value = mine[0]
    event = parse_event(value)
    assert not isinstance(event, Rejection), event
    assert key == ticket_id and event.event_id == event_id and event.type == "extension_requested"
    assert event.role == "agency" and event.agency == "BH-STHJ" and event.days == 5 and event.actor == "zhang"
    assert event.occurred_at.utcoffset().total_seconds() == 8 * 3600


@pytest.mark.postgresql_in_slow
def test_http_intake_then_the_queue_shows_the_routed_ticket(kafka_bootstrap: str, database_url: str,
                                                            start_worker: Any, tmp_path: Path) -> None:
    """HTTP intake is the web console's ``POST /api/tickets`` (a dispatcher's token); the worker routes it."""
    from fastapi.testclient import TestClient

    from streams.console import create_app
    from streams.console.accounts import add_user, issue_token

    worker = start_worker(database_url)
    worker.wait_ready()
    ledger = Ledger(make_engine(database_url))
    add_user(ledger, "platform", "dispatcher", "platform-pass")
    headers = {"Authorization": f"Bearer {issue_token(ledger, 'platform')}"}
    settings = Settings(data_dir=tmp_path / "web", database_url=database_url, kafka_bootstrap=kafka_bootstrap)
    client = TestClient(create_app(settings, ledger=ledger))
    tid = f"H{uuid.uuid4().hex[:10]}"

    # Without a token nothing is taken in
    good = {"id": tid, "text": "小区旁边的工地夜间施工噪音太大，凌晨还在打桩，严重影响休息。",
            "address": "滨海新区新港街道", "request_type": "投诉", "caller_phone": "13812345678"}
    assert client.post("/api/tickets", json=good).status_code == 401

    # A good ticket is accepted once the broker has it
    r = client.post("/api/tickets", json=good, headers=headers)
    assert (r.status_code, r.json()) == (202, {"id": tid, "status": "accepted"})

    # Bad ones are refused with the reasons, and recorded in the ledger
    r = client.post("/api/tickets", content=json.dumps({"id": f"{tid}-bad", "text": " "}), headers=headers)
    assert r.status_code == 400 and r.json()["error"] == "invalid_ticket" and "text" in r.json()["reasons"]
    r = client.post("/api/tickets", content=b"{not json", headers=headers)
    assert r.status_code == 400 and "not JSON" in r.json()["reasons"]
    r = client.post("/api/tickets", content=json.dumps({"id": f"{tid}-big", "text": "x" * 70_000}), headers=headers)
    assert r.status_code == 413
    assert any(rej.key == f"{tid}-bad" and rej.source == "http" for rej in ledger.rejections(50))

    # The ledger's view follows the ticket through routing; the phone is masked for the dispatcher
    view: dict[str, Any] = {}

    def routed() -> bool:  # published, and its 'routed' event applied: the lifecycle stage sets the status
        nonlocal view
        r = client.get(f"/api/tickets/{tid}", headers=headers)
        view = r.json()
        return (r.status_code == 200 and any(d["published_at"] for d in view["decisions"])
                and view["status"] != "received")

    try:
        assert wait_until(routed, timeout=40), worker.log()[-3000:]
        assert view["caller_phone"] == "138****5678" and view["status"] in ("dispatched", "manual")
        assert client.get(f"/api/tickets/nope-{tid}", headers=headers).status_code == 404
    finally:
        client.close()
        ledger.dispose()

    # And the agency (or the dispatchers) read it from their queue with `hotline queue`
    args = ["queue", view["current_agency"]] if view["status"] == "dispatched" else ["queue", "--manual"]
    env = cli_env(kafka_bootstrap, tmp_path)
    r = runner.invoke(app, [*args, "--json"], env=env)
    assert r.exit_code == 0, r.output
    shown = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    mine = [m for m in shown if m["ticket_id"] == tid]
    assert len(mine) == 1 and mine[0]["routing_id"] == f"{tid}#1" and mine[0]["basis"] == view["decisions"][0]["basis"]

    # What was shown is committed: the next read has nothing of ours; --from-beginning shows it again
    r = runner.invoke(app, [*args, "--json"], env=env)
    assert r.exit_code == 0 and tid not in r.stdout
    r = runner.invoke(app, [*args, "--from-beginning"], env={**env, "COLUMNS": "200"})
    assert r.exit_code == 0 and tid in r.stdout, r.output
