"""Supervision end to end on the embedded broker, on simulated time (HOTLINE_CLOCK_SPEED=3600: an hour per
second): an urgent ticket nobody signs gets its warnings and then its overdue alert, a return is reported,
and a worker restart neither repeats nor loses an alert — in the ledger and on ``supervision.alerts``."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import pytest
from kafka import KafkaConsumer
from sqlalchemy import select

from models import ledger as t
from models.schemas import validator
from streams.app import SUPERVISION_ALERTS, TICKETS_EVENTS, TICKETS_RECEIVED
from streams.db import Ledger, make_engine
from tests.conftest import wait_until
from tests.integration.flow import event, produce

pytestmark = pytest.mark.integration

FAST = {"HOTLINE_CLOCK_SPEED": "3600", "HOTLINE_CONFIDENCE_THRESHOLD": "0.02"}
FUMES = "泰达街道某小区楼下新开的烧烤饭店油烟特别大，排烟管道直接对着居民楼窗户，油烟净化器根本不开，请管一管。"
SIGN_LEVELS = ["warn_50", "warn_75", "warn_90", "overdue"]


def alerts_of(ledger: Ledger, ticket_id: str) -> list[t.Alert]:
    with ledger.session() as s:
        return list(s.scalars(select(t.Alert).where(t.Alert.ticket_id == ticket_id)))


def routed(ledger: Ledger, ticket_id: str) -> t.RoutingDecision | None:
    with ledger.session() as s:
        return s.scalars(select(t.RoutingDecision).where(t.RoutingDecision.ticket_id == ticket_id,
                                                         t.RoutingDecision.published_at.is_not(None))
                         .order_by(t.RoutingDecision.attempt.desc())).first()


def topic_alerts(bootstrap: str, prefix: str) -> list[dict[str, Any]]:
    """Every alert on supervision.alerts keyed by one of this test's tickets (read from the beginning)."""
    consumer = KafkaConsumer(SUPERVISION_ALERTS, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000, enable_auto_commit=False)
    found = [json.loads(m.value) for m in consumer if (m.key or b"").decode().startswith(prefix)]
    consumer.close()
    return found


def send_ticket(bootstrap: str, tid: str, **fields: Any) -> None:
    produce(bootstrap, TICKETS_RECEIVED, [(tid, {"id": tid, "text": FUMES, "address": "泰达街道某小区", **fields})])


@pytest.mark.postgresql_in_slow
def test_unsigned_urgent_ticket_warns_then_goes_overdue_once_across_a_restart(kafka_bootstrap, database_url,
                                                                              start_worker):
    # Given a worker on fast simulated time and an urgent ticket (sign-for within 15 minutes, 24x7)
    worker = start_worker(database_url, **FAST)
    worker.wait_ready()
    ledger = Ledger(make_engine(database_url))
    prefix = f"SUP{uuid.uuid4().hex[:6]}"
    tid = f"{prefix}-sign"
    send_ticket(kafka_bootstrap, tid, urgency="紧急", request_type="投诉")
    assert wait_until(lambda: routed(ledger, tid) is not None, timeout=30), worker.log()[-3000:]
    assert routed(ledger, tid).decision == "auto", routed(ledger, tid).reason

    # When nobody signs it: then the warnings and the overdue alert of the sign-for stage appear, in order
    def sign_levels() -> list[str]:
        return [a.level for a in sorted(alerts_of(ledger, tid), key=lambda a: a.raised_at)
                if a.rule == "sign_deadline"]

    assert wait_until(lambda: sign_levels()[:4] == SIGN_LEVELS, timeout=20), \
        f"{sign_levels()}\n{worker.log()[-3000:]}"
    overdue = next(a for a in alerts_of(ledger, tid) if a.level == "overdue")
    assert overdue.severity == "critical" and overdue.agency == routed(ledger, tid).agency
    assert "签收时限" in overdue.message and overdue.deadline is not None

    # and on the topic: each alert once, valid against the published schema
    on_topic = topic_alerts(kafka_bootstrap, prefix)
    check = validator(SUPERVISION_ALERTS)
    for message in on_topic:
        errors = list(check.iter_errors(message))
        assert not errors, f"{message['alert_key']}: {errors[0].message}"
    counts = Counter(m["alert_key"] for m in on_topic)
    assert counts and max(counts.values()) == 1, counts
    assert {a.alert_key for a in alerts_of(ledger, tid)} <= set(counts)

    # When the worker is restarted (the facts table recovers from its changelog)
    before = {a.alert_key for a in alerts_of(ledger, tid)}
    worker.stop()
    second = start_worker(database_url, **FAST)
    second.wait_ready()
    assert wait_until(lambda: "supervision rebuilt from" in second.log(), timeout=30), second.log()[-3000:]
    # a few ticks pass on the new worker; what was announced is not announced again
    assert not wait_until(lambda: any(c > 1 for c in Counter(
        m["alert_key"] for m in topic_alerts(kafka_bootstrap, prefix)).values()), timeout=5, interval=1)
    after = {a.alert_key for a in alerts_of(ledger, tid)}
    assert before <= after
    assert all(a.level.startswith("reminder") for a in alerts_of(ledger, tid) if a.alert_key not in before)
    ledger.dispose()


def test_a_return_raises_a_return_alert_with_its_reason(kafka_bootstrap, database_url, start_worker):
    worker = start_worker(database_url, **FAST)
    worker.wait_ready()
    ledger = Ledger(make_engine(database_url))
    prefix = f"SRT{uuid.uuid4().hex[:6]}"
    tid = f"{prefix}-ret"
    send_ticket(kafka_bootstrap, tid, request_type="投诉")
    assert wait_until(lambda: routed(ledger, tid) is not None, timeout=30), worker.log()[-3000:]
    first = routed(ledger, tid)
    assert first.decision == "auto", first.reason

    # When the agency returns it with a reason code
    produce(kafka_bootstrap, TICKETS_EVENTS, [(tid, event(tid, "returned", "agency", first.agency,
                                                          reason_code="NOT_OUR_DUTY",
                                                          explanation="不属于本单位职责"))])

    # Then a return alert names the agency and the reason, in the ledger and on the topic
    def returns() -> list[t.Alert]:
        return [a for a in alerts_of(ledger, tid) if a.rule == "returned"]

    assert wait_until(lambda: len(returns()) == 1, timeout=20), worker.log()[-3000:]
    (alert,) = returns()
    assert alert.agency == first.agency and alert.level == "in_time"
    assert "不属于本单位法定职责" in alert.message and alert.payload["details"]["reason_code"] == "NOT_OUR_DUTY"
    on_topic = [m for m in topic_alerts(kafka_bootstrap, prefix) if m["rule"] == "returned"]
    assert [m["alert_key"] for m in on_topic] == [alert.alert_key]
    assert not list(validator(SUPERVISION_ALERTS).iter_errors(on_topic[0]))
    ledger.dispose()
