"""``hotline alerts --follow`` on the embedded broker: an alert raised while the command reads the ledger is
shown, and every alert once.

A worker sends an alert to supervision.alerts and records it in the ledger once the broker has it
(``streams.supervision.emit``). The command used to read the ledger first and then start reading the topic at
its end: an alert sent in between was below that end and not in what it had read, and no supervisor following
the alerts ever saw it. Likewise one the broker had acknowledged and its worker not yet recorded.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
from typer.testing import CliRunner

import streams.cli.supervise as supervise
from config.settings import Settings
from models.events import AlertRaised
from models.supervision import Alert
from models.tickets import SHANGHAI
from streams.app import SUPERVISION_ALERTS
from streams.cli import app
from streams.db import Ledger, make_engine, upgrade
from streams.supervision import alert_row

pytestmark = pytest.mark.integration


def overdue(ticket_id: str) -> Alert:
    at = datetime.now(SHANGHAI) - timedelta(hours=1)
    return Alert(f"{ticket_id}:sign_deadline:overdue@1", "sign_deadline", "overdue", "critical", ticket_id,
                 "BH-STHJ", at, f"工单{ticket_id}已超过签收时限。", at, {"stage": "sign"})


def test_follow_shows_an_alert_raised_while_the_ledger_is_read_and_every_alert_once(
        kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(SUPERVISION_ALERTS, Settings().topic_partitions, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()
    url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    upgrade(url)
    ledger = Ledger(make_engine(url))
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    run = f"FOL{uuid.uuid4().hex[:6]}"

    def send(a: Alert) -> AlertRaised:  # a worker's emit, first half: the broker acknowledges it
        record = AlertRaised(**a.record_fields())
        producer.send(SUPERVISION_ALERTS, key=(a.ticket_id or "").encode(), value=record.dumps()).get(timeout=10)
        return record

    def record(a: Alert, r: AlertRaised) -> None:  # second half: the ledger has it
        ledger.record_alerts([alert_row(a, r)])

    # Given an alert raised long ago (on the topic and in the ledger), and one the broker has acknowledged but
    # whose worker has not recorded it yet when the command starts
    old, in_flight, new = overdue(f"{run}-old"), overdue(f"{run}-inflight"), overdue(f"{run}-new")
    record(old, send(old))
    in_flight_record = send(in_flight)
    read = supervise.stored_alerts

    def read_then_raised(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        found = read(*args, **kwargs)
        record(in_flight, in_flight_record)  # the in-flight one is recorded just after the ledger was read,
        record(new, send(new))  # and a new one raised (sent and recorded) before the command reads the topic
        return found

    monkeypatch.setattr(supervise, "stored_alerts", read_then_raised)
    polls = {"n": 0}
    poll = KafkaConsumer.poll

    def a_few_polls(self: KafkaConsumer, *args: Any, **kwargs: Any) -> Any:  # then Ctrl-C
        polls["n"] += 1
        if polls["n"] > 4:
            raise KeyboardInterrupt
        return poll(self, *args, **kwargs)

    monkeypatch.setattr(KafkaConsumer, "poll", a_few_polls)

    # When a supervisor follows the alerts
    env = {"HOTLINE_DATABASE_URL": url, "HOTLINE_DATA_DIR": str(tmp_path / "var"),
           "HOTLINE_KAFKA_BOOTSTRAP": kafka_bootstrap}
    result = CliRunner().invoke(app, ["alerts", "--follow", "--json"], env=env)
    producer.close()
    ledger.dispose()

    # Then each of the three is shown, once: the ledger's, then the two the ledger did not have yet
    assert result.exit_code == 0, result.output
    shown = [json.loads(line)["alert_key"] for line in result.stdout.splitlines() if line.startswith("{")]
    ours = [key for key in shown if key.startswith(run)]
    assert ours[0] == old.alert_key and sorted(ours[1:]) == sorted([in_flight.alert_key, new.alert_key]), shown
