"""The main job end to end on the embedded broker: tickets in -> exactly one queue each, the ledger agrees;
returns re-route, three returns end with the dispatchers for designation; a worker killed with kill -9
in the middle of a batch loses nothing and routes nothing twice."""

from __future__ import annotations

import json
import signal
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from models import ledger as t
from models.schemas import validator
from streams.app import TICKETS_EVENTS, TICKETS_MANUAL, TICKETS_RECEIVED, app, routed_topic_name
from streams.db import Ledger, make_engine
from tests.conftest import wait_until
from tests.integration.flow import (
    decisions,
    event,
    produce,
    published,
    read_queues,
    realistic_tickets,
    unrouted_report,
)

pytestmark = pytest.mark.integration


def test_200_tickets_each_in_exactly_one_queue_and_ledger_agrees(kafka_bootstrap, database_url, start_worker):
    # Given a worker and 200 realistic tickets (plus a few malformed ones in the middle)
    worker = start_worker(database_url)
    worker.wait_ready()
    prefix = f"F{uuid.uuid4().hex[:6]}"
    tickets = realistic_tickets(200, prefix)
    ledger = Ledger(make_engine(database_url))

    # When they arrive on tickets.received
    produce(kafka_bootstrap, TICKETS_RECEIVED, [(tk["id"], tk) for tk in tickets[:100]])
    produce(kafka_bootstrap, TICKETS_RECEIVED, [(f"{prefix}-bad", b"{not json"),
                                                (f"{prefix}-notext", json.dumps({"id": f"{prefix}-x"}).encode()),
                                                (f"{prefix}-future", json.dumps({"id": f"{prefix}-future",
                                                                                 "text": "路灯不亮",
                                                                                 "received_at": "2099-01-01T08:00"
                                                                                 }).encode())])
    produce(kafka_bootstrap, TICKETS_RECEIVED, [(tk["id"], tk) for tk in tickets[100:]])

    # Then every ticket gets one published decision
    assert wait_until(lambda: published(ledger, prefix) == 200, timeout=120), \
        f"{published(ledger, prefix)}/200 published\n{worker.log()[-3000:]}"
    queues = read_queues(kafka_bootstrap, prefix)
    assert set(queues) == {tk["id"] for tk in tickets}
    by_ticket = {d.ticket_id: d for d in decisions(ledger, prefix)}
    for tid, seen in queues.items():
        topics = {topic for topic, _ in seen}
        assert len(topics) == 1, f"{tid} is in {topics}"
        assert len({m["routing_id"] for _, m in seen}) == 1
        (topic,) = topics
        d = by_ticket[tid]
        assert d.topic == topic  # the ledger says where it went, and it went there
        if topic == TICKETS_MANUAL:
            assert d.decision in {"manual", "unroutable"}
            assert "****" in (seen[0][1]["caller_phone"] or "****")  # masked for dispatchers
        else:
            assert d.decision == "auto" and topic == routed_topic_name(d.agency)
            assert seen[0][1]["basis"] and seen[0][1]["matter"]
            assert "****" not in seen[0][1]["caller_phone"]  # the handling agency sees the number
    counts = Counter(d.decision for d in by_ticket.values())
    assert counts["auto"] > 0
    # every message on the queues validates against the published JSON Schema of its topic
    for seen in queues.values():
        for topic, message in seen:
            errors = list(validator(topic).iter_errors(message))
            assert not errors, f"{topic}: {errors[0].message}"
    # and the malformed input is recorded with reasons while the flow went on
    reasons = [r.reason for r in ledger.rejections(500)]
    assert any("not JSON" in r for r in reasons) and any("text: Field required" in r for r in reasons)
    assert any(r.startswith("received_at：受理时间晚于当前时间") for r in reasons)  # and it was not routed
    assert ledger.get_ticket(f"{prefix}-future") is None
    assert worker.proc.poll() is None
    ledger.dispose()


def _latest(ledger: Ledger, tid: str) -> t.RoutingDecision | None:
    with ledger.session() as s:
        return s.scalars(select(t.RoutingDecision).where(t.RoutingDecision.ticket_id == tid,
                                                         t.RoutingDecision.published_at.is_not(None))
                         .order_by(t.RoutingDecision.attempt.desc())).first()


@pytest.mark.postgresql_in_slow
def test_returns_reroute_and_third_return_goes_to_designation(kafka_bootstrap, database_url, start_worker):
    # Given a confident router (low threshold) and a catering-fumes ticket in TEDA (lead 生态环境局, co-owner 城管)
    worker = start_worker(database_url, HOTLINE_CONFIDENCE_THRESHOLD="0.02")
    worker.wait_ready()
    ledger = Ledger(make_engine(database_url))
    tid = f"RET-{uuid.uuid4().hex[:8]}"
    text = "泰达街道某小区楼下新开的烧烤饭店油烟特别大，排烟管道直接对着居民楼窗户，油烟净化器根本不开，请管一管。"
    produce(kafka_bootstrap, TICKETS_RECEIVED, [(tid, {"id": tid, "text": text, "address": "泰达街道某小区"})])
    assert wait_until(lambda: _latest(ledger, tid) is not None, timeout=60), worker.log()[-3000:]
    first = _latest(ledger, tid)
    assert first.decision == "auto", first.reason

    # When the agency returns it (with reason code and basis), it is re-routed to another agency
    returners: list[str] = []
    current = first
    for n in range(1, 4):
        if current.decision != "auto":  # nobody left by the responsibility list: a dispatcher picks one
            target = next(a for a in ("TEDA-CGJ", "TEDA-SCJG", "BH-CGW", "BH-SCJG") if a not in returners)
            produce(kafka_bootstrap, TICKETS_EVENTS, [(tid, event(tid, "reassigned", "dispatcher",
                                                                  target_agency=target))])
            assert wait_until(lambda a=current.attempt: (_latest(ledger, tid).attempt > a), timeout=30)
            current = _latest(ledger, tid)
        agency = current.agency
        produce(kafka_bootstrap, TICKETS_EVENTS, [(tid, event(tid, "returned", "agency", agency,
                                                              reason_code="NOT_OUR_DUTY",
                                                              explanation=f"第{n}次退单：不属于本单位职责"))])
        returners.append(agency)
        assert wait_until(lambda a=current.attempt: (_latest(ledger, tid).attempt > a), timeout=30), \
            worker.log()[-3000:]
        current = _latest(ledger, tid)
        if n == 1:
            assert current.decision == "auto" and current.agency not in returners, current.reason
        if n < 3:
            assert current.decision != "designated"

    # Then after the third return it is on the manual queue, marked for designation
    assert current.decision == "designated", current.reason
    queues = read_queues(kafka_bootstrap, tid)
    # topics are read one after another, not in time order: the last routing is the highest attempt
    last_topic, last = max(queues[tid], key=lambda seen: seen[1]["attempt"])
    assert last_topic == TICKETS_MANUAL and last["designation"] is True
    assert set(returners) <= set(last["excluded_agencies"])
    assert not list(validator(TICKETS_MANUAL).iter_errors(last))
    with ledger.session() as s:
        types = [e.type for e in s.scalars(select(t.TicketEvent).where(t.TicketEvent.ticket_id == tid,
                                                                         t.TicketEvent.accepted))]
    assert types.count("returned") == 3
    ledger.dispose()


@pytest.mark.postgresql_in_slow
def test_illegal_events_are_dead_lettered_and_flow_continues(kafka_bootstrap, database_url, start_worker):
    worker = start_worker(database_url, HOTLINE_CONFIDENCE_THRESHOLD="0.02")
    worker.wait_ready()
    ledger = Ledger(make_engine(database_url))
    tid = f"ILL-{uuid.uuid4().hex[:8]}"
    produce(kafka_bootstrap, TICKETS_RECEIVED, [(tid, {"id": tid, "text": "公司拖欠我们三个月工资，老板不接电话。",
                                                       "address": "东丽区华明街道"})])
    assert wait_until(lambda: _latest(ledger, tid) is not None, timeout=60)
    agency = _latest(ledger, tid).agency or "DL-RSJ"
    produce(kafka_bootstrap, TICKETS_EVENTS, [
        (tid, event(tid, "resolved", "agency", agency, reply="已处理")),  # not signed yet: illegal
        (tid, event(tid, "returned", "agency", agency, reason_code="NOT_OUR_DUTY")),  # no basis: illegal
        (tid, b"{broken"),
        (tid, event(tid, "signed", "agency", "SOMEONE-ELSE")),  # not the handler: illegal
        # stamped a day ahead of the worker's clock, and a day before the dispatch it answers: illegal
        (tid, event(tid, "signed", "agency", agency, occurred_at=(datetime.now(UTC) + timedelta(days=1)).isoformat())),
        (tid, event(tid, "signed", "agency", agency, occurred_at=(datetime.now(UTC) - timedelta(days=1)).isoformat())),
    ])
    sign = event(tid, "signed", "agency", agency)
    produce(kafka_bootstrap, TICKETS_EVENTS, [(tid, sign), (tid, sign)])  # a duplicate delivery

    def refused() -> list[t.TicketEvent]:
        with ledger.session() as s:
            return list(s.scalars(select(t.TicketEvent).where(t.TicketEvent.ticket_id == tid,
                                                               t.TicketEvent.accepted.is_(False))))

    # a threshold of 0.02 dispatches it: the refusals below are refusals of an agency's events
    assert _latest(ledger, tid).decision == "auto", _latest(ledger, tid).reason
    assert wait_until(lambda: ledger.get_ticket(tid).status == "signed", timeout=30), worker.log()[-3000:]
    assert wait_until(lambda: len(refused()) == 5, timeout=20)
    reasons = " | ".join(e.reason for e in refused())
    assert "not allowed while the ticket is dispatched" in reasons
    assert "legal basis or an explanation" in reasons
    assert "not the current handler" in reasons
    assert "晚于当前时间" in reasons and "早于上一环节" in reasons
    with ledger.session() as s:
        signs = s.scalars(select(t.TicketEvent).where(t.TicketEvent.ticket_id == tid,
                                                      t.TicketEvent.type == "signed",
                                                      t.TicketEvent.accepted)).all()
    assert len(signs) == 1
    assert wait_until(lambda: any("not JSON" in r.reason and r.source == "events" and r.payload == "{broken"
                                  for r in ledger.rejections(50)), timeout=20)
    assert worker.proc.poll() is None
    ledger.dispose()


def test_kill_9_mid_batch_loses_nothing_and_routes_nothing_twice(kafka_bootstrap, database_url, start_worker,
                                                                   request):
    if "postgresql" in database_url:
        pytest.skip("crash recovery is exercised on SQLite; the ledger logic is the same on PostgreSQL")
    prefix = f"K{uuid.uuid4().hex[:6]}"
    tickets = realistic_tickets(400, prefix, seed=777)
    ledger = Ledger(make_engine(database_url))
    first = start_worker(database_url)
    first.wait_ready()
    produce(kafka_bootstrap, TICKETS_RECEIVED, [(tk["id"], tk) for tk in tickets])
    # When the worker is killed hard in the middle of the stream
    assert wait_until(lambda: published(ledger, prefix) >= 40, timeout=90), first.log()[-3000:]
    first.stop(sig=signal.SIGKILL)
    done_at_kill = published(ledger, prefix)
    assert done_at_kill < 400, "the kill came too late to test anything"
    # Then a restarted worker finishes the job
    second = start_worker(database_url)
    second.wait_ready()
    assert wait_until(lambda: published(ledger, prefix) == 400, timeout=150), (
        f"{published(ledger, prefix)}/400\n{unrouted_report(ledger, kafka_bootstrap, app.conf.id, tickets)}\n"
        f"--- killed worker\n{first.log()[-2500:]}\n--- restarted worker\n{second.log()[-2500:]}")
    ds = decisions(ledger, prefix)
    assert len(ds) == 400 and len({d.ticket_id for d in ds}) == 400  # one decision each
    queues = read_queues(kafka_bootstrap, prefix)
    assert set(queues) == {tk["id"] for tk in tickets}  # nothing lost
    for tid, seen in queues.items():
        assert len({topic for topic, _ in seen}) == 1, tid  # never two agencies
        assert len({json.dumps(m, sort_keys=True) for _, m in seen}) == 1, tid  # a republication is identical
    ledger.dispose()
